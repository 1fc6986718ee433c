import type { LinkState, TrustLink } from './trust.js';

/**
 * The threat catalogue of docs/threat-model.md ("Threat catalogue"), as data: each threat with a
 * likelihood and an impact weight (1-5) and the trust-report links that mitigate it. A trust
 * report assesses every threat against the links one appraisal established: which mitigations
 * hold (VERIFIED links, with the checks and rules behind them), and the residual risk left.
 *
 * Weights. Likelihood: 1 needs a vendor key compromise or a nation-state capability; 2 needs a
 * specific vulnerability or a rogue insider; 3 documented attacks within reach of a motivated
 * attacker or insider; 4 within the ordinary powers of the cloud operator; 5 routine. Impact:
 * 1 nuisance; 2 denial of service; 3 one workload's integrity; 4 confidentiality of one VM's
 * data or secrets; 5 confidentiality of every secret the broker releases, or undetectable
 * compromise. The inherent risk is likelihood × impact (1-25).
 *
 * Residual risk. With n mitigating links present in the report and k of them VERIFIED, the
 * residual is round(inherent × (1 − 0.8 × k/n)), at least 1: a fully established defence keeps
 * a fifth of the risk (what the checks cannot reach, stated in `residual`). A FAILED link leaves
 * the whole inherent risk. A threat no link of this evidence speaks to keeps its inherent risk,
 * unless it concerns a component the evidence does not rely on (`requires`), where it is 0.
 * Out-of-scope threats keep their inherent risk and say so.
 */

export type Weight = 1 | 2 | 3 | 4 | 5;

export type ThreatScope = 'in-scope' | 'outside-evidence' | 'out-of-scope';

export interface Threat {
  /** Stable id, e.g. `malicious-host`. */
  id: string;
  title: string;
  /** The attack, in a sentence or two. */
  attack: string;
  likelihood: Weight;
  impact: Weight;
  /** Why these weights. */
  rationale: string;
  /** Trust-report link ids whose VERIFIED state mitigates the threat. */
  mitigatedBy: readonly string[];
  /** The residual risk that remains when every mitigating link is VERIFIED. */
  residual: string;
  /** What is left when no link of this evidence addresses it. */
  unaddressed: string;
  /** The threat arises only when the evidence relies on this component (`tpm`: a (v)TPM quote). */
  requires?: 'tpm' | 'sev-snp';
  scope: ThreatScope;
}

