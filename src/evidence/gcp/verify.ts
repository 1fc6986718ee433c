import { CofferError, inputError, verifyError } from '../../errors.js';
import { fail, notChecked, pass, type Check } from '../../check.js';
import { parseCertificates, type Certificate } from '../../pki/certificate.js';
import type { TrustAnchor } from '../../pki/chain.js';
import { assembleAttestationKey, parseAkPart, type AkPart, type AttestationKey } from '../tpm/ak.js';
import { verifyTpmQuote, type TpmQuoteVerified } from '../tpm/verify.js';
import { parseEventLog, type EventLog } from '../eventlog/index.js';
import type { GceAttestation } from './attestation.js';
import { gceInstanceInfo, type GceInstanceInfo } from './certs.js';

export interface GceVerifyOptions {
  at: Date;
  /** The verifier's nonce; without it the quotes' freshness is not checked (reported). */
  nonce?: Uint8Array;
  /** Google EK/AK roots (gcp/ca): required to trust the AK certificate. */
  roots?: readonly TrustAnchor[];
  intermediates?: readonly Certificate[];
}

export interface GceVerified {
  attestation: GceAttestation;
  ak: AttestationKey;
  /** One per quote (PCR bank), in the attestation's order. */
  quotes: TpmQuoteVerified[];
  eventLog: EventLog | undefined;
  instance: GceInstanceInfo | undefined;
  checks: Check[];
}

function prefixed(checks: readonly Check[], bank: string): Check[] {
  return checks.map((c) => (c.name.startsWith('tpm.') ? { ...c, name: `tpm[${bank}].${c.name.slice(4)}` } : c));
}

/**
 * Verifies a GCE vTPM attestation by wrapping verifyTpmQuote: the AK from its TPM public area
 * (and the Google-issued AK certificate, which must hold the same key and chain to a caller's
 * Google root), then every quote (one per PCR bank) with its PCR values. The event log is parsed
 * here and replayed against the verified PCRs by the appraisal (eventLogAgainstQuote).
 */
export function verifyGceAttestation(att: GceAttestation, opts: GceVerifyOptions): GceVerified {
  const checks: Check[] = [];
  const roots = opts.roots ?? [];
  // The AK in ak_pub signs the quotes, so a quote verifying with it proves nothing by itself: anyone
  // can make an RSA key and a TPMS_ATTEST. Only Google's certificate on that key says it lives in a
  // GCE vTPM, so without a root to check the certificate there is nothing to verify.
  if (roots.length === 0) {
    throw inputError('GCP_ROOT_REQUIRED', 'no Google EK/AK root was given (--root): Coffer pins none, and without one nothing vouches that the AK is a GCE vTPM key, so a software key would verify too');
  }
  if (!att.akCert) {
    checks.push(fail('gcp.ak-certificate', 'GCP_NO_AK_CERTIFICATE', 'the attestation carries no AK certificate: nothing vouches that the AK is a GCE vTPM key'));
    throw verifyError('GCP_NO_AK_CERTIFICATE', 'the attestation carries no AK certificate: nothing vouches that the AK is a GCE vTPM key', { checks });
  }
  if (att.quotes.length === 0) {
    checks.push(fail('gcp.quotes', 'GCP_NO_QUOTES', 'the attestation carries no quote'));
    throw verifyError('GCP_NO_QUOTES', 'the attestation carries no quote', { checks });
  }
  const certificate = parseCertificates(att.akCert, 'ak_cert')[0];
  if (!certificate) throw inputError('GCP_BAD_ATTESTATION', 'ak_cert holds no certificate');
  const parts: AkPart[] = [parseAkPart(att.akPub, 'ak_pub'), { kind: 'certificate', form: 'X.509 certificate', certificate }];
  let ak: AttestationKey;
  try {
    ak = assembleAttestationKey(parts);
  } catch (e) {
    if (e instanceof CofferError) {
      checks.push(fail('gcp.ak', e.code, e.message));
      throw new CofferError(e.code, e.message, { kind: e.kind, details: { checks } });
    }
    throw e;
  }
  const intermediates = [...(opts.intermediates ?? []), ...att.intermediateCerts.flatMap((d) => parseCertificates(d, 'intermediate_certs'))];
  const quotes: TpmQuoteVerified[] = [];
  for (const q of att.quotes) {
    const base = { at: opts.at, ak, pcrs: new Map([[q.bank, q.pcrs]]), akRoots: roots, akIntermediates: intermediates };
    const nonceOpt = opts.nonce !== undefined ? { nonce: opts.nonce } : { skipNonceCheck: true };
    try {
      const v = verifyTpmQuote(q.attest, q.signature, { ...base, ...nonceOpt });
      quotes.push(v);
      checks.push(...prefixed(v.checks, q.bank));
    } catch (e) {
      if (e instanceof CofferError) {
        const inner = prefixed((e.details?.checks as Check[] | undefined) ?? [], q.bank);
        throw new CofferError(e.code, `${q.bank} quote: ${e.message}`, { kind: e.kind, details: { checks: [...checks, ...inner] } });
      }
      throw e;
    }
  }
  if (opts.nonce === undefined) checks.push(notChecked('gcp.nonce', 'no nonce was given: the quotes\' freshness is unproven'));
  checks.push(pass('gcp.quotes', `${quotes.length} quote(s) verified with the AK: ${att.quotes.map((q) => q.bank).join(', ')}`));
  if (att.unknownFields.length > 0) checks.push(notChecked('gcp.unknown-fields', `the attestation carries field(s) ${att.unknownFields.join(', ')} Coffer does not interpret (e.g. a confidential-VM TEE attestation): they are ignored`));
  let eventLog: EventLog | undefined;
  if (att.eventLog && att.eventLog.length > 0) {
    const raw = att.eventLog;
    try {
      eventLog = parseEventLog(raw);
    } catch (e) {
      if (e instanceof CofferError) throw new CofferError(e.code, `event_log: ${e.message}`, { kind: e.kind, details: { checks: [...checks, fail('gcp.eventlog', e.code, e.message)] } });
      throw e;
    }
  } else {
    checks.push(notChecked('gcp.eventlog', 'the attestation carries no event log: the boot chain behind the PCRs is not explained'));
  }
  // Only now (the AK certificate chained to the caller's root with every quote, and holds the AK)
  // is what it says about the instance believed.
  const instance = quotes.every((q) => q.akChain !== undefined) ? gceInstanceInfo(certificate) : undefined;
  return { attestation: att, ak, quotes, eventLog, instance, checks };
}
