import { inputError } from '../errors.js';
import type { Claims, EvidenceVerification, TeeKind } from '../evidence/claims-model.js';
import { AR4SI, AR4SI_CATEGORIES, statusOf, tierOf, worseTier, type Ar4siCategory, type EarStatus, type TrustVector } from './ar4si.js';
import { maxAgeSeconds, type Policy } from './policy.js';
import { celClaims, compileExpression, runExpression, showValue, valueAt, ExpressionError, type CelValue } from './expressions.js';
import type { ReferenceDocument, ReferenceStore } from './reference.js';

/**
 * Evaluation: claims × policy × reference values × time → a verdict, pure and explainable. Every
 * rule of the policy yields pass, fail or not-applicable with what it expected and what it found;
 * a denial names the rule and the value. The same rules give the AR4SI trustworthiness vector of
 * the EAR result, and the result keeps the evidence's own verification checks (notChecked links
 * included) so that a trust report can be built from it alone.
 */

export type RuleStatus = 'pass' | 'fail' | 'not-applicable';

export interface RuleOutcome {
  /** Stable rule id, e.g. `measurement`, `tcb.minimum`, `pcr.sha256.7`, `debug`. */
  id: string;
  status: RuleStatus;
  /** What the rule compared, in a sentence. */
  description: string;
  expected?: string;
  found?: string;
  /** The AR4SI claims this outcome contributes (none for not-applicable). */
  trust: TrustVector;
}

export interface AppraisalResult {
  policy: { id: string; version: string };
  /** The appraisal time (ISO 8601). */
  at: string;
  verdict: 'pass' | 'fail';
  /** EAR `ear.status`: the worst tier of the trustworthiness vector. */
  status: EarStatus;
  trustworthiness: TrustVector;
  rules: RuleOutcome[];
  /** Each piece of evidence with every check its verification made (NOT CHECKED links included). */
  verification: EvidenceVerification[];
  /** For a failed verdict: the first failed rule and its value, in one line. */
  denial?: string;
  /** Reference-value documents the rules used. */
  references: { image: string; version: string; source: string }[];
  /** The verifier's nonce, when one was given. */
  nonce?: string;
  claims: Claims;
}

export interface EvaluateOptions {
  at: Date;
  /** The nonce the verifier issued for this evidence (hex). */
  nonce?: string;
}

const HARDWARE_TEES: readonly TeeKind[] = ['sev-snp', 'tdx', 'sgx', 'nitro'];

const short = (h: string) => (h.length > 24 ? `${h.slice(0, 16)}…${h.slice(-8)}` : h);
const list = (xs: readonly string[]) => (xs.length === 0 ? '(none)' : xs.join(' | '));

class Rules {
  readonly out: RuleOutcome[] = [];
  pass(id: string, description: string, trust: TrustVector, extra: { expected?: string; found?: string } = {}): void {
    this.out.push({ id, status: 'pass', description, ...extra, trust });
  }
  fail(id: string, description: string, trust: TrustVector, extra: { expected?: string; found?: string } = {}): void {
    this.out.push({ id, status: 'fail', description, ...extra, trust });
  }
  na(id: string, description: string, extra: { expected?: string; found?: string } = {}): void {
    this.out.push({ id, status: 'not-applicable', description, ...extra, trust: {} });
  }
}

function referenceImages(v: string | string[] | undefined): string[] {
  return v === undefined ? [] : Array.isArray(v) ? v : [v];
}

/** The TCB roles a minimum is compared with: SNP reported, committed and current; the Intel PCK's (TDX, SGX). */
const TCB_ROLES = ['reported', 'committed', 'current', 'pck'] as const;

/** Zero-pads `want` (hex) on the right to the length of `have` and compares. */
function paddedEquals(have: string, want: string): boolean {
  return want.length <= have.length && have === want.padEnd(have.length, '0');
}

function evidenceKinds(claims: Claims): Set<string> {
  const kinds = new Set<string>(claims.verification.map((v) => v.kind));
  if (claims.boot) kinds.add('eventlog');
  return kinds;
}

