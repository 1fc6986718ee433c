import { chmodSync, existsSync } from 'node:fs';
import Database from 'better-sqlite3';
import { CofferError, inputError } from '../../errors.js';
import { PRIVATE_FILE_MODE, touchPrivateFile } from '../files.js';
import { MIGRATIONS } from './migrations.js';
import type {
  AttestationOutcome,
  AttestationQuery,
  AttestationRecord,
  AttestationSummary,
  ConsoleSessionRecord,
  KekRecord,
  AuditInput,
  AuditQuery,
  AuditRecord,
  PolicyRecord,
  ReleaseRecord,
  RetentionPurge,
  RetentionPurged,
  Role,
  SecretMeta,
  SecretRecord,
  SessionRecord,
  Store,
  TokenRecord,
  TrustPurpose,
  TrustedKeyRecord,
  ReferenceValuesRecord,
  VolumeMeta,
  VolumeRecord,
  VolumeRekey,
} from './types.js';

/** Refused attempts whose evidence never verified: no claims (retention caps them apart). */
export const UNVERIFIED_REFUSAL = "WHERE verdict = 'deny' AND claims IS NULL";
/** ORDER BY key putting unverified refusals before every other record (retention's total cap). */
export const JUNK_FIRST = "CASE WHEN verdict = 'deny' AND claims IS NULL THEN 0 ELSE 1 END";

type Row = Record<string, unknown>;

// Row mappers (snake_case columns to records) are exported for the PostgreSQL store: one schema, one mapping.

const num = (v: unknown): number | undefined => (v === null || v === undefined ? undefined : Number(v));
const text = (v: unknown): string | undefined => (v === null || v === undefined ? undefined : String(v));

export function sessionFrom(r: Row): SessionRecord {
  const s: SessionRecord = {
    id: String(r.id),
    tee: String(r.tee),
    version: String(r.version),
    nonce: String(r.nonce),
    hashAlg: String(r.hash_alg),
    state: String(r.state) as SessionRecord['state'],
    createdAt: Number(r.created_at),
    nonceExpiresAt: Number(r.nonce_expires_at),
    expiresAt: Number(r.expires_at),
  };
  const opt: [keyof SessionRecord, unknown][] = [
    ['nonceUsedAt', num(r.nonce_used_at)],
    ['attestedAt', num(r.attested_at)],
    ['teePubKey', text(r.tee_pubkey)],
    ['teePubKeyJkt', text(r.tee_pubkey_jkt)],
    ['binding', text(r.binding)],
    ['evidenceDigest', text(r.evidence_digest)],
    ['claims', text(r.claims)],
    ['tokenId', text(r.token_id)],
  ];
  for (const [k, v] of opt) if (v !== undefined) (s as unknown as Record<string, unknown>)[k] = v;
  return s;
}

export function secretMetaFrom(r: Row): SecretMeta {
  return {
    path: String(r.path),
    kekId: String(r.kek_id),
    alg: String(r.alg),
    size: Number(r.size),
    version: Number(r.version),
    createdAt: Number(r.created_at),
    updatedAt: Number(r.updated_at),
    createdBy: String(r.created_by),
    updatedBy: String(r.updated_by),
  };
}

export function policyFrom(r: Row): PolicyRecord {
  return {
    prefix: String(r.prefix),
    policyId: String(r.policy_id),
    policyVersion: String(r.policy_version),
    text: String(r.text),
    sha256: String(r.sha256),
    updatedAt: Number(r.updated_at),
    updatedBy: String(r.updated_by),
  };
}

export function tokenFrom(r: Row): TokenRecord {
  return {
    id: String(r.id),
    hash: String(r.hash),
    role: String(r.role) as Role,
    createdAt: Number(r.created_at),
    ...(r.scope !== null && r.scope !== undefined ? { scope: String(r.scope) } : {}),
    ...(r.label !== null && r.label !== undefined ? { label: String(r.label) } : {}),
    ...(r.revoked_at !== null && r.revoked_at !== undefined ? { revokedAt: Number(r.revoked_at) } : {}),
  };
}

export function auditFrom(r: Row): AuditRecord {
  const out: AuditRecord = { seq: Number(r.seq), at: Number(r.at), actor: String(r.actor), action: String(r.action), verdict: String(r.verdict) as AuditRecord['verdict'] };
  for (const [k, col] of [['resource', 'resource'], ['evidenceDigest', 'evidence_digest'], ['rule', 'rule'], ['problem', 'problem'], ['detail', 'detail'], ['remote', 'remote']] as const) {
    const v = r[col];
    if (v !== null && v !== undefined) out[k] = String(v);
  }
  return out;
}

export function kekFrom(r: Row): KekRecord {
  return { id: String(r.id), spec: String(r.spec), state: String(r.state) as KekRecord['state'], createdAt: Number(r.created_at), ...(r.retired_at !== null && r.retired_at !== undefined ? { retiredAt: Number(r.retired_at) } : {}) };
}

export function releaseFrom(r: Row): ReleaseRecord {
  return { sessionId: String(r.session_id), resourcePath: String(r.resource_path), at: Number(r.at), ...(r.evidence_digest !== null && r.evidence_digest !== undefined ? { evidenceDigest: String(r.evidence_digest) } : {}) };
}

