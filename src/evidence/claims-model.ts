import type { Check } from '../check.js';

/**
 * The common claims model: what verified evidence of any kind (SEV-SNP, TDX, SGX, TPM with its
 * event log, and the cloud wrappers around them) says about a machine, in one shape, so that one
 * policy speaks about all of them. Types only: each evidence kind may map onto it without
 * importing the appraisal layer (which re-exports these types and holds the mappers today).
 *
 * Every binary value is lowercase hex. A field that is absent means the evidence does not speak
 * to it, which is not the same as a value that failed a check.
 */

/** The kinds of evidence Coffer verifies (`tpm` covers a vTPM as well as a discrete TPM). */
export type TeeKind = 'sev-snp' | 'tdx' | 'sgx' | 'tpm' | 'nitro';

export const TEE_KINDS: readonly TeeKind[] = ['sev-snp', 'tdx', 'sgx', 'tpm', 'nitro'];

/** Whether the platform's TCB is current, as vendor collateral says (unknown without it). */
export type TcbStatus = 'up-to-date' | 'out-of-date' | 'revoked' | 'unknown';

/** One TCB value: named components (SNP: fmc, bootloader, tee, snp, microcode; TDX: SVNs) and the raw encoding. */
export interface TcbClaim {
  components: Record<string, number>;
  raw?: string;
}

export interface PlatformClaims {
  tee: TeeKind;
  vendor: string;
  /** Product line (Milan, Genoa, Turin; a TDX FMSPC; ...), null when the evidence does not say. */
  product: string | null;
  /**
   * TCB values by role. SNP: `reported` (what the VCEK certifies), `committed`, `current`, `launch`.
   * Minimum-TCB rules look at reported, committed and current.
   */
  tcb?: Record<string, TcbClaim>;
  tcbStatus: TcbStatus;
  /** Firmware version as the evidence reports it (SNP firmware "1.55.40", TPM firmwareVersion). */
  firmware?: string;
  /** Chip or instance identifier when the evidence carries one (SNP CHIP_ID). */
  chipId?: string;
}

/** Launch measurements: taken by the hardware before the guest ran. */
export interface LaunchMeasurements {
  /** SEV-SNP MEASUREMENT (48 bytes). */
  snp?: string;
  /** Intel TDX measurements of the TD at build time. */
  tdx?: { mrtd: string; mrConfigId?: string; mrOwner?: string; mrOwnerConfig?: string };
  /** Intel SGX enclave identity. */
  sgx?: { mrEnclave: string; mrSigner: string; isvProdId?: number; isvSvn?: number };
}

/** Runtime registers: extended while the guest booted and ran. */
export interface RuntimeRegisters {
  /** bank → PCR index (decimal string) → value: only values a verified quote stands for. */
  pcrs?: Record<string, Record<string, string>>;
  /** RTMR index (decimal string, 0-3) → value. */
  rtmrs?: Record<string, string>;
}

export interface CertificateSummary {
  subject: string;
  /** SHA-256 of the certificate's DER. */
  sha256: string;
  issuer?: string;
}

export interface SignatureDatabaseSummary {
  certificates: CertificateSummary[];
  /** EFI_CERT_SHA256 entries. */
  hashes: string[];
}

export interface BootApplicationClaim {
  path: string;
  /** bank → Authenticode digest as the firmware measured it. */
  authenticode: Record<string, string>;
  /**
   * Always empty: which authority verified which application is not authenticated by the log
   * (see BootStateClaims.authorities). Kept so that existing consumers keep their shape.
   */
  authorities: string[];
}

export interface VerityClaim {
  /** The root hash of the verity device the kernel mounts as root. */
  rootHash?: string;
  /** systemd's usrhash= (a verity /usr). */
  usrHash?: string;
  /** The command-line parameter it was read from (roothash, verity.roothash, usrhash, root_hexdigest). */
  source: string;
}