export function evaluate(claims: Claims, policy: Policy, references: ReferenceStore, opts: EvaluateOptions): AppraisalResult {
  if (!(opts.at instanceof Date) || Number.isNaN(opts.at.getTime())) throw inputError('BAD_TIME', 'the appraisal time is not a valid date');
  const nonce = opts.nonce?.toLowerCase();
  if (nonce !== undefined && !/^([0-9a-f]{2})+$/.test(nonce)) throw inputError('BAD_HEX', 'the nonce must be hex');
  const r = new Rules();
  const used = new Map<string, ReferenceDocument>();
  const refDocs = (images: readonly string[]): ReferenceDocument[] => {
    const docs = images.flatMap((i) => references.forImage(i));
    for (const d of docs) used.set(`${d.values.image.id}@${d.values.image.version}@${d.source}`, d);
    return docs;
  };
  const noRefs = (images: readonly string[]) => images.filter((i) => references.forImage(i).length === 0);
  const teePresent = claims.platforms.some((p) => HARDWARE_TEES.includes(p.tee));

  // 1. The evidence itself: verified, of an accepted kind, complete.
  {
    const failed = claims.verification.filter((v) => !v.verified);
    const notChecked = claims.verification.flatMap((v) => v.checks.filter((c) => c.notChecked).map((c) => c.name));
    if (claims.verification.length === 0) {
      r.fail('evidence.verified', 'no evidence was verified', { 'instance-identity': AR4SI.UNRECOGNIZED_INSTANCE }, { expected: 'verified evidence', found: 'none' });
    } else if (failed.length > 0) {
      r.fail('evidence.verified', `verification failed: ${failed.map((v) => `${v.label}: ${v.error?.code ?? 'FAILED'}: ${v.error?.message ?? ''}`).join('; ')}`, { 'instance-identity': AR4SI.CRYPTO_VALIDATION_FAILED, hardware: AR4SI.CRYPTO_VALIDATION_FAILED }, { expected: 'every signature and chain verifies', found: failed.map((v) => v.error?.code ?? 'FAILED').join(', ') });
    } else {
      const trust: TrustVector = { 'instance-identity': AR4SI.TRUSTWORTHY_INSTANCE, ...(teePresent ? { hardware: AR4SI.GENUINE_HARDWARE } : {}) };
      r.pass('evidence.verified', `${claims.verification.map((v) => v.label).join(' + ')} verified${notChecked.length > 0 ? ` (NOT CHECKED: ${notChecked.join(', ')})` : ''}`, trust, { found: claims.signingKeys.map((k) => `${k.kind} ${k.subject}${k.root ? ` → ${k.root}` : ''}`).join('; ') });
    }
    const kinds = evidenceKinds(claims);
    const accepted = policy.evidence?.accepted;
    if (accepted) {
      const bad = [...kinds].filter((k) => k !== 'eventlog' && !accepted.includes(k));
      if (bad.length > 0) r.fail('evidence.accepted', `evidence of kind ${bad.join(', ')} is not accepted by this policy`, { 'instance-identity': AR4SI.UNRECOGNIZED_INSTANCE }, { expected: list(accepted), found: [...kinds].join(', ') });
      else r.pass('evidence.accepted', 'every piece of evidence is of an accepted kind', {}, { expected: list(accepted), found: [...kinds].join(', ') });
    }
    const required = policy.evidence?.required;
    if (required) {
      const missing = required.filter((k) => !kinds.has(k));
      if (missing.length > 0) r.fail('evidence.required', `required evidence is missing: ${missing.join(', ')}`, { 'instance-identity': AR4SI.UNRECOGNIZED_INSTANCE }, { expected: required.join(' + '), found: [...kinds].join(', ') || 'none' });
      else r.pass('evidence.required', 'all required evidence is present', {}, { expected: required.join(' + '), found: [...kinds].join(', ') });
    }
  }

  // 1b. Which TPM attestation key signed: PCR values are the same on every VM booted from one
  // image, the AK is what tells two of them apart. Every TPM AK in the evidence must be a named
  // one, and evidence without a TPM AK fails (a policy that names a key requires it).
  if (policy.tpm) {
    const want = policy.tpm.ak;
    const aks = claims.signingKeys.filter((k) => k.kind === 'tpm-ak');
    const expected = list(want.map(short));
    const found = aks.map((k) => `sha256 ${k.keySha256 ?? '?'}${k.tpmName ? ` name ${k.tpmName}` : ''}`).join('; ') || 'no TPM attestation key';
    const known = (k: (typeof aks)[number]) => want.some((w) => w === k.keySha256 || (k.tpmName !== undefined && w === k.tpmName));
    if (aks.length === 0) r.fail('tpm.ak', 'the policy names the TPM attestation key, and the evidence carries no TPM quote', { 'instance-identity': AR4SI.UNRECOGNIZED_INSTANCE }, { expected, found });
    else if (!aks.every(known)) r.fail('tpm.ak', 'the TPM quote is signed by another attestation key than the one(s) the policy names: another machine (or VM) with the same PCR values', { 'instance-identity': AR4SI.UNRECOGNIZED_INSTANCE }, { expected, found });
    else r.pass('tpm.ak', 'the TPM quote is signed by a named attestation key', { 'instance-identity': AR4SI.TRUSTWORTHY_INSTANCE }, { expected, found });
  }

  // 2. Debug and migration: forbidden unless the policy allows them (whatever the guest runs).
  for (const [id, key, label] of [['debug', 'debug', 'debugging by the host'], ['migration', 'migration', 'a migration agent']] as const) {
    const v = claims.debug[key];
    const allowed = policy[key] === 'allowed';
    if (v === undefined) {
      r.na(id, `the evidence does not say whether ${label} is allowed (no hardware TEE report)`, { expected: allowed ? 'any' : 'forbidden' });
    } else if (!v) {
      r.pass(id, `the guest policy forbids ${label}`, teePresent ? { 'runtime-opaque': AR4SI.ENCRYPTED_MEMORY_RUNTIME } : {}, { expected: allowed ? 'any' : 'forbidden', found: `${id.toUpperCase()}=0` });
    } else if (allowed) {
      r.pass(id, `the guest policy allows ${label}, which this policy explicitly accepts`, { 'runtime-opaque': AR4SI.ISOLATED_MEMORY_RUNTIME }, { expected: 'any', found: `${id.toUpperCase()}=1` });
    } else {
      r.fail(id, `the guest policy allows ${label}: the host can read the guest's memory`, { 'runtime-opaque': AR4SI.VISIBLE_MEMORY_RUNTIME }, { expected: 'forbidden', found: `${id.toUpperCase()}=1` });
    }
  }

  // 3. Launch measurement, per platform.
  if (policy.measurements) {
    const m = policy.measurements;
    const images = referenceImages(m.reference);
    const docs = refDocs(images);
    const present: [string, string, string[]][] = [];
    if (claims.launch.snp !== undefined) present.push(['SEV-SNP', claims.launch.snp, [...(m.snp ?? []), ...docs.flatMap((d) => d.values.measurements.snp ?? [])]]);
    if (claims.launch.tdx !== undefined) present.push(['TDX MRTD', claims.launch.tdx.mrtd, [...(m.tdx ?? []), ...docs.flatMap((d) => d.values.measurements.tdx?.mrtd ?? [])]]);
    if (present.length === 0) {
      r.na('measurement', 'the evidence carries no launch measurement (no SEV-SNP or TDX report)');
    } else {
      const bad = present.filter(([, v, accepted]) => !accepted.includes(v));
      const found = present.map(([k, v]) => `${k} ${v}`).join('; ');
      const expected = present.map(([k, , a]) => `${k} one of ${list(a.map(short))}`).join('; ');
      const missingRefs = noRefs(images);
      const note = missingRefs.length > 0 ? ` (no reference values are loaded for image ${missingRefs.join(', ')})` : '';
      if (bad.length > 0) {
        r.fail('measurement', `${bad.map(([k, v]) => `${k} launch measurement ${v}`).join('; ')} is not an accepted measurement${note}`, { executables: AR4SI.CONTRAINDICATED_RUNTIME }, { expected, found });
      } else {
        const viaRef = present.every(([, v]) => docs.some((d) => d.values.measurements.snp?.includes(v) || d.values.measurements.tdx?.mrtd?.includes(v)));
        r.pass('measurement', `launch measurement is accepted${viaRef ? ' (signed reference values)' : ''}`, { executables: AR4SI.APPROVED_RUNTIME, ...(viaRef ? { 'sourced-data': AR4SI.TRUSTED_SOURCES } : {}) }, { expected, found });
      }
    }
  }

  // 4. Minimum TCB per product.
  if (policy.tcb) {
    const rows: { ok: boolean; text: string; expected: string; found: string }[] = [];
    for (const p of claims.platforms) {
      const perProduct = policy.tcb[p.tee];
      if (!perProduct) continue;
      if (!p.tcb) {
        // Fail closed: the policy asks for a minimum on this platform and the evidence gives nothing to compare it with.
        rows.push({ ok: false, text: `the policy sets a minimum TCB for ${p.tee} but this ${p.tee} evidence carries no TCB values to compare (not checked, so refused)`, expected: `${p.tee}: ${Object.keys(perProduct).join(', ')} minimum`, found: 'no TCB values' });
        continue;
      }
      const min = p.product === null ? undefined : perProduct[p.product];
      const found = TCB_ROLES.filter((k) => p.tcb?.[k]).map((k) => `${k} ${Object.entries(p.tcb?.[k]?.components ?? {}).map(([c, v]) => `${c}=${v}`).join(' ')}`).join('; ');
      if (!min) {
        rows.push({ ok: false, text: `the policy sets no minimum TCB for ${p.tee} ${p.product ?? '(unknown product)'}`, expected: `a minimum for one of ${Object.keys(perProduct).join(', ')}`, found: `${p.product ?? 'unknown product'}: ${found}` });
        continue;
      }
      const low: string[] = [];
      // Fail closed when no role is there to compare (it would otherwise "meet" any minimum).
      if (!TCB_ROLES.some((k) => p.tcb?.[k])) low.push(`no ${TCB_ROLES.join(', ')} TCB values to compare`);
      for (const role of TCB_ROLES) {
        const t = p.tcb[role];
        if (!t) continue;
        for (const [c, v] of Object.entries(min)) {
          const have = t.components[c];
          if (have === undefined) low.push(`${role} has no ${c} component`);
          else if (have < v) low.push(`${role} ${c} ${have} < ${v}`);
        }
      }
      const expected = `${p.product}: ${Object.entries(min).map(([c, v]) => `${c}≥${v}`).join(' ')}`;
      rows.push({ ok: low.length === 0, text: low.length === 0 ? `${p.tee} ${p.product} TCB meets the minimum` : `${p.tee} ${p.product} TCB is below the minimum: ${low.join(', ')}`, expected, found: `${p.product}: ${found}` });
    }
    if (rows.length === 0) r.na('tcb.minimum', 'no platform in the evidence has a TCB this policy sets a minimum for');
    else {
      const bad = rows.filter((x) => !x.ok);
      const ex = { expected: rows.map((x) => x.expected).join('; '), found: rows.map((x) => x.found).join('; ') };
      if (bad.length > 0) r.fail('tcb.minimum', bad.map((x) => x.text).join('; '), { hardware: AR4SI.UNSAFE_HARDWARE }, ex);
      else r.pass('tcb.minimum', rows.map((x) => x.text).join('; '), { hardware: AR4SI.GENUINE_HARDWARE }, ex);
    }
  }

  // 5. Boot state from the event log.
  const boot = claims.boot;
  const noLog = 'the evidence carries no event log checked against verified registers';
  if (policy.secureBoot) {
    const sb = policy.secureBoot;
    if (!boot) r.na('secure-boot', noLog, { expected: sb.required ? 'on' : 'any' });
    else if (boot.secureBoot === undefined) r.fail('secure-boot', 'no checked SecureBoot variable event: the Secure Boot state is unknown', { configuration: AR4SI.UNSAFE_CONFIG }, { expected: sb.required ? 'on' : 'any', found: 'unknown' });
    else if (sb.required && !boot.secureBoot) r.fail('secure-boot', 'Secure Boot is off', { configuration: AR4SI.UNSUPPORTABLE_CONFIG }, { expected: 'on', found: 'off' });
    else r.pass('secure-boot', `Secure Boot is ${boot.secureBoot ? 'on' : 'off'}`, { configuration: AR4SI.APPROVED_CONFIG }, { expected: sb.required ? 'on' : 'any', found: boot.secureBoot ? 'on' : 'off' });
    if (sb.db) {
      const expected = sb.db.map((c) => [c.subject !== undefined ? `subject "${c.subject}"` : '', c.sha256 !== undefined ? `sha256 ${c.sha256}` : ''].filter(Boolean).join(' and ')).join(' + ');
      if (!boot) r.na('secure-boot.db', noLog, { expected });
      else {
        const certs = boot.db?.certificates ?? [];
        const found = certs.length === 0 ? (boot.db ? 'db holds no certificate' : 'db was not measured (or its event could not be checked)') : certs.map((c) => `"${c.subject}" sha256 ${c.sha256}`).join('; ');
        const missing = sb.db.filter((want) => !certs.some((c) => (want.sha256 === undefined || c.sha256 === want.sha256) && (want.subject === undefined || c.subject === want.subject)));
        if (missing.length > 0) r.fail('secure-boot.db', `db does not hold the expected certificate${missing.length > 1 ? 's' : ''}`, { configuration: AR4SI.UNSUPPORTABLE_CONFIG }, { expected, found });
        else r.pass('secure-boot.db', 'db holds every expected certificate', { configuration: AR4SI.APPROVED_CONFIG }, { expected, found });
      }
    }
  }
  if (policy.bootApplications) {
    const images = policy.bootApplications.reference ? [policy.bootApplications.reference] : [];
    const accepted = [...(policy.bootApplications.authenticode ?? []), ...refDocs(images).flatMap((d) => d.values.measurements.ukiAuthenticode ?? [])];
    const expected = `every boot application one of ${list(accepted.map(short))}`;
    if (!boot) r.na('boot.applications', noLog, { expected });
    else {
      const apps = boot.bootApplications.map((a) => ({ path: a.path, d: a.authenticode.sha256 }));
      const found = apps.map((a) => `${a.path}: ${a.d ?? '(no sha256 digest)'}`).join('; ') || 'no boot application measured';
      const bad = apps.filter((a) => a.d === undefined || !accepted.includes(a.d));
      if (apps.length === 0 || bad.length > 0) r.fail('boot.applications', apps.length === 0 ? 'no boot application was measured' : `boot application ${bad.map((a) => `${a.path} (${a.d ?? 'no sha256'})`).join(', ')} is not accepted`, { executables: AR4SI.CONTRAINDICATED_RUNTIME }, { expected, found });
      else r.pass('boot.applications', 'every boot application has an accepted Authenticode digest', { executables: AR4SI.APPROVED_BOOT }, { expected, found });
    }
  }

  // 6. Registers.
  if (policy.pcrs) {
    const { reference, ...banks } = policy.pcrs;
    for (const [bank, regs] of Object.entries(banks)) {
      for (const [i, want] of Object.entries(regs ?? {}).sort(([a], [b]) => Number(a) - Number(b))) {
        const id = `pcr.${bank}.${i}`;
        if (!claims.runtime.pcrs) {
          r.na(id, 'the evidence carries no verified PCR values (no TPM quote)', { expected: want });
          continue;
        }
        const got = claims.runtime.pcrs[bank]?.[i];
        if (got === undefined) r.fail(id, `PCR ${bank}:${i} is not among the verified, quoted PCRs`, { executables: AR4SI.CONTRAINDICATED_RUNTIME }, { expected: want, found: 'not quoted' });
        else if (got !== want) r.fail(id, `PCR ${bank}:${i} differs from its expected value`, { executables: AR4SI.CONTRAINDICATED_RUNTIME }, { expected: want, found: got });
        else r.pass(id, `PCR ${bank}:${i} equals its expected value`, { executables: AR4SI.APPROVED_BOOT }, { expected: want, found: got });
      }
    }
    if (reference) registerReference('pcr.reference', 'PCR', claims.runtime.pcrs === undefined ? undefined : flattenPcrs(claims.runtime.pcrs), refDocs([reference]).map((d) => ({ d, values: d.values.measurements.pcrs ? flattenPcrs(d.values.measurements.pcrs) : {} })), reference, r);
  }
  if (policy.rtmrs) {
    const { reference, ...regs } = policy.rtmrs;
    for (const [i, want] of Object.entries(regs)) {
      if (want === undefined) continue;
      const id = `rtmr.${i}`;
      const got = claims.runtime.rtmrs?.[i];
      if (!claims.runtime.rtmrs) r.na(id, 'the evidence carries no verified RTMR values (no TDX quote)', { expected: want });
      else if (got !== want) r.fail(id, `RTMR ${i} differs from its expected value`, { executables: AR4SI.CONTRAINDICATED_RUNTIME }, { expected: want, found: got ?? 'absent' });
      else r.pass(id, `RTMR ${i} equals its expected value`, { executables: AR4SI.APPROVED_BOOT }, { expected: want, found: got });
    }
    if (reference) {
      const refs = refDocs([reference]).map((d) => ({ d, values: Object.fromEntries(Object.entries(d.values.measurements.tdx?.rtmrs ?? {}).map(([k, v]) => [`rtmr ${k}`, v])) }));
      registerReference('rtmr.reference', 'RTMR', claims.runtime.rtmrs === undefined ? undefined : Object.fromEntries(Object.entries(claims.runtime.rtmrs).map(([k, v]) => [`rtmr ${k}`, v])), refs, reference, r);
    }
  }

  // 7. Kernel command line and dm-verity root hash.
  if (policy.kernel) {
    const k = policy.kernel;
    const docs = k.reference ? refDocs([k.reference]) : [];
    const cmdlines = [...(k.commandLine !== undefined ? [k.commandLine] : []), ...docs.flatMap((d) => (d.values.measurements.kernelCommandLine !== undefined ? [d.values.measurements.kernelCommandLine] : []))];
    const hashes = [...(k.verityRootHash !== undefined ? [k.verityRootHash] : []), ...docs.flatMap((d) => (d.values.measurements.verityRootHash !== undefined ? [d.values.measurements.verityRootHash] : []))];
    const cmd = boot?.kernelCommandLine;
    if (k.commandLine !== undefined || docs.some((d) => d.values.measurements.kernelCommandLine !== undefined)) {
      if (!boot) r.na('kernel.cmdline', noLog, { expected: list(cmdlines) });
      else if (cmd === undefined) r.fail('kernel.cmdline', 'no checked kernel command line event', { configuration: AR4SI.UNSAFE_CONFIG }, { expected: list(cmdlines), found: 'none' });
      else if (!cmdlines.includes(cmd)) r.fail('kernel.cmdline', 'the kernel command line is not the expected one', { configuration: AR4SI.UNSUPPORTABLE_CONFIG }, { expected: list(cmdlines), found: cmd });
      else r.pass('kernel.cmdline', 'the kernel command line is the expected one', { configuration: AR4SI.APPROVED_CONFIG }, { expected: list(cmdlines), found: cmd });
    }
    if (k.commandLineContains) {
      const expected = k.commandLineContains.map((s) => `"${s}"`).join(' and ');
      if (!boot) r.na('kernel.cmdline.contains', noLog, { expected });
      else {
        const missing = k.commandLineContains.filter((s) => !(cmd ?? '').includes(s));
        if (cmd === undefined || missing.length > 0) r.fail('kernel.cmdline.contains', cmd === undefined ? 'no checked kernel command line event' : `the kernel command line lacks ${missing.map((s) => `"${s}"`).join(', ')}`, { configuration: AR4SI.UNSUPPORTABLE_CONFIG }, { expected, found: cmd ?? 'none' });
        else r.pass('kernel.cmdline.contains', 'the kernel command line holds every required parameter', { configuration: AR4SI.APPROVED_CONFIG }, { expected, found: cmd });
      }
    }
    if (k.reference && !docs.some((d) => d.values.measurements.verityRootHash !== undefined || d.values.measurements.kernelCommandLine !== undefined)) {
      r.fail('kernel.reference', `no signed reference values with a kernel command line or dm-verity root hash are loaded for image ${k.reference}`, { configuration: AR4SI.UNSAFE_CONFIG }, { expected: `reference values of image ${k.reference}`, found: 'none' });
    }
    if (k.verityRootHash !== undefined || docs.some((d) => d.values.measurements.verityRootHash !== undefined)) {
      const expected = list(hashes);
      const got = boot?.verity?.rootHash;
      if (!boot) r.na('kernel.verity', noLog, { expected });
      else if (got === undefined) r.fail('kernel.verity', 'the kernel command line names no dm-verity root hash (roothash=, verity.roothash=, root_hexdigest=)', { 'file-system': AR4SI.UNRECOGNIZED_FILES }, { expected, found: cmd === undefined ? 'no command line' : 'none' });
      else if (!hashes.includes(got)) r.fail('kernel.verity', `dm-verity root hash ${got} is not the expected one`, { 'file-system': AR4SI.CONTRAINDICATED_FILES }, { expected, found: got });
      else r.pass('kernel.verity', `dm-verity root hash is the expected one (from ${boot.verity?.source ?? 'the command line'})`, { 'file-system': AR4SI.APPROVED_FILES }, { expected, found: got });
    }
  }

  // 8. Workload identity.
  if (policy.workload) {
    const ids: [string, string][] = [];
    for (const [k, v] of [['HOST_DATA', claims.workload.hostData], ['MRCONFIGID', claims.workload.mrConfigId], ['extended digest', claims.workload.extendedDigest]] as const) if (v !== undefined) ids.push([k, v]);
    const expected = list(policy.workload.digest);
    // A policy that names a workload requires it: evidence that binds none proves no workload, so it fails (not "not applicable").
    if (ids.length === 0) r.fail('workload.digest', 'the policy requires a workload identity and the evidence binds none (no HOST_DATA, MRCONFIGID or extended digest)', { executables: AR4SI.CONTRAINDICATED_RUNTIME }, { expected, found: 'no workload identity' });
    else {
      const found = ids.map(([k, v]) => `${k} ${v}`).join('; ');
      const hit = ids.find(([, v]) => policy.workload?.digest.some((d) => paddedEquals(v, d)));
      if (hit) r.pass('workload.digest', `the workload digest is bound through ${hit[0]}`, { executables: AR4SI.APPROVED_RUNTIME }, { expected, found });
      else r.fail('workload.digest', 'the evidence binds another workload', { executables: AR4SI.CONTRAINDICATED_RUNTIME }, { expected, found });
    }
  }

  // 9. Freshness.
  if (policy.freshness?.nonce) {
    const required = policy.freshness.nonce === 'required';
    const carriers: [string, string, boolean][] = [];
    if (claims.freshness.nonce !== undefined) carriers.push(['TPM extraData', claims.freshness.nonce, nonce !== undefined && claims.freshness.nonce === nonce]);
    if (claims.freshness.reportData !== undefined) carriers.push(['REPORT_DATA', claims.freshness.reportData, nonce !== undefined && paddedEquals(claims.freshness.reportData, nonce)]);
    const found = carriers.map(([k, v]) => `${k} ${v}`).join('; ') || 'no nonce-bearing field';
    if (nonce === undefined) {
      if (required) r.fail('freshness.nonce', 'the policy requires a nonce binding, but the appraisal was given no nonce', { 'instance-identity': AR4SI.UNTRUSTWORTHY_INSTANCE }, { expected: 'the verifier nonce', found });
      else r.na('freshness.nonce', 'no nonce was given to the appraisal', { found });
    } else if (carriers.length === 0) {
      if (required) r.fail('freshness.nonce', 'the evidence carries no field that could bind the nonce', { 'instance-identity': AR4SI.UNTRUSTWORTHY_INSTANCE }, { expected: nonce, found });
      else r.na('freshness.nonce', 'the evidence carries no field that could bind the nonce', { expected: nonce, found });
    } else {
      const unbound = carriers.filter(([, , ok]) => !ok);
      if (unbound.length > 0) r.fail('freshness.nonce', `${unbound.map(([k]) => k).join(' and ')} is not bound to the nonce: the evidence may be a replay`, { 'instance-identity': AR4SI.UNTRUSTWORTHY_INSTANCE }, { expected: nonce, found });
      else r.pass('freshness.nonce', `the evidence is bound to the nonce (${carriers.map(([k]) => k).join(', ')})`, { 'instance-identity': AR4SI.TRUSTWORTHY_INSTANCE }, { expected: nonce, found });
    }
  }
  const maxAge = maxAgeSeconds(policy);
  if (maxAge !== undefined) {
    const expected = `at most ${maxAge}s old at ${opts.at.toISOString()}`;
    const collected = claims.freshness.collectedAt;
    const t = collected === undefined ? NaN : Date.parse(collected);
    if (collected === undefined || Number.isNaN(t)) r.fail('freshness.max-age', 'the time the evidence was collected is unknown, so its age cannot be bounded', { 'instance-identity': AR4SI.UNTRUSTWORTHY_INSTANCE }, { expected, found: collected ?? 'unknown' });
    else {
      const age = Math.round((opts.at.getTime() - t) / 1000);
      // A minute of clock skew is tolerated; evidence from further in the future is refused.
      if (age < -60) r.fail('freshness.max-age', `the evidence claims to be collected ${-age}s in the future`, { 'instance-identity': AR4SI.UNTRUSTWORTHY_INSTANCE }, { expected, found: collected });
      else if (age > maxAge) r.fail('freshness.max-age', `the evidence is ${age}s old, more than ${maxAge}s`, { 'instance-identity': AR4SI.UNTRUSTWORTHY_INSTANCE }, { expected, found: `${collected} (${age}s old)` });
      else r.pass('freshness.max-age', `the evidence is ${Math.max(age, 0)}s old`, {}, { expected, found: collected });
    }
  }

  // 10. CEL expressions over the documented claims object.
  if (policy.expressions) {
    let obj: { [key: string]: CelValue } | undefined;
    for (const x of policy.expressions) {
      const id = `expression.${x.id}`;
      const description = x.description ?? x.expr;
      let compiled;
      try {
        compiled = compileExpression(x.expr);
      } catch (e) {
        // parsePolicy compiled it already; a Policy built by hand may not have been.
        if (e instanceof ExpressionError) throw inputError('POLICY_INVALID', `expressions: ${x.id}: ${e.message} (at character ${e.offset})`);
        throw e;
      }
      obj ??= celClaims(claims);
      const claimsObj = obj;
      const out = runExpression(compiled, claimsObj);
      const values = compiled.paths.map((p) => `claims.${p.join('.')} = ${showValue(valueAt(claimsObj, p))}`).join('; ');
      const found = (what: string) => (values ? `${what} (${values})` : what);
      const category = x.category as Ar4siCategory;
      if (out.status === 'true') r.pass(id, description, { [category]: 2 }, { expected: x.expr, found: found('true') });
      else if (out.status === 'false') r.fail(id, `${description}: the expression is false`, { [category]: 96 }, { expected: x.expr, found: found('false') });
      else if (out.status === 'absent' && x.absent === 'not-applicable') r.na(id, `${description}: ${out.message}, so the expression does not apply`, { expected: x.expr, found: found('absent') });
      else if (out.status === 'absent' || out.status === 'error') r.fail(id, `${description}: ${out.message}${out.status === 'absent' ? ' (absent claims fail unless the expression says absent: not-applicable)' : ''}`, { [category]: 96 }, { expected: x.expr, found: found(out.status === 'absent' ? 'absent' : 'error') });
    }
  }

  const rules = r.out;
  const trustworthiness = vectorOf(rules);
  // The denial names the gravest failure (the first of the worst tier).
  const failed = rules.filter((x) => x.status === 'fail').sort((a, b) => ruleRank(b) - ruleRank(a))[0];
  const verdict = failed ? 'fail' : 'pass';
  let status = statusOf(trustworthiness);
  // A denial is never affirming, whatever the categories say.
  if (failed) status = worseTier(status, 'warning');
  return {
    policy: { id: policy.id, version: policy.version },
    at: opts.at.toISOString(),
    verdict,
    status,
    trustworthiness,
    rules,
    verification: claims.verification,
    ...(failed ? { denial: denialMessage(failed) } : {}),
    references: [...used.values()].map((d) => ({ image: d.values.image.id, version: d.values.image.version, source: d.source })),
    ...(nonce !== undefined ? { nonce } : {}),
    claims,
  };
}

