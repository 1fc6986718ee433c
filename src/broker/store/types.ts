/**
 * The broker's persistent state behind one interface, so that the embedded SQLite store and a
 * PostgreSQL store (several replicas on one database) are interchangeable. Every method is
 * async even where SQLite is synchronous. Times are integer milliseconds since the epoch.
 * Methods that decide a race (consumeNonce, completeAttestation, refuseAttestation) must be atomic across
 * processes: they are single conditional statements or transactions, never read-then-write.
 * Methods that change state take the `audit` record of the decision and append it in the same
 * transaction: if the audit record cannot be written, nothing is committed (and the reverse).
 */

export type SessionState = 'pending' | 'consumed' | 'attested';

export interface SessionRecord {
  /** SHA-256 (hex) of the session cookie: the store never holds the cookie itself. */
  id: string;
  tee: string;
  version: string;
  /** The challenge nonce (base64), sent to the client in clear. */
  nonce: string;
  /** Hash that binds runtime-data into the evidence: sha256 | sha384 | sha512. */
  hashAlg: string;
  state: SessionState;
  createdAt: number;
  nonceExpiresAt: number;
  /** When the session ends (after attestation: when its token expires). */
  expiresAt: number;
  nonceUsedAt?: number;
  attestedAt?: number;
  /** The tee-pubkey JWK (JSON) the secrets are encrypted to. */
  teePubKey?: string;
  /** RFC 7638 thumbprint of teePubKey. */
  teePubKeyJkt?: string;
  /** Hex of the runtime-data hash found in the evidence. */
  binding?: string;
  evidenceDigest?: string;
  /** The appraised claims (JSON of the common claims model). */
  claims?: string;
  /** jti of the attestation token issued to this session. */
  tokenId?: string;
}

export interface AttestationOutcome {
  attestedAt: number;
  expiresAt: number;
  teePubKey: string;
  teePubKeyJkt: string;
  binding: string;
  evidenceDigest: string;
  claims: string;
  tokenId: string;
}

export interface SecretRecord {
  path: string;
  kekId: string;
  wrappedKey: Buffer;
  iv: Buffer;
  ciphertext: Buffer;
  tag: Buffer;
  alg: string;
  size: number;
  version: number;
  createdAt: number;
  updatedAt: number;
  createdBy: string;
  updatedBy: string;
}

/** What the admin API may show of a secret: never the value, never its hash. */
export type SecretMeta = Omit<SecretRecord, 'wrappedKey' | 'iv' | 'ciphertext' | 'tag'>;

export interface PolicyRecord {
  prefix: string;
  policyId: string;
  policyVersion: string;
  text: string;
  sha256: string;
  updatedAt: number;
  updatedBy: string;
}

export type Role = 'admin' | 'auditor' | 'provisioner';
export const ROLES: readonly Role[] = ['admin', 'auditor', 'provisioner'];

export interface TokenRecord {
  id: string;
  /** SHA-256 (hex) of the whole token string. */
  hash: string;
  role: Role;
  /** Path prefix the token may act on; undefined for all. */
  scope?: string;
  label?: string;
  createdAt: number;
  revokedAt?: number;
}

export type Verdict = 'allow' | 'deny';

export interface AuditInput {
  at: number;
  /** `session:<id prefix>`, `token:<id>`, `cli:<user>` or `anonymous`: never a credential. */
  actor: string;
  action: string;
  resource?: string;
  /** SHA-256 (hex) of the evidence an attestation presented. */
  evidenceDigest?: string;
  verdict: Verdict;
  /** The policy rule or check that decided. */
  rule?: string;
  /** The problem type name for a refusal. */
  problem?: string;
  detail?: string;
  remote?: string;
}

export interface AuditRecord extends AuditInput {
  seq: number;
}

export interface AuditQuery {
  since?: number;
  until?: number;
  action?: string;
  verdict?: Verdict;
  actor?: string;
  /** Default 100, at most 1000. */
  limit?: number;
  /** Return records with seq greater than this (paging). */
  afterSeq?: number;
  /**
   * Only records whose resource is this path prefix or lies under it (segment-wise, case-sensitive);
   * records without a resource are left out. Set from a scoped token's scope.
   */
  scope?: string;
}