const ATTESTATION_FIELDS = [
  ['platform', 'platform'],
  ['policy', 'policy'],
  ['rule', 'rule'],
  ['problem', 'problem'],
  ['detail', 'detail'],
  ['evidenceDigest', 'evidence_digest'],
  ['binding', 'binding'],
  ['claims', 'claims'],
  ['report', 'report'],
  ['remote', 'remote'],
] as const;

export function attestationFrom(r: Row): AttestationRecord {
  const out: AttestationRecord = { id: String(r.id), at: Number(r.at), actor: String(r.actor), tee: String(r.tee), verdict: String(r.verdict) as AttestationRecord['verdict'] };
  for (const [k, col] of ATTESTATION_FIELDS) {
    const v = r[col];
    if (v !== null && v !== undefined) out[k] = String(v);
  }
  return out;
}

export function consoleSessionFrom(r: Row): ConsoleSessionRecord {
  return { id: String(r.id), tokenId: String(r.token_id), createdAt: Number(r.created_at), expiresAt: Number(r.expires_at) };
}

/** The WHERE clause and arguments of an attestation query (portable SQL, `?` placeholders). */
export function attestationWhere(q: AttestationQuery): { where: string; args: (string | number)[] } {
  const w: string[] = [];
  const args: (string | number)[] = [];
  if (q.since !== undefined) {
    w.push('at >= ?');
    args.push(q.since);
  }
  if (q.until !== undefined) {
    w.push('at < ?');
    args.push(q.until);
  }
  if (q.verdict !== undefined) {
    w.push('verdict = ?');
    args.push(q.verdict);
  }
  if (q.platform !== undefined) {
    w.push('platform = ?');
    args.push(q.platform);
  }
  return { where: w.length > 0 ? `WHERE ${w.join(' AND ')}` : '', args };
}

export const ATTESTATION_SUMMARY_COLUMNS = 'id, at, actor, tee, platform, verdict, policy, rule, problem, detail, evidence_digest, binding, remote';

export function volumeMetaFrom(r: Row): VolumeMeta {
  return {
    id: String(r.id),
    identity: String(r.identity),
    policyText: String(r.policy_text),
    policySha256: String(r.policy_sha256),
    kekId: String(r.kek_id),
    alg: String(r.alg),
    keyVersion: Number(r.key_version),
    state: String(r.state) as VolumeMeta['state'],
    createdAt: Number(r.created_at),
    createdBy: String(r.created_by),
    updatedAt: Number(r.updated_at),
    updatedBy: String(r.updated_by),
    ...(r.label !== null && r.label !== undefined ? { label: String(r.label) } : {}),
    ...(r.revoked_at !== null && r.revoked_at !== undefined ? { revokedAt: Number(r.revoked_at) } : {}),
    ...(r.revoked_by !== null && r.revoked_by !== undefined ? { revokedBy: String(r.revoked_by) } : {}),
    ...(r.initialized_at !== null && r.initialized_at !== undefined ? { initializedAt: Number(r.initialized_at) } : {}),
  };
}

export function volumeFrom(r: Row): VolumeRecord {
  return { ...volumeMetaFrom(r), wrappedKey: Buffer.from(r.wrapped_key as Uint8Array), iv: Buffer.from(r.iv as Uint8Array), ciphertext: Buffer.from(r.ciphertext as Uint8Array), tag: Buffer.from(r.tag as Uint8Array) };
}

export function trustedKeyFrom(r: Row): TrustedKeyRecord {
  return { purpose: String(r.purpose) as TrustPurpose, name: String(r.name), pem: String(r.pem), sha256: String(r.sha256), createdAt: Number(r.created_at), createdBy: String(r.created_by) };
}

export function referenceValuesFrom(r: Row): ReferenceValuesRecord {
  return { name: String(r.name), imageId: String(r.image_id), imageVersion: String(r.image_version), jws: String(r.jws), sha256: String(r.sha256), signer: String(r.signer), updatedAt: Number(r.updated_at), updatedBy: String(r.updated_by) };
}

/**
 * SQL condition: `col` is `prefix` or lies under `prefix/`, compared byte for byte. Not LIKE:
 * SQLite's LIKE is case-insensitive for ASCII, so `team-a` would match `TEAM-A/...`. substr() is
 * portable to PostgreSQL. Binds two parameters: the prefix, then the prefix with a slash.
 */
const UNDER = (col: string) => `(${col} = ? OR substr(${col}, 1, length(?)) = ?)`;
const underArgs = (prefix: string) => [prefix, `${prefix}/`, `${prefix}/`];

/**
 * The embedded store: one SQLite file (WAL, foreign keys on, synchronous FULL so that an
 * acknowledged write survives power loss). better-sqlite3 is synchronous; the Store interface is
 * async for the PostgreSQL store's sake.
 */
export class SqliteStore implements Store {
  readonly kind = 'sqlite';
  readonly path: string;
  private readonly db: Database.Database;

  private constructor(path: string, db: Database.Database) {
    this.path = path;
    this.db = db;
  }

