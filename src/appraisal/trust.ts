import type { Check } from '../check.js';
import type { Claims, EvidenceVerification } from '../evidence/claims-model.js';
import { AR4SI, type EarStatus } from './ar4si.js';
import type { AppraisalResult, RuleOutcome } from './evaluate.js';
import { assessThreats, type ThreatAssessment } from './threats.js';

/**
 * The trust report: for one appraisal, the chain from the hardware root to the workload as
 * ordered links, each VERIFIED (with the checks and rules that establish it), ASSUMED (trusted
 * without proof, naming who is trusted), NOT CHECKED (could have been checked but was not) or
 * FAILED (naming the failing check or rule with expected and found values), and every threat of
 * the catalogue with the mitigations this appraisal established and the residual risk it leaves.
 *
 * It is derived from an AppraisalResult alone (its verification checks and rule outcomes), or
 * from verified claims without a policy, in which case every policy link is NOT CHECKED. A link
 * is VERIFIED only when every check and rule it requires is present and passed. Format:
 * docs/trust-report.md.
 */

export type LinkState = 'verified' | 'assumed' | 'not-checked' | 'failed';

export const LINK_STATE_LABEL: Readonly<Record<LinkState, string>> = { verified: 'VERIFIED', assumed: 'ASSUMED', 'not-checked': 'NOT CHECKED', failed: 'FAILED' };

/** One check or rule behind a link. */
export interface LinkBasis {
  kind: 'check' | 'rule';
  /** Check name (`snp.signature`) or rule id (`measurement`). */
  name: string;
  status: 'pass' | 'fail' | 'not-checked' | 'not-applicable';
  description: string;
  /** The evidence the check belongs to (checks only). */
  evidence?: string;
  expected?: string;
  found?: string;
  code?: string;
}

export interface TrustLink {
  /** Stable id, e.g. `snp.ask`, `tpm.nonce`, `boot.verity`, `firmware`, `binding.vtpm-snp`. */
  id: string;
  title: string;
  state: LinkState;
  /** Why it has this state, in one sentence (for FAILED: the check or rule, expected and found). */
  reason: string;
  /** For ASSUMED: who or what is trusted without proof. */
  trusted?: string;
  basis: LinkBasis[];
}

export type TrustChainId = 'sev-snp' | 'tpm' | 'binding' | 'evidence';

export interface TrustChain {
  id: TrustChainId;
  title: string;
  /** From the hardware (or caller-supplied) root towards the workload. */
  links: TrustLink[];
}

export type CloudProvider = 'google' | 'microsoft' | 'amazon';

export interface TrustReport {
  /** The appraisal (or verification) time, ISO 8601. */
  at: string;
  evidence: { kind: string; label: string; verified: boolean; error?: { code: string; message: string } }[];
  /** Absent when no policy was evaluated. */
  policy?: { id: string; version: string };
  verdict?: 'pass' | 'fail';
  status?: EarStatus;
  denial?: string;
  /** The cloud the evidence points to, when the keys or certificates name one. */
  provider?: CloudProvider;
  chains: TrustChain[];
  counts: Record<LinkState, number>;
  /** The appraised claims, as label/value pairs for a person. */
  claims: { name: string; value: string }[];
  /** Every rule outcome of the policy (also those no link shows). */
  rules: RuleOutcome[];
  /** Highest residual risk first. */
  threats: ThreatAssessment[];
}

/** Verified evidence without a policy: the report shows its verification links and claims only. */
export interface UnappraisedEvidence {
  claims: Claims;
  /** Verification time. */
  at: Date | string;
}

const PROVIDER_NAME: Readonly<Record<CloudProvider, string>> = { google: 'Google', microsoft: 'Microsoft Azure', amazon: 'AWS' };

/**
 * Names of checks that bind a vTPM's AK to a hardware TEE report: a verifier that proves the quote
 * was signed by the AK the report vouches for (Azure: REPORT_DATA = SHA-256 of the HCL runtime
 * data holding the AK, and the quote verified with that AK) emits one. None does yet.
 */
export const VTPM_BINDING_CHECKS: readonly string[] = ['binding.vtpm-ak'];

const short = (h: string) => (h.length > 24 ? `${h.slice(0, 16)}…${h.slice(-8)}` : h);

function checkStatus(c: Check): LinkBasis['status'] {
  if (!c.ok) return 'fail';
  // Some verifiers mark a skipped comparison in words only ("NOT CHECKED: …", "WARNING: NONCE NOT CHECKED: …").
  if (c.notChecked || /^(?:WARNING: )?(?:[A-Z]+ )?NOT CHECKED/.test(c.description)) return 'not-checked';
  return 'pass';
}

