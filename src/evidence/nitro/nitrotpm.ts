import { createPublicKey, type KeyObject } from 'node:crypto';
import * as asn1js from 'asn1js';
import { fromBerSafe } from '../../pki/ber.js';
import { CofferError, inputError, verifyError } from '../../errors.js';
import { fail, notChecked, pass, type Check } from '../../check.js';
import { fromHex, toHex } from '../../bytes/hex.js';
import { TPM_ALG, type TpmHash } from '../tpm/constants.js';
import { sameKey, type AttestationKey } from '../tpm/ak.js';
import type { PcrBanks } from '../tpm/pcrs.js';
import { verifyTpmQuote, type TpmQuoteVerified } from '../tpm/verify.js';
import { parseNitroDocument, type NitroDocument } from './document.js';
import { verifyNitroDocument, type NitroVerified, type NitroVerifyOptions } from './verify.js';

/**
 * AWS EC2 NitroTPM attestation as lockboot/vaportpm bundles it: a Nitro attestation document from
 * the NSM whose `nitrotpm_pcrs` are the vTPM's SHA-384 bank and whose `public_key` is the TPM's
 * ECC P-256 attestation key, plus a TPM2_Quote by that AK over the same bank with extraData = the
 * nonce. The NSM document vouches for the AK (AWS signs it), the quote then stands for the PCRs.
 */
export interface NitroTpmBundle {
  nonce: Buffer | undefined;
  /** PCR values the bundle states (compared with the signed ones, never trusted alone). */
  pcrs: PcrBanks | undefined;
  akPoint: { x: Buffer; y: Buffer } | undefined;
  quote: { attest: Buffer; signature: Buffer; signatureForm: 'der-ecdsa' };
  document: NitroDocument;
  documentRaw: Buffer;
}

function bad(why: string): never {
  throw inputError('NITROTPM_BAD_BUNDLE', `NitroTPM bundle: ${why}`);
}

function obj(v: unknown, where: string): Record<string, unknown> {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) bad(`${where} is not an object`);
  return v as Record<string, unknown>;
}

function hex(v: unknown, where: string): Buffer {
  if (typeof v !== 'string') bad(`${where} is not a hex string`);
  try {
    return fromHex(v, where);
  } catch {
    return bad(`${where} is not valid hex`);
  }
}

/** Parses the vaportpm JSON bundle ({nonce, pcrs, ak_pubkeys, attestation: {tpm, nitro}}). */
export function parseNitroTpmBundle(text: string): NitroTpmBundle {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    bad('is not valid JSON');
  }
  const root = obj(doc, 'the bundle');
  const att = obj(root.attestation, 'attestation');
  const nitro = obj(att.nitro, 'attestation.nitro');
  const tpm = obj(obj(att.tpm, 'attestation.tpm').ecc_p256, 'attestation.tpm.ecc_p256');
  const documentRaw = hex(nitro.document, 'attestation.nitro.document');
  let pcrs: PcrBanks | undefined;
  if (root.pcrs !== undefined) {
    const banks = obj(root.pcrs, 'pcrs');
    pcrs = new Map();
    for (const [bank, values] of Object.entries(banks)) {
      if (!['sha1', 'sha256', 'sha384', 'sha512'].includes(bank)) bad(`pcrs.${bank} is not a known bank`);
      const m = new Map<number, Buffer>();
      for (const [i, v] of Object.entries(obj(values, `pcrs.${bank}`))) {
        if (!/^(0|[1-9]\d?)$/.test(i) || Number(i) > 31) bad(`pcrs.${bank}["${i}"] is not a PCR index`);
        m.set(Number(i), hex(v, `pcrs.${bank}.${i}`));
      }
      pcrs.set(bank as TpmHash, m);
    }
  }
  let akPoint: NitroTpmBundle['akPoint'];
  if (root.ak_pubkeys !== undefined) {
    const p = obj(obj(root.ak_pubkeys, 'ak_pubkeys').ecc_p256, 'ak_pubkeys.ecc_p256');
    akPoint = { x: hex(p.x, 'ak_pubkeys.ecc_p256.x'), y: hex(p.y, 'ak_pubkeys.ecc_p256.y') };
    if (akPoint.x.length !== 32 || akPoint.y.length !== 32) bad('ak_pubkeys.ecc_p256 coordinates must be 32 bytes each');
  }
  return {
    nonce: root.nonce === undefined ? undefined : hex(root.nonce, 'nonce'),
    pcrs,
    akPoint,
    quote: { attest: hex(tpm.attest_data, 'attestation.tpm.ecc_p256.attest_data'), signature: hex(tpm.signature, 'attestation.tpm.ecc_p256.signature'), signatureForm: 'der-ecdsa' },
    document: parseNitroDocument(documentRaw),
    documentRaw,
  };
}