function flattenPcrs(pcrs: Record<string, Record<string, string> | undefined>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [bank, regs] of Object.entries(pcrs)) for (const [i, v] of Object.entries(regs ?? {})) out[`${bank}:${i}`] = v;
  return out;
}

/** A set of registers against the reference documents of an image: some one document must match all of its registers. */
function registerReference(id: string, what: string, have: Record<string, string> | undefined, refs: { d: ReferenceDocument; values: Record<string, string> }[], image: string, r: Rules): void {
  const withValues = refs.filter((x) => Object.keys(x.values).length > 0);
  if (have === undefined) {
    r.na(id, `the evidence carries no verified ${what} values`, { expected: `${what}s of image ${image}` });
    return;
  }
  if (withValues.length === 0) {
    r.fail(id, `no signed reference ${what} values are loaded for image ${image}`, { executables: AR4SI.UNRECOGNIZED_RUNTIME }, { expected: `${what}s of image ${image}`, found: 'no reference values' });
    return;
  }
  const diffs = withValues.map((x) => ({ x, bad: Object.entries(x.values).filter(([k, v]) => have[k] !== v) }));
  const hit = diffs.find((d) => d.bad.length === 0);
  if (hit) {
    r.pass(id, `the ${what}s equal the reference values of ${hit.x.d.values.image.id} ${hit.x.d.values.image.version}`, { executables: AR4SI.APPROVED_BOOT, 'sourced-data': AR4SI.TRUSTED_SOURCES }, { expected: Object.entries(hit.x.values).map(([k, v]) => `${k}=${short(v)}`).join(' '), found: Object.keys(hit.x.values).map((k) => `${k}=${short(have[k] ?? '')}`).join(' ') });
    return;
  }
  const best = diffs.sort((a, b) => a.bad.length - b.bad.length)[0] as (typeof diffs)[number];
  r.fail(id, `the ${what}s match no reference values of image ${image} (closest: ${best.x.d.values.image.version}, differing in ${best.bad.map(([k]) => k).join(', ')})`, { executables: AR4SI.CONTRAINDICATED_RUNTIME }, { expected: best.bad.map(([k, v]) => `${k}=${v}`).join(' '), found: best.bad.map(([k]) => `${k}=${have[k] ?? 'absent'}`).join(' ') });
}

