import { ByteWriter } from '../bytes/writer.js';
import { CofferError, inputError } from '../errors.js';
import { Certificate } from '../pki/certificate.js';
import { parseSignatureLists, type SignatureEntry } from '../evidence/eventlog/efi.js';
import { EFI_CERT_SHA256, EFI_CERT_X509, guidBytes, normaliseGuid } from './guid.js';

/**
 * EFI_SIGNATURE_LIST (UEFI 2.10 32.4.1), the value of PK, KEK, db and dbx: lists of one
 * signature type each, concatenated. Writing matches efitools byte for byte:
 * `cert-to-efi-sig-list -g OWNER` (one certificate per list) and `hash-to-efi-sig-list`
 * (all SHA-256 hashes in one list). Reading is the event-log decoder's, shared.
 */

export type SignatureDbEntry =
  | { kind: 'x509'; owner: string; certificate: Certificate }
  | { kind: 'sha256'; owner: string; hash: Buffer };

const HEADER = 28;

function list(type: string, sigSize: number, payload: Buffer[]): Buffer {
  const w = new ByteWriter()
    .bytes(guidBytes(type))
    .u32le(HEADER + payload.reduce((n, p) => n + p.length, 0))
    .u32le(0)
    .u32le(sigSize);
  for (const p of payload) w.bytes(p);
  return w.toBuffer();
}

/** One EFI_SIGNATURE_LIST holding one X.509 certificate (as cert-to-efi-sig-list writes it). */
export function x509SignatureList(cert: Certificate, owner: string): Buffer {
  const entry = Buffer.concat([guidBytes(owner, 'owner GUID'), cert.der]);
  return list(EFI_CERT_X509, entry.length, [entry]);
}

/** One EFI_SIGNATURE_LIST of SHA-256 hashes (as hash-to-efi-sig-list writes it). */
export function sha256SignatureList(hashes: readonly Uint8Array[], owner: string): Buffer {
  if (hashes.length === 0) throw inputError('SECUREBOOT_BAD_ESL', 'a SHA-256 signature list needs at least one hash');
  const o = guidBytes(owner, 'owner GUID');
  return list(
    EFI_CERT_SHA256,
    48,
    hashes.map((h) => {
      if (h.length !== 32) throw inputError('SECUREBOOT_BAD_ESL', `a SHA-256 entry must be 32 bytes, got ${h.length}`);
      return Buffer.concat([o, h]);
    }),
  );
}

/**
 * A whole variable value: each certificate in its own list (firmware and efitools expect
 * that, since certificates differ in size), each run of consecutive SHA-256 entries with the
 * same owner in one list, in the order given.
 */
export function encodeSignatureDatabase(entries: readonly SignatureDbEntry[]): Buffer {
  const out: Buffer[] = [];
  let run: { owner: string; hashes: Buffer[] } | undefined;
  const flush = () => {
    if (run) out.push(sha256SignatureList(run.hashes, run.owner));
    run = undefined;
  };
  for (const e of entries) {
    if (e.kind === 'x509') {
      flush();
      out.push(x509SignatureList(e.certificate, e.owner));
    } else {
      const owner = normaliseGuid(e.owner, 'owner GUID');
      if (run && run.owner !== owner) flush();
      run ??= { owner, hashes: [] };
      run.hashes.push(e.hash);
    }
  }
  flush();
  return Buffer.concat(out);
}

/**
 * Reads a variable value (concatenated lists) into entries. Signature types other than
 * X.509 and SHA-256 are returned as `other` (summarised, not re-encodable).
 */
export function parseSignatureDatabase(data: Uint8Array): SignatureEntry[] {
  try {
    return parseSignatureLists(Buffer.from(data));
  } catch (e) {
    if (e instanceof CofferError && (e.code === 'EVENTLOG_BAD_SIGNATURE_LIST' || e.code === 'TRUNCATED')) {
      throw inputError('SECUREBOOT_BAD_ESL', `not a valid EFI_SIGNATURE_LIST: ${e.message}`);
    }
    throw e;
  }
}

/** The entries as typed values (X.509 parsed into Certificates), dropping `other` kinds. */
export function signatureDbEntries(data: Uint8Array): { entries: SignatureDbEntry[]; other: SignatureEntry[] } {
  const entries: SignatureDbEntry[] = [];
  const other: SignatureEntry[] = [];
  for (const e of parseSignatureDatabase(data)) {
    if (e.kind === 'x509' && e.der) entries.push({ kind: 'x509', owner: e.owner, certificate: Certificate.fromDer(e.der) });
    else if (e.kind === 'sha256') entries.push({ kind: 'sha256', owner: e.owner, hash: Buffer.from(e.sha256, 'hex') });
    else other.push(e);
  }
  return { entries, other };
}