/** A DER ECDSA-Sig-Value as the TPMT_SIGNATURE the TPM would have produced (ECDSA, `hash`). */
export function tpmtSignatureFromDer(der: Uint8Array, hash: TpmHash): Buffer {
  const parsed = fromBerSafe(new Uint8Array(der));
  const seq = parsed.result;
  if (parsed.offset !== der.length || !(seq instanceof asn1js.Sequence) || seq.valueBlock.value.length !== 2) {
    throw inputError('NITROTPM_BAD_SIGNATURE_FORMAT', 'the TPM quote signature is not a DER ECDSA-Sig-Value');
  }
  const ints = seq.valueBlock.value.map((v) => {
    if (!(v instanceof asn1js.Integer)) throw inputError('NITROTPM_BAD_SIGNATURE_FORMAT', 'the TPM quote signature is not a DER ECDSA-Sig-Value');
    let b = Buffer.from(v.valueBlock.valueHexView);
    while (b.length > 1 && b[0] === 0) b = b.subarray(1);
    if (b.length > 66) throw inputError('NITROTPM_BAD_SIGNATURE_FORMAT', 'an ECDSA signature integer is too long');
    return b;
  });
  const hashId = { sha1: TPM_ALG.SHA1, sha256: TPM_ALG.SHA256, sha384: TPM_ALG.SHA384, sha512: TPM_ALG.SHA512 }[hash];
  const parts: Buffer[] = [Buffer.from([TPM_ALG.ECDSA >> 8, TPM_ALG.ECDSA & 0xff, hashId >> 8, hashId & 0xff])];
  for (const b of ints) {
    const len = Buffer.alloc(2);
    len.writeUInt16BE(b.length);
    parts.push(len, b);
  }
  return Buffer.concat(parts);
}

/** The uncompressed SEC1 point (0x04 || x || y) of a P-256 key. */
export function p256FromPoint(point: Uint8Array): KeyObject {
  if (point.length !== 65 || point[0] !== 0x04) throw verifyError('NITROTPM_BAD_AK', `the document's public_key is not an uncompressed P-256 point (${point.length} bytes)`);
  try {
    const b = Buffer.from(point);
    return createPublicKey({ key: { kty: 'EC', crv: 'P-256', x: b.subarray(1, 33).toString('base64url'), y: b.subarray(33).toString('base64url') }, format: 'jwk' });
  } catch {
    throw verifyError('NITROTPM_BAD_AK', "the document's public_key is not a point on P-256");
  }
}

export interface NitroTpmVerifyOptions extends NitroVerifyOptions {
  /** The verifier's nonce; when given, both the NSM document and the TPM quote must carry it. */
  nonce?: Uint8Array;
}

export interface NitroTpmVerified {
  nitro: NitroVerified;
  tpm: TpmQuoteVerified;
  ak: AttestationKey;
  checks: Check[];
}

function failWith(checks: Check[], name: string, code: string, description: string, extra: Partial<Check> = {}): never {
  checks.push(fail(name, code, description, extra));
  throw verifyError(code, description, { checks });
}

function rethrow(e: unknown, checks: Check[]): never {
  if (e instanceof CofferError) {
    const inner = (e.details?.checks as Check[] | undefined) ?? [fail('nitrotpm', e.code, e.message)];
    throw new CofferError(e.code, e.message, { kind: e.kind, details: { checks: [...checks, ...inner] } });
  }
  throw e;
}