  /** Opens (creating if needed) the database file and applies pending migrations. */
  static async open(path: string): Promise<SqliteStore> {
    // The file is made 0600 before SQLite opens it: SQLite gives -wal and -shm the database's mode.
    if (path !== ':memory:') touchPrivateFile(path, 'the SQLite store', 'STORE_INSECURE_FILE');
    let db: Database.Database;
    try {
      db = new Database(path);
      db.pragma('journal_mode = WAL');
      db.pragma('foreign_keys = ON');
      db.pragma('synchronous = FULL');
      db.pragma('busy_timeout = 5000');
      // Deleted secrets' pages are overwritten, not left readable in free pages.
      db.pragma('secure_delete = ON');
      // -wal and -shm left by an older broker may be looser than the database: tighten them.
      for (const f of [`${path}-wal`, `${path}-shm`]) if (path !== ':memory:' && existsSync(f)) chmodSync(f, PRIVATE_FILE_MODE);
    } catch (e) {
      throw inputError('STORE_UNAVAILABLE', `cannot open the SQLite store ${path}: ${(e as Error).message}`);
    }
    const store = new SqliteStore(path, db);
    try {
      await store.migrate();
    } catch (e) {
      db.close();
      if (e instanceof CofferError) throw e;
      throw new CofferError('STORE_MIGRATION_FAILED', `cannot migrate the SQLite store ${path}: ${(e as Error).message}`);
    }
    return store;
  }

  async migrate(): Promise<number[]> {
    const known = Math.max(0, ...MIGRATIONS.map((m) => m.version));
    const appliedNow = (): Set<number> => new Set((this.db.prepare('SELECT version FROM schema_migrations').all() as Row[]).map((r) => Number(r.version)));
    const tooNew = (applied: Set<number>): void => {
      const newest = Math.max(0, ...applied);
      if (newest > known) throw new CofferError('STORE_TOO_NEW', `the database has schema version ${newest}, newer than this broker knows (${known}): upgrade Coffer`);
    };
    // Up to date: no write lock taken (a second process, or a CLI command, opening a current store).
    if (this.db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'").get()) {
      const applied = appliedNow();
      tooNew(applied);
      if (MIGRATIONS.every((m) => applied.has(m.version))) return [];
    }
    // BEGIN IMMEDIATE takes the write lock before the applied versions are read: two processes
    // opening a fresh file at once queue here (busy timeout), and the second finds the schema
    // current instead of failing on "table already exists". One transaction for all pending
    // migrations, as on PostgreSQL.
    return this.db.transaction((): number[] => {
      this.db.exec('CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)');
      const applied = appliedNow();
      tooNew(applied);
      const done: number[] = [];
      for (const m of [...MIGRATIONS].sort((a, b) => a.version - b.version)) {
        if (applied.has(m.version)) continue;
        for (const sql of [...m.common, ...m.sqlite]) this.db.exec(sql);
        this.db.prepare('INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)').run(m.version, m.name, Date.now());
        done.push(m.version);
      }
      return done;
    }).immediate();
  }

  async schemaVersion(): Promise<number> {
    const r = this.db.prepare('SELECT MAX(version) AS v FROM schema_migrations').get() as Row | undefined;
    return Number(r?.v ?? 0);
  }

  async ping(): Promise<boolean> {
    try {
      return (this.db.prepare('SELECT 1 AS one').get() as Row).one === 1;
    } catch {
      return false;
    }
  }

  async close(): Promise<void> {
    if (this.db.open) this.db.close();
  }

  async createSession(s: SessionRecord, audit?: AuditInput): Promise<void> {
    this.changeAudited(
      () =>
        this.db
          .prepare('INSERT INTO sessions (id, tee, version, nonce, hash_alg, state, created_at, nonce_expires_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)')
          .run(s.id, s.tee, s.version, s.nonce, s.hashAlg, s.state, s.createdAt, s.nonceExpiresAt, s.expiresAt).changes === 1,
      audit,
    );
  }

  async getSession(id: string): Promise<SessionRecord | undefined> {
    const r = this.db.prepare('SELECT * FROM sessions WHERE id = ?').get(id) as Row | undefined;
    return r ? sessionFrom(r) : undefined;
  }

  async consumeNonce(id: string, at: number): Promise<boolean> {
    return this.burnNonce(id, at);
  }

  private burnNonce(id: string, at: number): boolean {
    const r = this.db.prepare("UPDATE sessions SET state = 'consumed', nonce_used_at = ? WHERE id = ? AND state = 'pending' AND nonce_expires_at > ?").run(at, id, at);
    return r.changes === 1;
  }

  async completeAttestation(id: string, o: AttestationOutcome, audit?: AuditInput, opts: { consumeNonceAt?: number; attestation?: AttestationRecord } = {}): Promise<'ok' | 'evidence-reused' | 'state'> {
    const tx = this.db.transaction((): 'ok' | 'evidence-reused' => {
      const seen = this.db.prepare('INSERT INTO evidence_seen (digest, session_id, seen_at) VALUES (?, ?, ?) ON CONFLICT (digest) DO NOTHING').run(o.evidenceDigest, id, o.attestedAt);
      if (seen.changes !== 1) return 'evidence-reused';
      const set = "attested_at = ?, expires_at = ?, tee_pubkey = ?, tee_pubkey_jkt = ?, binding = ?, evidence_digest = ?, claims = ?, token_id = ?";
      const values = [o.attestedAt, o.expiresAt, o.teePubKey, o.teePubKeyJkt, o.binding, o.evidenceDigest, o.claims, o.tokenId];
      const at = opts.consumeNonceAt;
      // The nonce consumed by the statement that attests: the same condition as consumeNonce.
      const r =
        at === undefined
          ? this.db.prepare(`UPDATE sessions SET state = 'attested', ${set} WHERE id = ? AND state = 'consumed'`).run(...values, id)
          : this.db.prepare(`UPDATE sessions SET state = 'attested', nonce_used_at = ?, ${set} WHERE id = ? AND state = 'pending' AND nonce_expires_at > ?`).run(at, ...values, id, at);
      // Throwing rolls back the evidence digest recorded above.
      if (r.changes !== 1) throw new StateConflict();
      if (opts.attestation) this.insertAttestationBestEffort(opts.attestation);
      // In the same transaction: an attestation is never committed without its audit record.
      if (audit) this.insertAudit(audit);
      return 'ok';
    });
    try {
      return tx.immediate();
    } catch (e) {
      if (e instanceof StateConflict) return 'state';
      throw e;
    }
  }

