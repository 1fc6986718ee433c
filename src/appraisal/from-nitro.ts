import type { Check } from '../check.js';
import { toHex } from '../bytes/hex.js';
import { isDebugEnclave, type NitroTpmVerified, type NitroVerified } from '../evidence/nitro/index.js';
import type { Claims } from '../evidence/claims-model.js';
import { emptyClaims, mergeClaims } from './claims.js';
import { claimsFromTpm } from './from-tpm.js';

/**
 * A verified Nitro attestation document as common claims. Enclave PCRs (SHA-384, PCR0-2 the
 * enclave image, kernel and application; PCR3 the IAM role; PCR4 the instance; PCR8 the signing
 * certificate) go to runtime.pcrs under the "nitro" bank: they are the NSM's registers, not a TPM's.
 */
export function claimsFromNitro(v: NitroVerified, validation: readonly Check[] = []): Claims {
  const out = emptyClaims();
  const d = v.document;
  const checks = [...v.checks, ...validation];
  const failed = checks.find((c) => !c.ok);
  out.verification.push({
    kind: 'nitro',
    label: `AWS Nitro ${d.flavour === 'enclave' ? 'Enclave' : 'TPM'} attestation document (${d.moduleId})`,
    verified: !failed,
    checks,
    ...(failed ? { error: { code: failed.code ?? 'VERIFICATION_FAILED', message: failed.description } } : {}),
  });
  out.platforms.push({ tee: 'nitro', vendor: 'AWS', product: d.flavour === 'enclave' ? 'Nitro Enclaves' : 'NitroTPM', tcbStatus: 'unknown', chipId: d.moduleId });
  const pcrs: Record<string, string> = {};
  for (const [i, val] of [...d.pcrs].sort(([a], [b]) => a - b)) pcrs[String(i)] = toHex(val);
  out.runtime.pcrs = { [d.flavour === 'enclave' ? 'nitro' : 'sha384']: pcrs };
  if (d.nonce) out.freshness.nonce = toHex(d.nonce);
  out.freshness.collectedAt = new Date(d.timestamp).toISOString();
  out.debug = { debug: isDebugEnclave(d) };
  const root = v.chain[v.chain.length - 1];
  out.signingKeys.push({ evidence: 'nitro', kind: 'nitro-document', subject: v.leaf.subjectCn, issuer: v.leaf.issuerCn, sha256: v.leaf.sha256, ...(root ? { root: root.subjectCn } : {}) });
  return out;
}

/** A verified NitroTPM bundle: the NSM document's claims and the TPM quote's, merged. */
export function claimsFromNitroTpm(v: NitroTpmVerified, validation: readonly Check[] = []): Claims {
  const nitro = claimsFromNitro(v.nitro);
  delete nitro.runtime.pcrs;
  const out = mergeClaims([nitro, claimsFromTpm(v.tpm)]);
  const checks = [...v.checks, ...validation];
  const failed = checks.find((c) => !c.ok);
  out.verification = [
    {
      kind: 'nitro',
      label: `AWS NitroTPM: NSM document (${v.nitro.document.moduleId}) vouching for the TPM AK, TPM quote over its SHA-384 PCRs`,
      verified: !failed,
      checks,
      ...(failed ? { error: { code: failed.code ?? 'VERIFICATION_FAILED', message: failed.description } } : {}),
    },
  ];
  return out;
}