function fromCheck(c: Check, evidence: string): LinkBasis {
  return { kind: 'check', name: c.name, status: checkStatus(c), description: c.description, evidence, ...(c.expected !== undefined ? { expected: c.expected } : {}), ...(c.found !== undefined ? { found: c.found } : {}), ...(c.code !== undefined ? { code: c.code } : {}) };
}

function fromRule(r: RuleOutcome): LinkBasis {
  return { kind: 'rule', name: r.id, status: r.status, description: r.description, ...(r.expected !== undefined ? { expected: r.expected } : {}), ...(r.found !== undefined ? { found: r.found } : {}) };
}

function failureText(b: LinkBasis): string {
  const values = b.expected !== undefined || b.found !== undefined ? ` (expected ${b.expected ?? '-'}, found ${b.found ?? '-'})` : '';
  return `${b.kind} ${b.name}${b.code ? ` ${b.code}` : ''}: ${b.description}${values}`;
}

interface LinkSpec {
  id: string;
  title: string;
  /** Checks and rules behind the link. */
  basis: LinkBasis[];
  /** Names that must be present (and pass) for VERIFIED; a missing one makes the link NOT CHECKED. */
  required: string[];
  /** Why a required item is missing (verification stopped, no policy, ...). */
  missing: string;
  /** A link this one rests on: unless it is VERIFIED, this one cannot be. */
  rests?: TrustLink | undefined;
}

/**
 * FAILED if any basis item failed; NOT CHECKED if a required item is missing, not checked or not
 * applicable, or the link it rests on is not VERIFIED; VERIFIED otherwise.
 */
function decide(s: LinkSpec): TrustLink {
  const base = { id: s.id, title: s.title, basis: s.basis };
  const failed = s.basis.find((b) => b.status === 'fail');
  if (failed) return { ...base, state: 'failed', reason: failureText(failed) };
  const absent = s.required.filter((n) => !s.basis.some((b) => b.name === n));
  if (absent.length > 0) return { ...base, state: 'not-checked', reason: `${s.missing} (${absent.join(', ')})` };
  const open = s.basis.find((b) => s.required.includes(b.name) && b.status !== 'pass');
  if (open) return { ...base, state: 'not-checked', reason: `${open.kind} ${open.name}: ${open.description.replace(/^(?:WARNING: )?NOT CHECKED: /, '')}` };
  if (s.rests && s.rests.state !== 'verified') {
    return { ...base, state: 'not-checked', reason: `${s.basis.filter((b) => b.status === 'pass').map((b) => `${b.kind} ${b.name}`).join(', ')} passed, but it rests on "${s.rests.title}", which is ${LINK_STATE_LABEL[s.rests.state]}` };
  }
  const passed = s.basis.filter((b) => b.status === 'pass');
  if (passed.length === 0) return { ...base, state: 'not-checked', reason: s.basis.map((b) => `${b.kind} ${b.name}: ${b.description}`).join('; ') || s.missing };
  return { ...base, state: 'verified', reason: passed.map((b) => `${b.name}: ${b.description}`).join('; ') };
}

function assumed(id: string, title: string, trusted: string, reason: string, basis: LinkBasis[] = []): TrustLink {
  return { id, title, state: 'assumed', trusted, reason, basis };
}

class Context {
  readonly rules: Map<string, RuleOutcome>;
  constructor(
    readonly input: { rules?: readonly RuleOutcome[]; claims: Claims },
    readonly hasPolicy: boolean,
  ) {
    this.rules = new Map((input.rules ?? []).map((r) => [r.id, r]));
  }
  /** The outcomes of these rule ids that exist. */
  rule(...ids: string[]): LinkBasis[] {
    return ids.flatMap((id) => {
      const r = this.rules.get(id);
      return r ? [fromRule(r)] : [];
    });
  }
  rulesMatching(re: RegExp): LinkBasis[] {
    return [...this.rules.values()].filter((r) => re.test(r.id)).map(fromRule);
  }
  /** Why a policy link has no rule behind it. */
  noRule(what: string): string {
    return this.hasPolicy ? `the policy sets no expectation for ${what}` : `no policy was given, so ${what} was not compared with an expected value`;
  }
}

function stoppedAt(v: EvidenceVerification): string {
  if (v.verified) return 'verification produced no such check';
  const f = v.checks.find((c) => !c.ok);
  return `verification stopped at ${f ? `${f.name} (${f.code ?? 'FAILED'})` : (v.error?.code ?? 'an earlier failure')} before this link was checked`;
}

