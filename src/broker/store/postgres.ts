import pg from 'pg';
import { CofferError, inputError } from '../../errors.js';
import { MIGRATIONS } from './migrations.js';
import {
  ATTESTATION_SUMMARY_COLUMNS,
  attestationFrom,
  attestationWhere,
  auditFrom,
  consoleSessionFrom,
  kekFrom,
  policyFrom,
  referenceValuesFrom,
  releaseFrom,
  secretMetaFrom,
  sessionFrom,
  tokenFrom,
  trustedKeyFrom,
  volumeFrom,
  volumeMetaFrom,
  UNVERIFIED_REFUSAL,
  JUNK_FIRST,
} from './sqlite.js';
import type {
  AttestationOutcome,
  AttestationQuery,
  AttestationRecord,
  AttestationSummary,
  ConsoleSessionRecord,
  KekRecord,
  ReferenceValuesRecord,
  TrustPurpose,
  TrustedKeyRecord,
  VolumeMeta,
  VolumeRecord,
  VolumeRekey,
  AuditInput,
  AuditQuery,
  AuditRecord,
  PolicyRecord,
  ReleaseRecord,
  RetentionPurge,
  RetentionPurged,
  SecretMeta,
  SecretRecord,
  SessionRecord,
  Store,
  TokenRecord,
} from './types.js';

type Row = Record<string, unknown>;

/** pg_try_advisory_xact_lock key of the retention pass (purgeRetention): an arbitrary constant. */
const RETENTION_LOCK = '7309475210935108930';
type Queryable = Pick<pg.PoolClient, 'query'>;

/**
 * Key of the advisory lock that serialises migrations: replicas started together queue on it, and
 * the second finds the schema already migrated. Arbitrary but fixed ("Coffer" in ASCII).
 */
const MIGRATION_LOCK = '73950004879730';

export interface PostgresOptions {
  /** Connections in the pool (default 10). */
  max?: number;
  /** How long to wait for a connection before the store counts as unreachable (default 5 s). */
  connectTimeoutMs?: number;
  /** Server-side limit for one statement (default 30 s). */
  statementTimeoutMs?: number;
}

/** True for the URL forms the PostgreSQL store accepts. */
export function isPostgresUrl(spec: string): boolean {
  return /^postgres(?:ql)?:\/\//i.test(spec);
}

/** The URL without its password or query string (which may carry one): safe for logs and errors. */
export function redactPostgresUrl(url: string): string {
  try {
    const u = new URL(url);
    const user = u.username ? `${decodeURIComponent(u.username)}@` : '';
    return `${u.protocol}//${user}${u.host}${u.pathname}`;
  } catch {
    return 'postgres://(unparseable URL)';
  }
}

/** Whether the URL itself carries a password (in the user info or as ?password=). */
export function urlHasPassword(url: string): boolean {
  try {
    const u = new URL(url);
    return u.password !== '' || u.searchParams.has('password');
  } catch {
    return /:[^/@]*@/.test(url);
  }
}

function passwordsOf(url: string, env: NodeJS.ProcessEnv): string[] {
  const out: string[] = [];
  try {
    const u = new URL(url);
    if (u.password) out.push(u.password, decodeURIComponent(u.password));
    const q = u.searchParams.get('password');
    if (q) out.push(q);
  } catch {
    // An unparseable URL is refused before any connection is tried.
  }
  if (env.PGPASSWORD) out.push(env.PGPASSWORD);
  return out.filter((p) => p.length > 0);
}

/** A driver error as one line, with any password there might be in it replaced. */
function describe(e: unknown, secrets: readonly string[]): string {
  const err = e as { code?: string; message?: string; errors?: { code?: string }[] };
  // AggregateError (both ::1 and 127.0.0.1 refused) carries the codes in its members.
  const code = err.code ?? err.errors?.[0]?.code;
  let msg = err.message || code || 'unknown error';
  if (code && !msg.includes(code)) msg = `${code}: ${msg}`;
  for (const s of secrets) msg = msg.split(s).join('***');
  return msg.replace(/\s+/g, ' ').slice(0, 300);
}

/** Thrown inside a transaction to roll it back and return `value` (an expected outcome, not an error). */
class Rollback<T> extends Error {
  constructor(readonly value: T) {
    super('rollback');
  }
}

/** Numbers the `?` placeholders of portable SQL ($1, $2, ...); none of it has a `?` in a literal. */
function numbered(sql: string): string {
  let n = 0;
  return sql.replace(/\?/g, () => `$${++n}`);
}

/** SQL condition: `col` is the prefix or lies under `prefix/`, compared exactly (see sqlite.ts). */
function under(col: string, args: unknown[], prefix: string): string {
  args.push(prefix, `${prefix}/`);
  const a = args.length - 1;
  const b = args.length;
  return `(${col} = $${a} OR substr(${col}, 1, length($${b})) = $${b})`;
}

/**
 * The scale-out store: several broker replicas on one PostgreSQL database (pg Pool). Same schema
 * and semantics as SqliteStore. Races between processes are decided by the database: a nonce is
 * consumed by one conditional UPDATE, evidence and releases by unique keys inside the transaction
 * that writes the audit record, under READ COMMITTED (a second writer waits for the first's
 * commit and then sees its row).
 */
export class PostgresStore implements Store {
  readonly kind = 'postgres';
  /** The URL without credentials. */
  readonly url: string;
  private readonly pool: pg.Pool;
  private readonly secrets: readonly string[];
  private closed = false;