/** Per category, the worst claim of the rules that spoke to it (the first such rule's value on a tie). */
export function vectorOf(rules: readonly RuleOutcome[]): TrustVector {
  const v: TrustVector = {};
  for (const cat of AR4SI_CATEGORIES) {
    let best: number | undefined;
    for (const rule of rules) {
      const x = rule.trust[cat as Ar4siCategory];
      if (x === undefined) continue;
      if (best === undefined || tierRank(x) > tierRank(best)) best = x;
    }
    if (best !== undefined) v[cat] = best;
  }
  return v;
}

function ruleRank(r: RuleOutcome): number {
  return Math.max(0, ...Object.values(r.trust).map((x) => tierRank(x as number)));
}

function tierRank(x: number): number {
  return { none: 0, affirming: 1, warning: 2, contraindicated: 3 }[tierOf(x)];
}

/** One line: the rule, what it found and what it expected. */
export function denialMessage(rule: RuleOutcome): string {
  const values = rule.found !== undefined || rule.expected !== undefined ? ` (found ${rule.found ?? '-'}, expected ${rule.expected ?? '-'})` : '';
  return `denied by rule ${rule.id}: ${rule.description}${values}`;
}

/** The verification checks and rules a person should look at first: failures, then NOT CHECKED links. */
export function unchecked(result: AppraisalResult): { evidence: string; check: string; description: string }[] {
  return result.verification.flatMap((v) => v.checks.filter((c) => c.notChecked || c.description.startsWith('NOT CHECKED')).map((c) => ({ evidence: v.label, check: c.name, description: c.description })));
}