/** A rule outcome restricted to one nonce carrier (freshness.nonce speaks to TPM extraData and REPORT_DATA at once). */
function nonceRuleFor(ctx: Context, carrier: 'REPORT_DATA' | 'TPM extraData'): LinkBasis[] {
  return ctx.rule('freshness.nonce').flatMap((b): LinkBasis[] => {
    if (b.status === 'fail') {
      // A failure names the unbound carriers in its description; when it names none of them
      // (no nonce given at all), it applies to every carrier.
      const names = ['REPORT_DATA', 'TPM extraData'].filter((k) => b.description.includes(k));
      return names.length === 0 || names.includes(carrier) ? [b] : [{ ...b, status: 'pass', description: `${carrier} is bound to the nonce (${b.found ?? ''})` }];
    }
    if (b.status === 'pass' && !(b.found ?? '').includes(carrier)) return [];
    return [b];
  });
}

function snpChain(v: EvidenceVerification, ctx: Context): TrustChain {
  const checks = v.checks.map((c) => fromCheck(c, v.label));
  const named = (...names: string[]) => checks.filter((c) => names.includes(c.name));
  const sigs = checks.filter((c) => c.name === 'pki.signature');
  // Chain checks run leaf first: the first signature is the VCEK's (by the ASK), the last the ASK's (by the ARK).
  const askSig = sigs.length >= 2 ? [sigs[sigs.length - 1] as LinkBasis] : [];
  const leafSig = sigs.length >= 1 ? [sigs[0] as LinkBasis] : [];
  const anchor = named('pki.anchor')[0];
  const missing = stoppedAt(v);
  const links: TrustLink[] = [];

  const rootName = /trusted root (\S+)/.exec(anchor?.description ?? '')?.[1] ?? 'ARK';
  links.push(
    anchor?.status === 'fail'
      ? decide({ id: 'snp.root', title: 'AMD root key (ARK)', basis: [anchor], required: [], missing })
      : assumed('snp.root', 'AMD root key (ARK)', `AMD root key ${anchor ? rootName : '(ARK-Milan, ARK-Genoa or ARK-Turin)'} (pinned by SHA-256${anchor?.found ? ` ${anchor.found}` : ' in src/pki/roots'})`, 'the root of trust: AMD and its key management are trusted, and the AMD-SP firmware at the reported TCB', anchor ? [anchor] : []),
  );
  const ask = decide({ id: 'snp.ask', title: 'AMD signing key (ASK/ASVK) under the ARK', basis: [...askSig, ...(anchor ? [anchor] : []), ...named('pki.ca', 'pki.extensions')], required: ['pki.signature', 'pki.anchor'], missing });
  links.push(ask);
  links.push(decide({ id: 'snp.revocation', title: 'Revocation of AMD signing keys (CRL)', basis: named('pki.revocation', 'pki.crl'), required: ['pki.revocation'], missing }));
  const vcek = decide({ id: 'snp.vcek', title: 'VCEK/VLEK certificate under the ASK', basis: [...leafSig, ...named('pki.validity', 'pki.chain', 'snp.endorsement-key', 'snp.signing-key', 'snp.product', 'snp.chip-id')], required: ['pki.signature', 'pki.validity', 'snp.product', 'snp.chip-id'], missing, rests: ask });
  links.push(vcek);
  const known = new Set(['snp.tcb', 'snp.endorsement-key', 'snp.signing-key', 'snp.product', 'snp.chip-id']);
  const signature = decide({ id: 'snp.signature', title: 'Report signature', basis: checks.filter((c) => c.name.startsWith('snp.') && !known.has(c.name)), required: ['snp.signature', 'snp.format'], missing, rests: vcek });
  links.push(signature);
  links.push(decide({ id: 'snp.tcb-binding', title: 'TCB binding (REPORTED_TCB = VCEK TCB)', basis: named('snp.tcb'), required: ['snp.tcb'], missing, rests: signature }));
  links.push(decide({ id: 'snp.tcb-minimum', title: 'TCB minimum (no rollback)', basis: ctx.rule('tcb.minimum'), required: ['tcb.minimum'], missing: ctx.noRule('the TCB'), rests: signature }));
  links.push(decide({ id: 'snp.measurement', title: 'Launch measurement', basis: ctx.rule('measurement'), required: ['measurement'], missing: ctx.noRule(`the launch measurement${ctx.input.claims.launch.snp ? ` ${short(ctx.input.claims.launch.snp)}` : ''}`), rests: signature }));
  links.push(decide({ id: 'snp.guest-policy', title: 'Guest policy (debug, migration)', basis: ctx.rule('debug', 'migration'), required: ['debug', 'migration'], missing: ctx.noRule(`the guest policy (DEBUG=${ctx.input.claims.debug.debug === undefined ? '?' : Number(ctx.input.claims.debug.debug)}, MIGRATE_MA=${ctx.input.claims.debug.migration === undefined ? '?' : Number(ctx.input.claims.debug.migration)})`), rests: signature }));
  links.push(decide({ id: 'snp.report-data', title: 'Report data bound to the nonce', basis: nonceRuleFor(ctx, 'REPORT_DATA'), required: ['freshness.nonce'], missing: ctx.noRule('REPORT_DATA'), rests: signature }));
  links.push(decide({ id: 'snp.workload', title: 'Workload identity (HOST_DATA)', basis: ctx.rule('workload.digest'), required: ['workload.digest'], missing: ctx.noRule(`the workload identity${ctx.input.claims.workload.hostData ? ` (HOST_DATA ${short(ctx.input.claims.workload.hostData)})` : ''}`), rests: signature }));
  return { id: 'sev-snp', title: `${v.label}: AMD root to workload`, links };
}