/** Boot state from an event log whose events were checked against verified registers. */
export interface BootStateClaims {
  /** The log the facts come from. */
  source: 'tpm-eventlog' | 'ccel';
  /** Undefined when no checked SecureBoot variable event was found. */
  secureBoot?: boolean;
  pk?: SignatureDatabaseSummary;
  kek?: SignatureDatabaseSummary;
  db?: SignatureDatabaseSummary;
  dbx?: SignatureDatabaseSummary;
  bootApplications: BootApplicationClaim[];
  /**
   * Authorities used during boot (order not authenticated): checked EV_EFI_VARIABLE_AUTHORITY
   * events after the Secure Boot separator and before ExitBootServices naming a certificate
   * (subject, SHA-256 of its DER) or a hash. Which one verified which application is unknown.
   */
  authorities?: { variable: string; subject?: string; sha256?: string }[];
  kernelCommandLine?: string;
  verity?: VerityClaim;
  /** Defects the log shows (stable codes, e.g. EVENTLOG_UEFI_DEBUGGER). */
  flags: string[];
  /** What the boot state could not verify, in plain words. */
  notVerified: string[];
}

/** What identifies the workload, as the evidence binds it (values only for now). */
export interface WorkloadIdentity {
  /** SEV-SNP HOST_DATA (32 bytes). */
  hostData?: string;
  /** TDX MRCONFIGID. */
  mrConfigId?: string;
  /** A workload digest extended into a PCR or RTMR (e.g. a manifest digest). */
  extendedDigest?: string;
  /** SNP ID block fields when the guest was launched with one. */
  snpIdBlock?: { familyId: string; imageId: string; guestSvn: number; idKeyDigest: string; authorKeyDigest: string };
}

export interface FreshnessClaims {
  /** The nonce the evidence carries where it carries one as such (TPM extraData). */
  nonce?: string;
  /** Whether the nonce was checked against the verifier's during verification. */
  nonceVerified?: boolean;
  /** SEV-SNP REPORT_DATA / TDX REPORTDATA (64 bytes), which may bind a nonce or a key. */
  reportData?: string;
  /** When the evidence was collected, where known (ISO 8601). */
  collectedAt?: string;
}

export interface DebugState {
  /** The guest can be debugged by the host (SNP policy DEBUG, TDX ATTRIBUTES.DEBUG). */
  debug?: boolean;
  /** A migration agent may move (and read) the guest (SNP MIGRATE_MA). */
  migration?: boolean;
}

export interface SigningKeyClaim {
  /** Which evidence it signed. */
  evidence: TeeKind;
  /** vcek, vlek, tpm-ak, pck, ... */
  kind: string;
  subject: string;
  issuer: string;
  /** SHA-256 of the certificate DER, when the key came with a certificate. */
  sha256?: string;
  /** SHA-256 of the key's SubjectPublicKeyInfo DER (hex): names the key itself, certificate or not. */
  keySha256?: string;
  /** TPM AK: its TPM name (nameAlg || H(TPMT_PUBLIC), hex), when its public area was given. */
  tpmName?: string;
  /** The trust anchor the chain ends in. */
  root?: string;
  /** Cloud provider the key is bound to (SNP VLEK). */
  cspId?: string;
}

/** One piece of evidence and the checks its verification made (notChecked links included). */
export interface EvidenceVerification {
  kind: TeeKind;
  /** A short label, e.g. "SEV-SNP report v2 (Milan)". */
  label: string;
  verified: boolean;
  checks: Check[];
  /** The error that stopped verification, when it failed. */
  error?: { code: string; message: string };
}

/** Everything an appraisal looks at. */
export interface Claims {
  verification: EvidenceVerification[];
  platforms: PlatformClaims[];
  launch: LaunchMeasurements;
  runtime: RuntimeRegisters;
  boot?: BootStateClaims;
  workload: WorkloadIdentity;
  freshness: FreshnessClaims;
  debug: DebugState;
  signingKeys: SigningKeyClaim[];
}