  async refuseAttestation(audit: AuditInput, attestation?: AttestationRecord, burn?: { sessionId: string; at: number }): Promise<boolean> {
    try {
      this.db.transaction(() => {
        // Throwing rolls back: a nonce another attempt used is not refused in this one's name.
        if (burn && !this.burnNonce(burn.sessionId, burn.at)) throw new StateConflict();
        if (attestation) this.insertAttestationBestEffort(attestation);
        this.insertAudit(audit);
      }).immediate();
      return true;
    } catch (e) {
      if (e instanceof StateConflict) return false;
      throw e;
    }
  }

  /**
   * The console's record, in a savepoint: it is kept for display only (the audit record is the
   * record of truth), so failing to write it must not undo the decision it accompanies.
   */
  private insertAttestationBestEffort(r: AttestationRecord): void {
    try {
      this.db.transaction(() => this.insertAttestation(r))();
    } catch {
      // The console misses this attempt; the audit log has it.
    }
  }

  async purgeExpired(before: number, evidenceBefore: number): Promise<number> {
    return this.db.transaction(() => {
      const a = this.db.prepare('DELETE FROM sessions WHERE expires_at < ?').run(before).changes;
      const b = this.db.prepare('DELETE FROM evidence_seen WHERE seen_at < ?').run(evidenceBefore).changes;
      return a + b;
    })();
  }

  async purgeRetention(r: RetentionPurge): Promise<RetentionPurged> {
    const limit = Math.max(0, Math.floor(r.limit));
    // One transaction of bounded statements: the event loop waits for at most ~7 × limit row deletions.
    return this.db.transaction(() => {
      const del = (sql: string, ...args: number[]): number => this.db.prepare(sql).run(...args, limit).changes;
      const sessions = del('DELETE FROM sessions WHERE id IN (SELECT id FROM sessions WHERE expires_at < ? ORDER BY expires_at LIMIT ?)', r.sessionsBefore);
      const evidence = del('DELETE FROM evidence_seen WHERE digest IN (SELECT digest FROM evidence_seen WHERE seen_at < ? ORDER BY seen_at LIMIT ?)', r.evidenceBefore);
      const consoleSessions = del('DELETE FROM console_sessions WHERE id IN (SELECT id FROM console_sessions WHERE expires_at < ? ORDER BY expires_at LIMIT ?)', r.consoleSessionsBefore);
      const aged = del('DELETE FROM attestations WHERE id IN (SELECT id FROM attestations WHERE at < ? ORDER BY at, id LIMIT ?)', r.attestationsBefore);
      const count = (where: string): number => Number((this.db.prepare(`SELECT COUNT(*) AS n FROM attestations ${where}`).get() as Row).n);
      const overUnverified = Math.min(limit, Math.max(0, count(UNVERIFIED_REFUSAL) - Math.max(0, r.maxUnverifiedRefusals)));
      const unverified = overUnverified === 0 ? 0 : this.db.prepare(`DELETE FROM attestations WHERE id IN (SELECT id FROM attestations ${UNVERIFIED_REFUSAL} ORDER BY at, id LIMIT ?)`).run(overUnverified).changes;
      const over = Math.min(limit, Math.max(0, count('') - Math.max(0, r.maxAttestations)));
      // Unverified refusals first: a junk backlog above its own cap (or a cap above the total) must not evict verified records.
      const capped = over === 0 ? 0 : this.db.prepare(`DELETE FROM attestations WHERE id IN (SELECT id FROM attestations ORDER BY ${JUNK_FIRST}, at, id LIMIT ?)`).run(over).changes;
      // A release whose session row is still there may still be asked for again: release-once needs it.
      const releases = del(
        'DELETE FROM releases WHERE rowid IN (SELECT r.rowid FROM releases r WHERE r.at < ? AND NOT EXISTS (SELECT 1 FROM sessions s WHERE s.id = r.session_id) ORDER BY r.at LIMIT ?)',
        r.releasesBefore,
      );
      const more = limit > 0 && [sessions, evidence, consoleSessions, aged, unverified, capped, releases].some((n) => n >= limit);
      return { sessions, evidence, consoleSessions, attestations: aged + unverified + capped, releases, more };
    })();
  }

