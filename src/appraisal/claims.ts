import type { Claims } from '../evidence/claims-model.js';

export type {
  TeeKind,
  TcbStatus,
  TcbClaim,
  PlatformClaims,
  LaunchMeasurements,
  RuntimeRegisters,
  CertificateSummary,
  SignatureDatabaseSummary,
  BootApplicationClaim,
  VerityClaim,
  BootStateClaims,
  WorkloadIdentity,
  FreshnessClaims,
  DebugState,
  SigningKeyClaim,
  EvidenceVerification,
  Claims,
} from '../evidence/claims-model.js';
export { TEE_KINDS } from '../evidence/claims-model.js';

/** An empty claim set: nothing verified, nothing claimed. */
export function emptyClaims(): Claims {
  return { verification: [], platforms: [], launch: {}, runtime: {}, workload: {}, freshness: {}, debug: {}, signingKeys: [] };
}

/**
 * Combines the claims of several pieces of evidence about one machine (an SNP report and the
 * vTPM quote of the same VM, say). Lists are concatenated; a single-valued claim given twice with
 * different values is kept from the first and the conflict is recorded as a failed verification
 * check, so that a policy can never be satisfied by picking the convenient one.
 */
export function mergeClaims(parts: readonly Claims[]): Claims {
  const out = emptyClaims();
  const conflicts: string[] = [];
  const one = <T>(what: string, a: T | undefined, b: T | undefined): T | undefined => {
    if (a === undefined) return b;
    if (b !== undefined && JSON.stringify(a) !== JSON.stringify(b)) conflicts.push(what);
    return a;
  };
  for (const p of parts) {
    out.verification.push(...p.verification);
    out.platforms.push(...p.platforms);
    out.signingKeys.push(...p.signingKeys);
    const snp = one('launch.snp', out.launch.snp, p.launch.snp);
    const tdx = one('launch.tdx', out.launch.tdx, p.launch.tdx);
    const sgx = one('launch.sgx', out.launch.sgx, p.launch.sgx);
    out.launch = { ...(snp ? { snp } : {}), ...(tdx ? { tdx } : {}), ...(sgx ? { sgx } : {}) };
    if (p.runtime.pcrs) {
      const pcrs = (out.runtime.pcrs ??= {});
      for (const [bank, regs] of Object.entries(p.runtime.pcrs)) {
        const b = (pcrs[bank] ??= {});
        for (const [i, v] of Object.entries(regs)) b[i] = one(`pcr ${bank}:${i}`, b[i], v) as string;
      }
    }
    if (p.runtime.rtmrs) {
      const r = (out.runtime.rtmrs ??= {});
      for (const [i, v] of Object.entries(p.runtime.rtmrs)) r[i] = one(`rtmr ${i}`, r[i], v) as string;
    }
    if (p.boot) {
      if (out.boot) conflicts.push('boot state (two event logs)');
      else out.boot = p.boot;
    }
    for (const k of ['hostData', 'mrConfigId', 'extendedDigest', 'snpIdBlock'] as const) {
      const v = one(`workload.${k}`, out.workload[k], p.workload[k]);
      if (v !== undefined) (out.workload as Record<string, unknown>)[k] = v;
    }
    for (const k of ['nonce', 'reportData', 'collectedAt'] as const) {
      const v = one(`freshness.${k}`, out.freshness[k], p.freshness[k]);
      if (v !== undefined) out.freshness[k] = v;
    }
    if (p.freshness.nonceVerified !== undefined) out.freshness.nonceVerified = (out.freshness.nonceVerified ?? true) && p.freshness.nonceVerified;
    // Debuggable if any part says so.
    for (const k of ['debug', 'migration'] as const) {
      if (p.debug[k] !== undefined) out.debug[k] = (out.debug[k] ?? false) || (p.debug[k] as boolean);
    }
  }
  if (conflicts.length > 0) {
    out.verification.push({
      kind: out.verification[0]?.kind ?? 'tpm',
      label: 'combined evidence',
      verified: false,
      checks: [{ name: 'claims.consistent', ok: false, code: 'CLAIMS_CONFLICT', description: `the pieces of evidence disagree on ${conflicts.join(', ')}` }],
      error: { code: 'CLAIMS_CONFLICT', message: `the pieces of evidence disagree on ${conflicts.join(', ')}` },
    });
  }
  return out;
}

const VERITY_PARAMS: readonly [RegExp, 'rootHash' | 'usrHash', string][] = [
  [/(?:^|\s)roothash=([0-9a-fA-F]{40,128})(?=\s|$|")/, 'rootHash', 'roothash'],
  [/(?:^|\s)verity\.roothash=([0-9a-fA-F]{40,128})(?=\s|$|")/, 'rootHash', 'verity.roothash'],
  [/(?:^|\s)systemd\.verity_root_hash=([0-9a-fA-F]{40,128})(?=\s|$|")/, 'rootHash', 'systemd.verity_root_hash'],
  // ChromeOS / Container-Optimized OS: dm="... verity ... root_hexdigest=HEX ..."
  [/(?:^|\s|")root_hexdigest=([0-9a-fA-F]{40,128})(?=\s|$|")/, 'rootHash', 'root_hexdigest'],
  [/(?:^|\s)usrhash=([0-9a-fA-F]{40,128})(?=\s|$|")/, 'usrHash', 'usrhash'],
];

/**
 * The dm-verity root hash a kernel command line names: systemd's `roothash=` (also spelled
 * `verity.roothash=` or `systemd.verity_root_hash=`), `usrhash=`, or the ChromeOS/COS `dm=` table's
 * `root_hexdigest=`. Undefined when none is present. Two different root hashes are refused (the
 * caller gets neither): the command line would be ambiguous.
 */
export function verityFromCommandLine(cmdline: string): { rootHash?: string; usrHash?: string; source: string } | undefined {
  const found: { rootHash?: string; usrHash?: string; sources: string[] } = { sources: [] };
  for (const [re, field, name] of VERITY_PARAMS) {
    const all = [...cmdline.matchAll(new RegExp(re.source, 'g'))].map((m) => (m[1] as string).toLowerCase());
    if (all.length === 0) continue;
    const values = new Set([...all, ...(found[field] ? [found[field] as string] : [])]);
    if (values.size > 1) return undefined;
    found[field] = all[0] as string;
    found.sources.push(name);
  }
  if (found.sources.length === 0) return undefined;
  return { ...(found.rootHash ? { rootHash: found.rootHash } : {}), ...(found.usrHash ? { usrHash: found.usrHash } : {}), source: found.sources.join(',') };
}