/** The cloud the keys point to: the AK's issuer or root, a VLEK's CSP id, or (when verification failed early) the chain checks' names. */
function providerOf(claims: Claims): CloudProvider | undefined {
  const names = [
    ...claims.signingKeys.map((k) => `${k.subject} ${k.issuer} ${k.root ?? ''} ${k.cspId ?? ''}`),
    ...claims.verification.flatMap((v) => v.checks.filter((c) => c.ok && c.name.startsWith('pki.')).map((c) => c.description)),
    ...claims.verification.flatMap((v) => v.checks.filter((c) => c.name === 'snp.chip-id').map((c) => c.description)),
  ].join('\n');
  if (/amazonaws/i.test(names)) return 'amazon';
  if (/tpm_ek_v1_cloud|EK\/AK CA|google/i.test(names)) return 'google';
  if (/microsoft|azure/i.test(names)) return 'microsoft';
  return undefined;
}

function tpmChain(v: EvidenceVerification, ctx: Context, provider: CloudProvider | undefined, binding: TrustLink | undefined, snpPresent: boolean): TrustChain {
  const checks = v.checks.map((c) => fromCheck(c, v.label));
  const named = (...names: string[]) => checks.filter((c) => names.includes(c.name));
  const missing = stoppedAt(v);
  const akKey = ctx.input.claims.signingKeys.find((k) => k.kind === 'tpm-ak');
  const hasCert = checks.some((c) => c.name === 'tpm.ak.certificate' || c.name.startsWith('pki.')) || (akKey !== undefined && akKey.issuer !== 'none');
  const anchor = named('pki.anchor')[0];
  const links: TrustLink[] = [];

  const rootLabel = /trusted root (.+)$/.exec(anchor?.description ?? '')?.[1] ?? akKey?.root;
  const who = provider === 'google' ? 'Google EK/AK CA' : provider === 'microsoft' ? 'Microsoft Azure' : 'the certificate authority of the TPM or cloud';
  if (anchor?.status === 'fail') links.push(decide({ id: 'tpm.ak-root', title: 'AK root (caller-supplied)', basis: [anchor], required: [], missing }));
  else if (hasCert) links.push(assumed('tpm.ak-root', 'AK root (caller-supplied)', `${who}${rootLabel ? `: ${rootLabel}` : ''}, supplied by the caller (Coffer pins no TPM root)`, 'the AK certificate chain ends at a root the caller chose to trust', anchor ? [anchor] : []));
  else links.push(assumed('tpm.ak-root', 'AK root (caller-supplied)', 'the AK public key itself, as the caller supplied it (no certificate)', 'nothing ties the AK to a TPM vendor or a cloud provider'));

  const akCert = hasCert
    ? decide({ id: 'tpm.ak-cert', title: 'AK certificate and restrictions', basis: [...named('pki.signature', 'pki.validity', 'pki.chain', 'pki.ca', 'pki.extensions'), ...named('tpm.ak.certificate', 'tpm.ak.attributes')], required: ['pki.signature', 'pki.validity', 'tpm.ak.certificate', 'tpm.ak.attributes'], missing })
    : decide({ id: 'tpm.ak-cert', title: 'AK certificate and restrictions', basis: named('tpm.ak.attributes'), required: ['tpm.ak.certificate'], missing: 'the AK came without a certificate' });
  links.push(akCert);

  const vtpmTitle = provider ? `vTPM operated by ${PROVIDER_NAME[provider]}` : 'The TPM holding the AK';
  if (binding?.state === 'verified') {
    links.push({ id: 'tpm.vtpm', title: vtpmTitle, state: 'verified', reason: `bound to the hardware TEE report: ${binding.reason}`, basis: binding.basis });
  } else {
    const host = provider === 'google' ? "Google's hypervisor" : provider === 'microsoft' ? "Azure's paravisor (HCL)" : provider === 'amazon' ? 'the Nitro hypervisor' : undefined;
    const trusted = host
      ? `vTPM operated by the CSP's ${provider === 'microsoft' ? 'paravisor' : 'hypervisor'} (${host})${snpPresent ? ', not bound to the SNP report' : ''}`
      : 'the TPM the AK lives in: a discrete TPM or a cloud vTPM, the evidence does not say which';
    const reason = snpPresent
      ? `its quotes are as honest as its operator; see the vTPM ↔ SNP binding link`
      : `no hardware TEE report was appraised, so the vTPM's state (keys, PCRs) rests on its operator alone`;
    links.push(assumed('tpm.vtpm', vtpmTitle, trusted, reason));
  }

  const quote = decide({ id: 'tpm.quote-signature', title: 'Quote signature', basis: named('tpm.signature', 'tpm.format', 'tpm.qualified-signer', 'tpm.verify'), required: ['tpm.signature', 'tpm.format'], missing, rests: akCert.state === 'verified' || !hasCert ? undefined : akCert });
  links.push(quote);
  links.push(decide({ id: 'tpm.nonce', title: 'Nonce (quote extraData)', basis: [...named('tpm.nonce'), ...nonceRuleFor(ctx, 'TPM extraData')], required: ['tpm.nonce'], missing, rests: quote }));
  const pcrs = decide({ id: 'tpm.pcrs', title: 'PCR values (quoted digest)', basis: [...named('tpm.pcr-digest'), ...ctx.rulesMatching(/^pcr\./)], required: ['tpm.pcr-digest'], missing, rests: quote });
  links.push(pcrs);
  const logChecks = checks.filter((c) => c.name.startsWith('eventlog.'));
  const hasLog = logChecks.length > 0 || ctx.input.claims.boot !== undefined || /with event log/.test(v.label) || !v.verified;
  const log = decide({ id: 'tpm.eventlog', title: 'Event log replay', basis: logChecks, required: ['eventlog.replay'], missing: hasLog ? missing : 'no event log was supplied: what the PCRs measure cannot be explained', rests: pcrs });
  links.push(log);

  const boot = ctx.input.claims.boot;
  const need = (id: string, title: string, ruleIds: string[], what: string) => {
    const basis = ctx.rule(...ruleIds);
    return decide({ id, title, basis, required: basis.length > 0 ? basis.map((b) => b.name) : [ruleIds[0] as string], missing: ctx.noRule(what), rests: log });
  };
  links.push(need('boot.secure-boot', 'Secure Boot', ['secure-boot'], `Secure Boot${boot?.secureBoot !== undefined ? ` (${boot.secureBoot ? 'on' : 'off'} in the checked log)` : ''}`));
  links.push(need('boot.db', 'Secure Boot db certificates', ['secure-boot.db'], `the db certificates${boot?.db ? ` (${boot.db.certificates.map((c) => c.subject).join(', ') || 'none'})` : ''}`));
  links.push(need('boot.applications', 'Boot applications', ['boot.applications'], `the boot applications${boot ? ` (${boot.bootApplications.length} measured)` : ''}`));
  links.push(need('boot.cmdline', 'Kernel command line', ['kernel.cmdline', 'kernel.cmdline.contains'], 'the kernel command line'));
  links.push(need('boot.verity', 'dm-verity root hash', ['kernel.verity', 'kernel.reference'], `the dm-verity root hash${boot?.verity?.rootHash ? ` (${short(boot.verity.rootHash)})` : ''}`));
  return { id: 'tpm', title: `${v.label}: AK root to boot state`, links };
}