  async putSecret(s: Omit<SecretRecord, 'version' | 'createdAt' | 'createdBy'> & { createdAt: number; createdBy: string }, audit?: AuditInput): Promise<SecretMeta> {
    return this.db.transaction(() => {
      this.db
      .prepare(
        `INSERT INTO secrets (path, kek_id, wrapped_key, iv, ciphertext, tag, alg, size, version, created_at, updated_at, created_by, updated_by)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, 1, ?, ?, ?, ?)
         ON CONFLICT (path) DO UPDATE SET kek_id = excluded.kek_id, wrapped_key = excluded.wrapped_key, iv = excluded.iv,
           ciphertext = excluded.ciphertext, tag = excluded.tag, alg = excluded.alg, size = excluded.size,
           version = secrets.version + 1, updated_at = excluded.updated_at, updated_by = excluded.updated_by`,
      )
      .run(s.path, s.kekId, s.wrappedKey, s.iv, s.ciphertext, s.tag, s.alg, s.size, s.createdAt, s.updatedAt, s.createdBy, s.updatedBy);
      const m = secretMetaFrom(this.db.prepare('SELECT * FROM secrets WHERE path = ?').get(s.path) as Row);
      if (audit) this.insertAudit({ ...audit, ...(audit.detail !== undefined ? { detail: audit.detail.replace('{version}', String(m.version)) } : {}) });
      return m;
    }).immediate();
  }

  async getSecret(path: string): Promise<SecretRecord | undefined> {
    const r = this.db.prepare('SELECT * FROM secrets WHERE path = ?').get(path) as Row | undefined;
    if (!r) return undefined;
    return { ...secretMetaFrom(r), wrappedKey: r.wrapped_key as Buffer, iv: r.iv as Buffer, ciphertext: r.ciphertext as Buffer, tag: r.tag as Buffer };
  }

  async listSecrets(prefix?: string): Promise<SecretMeta[]> {
    const cols = 'path, kek_id, alg, size, version, created_at, updated_at, created_by, updated_by';
    const rows = (prefix === undefined
      ? this.db.prepare(`SELECT ${cols} FROM secrets ORDER BY path`).all()
      : this.db.prepare(`SELECT ${cols} FROM secrets WHERE ${UNDER('path')} ORDER BY path`).all(...underArgs(prefix))) as Row[];
    return rows.map(secretMetaFrom);
  }

  async deleteSecret(path: string, audit?: AuditInput): Promise<boolean> {
    return this.changeAudited(() => this.db.prepare('DELETE FROM secrets WHERE path = ?').run(path).changes === 1, audit);
  }

  async setPolicy(p: PolicyRecord, audit?: AuditInput): Promise<void> {
    this.changeAudited(() => {
      this.db
      .prepare(
        `INSERT INTO policies (prefix, policy_id, policy_version, text, sha256, updated_at, updated_by) VALUES (?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (prefix) DO UPDATE SET policy_id = excluded.policy_id, policy_version = excluded.policy_version, text = excluded.text,
           sha256 = excluded.sha256, updated_at = excluded.updated_at, updated_by = excluded.updated_by`,
      )
      .run(p.prefix, p.policyId, p.policyVersion, p.text, p.sha256, p.updatedAt, p.updatedBy);
      return true;
    }, audit);
  }

  async getPolicy(prefix: string): Promise<PolicyRecord | undefined> {
    const r = this.db.prepare('SELECT * FROM policies WHERE prefix = ?').get(prefix) as Row | undefined;
    return r ? policyFrom(r) : undefined;
  }

  async listPolicies(): Promise<PolicyRecord[]> {
    return (this.db.prepare('SELECT * FROM policies ORDER BY prefix').all() as Row[]).map(policyFrom);
  }

  async deletePolicy(prefix: string, audit?: AuditInput): Promise<boolean> {
    return this.changeAudited(() => this.db.prepare('DELETE FROM policies WHERE prefix = ?').run(prefix).changes === 1, audit);
  }

  async createToken(t: TokenRecord, audit?: AuditInput): Promise<void> {
    this.changeAudited(() => this.db.prepare('INSERT INTO tokens (id, hash, role, scope, label, created_at) VALUES (?, ?, ?, ?, ?, ?)').run(t.id, t.hash, t.role, t.scope ?? null, t.label ?? null, t.createdAt).changes === 1, audit);
  }

  async getToken(id: string): Promise<TokenRecord | undefined> {
    const r = this.db.prepare('SELECT * FROM tokens WHERE id = ?').get(id) as Row | undefined;
    return r ? tokenFrom(r) : undefined;
  }

  async listTokens(): Promise<TokenRecord[]> {
    return (this.db.prepare('SELECT * FROM tokens ORDER BY created_at, id').all() as Row[]).map(tokenFrom);
  }

  async revokeToken(id: string, at: number, audit?: AuditInput): Promise<boolean> {
    return this.changeAudited(() => this.db.prepare('UPDATE tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL').run(at, id).changes === 1, audit);
  }

  async countTokens(): Promise<number> {
    return Number((this.db.prepare('SELECT COUNT(*) AS n FROM tokens WHERE revoked_at IS NULL').get() as Row).n);
  }

  /** Runs a change and, when it changed something, appends its audit record, in one transaction. */
  private changeAudited(change: () => boolean, audit: AuditInput | undefined): boolean {
    return this.db.transaction(() => {
      const changed = change();
      if (changed && audit) this.insertAudit(audit);
      return changed;
    }).immediate();
  }

  async appendAudit(r: AuditInput): Promise<void> {
    this.insertAudit(r);
  }

  private insertAudit(r: AuditInput): void {
    this.db
      .prepare('INSERT INTO audit (at, actor, action, resource, evidence_digest, verdict, rule, problem, detail, remote) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)')
      .run(r.at, r.actor, r.action, r.resource ?? null, r.evidenceDigest ?? null, r.verdict, r.rule ?? null, r.problem ?? null, r.detail ?? null, r.remote ?? null);
  }