/**
 * Verifies a NitroTPM bundle: the NSM document (ES384, chain to the pinned AWS root), its
 * public_key as the AK, the TPM quote's signature by that AK with extraData equal to the
 * document's nonce, and the quote's pcrDigest over the document's signed `nitrotpm_pcrs`.
 */
export function verifyNitroTpm(bundle: NitroTpmBundle, opts: NitroTpmVerifyOptions): NitroTpmVerified {
  const checks: Check[] = [];
  const doc = bundle.document;
  if (doc.flavour !== 'nitrotpm') throw inputError('NITROTPM_BAD_BUNDLE', 'the bundle\'s Nitro document carries enclave pcrs, not nitrotpm_pcrs');
  let nitro: NitroVerified;
  try {
    nitro = verifyNitroDocument(doc, opts);
  } catch (e) {
    rethrow(e, checks);
  }
  checks.push(...nitro.checks);
  if (!doc.publicKey) failWith(checks, 'nitrotpm.ak', 'NITROTPM_BAD_AK', 'the NSM document carries no public_key (the TPM attestation key)');
  const key = p256FromPoint(doc.publicKey);
  if (bundle.akPoint) {
    const stated = p256FromPoint(Buffer.concat([Buffer.from([4]), bundle.akPoint.x, bundle.akPoint.y]));
    if (!sameKey(stated, key)) failWith(checks, 'nitrotpm.ak', 'NITROTPM_AK_MISMATCH', "the bundle's ak_pubkeys differ from the AK in the signed NSM document", { expected: toHex(doc.publicKey), found: `04${toHex(bundle.akPoint.x)}${toHex(bundle.akPoint.y)}` });
  }
  checks.push(pass('nitrotpm.ak', "the TPM attestation key (ECC P-256) is the NSM document's signed public_key", { found: toHex(doc.publicKey) }));
  if (!doc.nonce || doc.nonce.length === 0) failWith(checks, 'nitrotpm.nonce', 'NITROTPM_NO_NONCE', 'the NSM document carries no nonce to bind the TPM quote to');
  if (bundle.nonce && !bundle.nonce.equals(doc.nonce)) failWith(checks, 'nitrotpm.nonce', 'NITRO_NONCE_MISMATCH', "the bundle's nonce differs from the signed NSM document's", { expected: toHex(doc.nonce), found: toHex(bundle.nonce) });
  if (opts.nonce !== undefined) {
    if (!Buffer.from(opts.nonce).equals(doc.nonce)) failWith(checks, 'nitro.nonce', 'NITRO_NONCE_MISMATCH', "the NSM document's nonce is not the expected nonce", { expected: toHex(opts.nonce), found: toHex(doc.nonce) });
    checks.push(pass('nitro.nonce', "the NSM document's nonce equals the expected nonce", { found: toHex(doc.nonce) }));
  } else {
    checks.push(notChecked('nitro.nonce', `no nonce was expected: freshness is unproven (the document carries ${toHex(doc.nonce).slice(0, 16)}…)`));
  }
  const pcrs: PcrBanks = new Map([['sha384', new Map(doc.pcrs)]]);
  if (bundle.pcrs) {
    for (const [bank, regs] of bundle.pcrs) {
      for (const [i, v] of regs) {
        const signed = bank === 'sha384' ? doc.pcrs.get(i) : undefined;
        if (!signed || !signed.equals(v)) failWith(checks, 'nitrotpm.pcrs', 'NITROTPM_PCR_MISMATCH', `the bundle states PCR ${bank}:${i} differently from the signed NSM document`, { expected: signed ? toHex(signed) : 'none', found: toHex(v) });
      }
    }
    checks.push(pass('nitrotpm.pcrs', "the bundle's PCR values equal the NSM document's signed nitrotpm_pcrs"));
  }
  const ak: AttestationKey = { key, forms: ['NSM document public_key'] };
  let tpm: TpmQuoteVerified;
  try {
    const sig = tpmtSignatureFromDer(bundle.quote.signature, 'sha256');
    tpm = verifyTpmQuote(bundle.quote.attest, sig, { at: opts.at, ak, nonce: doc.nonce, pcrs });
  } catch (e) {
    rethrow(e, checks);
  }
  checks.push(...tpm.checks);
  return { nitro, tpm, ak, checks };
}