export const THREATS: readonly Threat[] = [
  {
    id: 'malicious-host',
    title: 'Malicious hypervisor or CSP administrator',
    attack: 'The cloud operator, or an administrator with host access, reads or modifies guest memory, launches a different guest, or lies about its configuration.',
    likelihood: 4,
    impact: 5,
    rationale: 'Reading a VM is within the ordinary powers of the operator (4); it exposes every secret the VM holds (5).',
    mitigatedBy: ['snp.signature', 'snp.vcek', 'snp.ask', 'snp.guest-policy', 'snp.measurement', 'snp.tcb-minimum'],
    residual: 'Memory encryption and the launch measurement hold against the host; the host still controls availability, the emulated devices and every interface to the guest, and physical attacks on the AMD-SP (threat-model 3.1) remain.',
    unaddressed: 'No hardware TEE report was appraised: memory, firmware and any vTPM are under the operator\'s control, and nothing in this evidence shows otherwise.',
    scope: 'in-scope',
  },
  {
    id: 'forged-evidence',
    title: 'Forged evidence',
    attack: 'A report or quote that no genuine AMD-SP or TPM produced, or a genuine one edited, signed with a key of the attacker\'s own.',
    likelihood: 3,
    impact: 5,
    rationale: 'Forging needs no special access, only a verifier that does not check (3); a forged report passes as any VM (5).',
    mitigatedBy: ['snp.signature', 'snp.vcek', 'snp.ask', 'tpm.quote-signature', 'tpm.ak-cert'],
    residual: 'Signatures and chains hold to the roots; whoever extracts a VCEK (physical fault injection) or a CSP signing key can still sign anything.',
    unaddressed: 'No signature of this evidence verified.',
    scope: 'in-scope',
  },
  {
    id: 'replayed-evidence',
    title: 'Replayed evidence',
    attack: 'Genuine evidence recorded from a legitimate VM (or an earlier boot) is presented again to obtain its secrets.',
    likelihood: 3,
    impact: 4,
    rationale: 'Recording evidence needs only network access (3); a replay obtains one VM\'s secrets (4).',
    mitigatedBy: ['snp.report-data', 'tpm.nonce'],
    residual: 'Freshness is as good as the verifier\'s nonce: a reused, long-lived or predictable nonce reopens the window.',
    unaddressed: 'Nothing binds this evidence to a fresh nonce: it may be a replay.',
    scope: 'in-scope',
  },
  {
    id: 'tcb-rollback',
    title: 'TCB rollback',
    attack: 'The host runs (or claims) old AMD-SP firmware or microcode with a known vulnerability.',
    likelihood: 3,
    impact: 4,
    rationale: 'Downgrading firmware is within the operator\'s powers and vulnerable versions are public (3); a compromised SP undermines one platform\'s guarantees (4).',
    mitigatedBy: ['snp.tcb-binding', 'snp.tcb-minimum'],
    residual: 'The minimum TCB protects only while someone raises it after each AMD security bulletin.',
    unaddressed: 'The TCB was not compared with a minimum.',
    requires: 'sev-snp',
    scope: 'in-scope',
  },
  {
    id: 'debug-guest',
    title: 'Debuggable or migratable guest',
    attack: 'The host launches the right image with DEBUG or a migration agent allowed, then decrypts or exports guest memory.',
    likelihood: 2,
    impact: 5,
    rationale: 'It needs the operator to launch with a weakened policy on purpose (2); it exposes all guest memory (5).',
    mitigatedBy: ['snp.guest-policy'],
    residual: 'The policy bits say what the platform permits; forbidding them leaves SMT side channels where SMT is enabled.',
    unaddressed: 'The evidence does not say whether the guest can be debugged (no hardware TEE report), or no rule forbade it.',
    scope: 'in-scope',
  },
  {
    id: 'unreviewed-firmware',
    title: 'Unreviewed CSP firmware',
    attack: 'The UEFI firmware (or paravisor) the cloud provides has a flaw or a backdoor; it runs inside the guest\'s trust boundary before anything else is measured.',
    likelihood: 2,
    impact: 5,
    rationale: 'It needs a flaw in, or a change to, the provider\'s firmware (2); firmware runs with full guest privilege (5).',
    mitigatedBy: ['firmware'],
    residual: 'The firmware equals signed reference values; those are worth what the build that produced them is worth.',
    unaddressed: 'The firmware was not compared with reference values: it is trusted as the provider built it.',
    scope: 'in-scope',
  },
  {
    id: 'csp-vtpm',
    title: 'CSP-controlled vTPM',
    attack: 'The vTPM is software the provider runs (hypervisor or paravisor); the provider can make it quote any PCR values with a genuine AK.',
    likelihood: 3,
    impact: 4,
    rationale: 'It is within the provider\'s powers but needs deliberate misuse (3); false PCRs hide what booted (4).',
    mitigatedBy: ['binding.vtpm-snp', 'tpm.vtpm'],
    residual: 'The vTPM is bound to the hardware report and measured with the guest; it is as trustworthy as the measured paravisor.',
    unaddressed: 'The quote is as honest as the provider that runs the vTPM.',
    requires: 'tpm',
    scope: 'in-scope',
  },
  {
    id: 'stolen-snapshot',
    title: 'Stolen disk snapshot',
    attack: 'Someone with access to the cloud\'s storage copies the VM\'s disk and boots or reads it elsewhere.',
    likelihood: 4,
    impact: 4,
    rationale: 'Snapshots are routine for the operator (4); a readable disk exposes one VM\'s data at rest (4).',
    mitigatedBy: ['snp.measurement', 'boot.verity', 'snp.report-data', 'tpm.nonce'],
    residual: 'The disk key goes only to a fresh, attested image; a snapshot holds ciphertext. That the data volumes are encrypted at all is enforced by the measured image, not shown by the evidence.',
    unaddressed: 'Nothing here ties a disk key to this image and this boot.',
    scope: 'in-scope',
  },
  {
    id: 'compromised-registry',
    title: 'Compromised image registry',
    attack: 'The registry serves a modified VM image or container, so that a genuine VM runs the attacker\'s code.',
    likelihood: 3,
    impact: 5,
    rationale: 'Registries and build pipelines are attacked regularly (3); the attacker\'s code receives every released secret (5).',
    mitigatedBy: ['snp.workload', 'boot.verity', 'boot.applications'],
    residual: 'The workload digest and image root hash equal expected values; a registry compromise before those values were recorded is not detected.',
    unaddressed: 'No workload or image identity was compared with an expected value.',
    scope: 'in-scope',
  },
  {
    id: 'broker-admin',
    title: 'Key broker administrator abuse',
    attack: 'An administrator of the key broker changes the policy, adds reference values or exports secrets.',
    likelihood: 2,
    impact: 5,
    rationale: 'It needs a rogue or compromised administrator (2); the broker holds every secret (5).',
    mitigatedBy: [],
    residual: '',
    unaddressed: 'Outside what evidence can show: separation of duties, a key-encryption key in an HSM and the broker\'s audit log answer it (the broker section of the threat model).',
    scope: 'outside-evidence',
  },
  {
    id: 'wrong-vm',
    title: 'Wrong VM or image',
    attack: 'A co-tenant or the operator presents genuine evidence from another VM: a different image, kernel command line or workload.',
    likelihood: 3,
    impact: 4,
    rationale: 'Genuine evidence of another VM is easy to obtain on the same cloud (3); it obtains one VM\'s secrets (4).',
    mitigatedBy: ['snp.measurement', 'snp.workload', 'tpm.pcrs', 'boot.applications', 'boot.cmdline', 'boot.verity'],
    residual: 'The measured identity is compared with expected values; what the image does after boot is not measured.',
    unaddressed: 'No measurement of this evidence was compared with an expected value.',
    scope: 'in-scope',
  },
  {
    id: 'revoked-key',
    title: 'Revoked vendor key',
    attack: 'The chain contains an AMD signing key (ASK/ASVK) that AMD has revoked.',
    likelihood: 1,
    impact: 5,
    rationale: 'AMD has to have revoked a key and the attacker to hold it (1); a revoked key signs anything (5).',
    mitigatedBy: ['snp.revocation'],
    residual: 'Revocation is as recent as the CRL; AMD does not revoke individual VCEKs.',
    unaddressed: 'Revocation was not checked for this evidence (TPM AK certificates are never checked against a CRL).',
    scope: 'in-scope',
  },
  {
    id: 'side-channels',
    title: 'Side channels',
    attack: 'Cache, timing, power or ciphertext side channels against the guest.',
    likelihood: 2,
    impact: 4,
    rationale: 'Published attacks need co-location and skill (2); they leak keys of one VM (4).',
    mitigatedBy: [],
    residual: '',
    unaddressed: 'Out of scope: attestation cannot prove their absence. A policy can only forbid configurations (SMT) that make some easier.',
    scope: 'out-of-scope',
  },
];