  async recordRelease(r: ReleaseRecord, audit?: AuditInput): Promise<boolean> {
    return this.changeAudited(
      () => this.db.prepare('INSERT INTO releases (session_id, resource_path, at, evidence_digest) VALUES (?, ?, ?, ?) ON CONFLICT (session_id, resource_path) DO NOTHING').run(r.sessionId, r.resourcePath, r.at, r.evidenceDigest ?? null).changes === 1,
      audit,
    );
  }

  async listReleases(q: { sessionId?: string; limit?: number } = {}): Promise<ReleaseRecord[]> {
    const limit = Math.min(Math.max(1, q.limit ?? 1000), 100_000);
    const rows = (q.sessionId === undefined
      ? this.db.prepare(`SELECT * FROM releases ORDER BY at, session_id, resource_path LIMIT ${limit}`).all()
      : this.db.prepare(`SELECT * FROM releases WHERE session_id = ? ORDER BY at, resource_path LIMIT ${limit}`).all(q.sessionId)) as Row[];
    return rows.map(releaseFrom);
  }

  async recordAttestation(r: AttestationRecord): Promise<void> {
    this.insertAttestation(r);
  }

  private insertAttestation(r: AttestationRecord): void {
    this.db
      .prepare('INSERT INTO attestations (id, at, actor, tee, platform, verdict, policy, rule, problem, detail, evidence_digest, binding, claims, report, remote) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)')
      .run(r.id, r.at, r.actor, r.tee, r.platform ?? null, r.verdict, r.policy ?? null, r.rule ?? null, r.problem ?? null, r.detail ?? null, r.evidenceDigest ?? null, r.binding ?? null, r.claims ?? null, r.report ?? null, r.remote ?? null);
  }

  async listAttestations(q: AttestationQuery): Promise<AttestationSummary[]> {
    const { where, args } = attestationWhere(q);
    const limit = Math.min(Math.max(1, q.limit ?? 100), 1000);
    return (this.db.prepare(`SELECT ${ATTESTATION_SUMMARY_COLUMNS} FROM attestations ${where} ORDER BY at DESC, id LIMIT ${limit}`).all(...args) as Row[]).map(attestationFrom);
  }

  async recentAttestationClaims(limit: number): Promise<AttestationRecord[]> {
    const n = Math.min(Math.max(1, limit), 1000);
    return (this.db.prepare(`SELECT ${ATTESTATION_SUMMARY_COLUMNS}, claims FROM attestations WHERE claims IS NOT NULL ORDER BY at DESC, id LIMIT ${n}`).all() as Row[]).map(attestationFrom);
  }

  async getAttestation(id: string): Promise<AttestationRecord | undefined> {
    const r = this.db.prepare('SELECT * FROM attestations WHERE id = ?').get(id) as Row | undefined;
    return r ? attestationFrom(r) : undefined;
  }

  async createConsoleSession(s: ConsoleSessionRecord, audit?: AuditInput): Promise<void> {
    this.changeAudited(() => this.db.prepare('INSERT INTO console_sessions (id, token_id, created_at, expires_at) VALUES (?, ?, ?, ?)').run(s.id, s.tokenId, s.createdAt, s.expiresAt).changes === 1, audit);
  }

  async getConsoleSession(id: string): Promise<ConsoleSessionRecord | undefined> {
    const r = this.db.prepare('SELECT * FROM console_sessions WHERE id = ?').get(id) as Row | undefined;
    return r ? consoleSessionFrom(r) : undefined;
  }

  async deleteConsoleSession(id: string, audit?: AuditInput): Promise<boolean> {
    return this.changeAudited(() => this.db.prepare('DELETE FROM console_sessions WHERE id = ?').run(id).changes === 1, audit);
  }

  async purgeConsoleSessions(before: number): Promise<number> {
    return this.db.prepare('DELETE FROM console_sessions WHERE expires_at < ?').run(before).changes;
  }

  // ----- KEK registry (migration 4)

  async listKeks(): Promise<KekRecord[]> {
    return (this.db.prepare('SELECT * FROM keks ORDER BY created_at, id').all() as Row[]).map(kekFrom);
  }

  async getKek(id: string): Promise<KekRecord | undefined> {
    const r = this.db.prepare('SELECT * FROM keks WHERE id = ?').get(id) as Row | undefined;
    return r ? kekFrom(r) : undefined;
  }

  async initKek(k: { id: string; spec: string; at: number }, audit?: AuditInput): Promise<KekRecord> {
    return this.db.transaction(() => {
      const cur = this.db.prepare("SELECT * FROM keks WHERE state = 'current'").get() as Row | undefined;
      if (cur) return kekFrom(cur);
      if (this.db.prepare("SELECT state FROM keks WHERE id = ? AND state = 'retired'").get(k.id)) throw new CofferError('KEK_RETIRED', `KEK ${k.id} was retired by a rotation and cannot be used again`);
      this.db.prepare("INSERT INTO keks (id, spec, state, created_at) VALUES (?, ?, 'current', ?) ON CONFLICT (id) DO UPDATE SET state = 'current', spec = excluded.spec").run(k.id, k.spec, k.at);
      if (audit) this.insertAudit(audit);
      return kekFrom(this.db.prepare('SELECT * FROM keks WHERE id = ?').get(k.id) as Row);
    }).immediate();
  }

