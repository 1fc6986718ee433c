/**
 * The broker's persistent state behind one interface, so that the embedded SQLite store and a
 * PostgreSQL store (several replicas on one database) are interchangeable. Every method is
 * async even where SQLite is synchronous. Times are integer milliseconds since the epoch.
 * Methods that decide a race (consumeNonce, completeAttestation) must be atomic across
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

export interface Store {
  readonly kind: string;
  /** Applies pending migrations; returns the versions applied now. */
  migrate(): Promise<number[]>;
  schemaVersion(): Promise<number>;
  ping(): Promise<boolean>;
  close(): Promise<void>;

  createSession(s: SessionRecord): Promise<void>;
  getSession(id: string): Promise<SessionRecord | undefined>;
  /** pending → consumed, only if still pending and the nonce is unexpired at `at`; false otherwise. */
  consumeNonce(id: string, at: number): Promise<boolean>;
  /**
   * consumed → attested, recording the evidence digest as seen. Returns 'evidence-reused' (and
   * changes nothing) when the digest was presented before, 'state' when the session was not consumed.
   */
  completeAttestation(id: string, o: AttestationOutcome, audit?: AuditInput): Promise<'ok' | 'evidence-reused' | 'state'>;
  /** Deletes sessions that ended before `before`, and evidence digests seen before `evidenceBefore`. */
  purgeExpired(before: number, evidenceBefore: number): Promise<number>;

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
}
