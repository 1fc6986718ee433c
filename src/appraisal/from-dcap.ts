import type { Check } from '../check.js';
import { sgxClaims, tdxClaims, type DcapVerified } from '../evidence/dcap/index.js';
import type { Claims, TcbStatus } from '../evidence/claims-model.js';
import { emptyClaims } from './claims.js';

function status(s: string | null): TcbStatus {
  if (s === null) return 'unknown';
  if (s === 'UpToDate') return 'up-to-date';
  if (s === 'Revoked') return 'revoked';
  // SWHardeningNeeded and ConfigurationNeeded are current TCBs with caveats a policy must accept
  // explicitly; the common model has no such grade, so they count as out of date here.
  return 'out-of-date';
}

/** A verified Intel DCAP quote (TDX or SGX) as common claims. */
export function claimsFromDcap(v: DcapVerified, validation: readonly Check[] = []): Claims {
  const out = emptyClaims();
  const root = v.chain[v.chain.length - 1];
  const td = tdxClaims(v.quote, v);
  const sgx = sgxClaims(v.quote, v);
  const c = td ?? sgx;
  if (!c) return out;
  const tee = td ? 'tdx' : 'sgx';
  out.verification.push({ kind: tee, label: `${tee.toUpperCase()} quote v${c.version} (${c.tcbStatus ? `TCB ${c.tcbStatus}` : c.collateralGiven ? 'TCB NOT CHECKED' : 'TCB NOT CHECKED: no collateral given'}; QE ${c.qe.mrSigner.slice(0, 8)}… ISVPRODID ${c.qe.isvProdId} ISVSVN ${c.qe.isvSvn})`, verified: true, checks: [...v.checks, ...validation] });
  const components: Record<string, number> = {};
  v.pck.tcb.components.forEach((n, i) => (components[`sgx${i + 1}`] = n));
  components.pceSvn = v.pck.tcb.pceSvn;
  out.platforms.push({ tee, vendor: 'Intel', product: c.fmspc, tcb: { pck: { components } }, tcbStatus: status(c.tcbStatus) });
  if (td) {
    out.launch.tdx = { mrtd: td.mrTd, mrConfigId: td.mrConfigId, mrOwner: td.mrOwner, mrOwnerConfig: td.mrOwnerConfig };
    out.runtime.rtmrs = { '0': td.rtmr0, '1': td.rtmr1, '2': td.rtmr2, '3': td.rtmr3 };
    out.workload.mrConfigId = td.mrConfigId;
    out.freshness.reportData = td.reportData;
    out.debug = { debug: td.tdAttributesDecoded.debug };
  } else if (sgx) {
    out.launch.sgx = { mrEnclave: sgx.mrEnclave, mrSigner: sgx.mrSigner, isvProdId: sgx.isvProdId, isvSvn: sgx.isvSvn };
    out.freshness.reportData = sgx.reportData;
    out.debug = { debug: sgx.debug };
  }
  out.signingKeys.push({
    evidence: tee,
    kind: 'pck',
    subject: v.pckCertificate.subjectCn,
    issuer: v.pckCertificate.issuerCn,
    sha256: v.pckCertificate.sha256,
    ...(root ? { root: root.subjectCn } : {}),
  });
  return out;
}
