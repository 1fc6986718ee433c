import { chmodSync, existsSync } from 'node:fs';
import Database from 'better-sqlite3';
import { CofferError, inputError } from '../../errors.js';
import { PRIVATE_FILE_MODE, touchPrivateFile } from '../files.js';
import { MIGRATIONS } from './migrations.js';
import type {
  AttestationOutcome,
  AuditInput,
  AuditQuery,
  AuditRecord,
  PolicyRecord,
  Role,
  SecretMeta,
  SecretRecord,
  SessionRecord,
  Store,
  TokenRecord,
} from './types.js';

type Row = Record<string, unknown>;

const num = (v: unknown): number | undefined => (v === null || v === undefined ? undefined : Number(v));
const text = (v: unknown): string | undefined => (v === null || v === undefined ? undefined : String(v));

function sessionFrom(r: Row): SessionRecord {
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

function secretMetaFrom(r: Row): SecretMeta {
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

function policyFrom(r: Row): PolicyRecord {
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

function tokenFrom(r: Row): TokenRecord {
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

function auditFrom(r: Row): AuditRecord {
  const out: AuditRecord = { seq: Number(r.seq), at: Number(r.at), actor: String(r.actor), action: String(r.action), verdict: String(r.verdict) as AuditRecord['verdict'] };
  for (const [k, col] of [['resource', 'resource'], ['evidenceDigest', 'evidence_digest'], ['rule', 'rule'], ['problem', 'problem'], ['detail', 'detail'], ['remote', 'remote']] as const) {
    const v = r[col];
    if (v !== null && v !== undefined) out[k] = String(v);
  }
  return out;
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
    await store.migrate();
    return store;
  }

  async migrate(): Promise<number[]> {
    this.db.exec('CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)');
    const applied = new Set((this.db.prepare('SELECT version FROM schema_migrations').all() as Row[]).map((r) => Number(r.version)));
    const known = Math.max(0, ...MIGRATIONS.map((m) => m.version));
    const newest = Math.max(0, ...applied);
    if (newest > known) throw new CofferError('STORE_TOO_NEW', `the database has schema version ${newest}, newer than this broker knows (${known}): upgrade Coffer`);
    const done: number[] = [];
    for (const m of MIGRATIONS) {
      if (applied.has(m.version)) continue;
      this.db.transaction(() => {
        for (const sql of [...m.common, ...m.sqlite]) this.db.exec(sql);
        this.db.prepare('INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)').run(m.version, m.name, Date.now());
      })();
      done.push(m.version);
    }
    return done;
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

  async createSession(s: SessionRecord): Promise<void> {
    this.db
      .prepare('INSERT INTO sessions (id, tee, version, nonce, hash_alg, state, created_at, nonce_expires_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)')
      .run(s.id, s.tee, s.version, s.nonce, s.hashAlg, s.state, s.createdAt, s.nonceExpiresAt, s.expiresAt);
  }

  async getSession(id: string): Promise<SessionRecord | undefined> {
    const r = this.db.prepare('SELECT * FROM sessions WHERE id = ?').get(id) as Row | undefined;
    return r ? sessionFrom(r) : undefined;
  }

  async consumeNonce(id: string, at: number): Promise<boolean> {
    const r = this.db.prepare("UPDATE sessions SET state = 'consumed', nonce_used_at = ? WHERE id = ? AND state = 'pending' AND nonce_expires_at > ?").run(at, id, at);
    return r.changes === 1;
  }

  async completeAttestation(id: string, o: AttestationOutcome, audit?: AuditInput): Promise<'ok' | 'evidence-reused' | 'state'> {
    const tx = this.db.transaction((): 'ok' | 'evidence-reused' => {
      const seen = this.db.prepare('INSERT INTO evidence_seen (digest, session_id, seen_at) VALUES (?, ?, ?) ON CONFLICT (digest) DO NOTHING').run(o.evidenceDigest, id, o.attestedAt);
      if (seen.changes !== 1) return 'evidence-reused';
      const r = this.db
        .prepare(
          "UPDATE sessions SET state = 'attested', attested_at = ?, expires_at = ?, tee_pubkey = ?, tee_pubkey_jkt = ?, binding = ?, evidence_digest = ?, claims = ?, token_id = ? WHERE id = ? AND state = 'consumed'",
        )
        .run(o.attestedAt, o.expiresAt, o.teePubKey, o.teePubKeyJkt, o.binding, o.evidenceDigest, o.claims, o.tokenId, id);
      // Throwing rolls back the evidence digest recorded above.
      if (r.changes !== 1) throw new StateConflict();
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

  async purgeExpired(before: number, evidenceBefore: number): Promise<number> {
    return this.db.transaction(() => {
      const a = this.db.prepare('DELETE FROM sessions WHERE expires_at < ?').run(before).changes;
      const b = this.db.prepare('DELETE FROM evidence_seen WHERE seen_at < ?').run(evidenceBefore).changes;
      return a + b;
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
}

class StateConflict extends Error {}
