import type { Check } from '../check.js';
import type { AzureVerified } from '../evidence/azure/index.js';
import type { EventLog } from '../evidence/eventlog/index.js';
import type { Claims } from '../evidence/claims-model.js';
import { mergeClaims } from './claims.js';
import { claimsFromSnp } from './from-snp.js';
import { claimsFromDcap } from './from-dcap.js';
import { claimsFromTpm } from './from-tpm.js';

/**
 * Verified Azure CVM evidence as common claims: the hardware report's claims (SEV-SNP or TDX)
 * and the vTPM quote's, merged as evidence about one machine. Their verification entries are
 * replaced by one that carries every check in order (hardware, HCL binding, runtime data, vTPM),
 * because only together do they say anything: the vTPM is trusted through the binding alone.
 */
export function claimsFromAzure(v: AzureVerified, validation: readonly Check[] = [], log?: EventLog): Claims {
  const parts: Claims[] = [];
  if (v.snp) parts.push(claimsFromSnp(v.snp));
  if (v.tdx) parts.push(claimsFromDcap(v.tdx));
  if (v.tpm) parts.push(claimsFromTpm(v.tpm, log));
  const out = mergeClaims(parts);
  const extra = out.verification.filter((e) => e.label === 'combined evidence');
  const tpmLog = v.tpm && log ? out.verification.find((e) => e.kind === 'tpm')?.checks.filter((c) => c.name.startsWith('eventlog.')) ?? [] : [];
  const checks = [...v.checks, ...tpmLog, ...validation];
  const failed = checks.find((c) => !c.ok);
  out.verification = [
    {
      kind: v.tee === 'snp' ? 'sev-snp' : 'tdx',
      label: `Azure CVM: ${v.tee === 'snp' ? 'SEV-SNP report' : 'TD quote'} bound to the vTPM (HCLAkPub) by the HCL report${v.tpm ? ', vTPM quote' : ''}`,
      verified: !failed,
      checks,
      ...(failed ? { error: { code: failed.code ?? 'VERIFICATION_FAILED', message: failed.description } } : {}),
    },
    ...extra,
  ];
  return out;
}