/** The firmware link: VERIFIED only against signed reference values (the launch measurement, or PCR 0). */
function firmwareLink(ctx: Context, provider: CloudProvider | undefined, snp: TrustLink | undefined, pcrLink: TrustLink | undefined): TrustLink {
  const title = 'UEFI firmware';
  const byRef: LinkBasis[] = [];
  const m = ctx.rules.get('measurement');
  if (m?.status === 'pass' && m.trust['sourced-data'] === AR4SI.TRUSTED_SOURCES) byRef.push(fromRule(m));
  const pr = ctx.rules.get('pcr.reference');
  if (pr?.status === 'pass' && /\b\w+:0=/.test(pr.expected ?? '')) byRef.push(fromRule(pr));
  // Only a register that measures the firmware alone (PCR 0) can fail it; a launch measurement
  // that fails says only that something it covers differs (shown on its own link).
  const failed = [...(pr?.status === 'fail' && /\b\w+:0=/.test(pr.expected ?? '') ? [fromRule(pr)] : []), ...ctx.rulesMatching(/^pcr\.\w+\.0$/).filter((b) => b.status === 'fail')];
  if (failed.length > 0) return decide({ id: 'firmware', title, basis: failed, required: [], missing: '' });
  if (byRef.length > 0) {
    const rests = snp && byRef.some((b) => b.name === 'measurement') ? snp : pcrLink;
    return decide({ id: 'firmware', title, basis: byRef, required: [], missing: '', rests });
  }
  const pinned = [...(m?.status === 'pass' ? [fromRule(m)] : []), ...ctx.rulesMatching(/^pcr\.\w+\.0$/).filter((b) => b.status === 'pass')];
  const who = provider ? `${PROVIDER_NAME[provider]}-provided UEFI firmware, not reproducible from source` : 'CSP-provided UEFI firmware, not reproducible from source';
  const reason = m?.status === 'fail'
    ? 'the launch measurement, which covers the firmware, is not an accepted value (see that link); the firmware itself was not compared with signed reference values'
    : pinned.length > 0
    ? `${pinned.map((b) => `rule ${b.name}`).join(', ')} pinned the firmware to a value the policy lists, but no signed reference values say where that value came from`
    : `the firmware ${snp ? 'is covered by the launch measurement' : 'is measured into PCR 0'}, but that was not compared with signed reference values (--reference)`;
  return assumed('firmware', title, who, reason, pinned);
}

