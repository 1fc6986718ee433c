import { decode as cborDecode, Tag } from 'cbor2';
import { inputError } from '../../errors.js';

/**
 * COSE_Sign1 (RFC 9052 §4.2) as the AWS Nitro Security Module emits it: a CBOR array
 * [protected: bstr, unprotected: map, payload: bstr, signature: bstr], optionally wrapped in
 * tag 18. Only the protected header is signed, so the algorithm is read from it alone.
 */

export const COSE_SIGN1_TAG = 18;
/** COSE algorithm identifiers Coffer accepts (RFC 9053): ES384 only, as the NSM signs. */
export const COSE_ALG_ES384 = -35;
/** An attestation document is a few KiB; anything far larger is not one. */
export const MAX_COSE_SIZE = 1 << 20;

export interface CoseSign1 {
  /** Whether the array came wrapped in CBOR tag 18. */
  tagged: boolean;
  /** The protected header bytes exactly as signed. */
  protectedRaw: Buffer;
  /** COSE algorithm (label 1) from the protected header. */
  alg: number;
  unprotected: ReadonlyMap<unknown, unknown>;
  payload: Buffer;
  signature: Buffer;
}

const DECODE_OPTIONS = { preferMap: true, rejectDuplicateKeys: true, ignoreGlobalTags: true, maxDepth: 16 } as const;

/**
 * Strict CBOR decoding: one item, no trailing bytes, no duplicate keys, bounded depth. Indefinite
 * lengths are allowed: the NitroTPM NSM encodes its payload map that way (the bytes are signed as
 * they are, so their encoding does not matter to the signature).
 */
export function decodeCbor(data: Uint8Array, code: string, what: string): unknown {
  if (data.length === 0) throw inputError(code, `${what} is empty`);
  if (data.length > MAX_COSE_SIZE) throw inputError(code, `${what} is ${data.length} bytes, more than ${MAX_COSE_SIZE}`);
  try {
    // A private copy starting at offset 0 of its own ArrayBuffer (the decoder builds a DataView on it).
    return cborDecode(new Uint8Array(data), DECODE_OPTIONS);
  } catch (e) {
    throw inputError(code, `${what} is not valid CBOR (${e instanceof Error ? e.message.split('\n')[0] : 'decode error'})`);
  }
}

function bstr(v: unknown, what: string): Buffer {
  if (!(v instanceof Uint8Array)) throw inputError('COSE_BAD_STRUCTURE', `COSE_Sign1 ${what} is not a byte string`);
  return Buffer.from(v);
}

/** Parses COSE_Sign1 bytes. The payload is returned as bytes; its meaning is the caller's. */
export function parseCoseSign1(data: Uint8Array): CoseSign1 {
  let v = decodeCbor(data, 'COSE_BAD_STRUCTURE', 'COSE_Sign1');
  let tagged = false;
  if (v instanceof Tag) {
    if (Number(v.tag) !== COSE_SIGN1_TAG) throw inputError('COSE_BAD_STRUCTURE', `CBOR tag ${String(v.tag)} is not COSE_Sign1 (18)`);
    tagged = true;
    v = v.contents;
  }
  if (!Array.isArray(v) || v.length !== 4) throw inputError('COSE_BAD_STRUCTURE', 'COSE_Sign1 must be an array of 4 items [protected, unprotected, payload, signature]');
  const [p, u, payload, sig] = v as unknown[];
  const protectedRaw = bstr(p, 'protected header');
  if (!(u instanceof Map)) throw inputError('COSE_BAD_STRUCTURE', 'COSE_Sign1 unprotected header is not a map');
  const header = protectedRaw.length === 0 ? new Map() : decodeCbor(protectedRaw, 'COSE_BAD_STRUCTURE', 'COSE protected header');
  if (!(header instanceof Map)) throw inputError('COSE_BAD_STRUCTURE', 'COSE protected header is not a map');
  const alg = header.get(1);
  if (typeof alg !== 'number' || !Number.isInteger(alg)) throw inputError('COSE_BAD_STRUCTURE', 'COSE protected header has no integer algorithm (label 1)');
  // An algorithm in the unprotected header could be swapped by anyone: refuse rather than ignore.
  if (u.has(1)) throw inputError('COSE_BAD_STRUCTURE', 'COSE_Sign1 names its algorithm in the unprotected header');
  return { tagged, protectedRaw, alg, unprotected: u, payload: bstr(payload, 'payload'), signature: bstr(sig, 'signature') };
}

function head(major: number, n: number): Buffer {
  const mt = major << 5;
  if (n < 24) return Buffer.from([mt | n]);
  if (n < 0x100) return Buffer.from([mt | 24, n]);
  if (n < 0x10000) return Buffer.from([mt | 25, n >> 8, n & 0xff]);
  const b = Buffer.alloc(5);
  b[0] = mt | 26;
  b.writeUInt32BE(n, 1);
  return b;
}

function encBstr(b: Uint8Array): Buffer {
  return Buffer.concat([head(2, b.length), b]);
}

/**
 * The bytes the signer signed (RFC 9052 §4.4): Sig_structure = ["Signature1", protected,
 * external_aad = h'', payload], in the deterministic encoding (definite lengths, shortest heads).
 */
export function sigStructure(protectedRaw: Uint8Array, payload: Uint8Array, externalAad: Uint8Array = Buffer.alloc(0)): Buffer {
  const context = Buffer.from('Signature1', 'ascii');
  return Buffer.concat([head(4, 4), head(3, context.length), context, encBstr(protectedRaw), encBstr(externalAad), encBstr(payload)]);
}