/** A resource handed out to an attested session: at most one per (sessionId, resourcePath). */
export interface ReleaseRecord {
  sessionId: string;
  resourcePath: string;
  at: number;
  evidenceDigest?: string;
}

/**
 * One attestation attempt that reached the evidence (allowed or refused), kept for the console:
 * the appraised claims and the trust report as JSON. Never holds a cookie, key or token.
 */
export interface AttestationRecord {
  /** Random id (hex). */
  id: string;
  at: number;
  /** `session:<id prefix>`. */
  actor: string;
  /** The KBS `tee` of the session (`snp`). */
  tee: string;
  /** The platform the claims name, e.g. `sev-snp Milan`. */
  platform?: string;
  verdict: Verdict;
  /** `id@version` of the attestation policy that was evaluated. */
  policy?: string;
  /** The rule or check that refused (or, allowed, the policy). */
  rule?: string;
  problem?: string;
  detail?: string;
  evidenceDigest?: string;
  /** Hex of the runtime-data hash the evidence had to carry (the nonce a re-appraisal checks). */
  binding?: string;
  /** Claims (JSON of the common claims model), when the evidence verified. */
  claims?: string;
  /** Trust report (JSON, appraisal/trust.ts), when the evidence verified. */
  report?: string;
  remote?: string;
}

export type AttestationSummary = Omit<AttestationRecord, 'claims' | 'report'>;

export interface AttestationQuery {
  since?: number;
  until?: number;
  verdict?: Verdict;
  platform?: string;
  /** Newest first; default 100, at most 1000. */
  limit?: number;
}

/** Cut-offs of one retention pass (Store.purgeRetention); times in ms, counts in rows. */
export interface RetentionPurge {
  /** Sessions that ended before this. */
  sessionsBefore: number;
  /** Evidence digests seen before this (the replay window is over). */
  evidenceBefore: number;
  /** Console sessions that expired before this. */
  consoleSessionsBefore: number;
  /** Attestation records made before this. */
  attestationsBefore: number;
  /**
   * Refused attempts whose evidence did not verify (no claims: anyone can make them) kept at
   * most, newest first: a flood of junk rotates within this cap and never evicts other records.
   */
  maxUnverifiedRefusals: number;
  /** Attestation records kept at most, newest first. */
  maxAttestations: number;
  /**
   * Releases made before this, and only when their session row is gone: release-once holds for
   * as long as the session (cookie or token) can still be used.
   */
  releasesBefore: number;
  /** At most this many rows deleted per rule in one pass. */
  limit: number;
}

export interface RetentionPurged {
  sessions: number;
  evidence: number;
  consoleSessions: number;
  attestations: number;
  releases: number;
  /** Some rule deleted `limit` rows: more may be due. */
  more: boolean;
}

/** A web console session: the id is SHA-256 (hex) of the cookie; the token is re-checked on every request. */
export interface ConsoleSessionRecord {
  id: string;
  tokenId: string;
  createdAt: number;
  expiresAt: number;
}

/**
 * A provisioned volume (disk) key: 32 random bytes under envelope encryption (the same sealing
 * as secrets, with the resource path `volumes/<id>/key` as associated data), released only to a
 * VM that passes `policyText`, a release policy generated from `identity`. Migration 3.
 */
export type VolumeState = 'active' | 'revoked';

export interface VolumeRecord {
  id: string;
  label?: string;
  /** The VM identity it was provisioned for (JSON, as the admin API took it). */
  identity: string;
  /** The release policy generated from the identity (JSON text of the policy language). */
  policyText: string;
  policySha256: string;
  kekId: string;
  wrappedKey: Buffer;
  iv: Buffer;
  ciphertext: Buffer;
  tag: Buffer;
  alg: string;
  /** 1 when provisioned, +1 at each re-provisioning (the old key is gone). */
  keyVersion: number;
  state: VolumeState;
  createdAt: number;
  createdBy: string;
  updatedAt: number;
  updatedBy: string;
  revokedAt?: number;
  revokedBy?: string;
  /**
   * When the VM that was released this key version reported formatting the volume (migration 6);
   * absent until then, and cleared by a re-provisioning (a new key needs a new first boot).
   */
  initializedAt?: number;
}