function bindingLink(snpV: EvidenceVerification, tpmV: EvidenceVerification, provider: CloudProvider | undefined): TrustLink {
  const checks = [...snpV.checks.map((c) => fromCheck(c, snpV.label)), ...tpmV.checks.map((c) => fromCheck(c, tpmV.label))].filter((c) => VTPM_BINDING_CHECKS.includes(c.name));
  if (checks.length > 0) return decide({ id: 'binding.vtpm-snp', title: 'vTPM ↔ SNP report binding', basis: checks, required: [checks[0]?.name as string], missing: '' });
  const why =
    provider === 'google'
      ? "on GCE the vTPM is emulated by Google's hypervisor outside the SNP guest and its AK is certified by Google's EK/AK CA; nothing in the SNP report (REPORT_DATA, HOST_DATA) names the AK, so the quote and the report could come from two different VMs"
      : provider === 'microsoft'
        ? "on Azure the paravisor hashes its runtime data (which holds the vTPM's AK) into REPORT_DATA, but this evidence does not carry the HCL runtime data, so Coffer did not check that the AK is the one the SNP report vouches for"
        : 'REPORT_DATA does not carry a digest of the AK (and no check relates them), so nothing in this evidence shows that the quote and the report come from the same VM';
  return assumed('binding.vtpm-snp', 'vTPM ↔ SNP report binding', `the cloud provider${provider ? ` (${PROVIDER_NAME[provider]})` : ''}, to present the vTPM quote and the SNP report of one and the same VM`, why);
}

function genericChain(v: EvidenceVerification): TrustChain {
  const checks = v.checks.map((c) => fromCheck(c, v.label));
  const root = assumed(`${v.kind}.root`, `${v.kind} vendor root`, `the vendor root of the ${v.kind} evidence`, 'the root of trust of this evidence');
  const all = decide({ id: `${v.kind}.verification`, title: `${v.label}: signature and chain`, basis: checks, required: checks.filter((c) => c.status !== 'not-checked').map((c) => c.name).slice(0, 1), missing: stoppedAt(v) });
  const nc = checks.filter((c) => c.status === 'not-checked').map((c) => decide({ id: `${v.kind}.${c.name}`, title: c.name, basis: [c], required: [c.name], missing: '' }));
  return { id: 'evidence', title: v.label, links: [root, all, ...nc] };
}