  async setCurrentKek(k: { id: string; spec: string; at: number }, audit?: AuditInput): Promise<boolean> {
    return this.db.transaction(() => {
      const row = this.db.prepare('SELECT state FROM keks WHERE id = ?').get(k.id) as Row | undefined;
      if (row?.state === 'current') return false;
      if (row?.state === 'retired') throw new CofferError('KEK_RETIRED', `KEK ${k.id} was retired by a rotation and cannot be made current again`);
      this.db.prepare("UPDATE keks SET state = 'retiring' WHERE state = 'current'").run();
      if (row) this.db.prepare("UPDATE keks SET state = 'current', spec = ? WHERE id = ?").run(k.spec, k.id);
      else this.db.prepare("INSERT INTO keks (id, spec, state, created_at) VALUES (?, ?, 'current', ?)").run(k.id, k.spec, k.at);
      if (audit) this.insertAudit(audit);
      return true;
    }).immediate();
  }

  async rewrapSecret(path: string, from: { kekId: string; wrappedKey: Buffer }, to: { kekId: string; wrappedKey: Buffer }, audit?: AuditInput): Promise<boolean> {
    return this.changeAudited(
      () => this.db.prepare('UPDATE secrets SET kek_id = ?, wrapped_key = ? WHERE path = ? AND kek_id = ? AND wrapped_key = ?').run(to.kekId, to.wrappedKey, path, from.kekId, from.wrappedKey).changes === 1,
      audit,
    );
  }

  async countSecretsByKek(): Promise<Record<string, number>> {
    const out: Record<string, number> = {};
    for (const r of this.db.prepare('SELECT kek_id, COUNT(*) AS n FROM secrets GROUP BY kek_id').all() as Row[]) out[String(r.kek_id)] = Number(r.n);
    return out;
  }

  async rewrapVolume(id: string, from: { kekId: string; wrappedKey: Buffer }, to: { kekId: string; wrappedKey: Buffer }, audit?: AuditInput): Promise<boolean> {
    return this.changeAudited(
      () => this.db.prepare("UPDATE volumes SET kek_id = ?, wrapped_key = ? WHERE id = ? AND state = 'active' AND kek_id = ? AND wrapped_key = ?").run(to.kekId, to.wrappedKey, id, from.kekId, from.wrappedKey).changes === 1,
      audit,
    );
  }

  async countVolumesByKek(): Promise<Record<string, number>> {
    const out: Record<string, number> = {};
    for (const r of this.db.prepare("SELECT kek_id, COUNT(*) AS n FROM volumes WHERE state = 'active' GROUP BY kek_id").all() as Row[]) out[String(r.kek_id)] = Number(r.n);
    return out;
  }

  async retireKek(id: string, at: number, audit?: AuditInput): Promise<boolean> {
    return this.changeAudited(
      () =>
        this.db
          .prepare("UPDATE keks SET state = 'retired', retired_at = ? WHERE id = ? AND state = 'retiring' AND NOT EXISTS (SELECT 1 FROM secrets WHERE kek_id = ?) AND NOT EXISTS (SELECT 1 FROM volumes WHERE kek_id = ? AND state = 'active')")
          .run(at, id, id, id).changes === 1,
      audit,
    );
  }

  async queryAudit(q: AuditQuery): Promise<AuditRecord[]> {
    const where: string[] = [];
    const args: (string | number)[] = [];
    if (q.since !== undefined) {
      where.push('at >= ?');
      args.push(q.since);
    }
    if (q.until !== undefined) {
      where.push('at < ?');
      args.push(q.until);
    }
    if (q.action !== undefined) {
      where.push('action = ?');
      args.push(q.action);
    }
    if (q.verdict !== undefined) {
      where.push('verdict = ?');
      args.push(q.verdict);
    }
    if (q.actor !== undefined) {
      where.push('actor = ?');
      args.push(q.actor);
    }
    if (q.afterSeq !== undefined) {
      where.push('seq > ?');
      args.push(q.afterSeq);
    }
    if (q.scope !== undefined) {
      where.push(UNDER('resource'));
      args.push(...underArgs(q.scope));
    }
    const limit = Math.min(Math.max(1, q.limit ?? 100), 1000);
    const sql = `SELECT * FROM audit ${where.length > 0 ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY seq LIMIT ${limit}`;
    return (this.db.prepare(sql).all(...args) as Row[]).map(auditFrom);
  }

  async createVolume(v: VolumeRecord, audit?: AuditInput): Promise<boolean> {
    return this.changeAudited(
      () =>
        this.db
          .prepare(
            `INSERT INTO volumes (id, label, identity, policy_text, policy_sha256, kek_id, wrapped_key, iv, ciphertext, tag, alg, key_version, state, created_at, created_by, updated_at, updated_by)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING`,
          )
          .run(v.id, v.label ?? null, v.identity, v.policyText, v.policySha256, v.kekId, v.wrappedKey, v.iv, v.ciphertext, v.tag, v.alg, v.keyVersion, v.state, v.createdAt, v.createdBy, v.updatedAt, v.updatedBy).changes === 1,
      audit,
    );
  }