  private constructor(url: string, pool: pg.Pool, secrets: readonly string[]) {
    this.url = url;
    this.pool = pool;
    this.secrets = secrets;
  }

  /** Connects (failing fast with STORE_UNAVAILABLE) and applies pending migrations under the lock. */
  static async open(url: string, o: PostgresOptions = {}, env: NodeJS.ProcessEnv = process.env): Promise<PostgresStore> {
    if (!isPostgresUrl(url)) throw inputError('STORE_BAD_URL', 'a PostgreSQL store URL starts with postgres:// or postgresql://');
    const shown = redactPostgresUrl(url);
    const secrets = passwordsOf(url, env);
    let pool: pg.Pool;
    try {
      pool = new pg.Pool({
        connectionString: url,
        max: o.max ?? 10,
        connectionTimeoutMillis: o.connectTimeoutMs ?? 5000,
        idleTimeoutMillis: 30_000,
        statement_timeout: o.statementTimeoutMs ?? 30_000,
        application_name: 'coffer-broker',
      });
    } catch (e) {
      throw inputError('STORE_BAD_URL', `cannot use the PostgreSQL store ${shown}: ${describe(e, secrets)}`);
    }
    // An idle connection the server drops emits here; unhandled, it would end the process. The
    // next query gets a fresh connection or a clear error.
    pool.on('error', () => undefined);
    const store = new PostgresStore(shown, pool, secrets);
    try {
      await pool.query('SELECT 1');
    } catch (e) {
      await store.close();
      throw inputError('STORE_UNAVAILABLE', `cannot reach the PostgreSQL store ${shown}: ${describe(e, secrets)}`);
    }
    try {
      await store.migrate();
    } catch (e) {
      await store.close();
      if (e instanceof CofferError) throw e;
      throw new CofferError('STORE_MIGRATION_FAILED', `cannot migrate the PostgreSQL store ${shown}: ${describe(e, secrets)}`);
    }
    return store;
  }

  private async tx<T>(fn: (c: pg.PoolClient) => Promise<T>): Promise<T> {
    const c = await this.pool.connect();
    let broken: Error | undefined;
    // A connection lost mid-transaction fails the pending query; the event must not end the process.
    const onError = (e: Error) => {
      broken = e;
    };
    c.on('error', onError);
    try {
      await c.query('BEGIN');
      const out = await fn(c);
      await c.query('COMMIT');
      return out;
    } catch (e) {
      try {
        await c.query('ROLLBACK');
      } catch (r) {
        // The connection is unusable: destroy it rather than hand it to the next caller.
        broken = r as Error;
      }
      if (e instanceof Rollback) return e.value as T;
      throw e;
    } finally {
      c.off('error', onError);
      c.release(broken);
    }
  }

