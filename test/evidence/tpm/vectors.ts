// Loaders for the real TPM quote vectors in ../shared/vectors (read-only, referenced by path).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { sign, type KeyObject } from 'node:crypto';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CofferError } from '../../../src/errors.js';
import { parseCertificates, type Certificate } from '../../../src/pki/certificate.js';
import type { TrustAnchor } from '../../../src/pki/chain.js';

export const VECTORS = fileURLToPath(new URL('../../../../shared/vectors/', import.meta.url));
export const GCE = join(VECTORS, 'tpm-quote/gce-shielded-vm-cos85');
export const GCE_DIRS = ['gce-cos-85-no-nonce', 'gce-cos-85-nonce9009'] as const;
export const BANKS = ['sha1', 'sha256', 'sha384'] as const;
export const KINVOLK = join(VECTORS, 'tpm-quote/azure-vtpm-kinvolk');
export const TRUSTEE_SNP = join(VECTORS, 'azure-cvm/trustee-az-snp-vtpm');
export const GCP_CA = join(VECTORS, 'gcp/ca');
/** Inside every GCE certificate's validity (AK 2021-08-31..2051-08-24, roots to 2118/2122). */
export const GCE_AT = new Date('2025-06-01T00:00:00Z');

export function vector(path: string): Buffer {
  return readFileSync(path.startsWith('/') ? path : join(VECTORS, path));
}

export function cert(path: string): Certificate {
  const c = parseCertificates(vector(path));
  assert.equal(c.length, 1, path);
  return c[0] as Certificate;
}

export function anchor(file: string): TrustAnchor {
  return { cert: cert(join(GCP_CA, file)), label: file };
}

export interface GceQuote {
  bank: string;
  attest_file: string;
  sig_file: string;
  extra_data: string;
  pcr_digest: string;
  pcrs: Record<string, string>;
  clock: number;
  reset_count: number;
  restart_count: number;
  firmware_version: string;
}

export interface GceExtracted {
  ak_name: string;
  expected_nonce_hex: string | null;
  quotes: GceQuote[];
  ak_cert: { issuer: string; not_before: string; not_after: string; public_key_matches_ak_pub: boolean };
}

export function gceExtracted(dir: string): GceExtracted {
  return JSON.parse(vector(join(GCE, dir, 'extracted.json')).toString('utf8')) as GceExtracted;
}

export function gceQuote(dir: string, bank: string): { attest: Buffer; signature: Buffer } {
  return { attest: vector(join(GCE, dir, `quote_${bank}.attest`)), signature: vector(join(GCE, dir, `quote_${bank}.tpmt_signature`)) };
}

/** A raw RSASSA-PKCS1v1.5-SHA256 signature wrapped as the TPMT_SIGNATURE the TPM returned. */
export function rsassaSha256(raw: Buffer): Buffer {
  const head = Buffer.alloc(6);
  head.writeUInt16BE(0x0014, 0);
  head.writeUInt16BE(0x000b, 2);
  head.writeUInt16BE(raw.length, 4);
  return Buffer.concat([head, raw]);
}

/** The Azure HCL report's runtime-data JSON (after the 32-byte header, 1184-byte SNP report and 20-byte runtime header). */
export function hclRuntimeData(hcl: Buffer): { keys: { kid: string; kty: string; n: string; e: string }[] } {
  const size = hcl.readUInt32LE(0x4c0 + 16);
  return JSON.parse(hcl.subarray(0x4d4, 0x4d4 + size).toString('utf8')) as { keys: { kid: string; kty: string; n: string; e: string }[] };
}

/** Runs fn and asserts it throws a CofferError with this code (and kind, when given). */
export function expectCoffer(fn: () => unknown, code: string, opts: { kind?: 'input' | 'verify'; message?: RegExp } = {}): CofferError {
  let thrown: unknown;
  try {
    fn();
  } catch (e) {
    thrown = e;
  }
  assert.ok(thrown instanceof CofferError, `expected CofferError ${code}, got ${thrown instanceof Error ? `${thrown.name}: ${thrown.message}` : String(thrown)}`);
  assert.equal(thrown.code, code, thrown.message);
  if (opts.kind) assert.equal(thrown.kind, opts.kind);
  if (opts.message) assert.match(thrown.message, opts.message);
  return thrown;
}

/**
 * A TPMS_ATTEST quote built by hand (the reviewer's exp5), signed with `key`: ECDSA (P-256 →
 * SHA-256, P-384 → SHA-384) or RSASSA-SHA256. `selection` is the wire TPML_PCR_SELECTION.
 */
export function synthQuote(selection: Buffer, pcrDigest: Buffer, key: KeyObject, extraData = Buffer.alloc(0)): { attest: Buffer; signature: Buffer } {
  const be = (n: number, size: 2 | 4 | 8) => {
    const x = Buffer.alloc(size);
    if (size === 2) x.writeUInt16BE(n);
    else if (size === 4) x.writeUInt32BE(n);
    else x.writeBigUInt64BE(BigInt(n));
    return x;
  };
  const name = Buffer.concat([be(0x000b, 2), Buffer.alloc(32, 1)]);
  const attest = Buffer.concat([be(0xff544347, 4), be(0x8018, 2), be(name.length, 2), name, be(extraData.length, 2), extraData, be(1000, 8), be(1, 4), be(0, 4), Buffer.from([1]), be(0, 8), selection, be(pcrDigest.length, 2), pcrDigest]);
  const t = (x: Buffer) => Buffer.concat([be(x.length, 2), x]);
  if (key.asymmetricKeyType === 'ec') {
    const n = key.asymmetricKeyDetails?.namedCurve === 'secp384r1' ? 48 : key.asymmetricKeyDetails?.namedCurve === 'secp521r1' ? 66 : 32;
    const hash = n === 32 ? 'sha256' : n === 48 ? 'sha384' : 'sha512';
    const p = sign(hash, attest, { key, dsaEncoding: 'ieee-p1363' });
    return { attest, signature: Buffer.concat([be(0x0018, 2), be(n === 32 ? 0x000b : n === 48 ? 0x000c : 0x000d, 2), t(p.subarray(0, n)), t(p.subarray(n))]) };
  }
  return { attest, signature: rsassaSha256(sign('sha256', attest, key)) };
}