  async rekeyVolume(id: string, r: VolumeRekey, audit?: AuditInput): Promise<VolumeMeta | undefined> {
    return this.db.transaction((): VolumeMeta | undefined => {
      const changed = this.db
        .prepare(
          `UPDATE volumes SET identity = ?, policy_text = ?, policy_sha256 = ?, kek_id = ?, wrapped_key = ?, iv = ?, ciphertext = ?, tag = ?, alg = ?,
             label = COALESCE(?, label), key_version = key_version + 1, initialized_at = NULL, updated_at = ?, updated_by = ? WHERE id = ? AND state = 'active'`,
        )
        .run(r.identity, r.policyText, r.policySha256, r.kekId, r.wrappedKey, r.iv, r.ciphertext, r.tag, r.alg, r.label ?? null, r.updatedAt, r.updatedBy, id).changes;
      if (changed !== 1) return undefined;
      const m = volumeMetaFrom(this.db.prepare('SELECT * FROM volumes WHERE id = ?').get(id) as Row);
      if (audit) this.insertAudit({ ...audit, ...(audit.detail !== undefined ? { detail: audit.detail.replace('{version}', String(m.keyVersion)) } : {}) });
      return m;
    }).immediate();
  }

  async getVolume(id: string): Promise<VolumeRecord | undefined> {
    const r = this.db.prepare('SELECT * FROM volumes WHERE id = ?').get(id) as Row | undefined;
    return r ? volumeFrom(r) : undefined;
  }

  async listVolumes(): Promise<VolumeMeta[]> {
    const cols = 'id, label, identity, policy_text, policy_sha256, kek_id, alg, key_version, state, created_at, created_by, updated_at, updated_by, revoked_at, revoked_by, initialized_at';
    return (this.db.prepare(`SELECT ${cols} FROM volumes ORDER BY id`).all() as Row[]).map(volumeMetaFrom);
  }

  async markVolumeInitialized(id: string, keyVersion: number, at: number, audit?: AuditInput): Promise<boolean> {
    return this.changeAudited(
      () => this.db.prepare("UPDATE volumes SET initialized_at = ? WHERE id = ? AND key_version = ? AND state = 'active' AND initialized_at IS NULL").run(at, id, keyVersion).changes === 1,
      audit,
    );
  }

  async revokeVolume(id: string, at: number, by: string, audit?: AuditInput): Promise<boolean> {
    const empty = Buffer.alloc(0);
    return this.changeAudited(
      () =>
        this.db
          .prepare("UPDATE volumes SET state = 'revoked', wrapped_key = ?, iv = ?, ciphertext = ?, tag = ?, revoked_at = ?, revoked_by = ?, updated_at = ?, updated_by = ? WHERE id = ? AND state = 'active'")
          .run(empty, empty, empty, empty, at, by, at, by, id).changes === 1,
      audit,
    );
  }

  async putTrustedKey(k: TrustedKeyRecord, audit?: AuditInput): Promise<void> {
    this.changeAudited(() => {
      this.db
        .prepare(
          `INSERT INTO trusted_keys (purpose, name, pem, sha256, created_at, created_by) VALUES (?, ?, ?, ?, ?, ?)
           ON CONFLICT (purpose, name) DO UPDATE SET pem = excluded.pem, sha256 = excluded.sha256, created_at = excluded.created_at, created_by = excluded.created_by`,
        )
        .run(k.purpose, k.name, k.pem, k.sha256, k.createdAt, k.createdBy);
      return true;
    }, audit);
  }

  async listTrustedKeys(purpose?: TrustPurpose): Promise<TrustedKeyRecord[]> {
    const rows = (purpose === undefined
      ? this.db.prepare('SELECT * FROM trusted_keys ORDER BY purpose, name').all()
      : this.db.prepare('SELECT * FROM trusted_keys WHERE purpose = ? ORDER BY name').all(purpose)) as Row[];
    return rows.map(trustedKeyFrom);
  }

  async deleteTrustedKey(purpose: TrustPurpose, name: string, audit?: AuditInput): Promise<boolean> {
    return this.changeAudited(() => this.db.prepare('DELETE FROM trusted_keys WHERE purpose = ? AND name = ?').run(purpose, name).changes === 1, audit);
  }

  async putReferenceValues(r: ReferenceValuesRecord, audit?: AuditInput): Promise<void> {
    this.changeAudited(() => {
      this.db
        .prepare(
          `INSERT INTO reference_values (name, image_id, image_version, jws, sha256, signer, updated_at, updated_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
           ON CONFLICT (name) DO UPDATE SET image_id = excluded.image_id, image_version = excluded.image_version, jws = excluded.jws, sha256 = excluded.sha256,
             signer = excluded.signer, updated_at = excluded.updated_at, updated_by = excluded.updated_by`,
        )
        .run(r.name, r.imageId, r.imageVersion, r.jws, r.sha256, r.signer, r.updatedAt, r.updatedBy);
      return true;
    }, audit);
  }

  async getReferenceValues(name: string): Promise<ReferenceValuesRecord | undefined> {
    const r = this.db.prepare('SELECT * FROM reference_values WHERE name = ?').get(name) as Row | undefined;
    return r ? referenceValuesFrom(r) : undefined;
  }

  async listReferenceValues(): Promise<ReferenceValuesRecord[]> {
    return (this.db.prepare('SELECT * FROM reference_values ORDER BY name').all() as Row[]).map(referenceValuesFrom);
  }

  async deleteReferenceValues(name: string, audit?: AuditInput): Promise<boolean> {
    return this.changeAudited(() => this.db.prepare('DELETE FROM reference_values WHERE name = ?').run(name).changes === 1, audit);
  }
}

class StateConflict extends Error {}