/** What the admin API shows of a volume: never the key material. */
export type VolumeMeta = Omit<VolumeRecord, 'wrappedKey' | 'iv' | 'ciphertext' | 'tag'>;

/** A new key (and possibly identity) for an active volume. */
export interface VolumeRekey {
  identity: string;
  policyText: string;
  policySha256: string;
  kekId: string;
  wrappedKey: Buffer;
  iv: Buffer;
  ciphertext: Buffer;
  tag: Buffer;
  alg: string;
  label?: string;
  updatedAt: number;
  updatedBy: string;
}

/**
 * What a trusted key is trusted for: signing reference-value documents, being a pinned TPM
 * attestation key, or being a root for TPM AK certificates. Migration 3.
 */
export type TrustPurpose = 'reference-signer' | 'tpm-ak' | 'tpm-ak-root';
export const TRUST_PURPOSES: readonly TrustPurpose[] = ['reference-signer', 'tpm-ak', 'tpm-ak-root'];

export interface TrustedKeyRecord {
  purpose: TrustPurpose;
  name: string;
  /** The key or certificate as given (PEM, or a JWK as JSON): public material only. */
  pem: string;
  /** SHA-256 (hex) of the DER SubjectPublicKeyInfo (or of the certificate for tpm-ak-root). */
  sha256: string;
  createdAt: number;
  createdBy: string;
}

/** A signed reference-value document (the JWS the image build produces), by an admin-chosen name. Migration 3. */
export interface ReferenceValuesRecord {
  name: string;
  imageId: string;
  imageVersion: string;
  jws: string;
  /** SHA-256 (hex) of the JWS text. */
  sha256: string;
  /** Name of the trusted reference-signer key that verified it when it was stored. */
  signer: string;
  updatedAt: number;
  updatedBy: string;
}

/** Where a KEK is in its life: new data keys are wrapped by the one `current` KEK. */
export type KekState = 'current' | 'retiring' | 'retired';

/**
 * A key-encryption key the store knows about (migration 4, table `keks`). `spec` says where the
 * key lives (`file:/path`, `pkcs11:module=...;token=...;label=...;id=...`): never key material,
 * never a PIN. Every broker on the store opens a KEK from its spec when a secret names its id.
 */
export interface KekRecord {
  id: string;
  spec: string;
  state: KekState;
  createdAt: number;
  retiredAt?: number;
}

export interface Store {
  readonly kind: string;
  /** Applies pending migrations; returns the versions applied now. */
  migrate(): Promise<number[]>;
  schemaVersion(): Promise<number>;
  ping(): Promise<boolean>;
  close(): Promise<void>;

  /** With `audit`, the record is written in the session's transaction (one commit for both). */
  createSession(s: SessionRecord, audit?: AuditInput): Promise<void>;
  getSession(id: string): Promise<SessionRecord | undefined>;
  /** pending → consumed, only if still pending and the nonce is unexpired at `at`; false otherwise. */
  consumeNonce(id: string, at: number): Promise<boolean>;
  /**
   * consumed → attested, recording the evidence digest as seen. Returns 'evidence-reused' (and
   * changes nothing) when the digest was presented before, 'state' when the session was not consumed.
   * With `consumeNonceAt`, the nonce is consumed by the same conditional statement instead: pending
   * → attested, only if still pending and unexpired at that instant ('state' otherwise), as
   * consumeNonce decides it. With `attestation`, the console's record of the attempt is written in
   * the same transaction, best effort (a failure to write it leaves the rest of the transaction).
   */
  completeAttestation(id: string, o: AttestationOutcome, audit?: AuditInput, opts?: { consumeNonceAt?: number; attestation?: AttestationRecord }): Promise<'ok' | 'evidence-reused' | 'state'>;
  /**
   * A refused attestation in one transaction: its audit record and, when given, the console's
   * record of the attempt (best effort, as in completeAttestation). With `burn`, the session's
   * nonce is consumed in it too (pending → consumed, only if unexpired at `burn.at`), and nothing
   * is written, false returned, when it no longer was pending: another attempt used it first.
   */
  refuseAttestation(audit: AuditInput, attestation?: AttestationRecord, burn?: { sessionId: string; at: number }): Promise<boolean>;
  /** Deletes sessions that ended before `before`, and evidence digests seen before `evidenceBefore`. */
  purgeExpired(before: number, evidenceBefore: number): Promise<number>;
  /**
   * One bounded retention pass (the broker's periodic purge): each rule deletes at most
   * `r.limit` rows, oldest first, so a pass is short however large the backlog; `more` says some
   * rule hit the bound. The audit log is never touched. PostgreSQL: one transaction under a
   * transaction-scoped advisory lock, skipped (all zero) while another replica holds it.
   */
  purgeRetention(r: RetentionPurge): Promise<RetentionPurged>;