export type ThreatStatus = 'mitigated' | 'partial' | 'unmitigated' | 'failed' | 'not-applicable' | 'outside-evidence' | 'out-of-scope';

export interface Mitigation {
  link: string;
  title: string;
  /** The passed checks and rules behind the VERIFIED link. */
  by: string[];
}

export interface ThreatAssessment {
  id: string;
  title: string;
  likelihood: Weight;
  impact: Weight;
  /** likelihood × impact. */
  inherent: number;
  /** What this appraisal leaves (0-25). */
  residual: number;
  status: ThreatStatus;
  /** Mitigations this appraisal established. */
  mitigations: Mitigation[];
  /** Mitigating links present but not VERIFIED, with their state. */
  missing: { link: string; title: string; state: LinkState }[];
  /** The residual risk in words. */
  text: string;
}

type LinkView = Pick<TrustLink, 'id' | 'title' | 'state' | 'basis'>;

/** Every threat of the catalogue against the links of one trust report, highest residual risk first. */
export function assessThreats(links: readonly LinkView[], present: { tpm: boolean; 'sev-snp': boolean }, catalogue: readonly Threat[] = THREATS): ThreatAssessment[] {
  const out = catalogue.map((t): ThreatAssessment => {
    const inherent = t.likelihood * t.impact;
    const base = { id: t.id, title: t.title, likelihood: t.likelihood, impact: t.impact, inherent };
    if (t.scope !== 'in-scope') return { ...base, residual: inherent, status: t.scope, mitigations: [], missing: [], text: t.unaddressed };
    if (t.requires && !present[t.requires]) {
      return { ...base, residual: 0, status: 'not-applicable', mitigations: [], missing: [], text: `The evidence does not rely on ${t.requires === 'tpm' ? 'a (v)TPM' : 'an SEV-SNP report'}: the threat does not arise for this appraisal.` };
    }
    const relevant = t.mitigatedBy.flatMap((id) => links.filter((l) => l.id === id));
    const established = relevant.filter((l) => l.state === 'verified');
    const mitigations = established.map((l) => ({ link: l.id, title: l.title, by: l.basis.filter((b) => b.status === 'pass').map((b) => `${b.kind} ${b.name}`) }));
    const missing = relevant.filter((l) => l.state !== 'verified').map((l) => ({ link: l.id, title: l.title, state: l.state }));
    if (relevant.length === 0) return { ...base, residual: inherent, status: 'unmitigated', mitigations, missing, text: t.unaddressed };
    const failed = relevant.filter((l) => l.state === 'failed');
    if (failed.length > 0) {
      return { ...base, residual: inherent, status: 'failed', mitigations, missing, text: `FAILED: ${failed.map((l) => l.title).join(', ')}: the defence did not hold in this appraisal, so the threat is not mitigated.` };
    }
    const fraction = established.length / relevant.length;
    const residual = Math.max(1, Math.round(inherent * (1 - 0.8 * fraction)));
    const status: ThreatStatus = fraction === 1 ? 'mitigated' : fraction > 0 ? 'partial' : 'unmitigated';
    const gaps = missing.map((m) => `${m.title} (${m.state === 'not-checked' ? 'NOT CHECKED' : m.state.toUpperCase()})`).join(', ');
    const text = status === 'mitigated' ? t.residual : status === 'partial' ? `${t.residual} Not established: ${gaps}.` : `${t.unaddressed} Not established: ${gaps}.`;
    return { ...base, residual, status, mitigations, missing, text };
  });
  // Highest residual first; ties by inherent risk, then catalogue order (stable sort).
  return out.sort((a, b) => b.residual - a.residual || b.inherent - a.inherent);
}