  async migrate(): Promise<number[]> {
    return this.tx(async (c) => {
      // Transaction-scoped: released by COMMIT or ROLLBACK, even if this process dies.
      await c.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK]);
      // Created only when missing: CREATE … IF NOT EXISTS still needs the CREATE privilege, which
      // a replica running as a role with only SELECT, INSERT, UPDATE, DELETE does not have.
      if ((await c.query("SELECT to_regclass('schema_migrations') IS NULL AS missing")).rows[0]?.missing === true) {
        await c.query('CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)');
      }
      const applied = new Set((await c.query('SELECT version FROM schema_migrations')).rows.map((r: Row) => Number(r.version)));
      const known = Math.max(0, ...MIGRATIONS.map((m) => m.version));
      const newest = Math.max(0, ...applied);
      if (newest > known) throw new CofferError('STORE_TOO_NEW', `the database has schema version ${newest}, newer than this broker knows (${known}): upgrade Coffer`);
      const done: number[] = [];
      // One transaction for all pending migrations: PostgreSQL DDL is transactional, so a failure
      // leaves the schema as it was.
      for (const m of [...MIGRATIONS].sort((a, b) => a.version - b.version)) {
        if (applied.has(m.version)) continue;
        for (const sql of [...m.common.map((s) => s.replace(/\bBLOB\b/g, 'BYTEA')), ...m.postgres]) {
          try {
            await c.query(sql);
          } catch (e) {
            throw new CofferError('STORE_MIGRATION_FAILED', `migration ${m.version} (${m.name}) failed: ${describe(e, this.secrets)}`);
          }
        }
        await c.query('INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)', [m.version, m.name, Date.now()]);
        done.push(m.version);
      }
      return done;
    });
  }

  async schemaVersion(): Promise<number> {
    const r = await this.pool.query('SELECT MAX(version) AS v FROM schema_migrations');
    return Number((r.rows[0] as Row | undefined)?.v ?? 0);
  }

  async ping(): Promise<boolean> {
    try {
      return Number(((await this.pool.query('SELECT 1 AS one')).rows[0] as Row).one) === 1;
    } catch {
      return false;
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.pool.end();
  }

  async createSession(s: SessionRecord, audit?: AuditInput): Promise<void> {
    const insert = (c: Queryable) =>
      c.query('INSERT INTO sessions (id, tee, version, nonce, hash_alg, state, created_at, nonce_expires_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)', [
        s.id,
        s.tee,
        s.version,
        s.nonce,
        s.hashAlg,
        s.state,
        s.createdAt,
        s.nonceExpiresAt,
        s.expiresAt,
      ]);
    if (!audit) {
      await insert(this.pool);
      return;
    }
    await this.changeAudited(async (c) => (await insert(c)).rowCount === 1, audit);
  }

  async getSession(id: string): Promise<SessionRecord | undefined> {
    const r = (await this.pool.query('SELECT * FROM sessions WHERE id = $1', [id])).rows[0] as Row | undefined;
    return r ? sessionFrom(r) : undefined;
  }

  async consumeNonce(id: string, at: number): Promise<boolean> {
    return burnNonce(this.pool, id, at);
  }

  async completeAttestation(id: string, o: AttestationOutcome, audit?: AuditInput, opts: { consumeNonceAt?: number; attestation?: AttestationRecord } = {}): Promise<'ok' | 'evidence-reused' | 'state'> {
    return this.tx(async (c) => {
      const seen = await c.query('INSERT INTO evidence_seen (digest, session_id, seen_at) VALUES ($1, $2, $3) ON CONFLICT (digest) DO NOTHING', [o.evidenceDigest, id, o.attestedAt]);
      if (seen.rowCount !== 1) throw new Rollback('evidence-reused' as const);
      const set = 'attested_at = $1, expires_at = $2, tee_pubkey = $3, tee_pubkey_jkt = $4, binding = $5, evidence_digest = $6, claims = $7, token_id = $8';
      const values = [o.attestedAt, o.expiresAt, o.teePubKey, o.teePubKeyJkt, o.binding, o.evidenceDigest, o.claims, o.tokenId, id];
      const at = opts.consumeNonceAt;
      // The nonce consumed by the statement that attests: the same condition (and the same
      // row-lock race) as consumeNonce.
      const r =
        at === undefined
          ? await c.query(`UPDATE sessions SET state = 'attested', ${set} WHERE id = $9 AND state = 'consumed'`, values)
          : await c.query(`UPDATE sessions SET state = 'attested', nonce_used_at = $10, ${set} WHERE id = $9 AND state = 'pending' AND nonce_expires_at > $10`, [...values, at]);
      // Rolls back the evidence digest recorded above.
      if (r.rowCount !== 1) throw new Rollback('state' as const);
      if (opts.attestation) await insertAttestationBestEffort(c, opts.attestation);
      // Last: see insertAudit.
      if (audit) await insertAudit(c, audit);
      return 'ok' as const;
    });
  }

  async refuseAttestation(audit: AuditInput, attestation?: AttestationRecord, burn?: { sessionId: string; at: number }): Promise<boolean> {
    return this.tx(async (c) => {
      // Rolls back: a nonce another attempt used is not refused in this one's name.
      if (burn && !(await burnNonce(c, burn.sessionId, burn.at))) throw new Rollback(false);
      if (attestation) await insertAttestationBestEffort(c, attestation);
      await insertAudit(c, audit);
      return true;
    });
  }

  async purgeExpired(before: number, evidenceBefore: number): Promise<number> {
    return this.tx(async (c) => {
      const a = (await c.query('DELETE FROM sessions WHERE expires_at < $1', [before])).rowCount ?? 0;
      const b = (await c.query('DELETE FROM evidence_seen WHERE seen_at < $1', [evidenceBefore])).rowCount ?? 0;
      return a + b;
    });
  }

  async purgeRetention(r: RetentionPurge): Promise<RetentionPurged> {
    const limit = Math.max(0, Math.floor(r.limit));
    return this.tx(async (c) => {
      // One replica purges at a time; the others skip this pass rather than wait on its row locks.
      // Transaction-scoped: released by COMMIT or ROLLBACK, and by the server if the connection dies.
      const got = (await c.query('SELECT pg_try_advisory_xact_lock($1) AS got', [RETENTION_LOCK])).rows[0] as Row;
      if (got.got !== true) return { sessions: 0, evidence: 0, consoleSessions: 0, attestations: 0, releases: 0, more: false };
      const del = async (sql: string, ...args: number[]): Promise<number> => (await c.query(sql, [...args, limit])).rowCount ?? 0;
      const sessions = await del('DELETE FROM sessions WHERE id IN (SELECT id FROM sessions WHERE expires_at < $1 ORDER BY expires_at LIMIT $2)', r.sessionsBefore);
      const evidence = await del('DELETE FROM evidence_seen WHERE digest IN (SELECT digest FROM evidence_seen WHERE seen_at < $1 ORDER BY seen_at LIMIT $2)', r.evidenceBefore);
      const consoleSessions = await del('DELETE FROM console_sessions WHERE id IN (SELECT id FROM console_sessions WHERE expires_at < $1 ORDER BY expires_at LIMIT $2)', r.consoleSessionsBefore);
      const aged = await del('DELETE FROM attestations WHERE id IN (SELECT id FROM attestations WHERE at < $1 ORDER BY at, id LIMIT $2)', r.attestationsBefore);
      const count = async (where: string): Promise<number> => Number(((await c.query(`SELECT COUNT(*) AS n FROM attestations ${where}`)).rows[0] as Row).n);
      const overUnverified = Math.min(limit, Math.max(0, (await count(UNVERIFIED_REFUSAL)) - Math.max(0, r.maxUnverifiedRefusals)));
      const unverified = overUnverified === 0 ? 0 : ((await c.query(`DELETE FROM attestations WHERE id IN (SELECT id FROM attestations ${UNVERIFIED_REFUSAL} ORDER BY at, id LIMIT $1)`, [overUnverified])).rowCount ?? 0);
      const over = Math.min(limit, Math.max(0, (await count('')) - Math.max(0, r.maxAttestations)));
      // Unverified refusals first: a junk backlog above its own cap (or a cap above the total) must not evict verified records.
      const capped = over === 0 ? 0 : ((await c.query(`DELETE FROM attestations WHERE id IN (SELECT id FROM attestations ORDER BY ${JUNK_FIRST}, at, id LIMIT $1)`, [over])).rowCount ?? 0);
      // A release whose session row is still there may still be asked for again: release-once needs it.
      const releases = await del(
        `DELETE FROM releases WHERE (session_id, resource_path) IN (SELECT r.session_id, r.resource_path FROM releases r
           WHERE r.at < $1 AND NOT EXISTS (SELECT 1 FROM sessions s WHERE s.id = r.session_id) ORDER BY r.at LIMIT $2)`,
        r.releasesBefore,
      );
      const more = limit > 0 && [sessions, evidence, consoleSessions, aged, unverified, capped, releases].some((n) => n >= limit);
      return { sessions, evidence, consoleSessions, attestations: aged + unverified + capped, releases, more };
    });
  }

  async putSecret(s: Omit<SecretRecord, 'version' | 'createdAt' | 'createdBy'> & { createdAt: number; createdBy: string }, audit?: AuditInput): Promise<SecretMeta> {
    return this.tx(async (c) => {
      const r = await c.query(
        `INSERT INTO secrets (path, kek_id, wrapped_key, iv, ciphertext, tag, alg, size, version, created_at, updated_at, created_by, updated_by)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 1, $9, $10, $11, $12)
         ON CONFLICT (path) DO UPDATE SET kek_id = excluded.kek_id, wrapped_key = excluded.wrapped_key, iv = excluded.iv,
           ciphertext = excluded.ciphertext, tag = excluded.tag, alg = excluded.alg, size = excluded.size,
           version = secrets.version + 1, updated_at = excluded.updated_at, updated_by = excluded.updated_by
         RETURNING path, kek_id, alg, size, version, created_at, updated_at, created_by, updated_by`,
        [s.path, s.kekId, s.wrappedKey, s.iv, s.ciphertext, s.tag, s.alg, s.size, s.createdAt, s.updatedAt, s.createdBy, s.updatedBy],
      );
      const m = secretMetaFrom(r.rows[0] as Row);
      if (audit) await insertAudit(c, { ...audit, ...(audit.detail !== undefined ? { detail: audit.detail.replace('{version}', String(m.version)) } : {}) });
      return m;
    });
  }

  async getSecret(path: string): Promise<SecretRecord | undefined> {
    const r = (await this.pool.query('SELECT * FROM secrets WHERE path = $1', [path])).rows[0] as Row | undefined;
    if (!r) return undefined;
    return { ...secretMetaFrom(r), wrappedKey: r.wrapped_key as Buffer, iv: r.iv as Buffer, ciphertext: r.ciphertext as Buffer, tag: r.tag as Buffer };
  }

  async listSecrets(prefix?: string): Promise<SecretMeta[]> {
    const cols = 'path, kek_id, alg, size, version, created_at, updated_at, created_by, updated_by';
    const args: unknown[] = [];
    const where = prefix === undefined ? '' : `WHERE ${under('path', args, prefix)}`;
    // COLLATE "C": byte order, as SQLite sorts, whatever the database's locale.
    return (await this.pool.query(`SELECT ${cols} FROM secrets ${where} ORDER BY path COLLATE "C"`, args)).rows.map((r: Row) => secretMetaFrom(r));
  }

  async deleteSecret(path: string, audit?: AuditInput): Promise<boolean> {
    return this.changeAudited(async (c) => (await c.query('DELETE FROM secrets WHERE path = $1', [path])).rowCount === 1, audit);
  }

  async setPolicy(p: PolicyRecord, audit?: AuditInput): Promise<void> {
    await this.changeAudited(async (c) => {
      await c.query(
        `INSERT INTO policies (prefix, policy_id, policy_version, text, sha256, updated_at, updated_by) VALUES ($1, $2, $3, $4, $5, $6, $7)
         ON CONFLICT (prefix) DO UPDATE SET policy_id = excluded.policy_id, policy_version = excluded.policy_version, text = excluded.text,
           sha256 = excluded.sha256, updated_at = excluded.updated_at, updated_by = excluded.updated_by`,
        [p.prefix, p.policyId, p.policyVersion, p.text, p.sha256, p.updatedAt, p.updatedBy],
      );
      return true;
    }, audit);
  }

  async getPolicy(prefix: string): Promise<PolicyRecord | undefined> {
    const r = (await this.pool.query('SELECT * FROM policies WHERE prefix = $1', [prefix])).rows[0] as Row | undefined;
    return r ? policyFrom(r) : undefined;
  }

  async listPolicies(): Promise<PolicyRecord[]> {
    return (await this.pool.query('SELECT * FROM policies ORDER BY prefix COLLATE "C"')).rows.map((r: Row) => policyFrom(r));
  }

  async deletePolicy(prefix: string, audit?: AuditInput): Promise<boolean> {
    return this.changeAudited(async (c) => (await c.query('DELETE FROM policies WHERE prefix = $1', [prefix])).rowCount === 1, audit);
  }

  async createToken(t: TokenRecord, audit?: AuditInput): Promise<void> {
    await this.changeAudited(
      async (c) => (await c.query('INSERT INTO tokens (id, hash, role, scope, label, created_at) VALUES ($1, $2, $3, $4, $5, $6)', [t.id, t.hash, t.role, t.scope ?? null, t.label ?? null, t.createdAt])).rowCount === 1,
      audit,
    );
  }

  async getToken(id: string): Promise<TokenRecord | undefined> {
    const r = (await this.pool.query('SELECT * FROM tokens WHERE id = $1', [id])).rows[0] as Row | undefined;
    return r ? tokenFrom(r) : undefined;
  }

  async listTokens(): Promise<TokenRecord[]> {
    return (await this.pool.query('SELECT * FROM tokens ORDER BY created_at, id COLLATE "C"')).rows.map((r: Row) => tokenFrom(r));
  }

  async revokeToken(id: string, at: number, audit?: AuditInput): Promise<boolean> {
    return this.changeAudited(async (c) => (await c.query('UPDATE tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL', [at, id])).rowCount === 1, audit);
  }

  async countTokens(): Promise<number> {
    return Number(((await this.pool.query('SELECT COUNT(*) AS n FROM tokens WHERE revoked_at IS NULL')).rows[0] as Row).n);
  }

  /** Runs a change and, when it changed something, appends its audit record, in one transaction. */
  private async changeAudited(change: (c: pg.PoolClient) => Promise<boolean>, audit: AuditInput | undefined): Promise<boolean> {
    return this.tx(async (c) => {
      const changed = await change(c);
      if (changed && audit) await insertAudit(c, audit);
      return changed;
    });
  }

  async appendAudit(r: AuditInput): Promise<void> {
    await insertAudit(this.pool, r);
  }

  async queryAudit(q: AuditQuery): Promise<AuditRecord[]> {
    const where: string[] = [];
    const args: unknown[] = [];
    const eq = (col: string, op: string, v: unknown) => {
      args.push(v);
      where.push(`${col} ${op} $${args.length}`);
    };
    if (q.since !== undefined) eq('at', '>=', q.since);
    if (q.until !== undefined) eq('at', '<', q.until);
    if (q.action !== undefined) eq('action', '=', q.action);
    if (q.verdict !== undefined) eq('verdict', '=', q.verdict);
    if (q.actor !== undefined) eq('actor', '=', q.actor);
    if (q.afterSeq !== undefined) eq('seq', '>', q.afterSeq);
    if (q.scope !== undefined) where.push(under('resource', args, q.scope));
    const limit = Math.min(Math.max(1, q.limit ?? 100), 1000);
    const sql = `SELECT * FROM audit ${where.length > 0 ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY seq LIMIT ${limit}`;
    return (await this.pool.query(sql, args)).rows.map((r: Row) => auditFrom(r));
  }

  async recordRelease(r: ReleaseRecord, audit?: AuditInput): Promise<boolean> {
    return this.changeAudited(
      async (c) =>
        (await c.query('INSERT INTO releases (session_id, resource_path, at, evidence_digest) VALUES ($1, $2, $3, $4) ON CONFLICT (session_id, resource_path) DO NOTHING', [r.sessionId, r.resourcePath, r.at, r.evidenceDigest ?? null]))
          .rowCount === 1,
      audit,
    );
  }

  async listReleases(q: { sessionId?: string; limit?: number } = {}): Promise<ReleaseRecord[]> {
    const limit = Math.min(Math.max(1, q.limit ?? 1000), 100_000);
    const r =
      q.sessionId === undefined
        ? await this.pool.query(`SELECT * FROM releases ORDER BY at, session_id COLLATE "C", resource_path COLLATE "C" LIMIT ${limit}`)
        : await this.pool.query(`SELECT * FROM releases WHERE session_id = $1 ORDER BY at, resource_path COLLATE "C" LIMIT ${limit}`, [q.sessionId]);
    return r.rows.map((x: Row) => releaseFrom(x));
  }

  async recordAttestation(r: AttestationRecord): Promise<void> {
    await insertAttestation(this.pool, r);
  }

  async listAttestations(q: AttestationQuery): Promise<AttestationSummary[]> {
    const { where, args } = attestationWhere(q);
    const limit = Math.min(Math.max(1, q.limit ?? 100), 1000);
    return (await this.pool.query(numbered(`SELECT ${ATTESTATION_SUMMARY_COLUMNS} FROM attestations ${where} ORDER BY at DESC, id COLLATE "C" LIMIT ${limit}`), args)).rows.map((r: Row) => attestationFrom(r));
  }

  async recentAttestationClaims(limit: number): Promise<AttestationRecord[]> {
    const n = Math.min(Math.max(1, limit), 1000);
    return (await this.pool.query(`SELECT ${ATTESTATION_SUMMARY_COLUMNS}, claims FROM attestations WHERE claims IS NOT NULL ORDER BY at DESC, id COLLATE "C" LIMIT ${n}`)).rows.map((r: Row) => attestationFrom(r));
  }

  async getAttestation(id: string): Promise<AttestationRecord | undefined> {
    const r = (await this.pool.query('SELECT * FROM attestations WHERE id = $1', [id])).rows[0] as Row | undefined;
    return r ? attestationFrom(r) : undefined;
  }

  async createConsoleSession(s: ConsoleSessionRecord, audit?: AuditInput): Promise<void> {
    await this.changeAudited(async (c) => (await c.query('INSERT INTO console_sessions (id, token_id, created_at, expires_at) VALUES ($1, $2, $3, $4)', [s.id, s.tokenId, s.createdAt, s.expiresAt])).rowCount === 1, audit);
  }

  async getConsoleSession(id: string): Promise<ConsoleSessionRecord | undefined> {
    const r = (await this.pool.query('SELECT * FROM console_sessions WHERE id = $1', [id])).rows[0] as Row | undefined;
    return r ? consoleSessionFrom(r) : undefined;
  }

  async deleteConsoleSession(id: string, audit?: AuditInput): Promise<boolean> {
    return this.changeAudited(async (c) => (await c.query('DELETE FROM console_sessions WHERE id = $1', [id])).rowCount === 1, audit);
  }

  async purgeConsoleSessions(before: number): Promise<number> {
    return (await this.pool.query('DELETE FROM console_sessions WHERE expires_at < $1', [before])).rowCount ?? 0;
  }

  async createVolume(v: VolumeRecord, audit?: AuditInput): Promise<boolean> {
    return this.changeAudited(
      async (c) =>
        (
          await c.query(
            `INSERT INTO volumes (id, label, identity, policy_text, policy_sha256, kek_id, wrapped_key, iv, ciphertext, tag, alg, key_version, state, created_at, created_by, updated_at, updated_by)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17) ON CONFLICT (id) DO NOTHING`,
            [v.id, v.label ?? null, v.identity, v.policyText, v.policySha256, v.kekId, v.wrappedKey, v.iv, v.ciphertext, v.tag, v.alg, v.keyVersion, v.state, v.createdAt, v.createdBy, v.updatedAt, v.updatedBy],
          )
        ).rowCount === 1,
      audit,
    );
  }

  async rekeyVolume(id: string, r: VolumeRekey, audit?: AuditInput): Promise<VolumeMeta | undefined> {
    return this.tx(async (c) => {
      const u = await c.query(
        `UPDATE volumes SET identity = $1, policy_text = $2, policy_sha256 = $3, kek_id = $4, wrapped_key = $5, iv = $6, ciphertext = $7, tag = $8, alg = $9,
           label = COALESCE($10, label), key_version = key_version + 1, initialized_at = NULL, updated_at = $11, updated_by = $12 WHERE id = $13 AND state = 'active'
         RETURNING id, label, identity, policy_text, policy_sha256, kek_id, alg, key_version, state, created_at, created_by, updated_at, updated_by, revoked_at, revoked_by, initialized_at`,
        [r.identity, r.policyText, r.policySha256, r.kekId, r.wrappedKey, r.iv, r.ciphertext, r.tag, r.alg, r.label ?? null, r.updatedAt, r.updatedBy, id],
      );
      if (u.rowCount !== 1) return undefined;
      const m = volumeMetaFrom(u.rows[0] as Row);
      if (audit) await insertAudit(c, { ...audit, ...(audit.detail !== undefined ? { detail: audit.detail.replace('{version}', String(m.keyVersion)) } : {}) });
      return m;
    });
  }

  async getVolume(id: string): Promise<VolumeRecord | undefined> {
    const r = (await this.pool.query('SELECT * FROM volumes WHERE id = $1', [id])).rows[0] as Row | undefined;
    return r ? volumeFrom(r) : undefined;
  }

  async listVolumes(): Promise<VolumeMeta[]> {
    const cols = 'id, label, identity, policy_text, policy_sha256, kek_id, alg, key_version, state, created_at, created_by, updated_at, updated_by, revoked_at, revoked_by, initialized_at';
    return (await this.pool.query(`SELECT ${cols} FROM volumes ORDER BY id COLLATE "C"`)).rows.map((r: Row) => volumeMetaFrom(r));
  }

  async markVolumeInitialized(id: string, keyVersion: number, at: number, audit?: AuditInput): Promise<boolean> {
    return this.changeAudited(
      async (c) => (await c.query("UPDATE volumes SET initialized_at = $1 WHERE id = $2 AND key_version = $3 AND state = 'active' AND initialized_at IS NULL", [at, id, keyVersion])).rowCount === 1,
      audit,
    );
  }

  async revokeVolume(id: string, at: number, by: string, audit?: AuditInput): Promise<boolean> {
    const empty = Buffer.alloc(0);
    return this.changeAudited(
      async (c) =>
        (
          await c.query("UPDATE volumes SET state = 'revoked', wrapped_key = $1, iv = $2, ciphertext = $3, tag = $4, revoked_at = $5, revoked_by = $6, updated_at = $5, updated_by = $6 WHERE id = $7 AND state = 'active'", [
            empty,
            empty,
            empty,
            empty,
            at,
            by,
            id,
          ])
        ).rowCount === 1,
      audit,
    );
  }

  async putTrustedKey(k: TrustedKeyRecord, audit?: AuditInput): Promise<void> {
    await this.changeAudited(async (c) => {
      await c.query(
        `INSERT INTO trusted_keys (purpose, name, pem, sha256, created_at, created_by) VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (purpose, name) DO UPDATE SET pem = excluded.pem, sha256 = excluded.sha256, created_at = excluded.created_at, created_by = excluded.created_by`,
        [k.purpose, k.name, k.pem, k.sha256, k.createdAt, k.createdBy],
      );
      return true;
    }, audit);
  }

  async listTrustedKeys(purpose?: TrustPurpose): Promise<TrustedKeyRecord[]> {
    const r =
      purpose === undefined
        ? await this.pool.query('SELECT * FROM trusted_keys ORDER BY purpose COLLATE "C", name COLLATE "C"')
        : await this.pool.query('SELECT * FROM trusted_keys WHERE purpose = $1 ORDER BY name COLLATE "C"', [purpose]);
    return r.rows.map((x: Row) => trustedKeyFrom(x));
  }

  async deleteTrustedKey(purpose: TrustPurpose, name: string, audit?: AuditInput): Promise<boolean> {
    return this.changeAudited(async (c) => (await c.query('DELETE FROM trusted_keys WHERE purpose = $1 AND name = $2', [purpose, name])).rowCount === 1, audit);
  }

  async putReferenceValues(r: ReferenceValuesRecord, audit?: AuditInput): Promise<void> {
    await this.changeAudited(async (c) => {
      await c.query(
        `INSERT INTO reference_values (name, image_id, image_version, jws, sha256, signer, updated_at, updated_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
         ON CONFLICT (name) DO UPDATE SET image_id = excluded.image_id, image_version = excluded.image_version, jws = excluded.jws, sha256 = excluded.sha256,
           signer = excluded.signer, updated_at = excluded.updated_at, updated_by = excluded.updated_by`,
        [r.name, r.imageId, r.imageVersion, r.jws, r.sha256, r.signer, r.updatedAt, r.updatedBy],
      );
      return true;
    }, audit);
  }

  async getReferenceValues(name: string): Promise<ReferenceValuesRecord | undefined> {
    const r = (await this.pool.query('SELECT * FROM reference_values WHERE name = $1', [name])).rows[0] as Row | undefined;
    return r ? referenceValuesFrom(r) : undefined;
  }

  async listReferenceValues(): Promise<ReferenceValuesRecord[]> {
    return (await this.pool.query('SELECT * FROM reference_values ORDER BY name COLLATE "C"')).rows.map((r: Row) => referenceValuesFrom(r));
  }

  async deleteReferenceValues(name: string, audit?: AuditInput): Promise<boolean> {
    return this.changeAudited(async (c) => (await c.query('DELETE FROM reference_values WHERE name = $1', [name])).rowCount === 1, audit);
  }

  // ----- KEK registry (migration 4)

  async listKeks(): Promise<KekRecord[]> {
    return (await this.pool.query('SELECT * FROM keks ORDER BY created_at, id COLLATE "C"')).rows.map((r: Row) => kekFrom(r));
  }

  async getKek(id: string): Promise<KekRecord | undefined> {
    const r = (await this.pool.query('SELECT * FROM keks WHERE id = $1', [id])).rows[0] as Row | undefined;
    return r ? kekFrom(r) : undefined;
  }

  /**
   * Changes to the KEK registry queue on a table lock (readers are not blocked): two replicas
   * starting with different KEKs, or two rotations, see each other's result instead of both
   * reading "no current KEK" and one failing on the one-current index.
   */
  private async lockKeks(c: pg.PoolClient): Promise<void> {
    await c.query('LOCK TABLE keks IN SHARE ROW EXCLUSIVE MODE');
  }

  async initKek(k: { id: string; spec: string; at: number }, audit?: AuditInput): Promise<KekRecord> {
    return this.tx(async (c) => {
      await this.lockKeks(c);
      const cur = (await c.query("SELECT * FROM keks WHERE state = 'current'")).rows[0] as Row | undefined;
      if (cur) return kekFrom(cur);
      if ((await c.query("SELECT 1 FROM keks WHERE id = $1 AND state = 'retired'", [k.id])).rowCount) throw new CofferError('KEK_RETIRED', `KEK ${k.id} was retired by a rotation and cannot be used again`);
      const r = await c.query("INSERT INTO keks (id, spec, state, created_at) VALUES ($1, $2, 'current', $3) ON CONFLICT (id) DO UPDATE SET state = 'current', spec = excluded.spec RETURNING *", [k.id, k.spec, k.at]);
      if (audit) await insertAudit(c, audit);
      return kekFrom(r.rows[0] as Row);
    });
  }

  async setCurrentKek(k: { id: string; spec: string; at: number }, audit?: AuditInput): Promise<boolean> {
    return this.tx(async (c) => {
      await this.lockKeks(c);
      const row = (await c.query('SELECT state FROM keks WHERE id = $1', [k.id])).rows[0] as Row | undefined;
      if (row?.state === 'current') return false;
      if (row?.state === 'retired') throw new CofferError('KEK_RETIRED', `KEK ${k.id} was retired by a rotation and cannot be made current again`);
      await c.query("UPDATE keks SET state = 'retiring' WHERE state = 'current'");
      if (row) await c.query("UPDATE keks SET state = 'current', spec = $1 WHERE id = $2", [k.spec, k.id]);
      else await c.query("INSERT INTO keks (id, spec, state, created_at) VALUES ($1, $2, 'current', $3)", [k.id, k.spec, k.at]);
      if (audit) await insertAudit(c, audit);
      return true;
    });
  }

  async rewrapSecret(path: string, from: { kekId: string; wrappedKey: Buffer }, to: { kekId: string; wrappedKey: Buffer }, audit?: AuditInput): Promise<boolean> {
    return this.changeAudited(
      async (c) => (await c.query('UPDATE secrets SET kek_id = $1, wrapped_key = $2 WHERE path = $3 AND kek_id = $4 AND wrapped_key = $5', [to.kekId, to.wrappedKey, path, from.kekId, from.wrappedKey])).rowCount === 1,
      audit,
    );
  }

  async countSecretsByKek(): Promise<Record<string, number>> {
    const out: Record<string, number> = {};
    for (const r of (await this.pool.query('SELECT kek_id, COUNT(*) AS n FROM secrets GROUP BY kek_id')).rows as Row[]) out[String(r.kek_id)] = Number(r.n);
    return out;
  }

  async rewrapVolume(id: string, from: { kekId: string; wrappedKey: Buffer }, to: { kekId: string; wrappedKey: Buffer }, audit?: AuditInput): Promise<boolean> {
    return this.changeAudited(
      async (c) =>
        (await c.query("UPDATE volumes SET kek_id = $1, wrapped_key = $2 WHERE id = $3 AND state = 'active' AND kek_id = $4 AND wrapped_key = $5", [to.kekId, to.wrappedKey, id, from.kekId, from.wrappedKey])).rowCount === 1,
      audit,
    );
  }

  async countVolumesByKek(): Promise<Record<string, number>> {
    const out: Record<string, number> = {};
    for (const r of (await this.pool.query("SELECT kek_id, COUNT(*) AS n FROM volumes WHERE state = 'active' GROUP BY kek_id")).rows as Row[]) out[String(r.kek_id)] = Number(r.n);
    return out;
  }

  async retireKek(id: string, at: number, audit?: AuditInput): Promise<boolean> {
    return this.changeAudited(async (c) => {
      // SHARE conflicts with the ROW EXCLUSIVE of a write: one in flight commits before the check
      // reads, and one that starts later waits and then meets the retired-KEK trigger.
      await c.query('LOCK TABLE secrets, volumes IN SHARE MODE');
      return (
        (
          await c.query(
            "UPDATE keks SET state = 'retired', retired_at = $1 WHERE id = $2 AND state = 'retiring' AND NOT EXISTS (SELECT 1 FROM secrets WHERE kek_id = $2) AND NOT EXISTS (SELECT 1 FROM volumes WHERE kek_id = $2 AND state = 'active')",
            [at, id],
          )
        ).rowCount === 1
      );
    }, audit);
  }
}

