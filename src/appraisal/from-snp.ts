import type { SnpVerified } from '../evidence/snp/index.js';
import { snpClaims, type TcbClaims } from '../evidence/snp/index.js';
import type { Check } from '../check.js';
import type { Claims, TcbClaim } from '../evidence/claims-model.js';
import { emptyClaims } from './claims.js';

function tcb(t: TcbClaims): TcbClaim {
  const components: Record<string, number> = { bootloader: t.bootloader, tee: t.tee, snp: t.snp, microcode: t.microcode };
  if (t.fmc !== undefined) components.fmc = t.fmc;
  return { components, raw: t.raw };
}

/**
 * A verified SEV-SNP report as common claims. `validation` are extra checks the caller ran on
 * the report (validateSnpReport); they are kept with the verification checks so that a trust
 * report shows them, but the policy decides, not them.
 */
export function claimsFromSnp(v: SnpVerified, validation: readonly Check[] = []): Claims {
  const c = snpClaims(v.report, v.product);
  const out = emptyClaims();
  const root = v.chain[v.chain.length - 1];
  out.verification.push({ kind: 'sev-snp', label: `SEV-SNP report v${c.version} (${v.product}, ${v.signingKey.toUpperCase()})`, verified: true, checks: [...v.checks, ...validation] });
  out.platforms.push({
    tee: 'sev-snp',
    vendor: 'AMD',
    product: v.product,
    tcb: { reported: tcb(c.reportedTcb), committed: tcb(c.committedTcb), current: tcb(c.currentTcb), launch: tcb(c.launchTcb) },
    // AMD publishes no TCB status feed comparable to Intel's: a minimum TCB in the policy decides.
    tcbStatus: 'unknown',
    firmware: c.currentFirmware,
    chipId: c.chipId,
  });
  out.launch.snp = c.measurement;
  out.workload.hostData = c.hostData;
  if (!/^0*$/.test(c.idKeyDigest)) {
    out.workload.snpIdBlock = { familyId: c.familyId, imageId: c.imageId, guestSvn: c.guestSvn, idKeyDigest: c.idKeyDigest, authorKeyDigest: c.authorKeyDigest };
  }
  out.freshness.reportData = c.reportData;
  out.debug = { debug: c.policy.debug, migration: c.policy.migrateMa };
  out.signingKeys.push({
    evidence: 'sev-snp',
    kind: v.signingKey,
    subject: v.endorsementKey.subjectCn || v.endorsementKey.subject,
    issuer: v.endorsementKey.issuerCn || v.endorsementKey.issuer,
    sha256: v.endorsementKey.sha256,
    ...(root ? { root: root.subjectCn || root.subject } : {}),
    ...(v.endorsement.cspId !== undefined ? { cspId: v.endorsement.cspId } : {}),
  });
  return out;
}
