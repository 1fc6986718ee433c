import { inputError } from '../../errors.js';
import { decodeCbor, parseCoseSign1, type CoseSign1 } from './cose.js';

/**
 * The AWS Nitro attestation document (the COSE_Sign1 payload), as specified in AWS's "Nitro
 * Enclaves attestation process" document: a CBOR map with module_id, digest ("SHA384"),
 * timestamp (ms since the epoch), pcrs (index → 48-byte SHA-384 value), certificate (DER),
 * cabundle (DER, root first), and optional public_key, user_data and nonce. A NitroTPM
 * document carries `nitrotpm_pcrs` (the vTPM's SHA-384 bank) instead of `pcrs`.
 */

export interface NitroDocument {
  cose: CoseSign1;
  /** 'enclave' for a Nitro Enclave (pcrs), 'nitrotpm' for an EC2 NitroTPM (nitrotpm_pcrs). */
  flavour: 'enclave' | 'nitrotpm';
  moduleId: string;
  digest: 'SHA384';
  /** Milliseconds since the Unix epoch. */
  timestamp: number;
  pcrs: ReadonlyMap<number, Buffer>;
  certificate: Buffer;
  /** Root first, as the NSM sends it; the last one issued the leaf. */
  cabundle: Buffer[];
  publicKey: Buffer | undefined;
  userData: Buffer | undefined;
  nonce: Buffer | undefined;
}

const MAX_PCRS = 32;
const PCR_SIZE = 48;
const KNOWN = new Set(['module_id', 'digest', 'timestamp', 'pcrs', 'nitrotpm_pcrs', 'certificate', 'cabundle', 'public_key', 'user_data', 'nonce']);

function bad(why: string): never {
  throw inputError('NITRO_BAD_DOCUMENT', `Nitro attestation document: ${why}`);
}

function optBytes(m: Map<unknown, unknown>, key: string, max: number): Buffer | undefined {
  const v = m.get(key);
  if (v === undefined || v === null) return undefined;
  if (!(v instanceof Uint8Array)) bad(`${key} is not a byte string`);
  if (v.length > max) bad(`${key} is ${v.length} bytes, at most ${max} are allowed`);
  return Buffer.from(v);
}

function pcrMap(v: unknown, key: string): Map<number, Buffer> {
  if (!(v instanceof Map)) bad(`${key} is not a map`);
  if (v.size === 0 || v.size > MAX_PCRS) bad(`${key} has ${v.size} entries (1-${MAX_PCRS})`);
  const out = new Map<number, Buffer>();
  for (const [k, val] of v) {
    if (typeof k !== 'number' || !Number.isInteger(k) || k < 0 || k >= MAX_PCRS) bad(`${key} has an index that is not an integer 0-${MAX_PCRS - 1}`);
    // digest is "SHA384" (the only value defined), so every PCR is a SHA-384 value.
    if (!(val instanceof Uint8Array) || val.length !== PCR_SIZE) bad(`${key}[${k}] is not a ${PCR_SIZE}-byte (SHA-384) value`);
    out.set(k, Buffer.from(val));
  }
  return out;
}

/** Parses the payload of a Nitro COSE_Sign1 (untrusted until verifyNitroDocument). */
export function parseNitroPayload(cose: CoseSign1): NitroDocument {
  const m = decodeCbor(cose.payload, 'NITRO_BAD_DOCUMENT', 'Nitro attestation document payload');
  if (!(m instanceof Map)) bad('the payload is not a CBOR map');
  for (const k of m.keys()) if (typeof k !== 'string' || !KNOWN.has(k)) bad(`unknown field ${typeof k === 'string' ? `"${k}"` : String(k)}`);
  const moduleId = m.get('module_id');
  if (typeof moduleId !== 'string' || moduleId.length === 0) bad('module_id is not a non-empty text string');
  const digest = m.get('digest');
  if (digest !== 'SHA384') bad(`digest is ${JSON.stringify(digest)}, only "SHA384" is defined`);
  const ts = m.get('timestamp');
  if (typeof ts !== 'number' || !Number.isSafeInteger(ts) || ts <= 0) bad('timestamp is not a positive integer (milliseconds since 1970)');
  const hasPcrs = m.has('pcrs');
  const hasTpm = m.has('nitrotpm_pcrs');
  if (hasPcrs === hasTpm) bad(hasPcrs ? 'carries both pcrs and nitrotpm_pcrs' : 'carries neither pcrs nor nitrotpm_pcrs');
  const flavour = hasPcrs ? 'enclave' : 'nitrotpm';
  const pcrs = pcrMap(m.get(hasPcrs ? 'pcrs' : 'nitrotpm_pcrs'), hasPcrs ? 'pcrs' : 'nitrotpm_pcrs');
  const cert = m.get('certificate');
  if (!(cert instanceof Uint8Array) || cert.length === 0 || cert.length > 1024 * 16) bad('certificate is not a DER byte string');
  const bundle = m.get('cabundle');
  if (!Array.isArray(bundle) || bundle.length === 0 || bundle.length > 16) bad('cabundle is not a non-empty array (root first)');
  const cabundle = bundle.map((c, i) => {
    if (!(c instanceof Uint8Array) || c.length === 0 || c.length > 1024 * 16) bad(`cabundle[${i}] is not a DER byte string`);
    return Buffer.from(c);
  });
  return {
    cose,
    flavour,
    moduleId,
    digest: 'SHA384',
    timestamp: ts,
    pcrs,
    certificate: Buffer.from(cert),
    cabundle,
    publicKey: optBytes(m, 'public_key', 1024),
    userData: optBytes(m, 'user_data', 512),
    nonce: optBytes(m, 'nonce', 512),
  };
}

/** COSE_Sign1 bytes (or their base64 text) to a parsed, not yet verified, attestation document. */
export function parseNitroDocument(data: Uint8Array): NitroDocument {
  return parseNitroPayload(parseCoseSign1(decodeNitroInput(data)));
}

const B64 = /^[A-Za-z0-9+/=_\-\s]+$/;

/** Accepts raw CBOR or base64 text of it (as evervault ships one sample). */
export function decodeNitroInput(data: Uint8Array): Buffer {
  const buf = Buffer.from(data);
  const first = buf[0] ?? 0;
  // CBOR array(4) or tag 18: binary, used as is.
  if (first === 0x84 || first === 0xd2) return buf;
  const text = buf.toString('latin1').trim();
  if (text.length > 0 && text.length % 4 !== 1 && B64.test(text)) {
    const b = Buffer.from(text.replace(/\s+/g, '').replace(/-/g, '+').replace(/_/g, '/'), 'base64');
    if (b[0] === 0x84 || b[0] === 0xd2) return b;
  }
  return buf;
}