/** pending → consumed in one statement: a concurrent UPDATE waits for this one and re-checks `state`, so one wins. */
async function burnNonce(c: Queryable, id: string, at: number): Promise<boolean> {
  const r = await c.query("UPDATE sessions SET state = 'consumed', nonce_used_at = $1 WHERE id = $2 AND state = 'pending' AND nonce_expires_at > $1", [at, id]);
  return r.rowCount === 1;
}

async function insertAttestation(c: Queryable, r: AttestationRecord): Promise<void> {
  await c.query(
    'INSERT INTO attestations (id, at, actor, tee, platform, verdict, policy, rule, problem, detail, evidence_digest, binding, claims, report, remote) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)',
    [r.id, r.at, r.actor, r.tee, r.platform ?? null, r.verdict, r.policy ?? null, r.rule ?? null, r.problem ?? null, r.detail ?? null, r.evidenceDigest ?? null, r.binding ?? null, r.claims ?? null, r.report ?? null, r.remote ?? null],
  );
}

/**
 * The console's record inside a transaction, under a savepoint: it is kept for display only (the
 * audit record is the record of truth), so failing to write it must not abort the transaction and
 * undo the decision it accompanies. Before the audit insert, which stays the last statement.
 */
async function insertAttestationBestEffort(c: Queryable, r: AttestationRecord): Promise<void> {
  await c.query('SAVEPOINT attestation_record');
  try {
    await insertAttestation(c, r);
  } catch {
    // The console misses this attempt; the audit log has it. A failure to roll back to the
    // savepoint (connection lost) fails the audit insert next, and so the transaction.
    await c.query('ROLLBACK TO SAVEPOINT attestation_record').catch(() => undefined);
  }
  // Not released: COMMIT does that, one round trip fewer.
}

/**
 * Key of the advisory lock audit inserts take: held from the insert to the commit, so a record's
 * seq is drawn only after every earlier record is visible. Without it two transactions commit in
 * any order and a reader paging with `after` skips the one that commits second with the lower seq.
 */
const AUDIT_LOCK = '73950004879731';

async function insertAudit(c: Queryable, r: AuditInput): Promise<void> {
  // In the statement itself so that appendAudit (no transaction of its own) is covered too: the
  // CTE runs before the row's identity value is drawn. The audit insert is the last statement of
  // every transaction that writes one, so the lock is held for its commit only and never waits on another.
  await c.query(
    `WITH lock AS (SELECT pg_advisory_xact_lock(${AUDIT_LOCK}))
     INSERT INTO audit (at, actor, action, resource, evidence_digest, verdict, rule, problem, detail, remote)
     SELECT $1::bigint, $2::text, $3::text, $4::text, $5::text, $6::text, $7::text, $8::text, $9::text, $10::text FROM lock`, [
    r.at,
    r.actor,
    r.action,
    r.resource ?? null,
    r.evidenceDigest ?? null,
    r.verdict,
    r.rule ?? null,
    r.problem ?? null,
    r.detail ?? null,
    r.remote ?? null,
  ]);
}