function claimsSummary(c: Claims): { name: string; value: string }[] {
  const out: { name: string; value: string }[] = [];
  const add = (name: string, value: string | undefined) => {
    if (value !== undefined && value !== '') out.push({ name, value });
  };
  for (const p of c.platforms) {
    add(`platform (${p.tee})`, `${p.vendor}${p.product ? ` ${p.product}` : ''}${p.firmware ? `, firmware ${p.firmware}` : ''}`);
    const rep = p.tcb?.reported;
    if (rep) add(`reported TCB (${p.tee})`, Object.entries(rep.components).map(([k, v]) => `${k}=${v}`).join(' '));
    add(`chip id (${p.tee})`, p.chipId);
  }
  for (const k of c.signingKeys) add(`signing key (${k.evidence})`, `${k.kind} "${k.subject}" issued by "${k.issuer}"${k.root ? ` → root "${k.root}"` : ''}${k.cspId ? ` (CSP ${k.cspId})` : ''}`);
  add('launch measurement (SEV-SNP)', c.launch.snp);
  add('launch measurement (TDX MRTD)', c.launch.tdx?.mrtd);
  add('report data', c.freshness.reportData);
  add('TPM nonce (extraData)', c.freshness.nonce === undefined ? undefined : `${c.freshness.nonce}${c.freshness.nonceVerified ? ' (checked)' : ' (not checked)'}`);
  add('collected at', c.freshness.collectedAt);
  add('HOST_DATA', c.workload.hostData);
  add('MRCONFIGID', c.workload.mrConfigId);
  add('extended workload digest', c.workload.extendedDigest);
  if (c.workload.snpIdBlock) add('SNP ID block', `family ${c.workload.snpIdBlock.familyId}, image ${c.workload.snpIdBlock.imageId}, guest SVN ${c.workload.snpIdBlock.guestSvn}`);
  if (c.debug.debug !== undefined) add('debug allowed', String(c.debug.debug));
  if (c.debug.migration !== undefined) add('migration agent allowed', String(c.debug.migration));
  for (const [bank, regs] of Object.entries(c.runtime.pcrs ?? {})) add(`PCRs (${bank})`, Object.entries(regs).map(([i, v]) => `${i}=${short(v)}`).join(' '));
  for (const [i, v] of Object.entries(c.runtime.rtmrs ?? {})) add(`RTMR ${i}`, v);
  const b = c.boot;
  if (b) {
    add('Secure Boot', b.secureBoot === undefined ? 'unknown (no checked SecureBoot event)' : b.secureBoot ? 'on' : 'off');
    add('db certificates', b.db?.certificates.map((x) => `"${x.subject}" (sha256 ${short(x.sha256)})`).join('; '));
    add('boot applications', b.bootApplications.map((a) => `${a.path}${a.authenticode.sha256 ? ` (${short(a.authenticode.sha256)})` : ''}`).join('; '));
    // Listed for the boot, not per application: the log's interleaving of PCR 7 and PCR 4 events is not authenticated.
    const used = new Map<string, number>();
    for (const a of b.authorities ?? []) {
      const k = `${a.variable}: ${a.subject !== undefined ? `"${a.subject}"` : `SHA-256 ${short(a.sha256 ?? '?')}`}`;
      used.set(k, (used.get(k) ?? 0) + 1);
    }
    add('authorities used (order not authenticated)', [...used].map(([k, n]) => (n > 1 ? `${k} (×${n})` : k)).join('; '));
    add('kernel command line', b.kernelCommandLine);
    add('dm-verity root hash', b.verity?.rootHash === undefined ? undefined : `${b.verity.rootHash} (from ${b.verity.source})`);
    add('event-log defects', b.flags.join(', '));
    for (const n of b.notVerified) add('not verified by the event log', n);
  }
  return out;
}

/** Builds the trust report of an appraisal, or of verified evidence without a policy. */
export function trustReport(input: AppraisalResult | UnappraisedEvidence): TrustReport {
  const appraised = 'rules' in input ? input : undefined;
  const claims = input.claims;
  const ctx = new Context({ claims, ...(appraised ? { rules: appraised.rules } : {}) }, appraised !== undefined);
  const provider = providerOf(claims);
  const ver = claims.verification;
  const snpV = ver.find((v) => v.kind === 'sev-snp');
  const tpmV = ver.find((v) => v.kind === 'tpm');
  const chains: TrustChain[] = [];
  const binding = snpV && tpmV ? bindingLink(snpV, tpmV, provider) : undefined;
  const snp = snpV ? snpChain(snpV, ctx) : undefined;
  const tpm = tpmV ? tpmChain(tpmV, ctx, provider, binding, snpV !== undefined) : undefined;
  const fw = firmwareLink(ctx, provider, snp?.links.find((l) => l.id === 'snp.signature'), tpm?.links.find((l) => l.id === 'tpm.pcrs'));
  // The firmware sits where it is measured: after the launch measurement, else at the end of the boot chain.
  if (snp) snp.links.splice(snp.links.findIndex((l) => l.id === 'snp.measurement') + 1, 0, fw);
  else if (tpm) tpm.links.push(fw);
  // Hardware chain, then what binds the vTPM to it, then the vTPM chain.
  if (snp) chains.push(snp);
  if (binding) chains.push({ id: 'binding', title: 'vTPM ↔ SEV-SNP report', links: [binding] });
  if (tpm) chains.push(tpm);
  for (const v of ver) {
    if (v === snpV || v === tpmV) continue;
    if (v.label === 'combined evidence') {
      const checks = v.checks.map((c) => fromCheck(c, v.label));
      chains.push({ id: 'evidence', title: 'Combined evidence', links: [decide({ id: 'evidence.consistent', title: 'The pieces of evidence agree', basis: checks, required: [], missing: '' })] });
    } else chains.push(genericChain(v));
  }
  if (ver.length === 0) {
    chains.push({ id: 'evidence', title: 'Evidence', links: [{ id: 'evidence.none', title: 'Evidence', state: 'failed', reason: 'no evidence was verified', basis: [] }] });
  }
  const links = chains.flatMap((c) => c.links);
  const counts: Record<LinkState, number> = { verified: 0, assumed: 0, 'not-checked': 0, failed: 0 };
  for (const l of links) counts[l.state]++;
  const threats = assessThreats(links, { tpm: tpmV !== undefined, 'sev-snp': snpV !== undefined });
  const at = appraised ? appraised.at : input.at instanceof Date ? input.at.toISOString() : input.at;
  return {
    at,
    evidence: ver.map((v) => ({ kind: v.kind, label: v.label, verified: v.verified, ...(v.error ? { error: v.error } : {}) })),
    ...(appraised ? { policy: appraised.policy, verdict: appraised.verdict, status: appraised.status, ...(appraised.denial ? { denial: appraised.denial } : {}) } : {}),
    ...(provider ? { provider } : {}),
    chains,
    counts,
    claims: claimsSummary(claims),
    rules: appraised ? [...appraised.rules] : [],
    threats,
  };
}