  /** The audit record's detail may name the version: `{version}` is replaced by the stored one. */
  putSecret(s: Omit<SecretRecord, 'version' | 'createdAt' | 'createdBy'> & { createdAt: number; createdBy: string }, audit?: AuditInput): Promise<SecretMeta>;
  getSecret(path: string): Promise<SecretRecord | undefined>;
  /** Secrets at `prefix` or under `prefix/`, compared exactly (case-sensitive). */
  listSecrets(prefix?: string): Promise<SecretMeta[]>;
  /** The audit record is written only when a secret was deleted. */
  deleteSecret(path: string, audit?: AuditInput): Promise<boolean>;

  setPolicy(p: PolicyRecord, audit?: AuditInput): Promise<void>;
  getPolicy(prefix: string): Promise<PolicyRecord | undefined>;
  listPolicies(): Promise<PolicyRecord[]>;
  deletePolicy(prefix: string, audit?: AuditInput): Promise<boolean>;

  createToken(t: TokenRecord, audit?: AuditInput): Promise<void>;
  getToken(id: string): Promise<TokenRecord | undefined>;
  listTokens(): Promise<TokenRecord[]>;
  revokeToken(id: string, at: number, audit?: AuditInput): Promise<boolean>;
  countTokens(): Promise<number>;

  appendAudit(r: AuditInput): Promise<void>;
  queryAudit(q: AuditQuery): Promise<AuditRecord[]>;

  /**
   * Records a release with its audit record in one transaction, before the secret leaves the
   * broker. False (nothing written) when this session already had this resource: a unique key
   * decides, so two replicas racing on one session cannot both release.
   */
  recordRelease(r: ReleaseRecord, audit?: AuditInput): Promise<boolean>;
  /** Releases, oldest first; `sessionId` narrows to one session. */
  listReleases(q?: { sessionId?: string; limit?: number }): Promise<ReleaseRecord[]>;

  /** Records an attestation attempt for the console (attestations, migration 5). */
  recordAttestation(r: AttestationRecord): Promise<void>;
  /** Newest first, without claims and report. */
  listAttestations(q: AttestationQuery): Promise<AttestationSummary[]>;
  /** Newest first, with claims (no report): the evidence a draft policy is tested against. */
  recentAttestationClaims(limit: number): Promise<AttestationRecord[]>;
  getAttestation(id: string): Promise<AttestationRecord | undefined>;

  /** Console sessions (migration 5); the audit record is written in the same transaction. */
  createConsoleSession(s: ConsoleSessionRecord, audit?: AuditInput): Promise<void>;
  getConsoleSession(id: string): Promise<ConsoleSessionRecord | undefined>;
  /** The audit record is written only when a session was deleted. */
  deleteConsoleSession(id: string, audit?: AuditInput): Promise<boolean>;
  /** Deletes console sessions that expired before `before`. */
  purgeConsoleSessions(before: number): Promise<number>;

  // Volumes, trusted keys and reference values (migration 3). Change methods write their audit
  // record in the change's transaction, and only when something changed.