/** Every link of the report, in chain order. */
export function trustLinks(r: TrustReport): TrustLink[] {
  return r.chains.flatMap((c) => c.links);
}

/** The report for a terminal: aligned columns, one line per link, then the threats. */
export function formatTrustReport(r: TrustReport, width = 100): string {
  const lines: string[] = [];
  const evidence = r.evidence.map((e) => `${e.label}${e.verified ? '' : ` (NOT VERIFIED: ${e.error?.code ?? 'FAILED'})`}`).join(' + ') || 'none';
  lines.push(`Trust report at ${r.at}: ${evidence}`);
  if (r.policy) lines.push(`Policy ${r.policy.id}@${r.policy.version}: ${r.verdict === 'pass' ? 'PASS' : 'DENIED'} (EAR status ${r.status ?? 'none'})${r.denial ? `\n  ${r.denial}` : ''}`);
  else lines.push('No policy: the links a policy decides are NOT CHECKED');
  lines.push(`Links: ${r.counts.verified} VERIFIED, ${r.counts.assumed} ASSUMED, ${r.counts['not-checked']} NOT CHECKED, ${r.counts.failed} FAILED`);
  const all = trustLinks(r);
  const stateW = Math.max(...Object.values(LINK_STATE_LABEL).map((s) => s.length));
  const titleW = Math.min(44, Math.max(10, ...all.map((l) => l.title.length)));
  const indent = 2 + stateW + 2 + titleW + 2;
  const wrap = (text: string, first: string): string[] => {
    const room = Math.max(30, width - indent);
    const out: string[] = [];
    let rest = text;
    let lead = first;
    while (rest.length > room) {
      const cut = rest.lastIndexOf(' ', room);
      const at = cut > room / 2 ? cut : room;
      out.push(lead + rest.slice(0, at));
      rest = rest.slice(at).trimStart();
      lead = ' '.repeat(indent);
    }
    out.push(lead + rest);
    return out;
  };
  for (const c of r.chains) {
    lines.push('', c.title);
    for (const l of c.links) {
      const head = `  ${LINK_STATE_LABEL[l.state].padEnd(stateW)}  ${l.title.length > titleW ? `${l.title.slice(0, titleW - 1)}…` : l.title.padEnd(titleW)}  `;
      const detail = l.state === 'assumed' ? `trusted: ${l.trusted ?? '?'} — ${l.reason}` : l.state === 'verified' ? `by ${l.basis.filter((b) => b.status === 'pass').map((b) => b.name).join(', ')}` : l.reason;
      lines.push(...wrap(detail, head));
    }
  }
  if (r.claims.length > 0) {
    lines.push('', 'Claims');
    const w = Math.min(30, Math.max(...r.claims.map((c) => c.name.length)));
    for (const c of r.claims) lines.push(`  ${c.name.padEnd(w)}  ${c.value}`);
  }
  lines.push('', 'Threats (residual risk, highest first; weights likelihood × impact, 1-5 each)');
  const tw = Math.max(...r.threats.map((t) => t.title.length));
  lines.push(`  ${'RISK'.padStart(4)}  ${'L×I'.padEnd(5)}  ${'THREAT'.padEnd(tw)}  STATUS`);
  for (const t of r.threats) {
    lines.push(`  ${String(t.residual).padStart(4)}  ${`${t.likelihood}×${t.impact}`.padEnd(5)}  ${t.title.padEnd(tw)}  ${t.status}`);
    if (t.mitigations.length > 0) lines.push(`        mitigated by: ${t.mitigations.map((m) => m.title).join('; ')}`);
    lines.push(`        residual: ${t.text}`);
  }
  return lines.join('\n');
}