  /** False (nothing written) when a volume with this id exists, active or revoked: ids are never reused. */
  createVolume(v: VolumeRecord, audit?: AuditInput): Promise<boolean>;
  /**
   * Replaces an active volume's key (keyVersion + 1) and identity; undefined when there is no
   * active volume `id`. The audit detail may name the new version as `{version}`.
   */
  rekeyVolume(id: string, r: VolumeRekey, audit?: AuditInput): Promise<VolumeMeta | undefined>;
  getVolume(id: string): Promise<VolumeRecord | undefined>;
  listVolumes(): Promise<VolumeMeta[]>;
  /** active → revoked, erasing the key material (zero-length columns); false when not active. */
  revokeVolume(id: string, at: number, by: string, audit?: AuditInput): Promise<boolean>;
  /**
   * Records that volume `id` was initialized under `keyVersion` (migration 6): one conditional
   * UPDATE, only if it is active, still at that key version and not yet initialized, with the audit
   * record in the same transaction. False (nothing written) otherwise.
   */
  markVolumeInitialized(id: string, keyVersion: number, at: number, audit?: AuditInput): Promise<boolean>;

  /** Creates or replaces the key (purpose, name). */
  putTrustedKey(k: TrustedKeyRecord, audit?: AuditInput): Promise<void>;
  listTrustedKeys(purpose?: TrustPurpose): Promise<TrustedKeyRecord[]>;
  deleteTrustedKey(purpose: TrustPurpose, name: string, audit?: AuditInput): Promise<boolean>;

  /** Creates or replaces the document `name`. */
  putReferenceValues(r: ReferenceValuesRecord, audit?: AuditInput): Promise<void>;
  getReferenceValues(name: string): Promise<ReferenceValuesRecord | undefined>;
  listReferenceValues(): Promise<ReferenceValuesRecord[]>;
  deleteReferenceValues(name: string, audit?: AuditInput): Promise<boolean>;

  // ----- KEK registry and rotation (migration 4). The change methods append their audit record
  // in the change's transaction, and only when something changed.

  listKeks(): Promise<KekRecord[]>;
  getKek(id: string): Promise<KekRecord | undefined>;
  /**
   * First start: records `k` as the current KEK when no KEK is current. Returns the current KEK
   * either way (`k`, or the one another process recorded first).
   */
  initKek(k: { id: string; spec: string; at: number }, audit?: AuditInput): Promise<KekRecord>;
  /**
   * Makes `k` the current KEK, inserting it when new; the previous current one becomes
   * `retiring`. One transaction. False (nothing written) when `k` is current already. Throws
   * CofferError KEK_RETIRED when `k` is retired: a retired KEK never comes back.
   */
  setCurrentKek(k: { id: string; spec: string; at: number }, audit?: AuditInput): Promise<boolean>;
  /**
   * Compare-and-swap of one secret's wrapped data key: sets (kek_id, wrapped_key) to `to` only if
   * they still equal `from` (a concurrent put changes wrapped_key: then false, nothing written).
   * Value, version and updated_* stay as they are: the secret did not change.
   */
  rewrapSecret(path: string, from: { kekId: string; wrappedKey: Buffer }, to: { kekId: string; wrappedKey: Buffer }, audit?: AuditInput): Promise<boolean>;
  /** Number of secrets per KEK id. */
  countSecretsByKek(): Promise<Record<string, number>>;
  /**
   * The same compare-and-swap for an active volume's sealed key (table volumes): (kek_id,
   * wrapped_key) to `to` only if the volume is active and they still equal `from`. key_version
   * and updated_* stay: the volume key did not change.
   */
  rewrapVolume(id: string, from: { kekId: string; wrappedKey: Buffer }, to: { kekId: string; wrappedKey: Buffer }, audit?: AuditInput): Promise<boolean>;
  /** Number of active volumes (revoked ones hold no key material) per KEK id. */
  countVolumesByKek(): Promise<Record<string, number>>;
  /**
   * retiring → retired, only if no secret and no active volume has a data key wrapped by it
   * (checked in the same statement); false otherwise. Once retired, the schema refuses any secret
   * or active volume written under it (triggers). PostgreSQL: take `LOCK TABLE secrets, volumes IN
   * SHARE MODE` in the transaction before the conditional UPDATE, so a write in flight commits (or
   * waits) before the check reads.
   */
  retireKek(id: string, at: number, audit?: AuditInput): Promise<boolean>;
}
