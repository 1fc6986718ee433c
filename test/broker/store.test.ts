// One Store suite, run against the embedded SQLite store (a temp file) and the PostgreSQL store (a
// fresh database on the CI server, dropped afterwards): every method, the races that must be
// decided atomically across connections (nonce, evidence, release), the audit record's
// transaction, append-only audit, idempotent migrations, and the broker end to end on each,
// with a search of everything at rest for the secret.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, existsSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { flattenedDecrypt, type FlattenedJWE } from 'jose';
import { verifyEar, parseJwks } from '../../src/appraisal/index.js';
import {
  MIGRATIONS,
  PROBLEM_BASE,
  PostgresStore,
  SqliteStore,
  describeStore,
  openStore,
  redactPostgresUrl,
  type AttestationOutcome,
  type AuditInput,
  type SessionRecord,
  type Store,
  type VolumeRecord,
} from '../../src/broker/index.js';
import { CofferError } from '../../src/errors.js';
import { runCli } from '../helpers/cli.js';
import { Attester, MEASUREMENT_A, MEASUREMENT_B, http, policyFor, sessionCookie, startTestBroker } from './helpers.js';
import { dumpAllTables, freshDatabase, type TestDatabase } from './fixtures/pg.js';

const NEWEST = Math.max(...MIGRATIONS.map((m) => m.version));
const T0 = 1_700_000_000_000;

interface Backend {
  name: string;
  /** The spec openStore and the broker take. */
  spec: () => string;
  setup(): Promise<void>;
  teardown(): Promise<void>;
  /** A raw statement that bypasses the store (the test's own connection). */
  raw(sql: string): Promise<void>;
  rows(sql: string): Promise<Record<string, unknown>[]>;
  /** Everything at rest, as bytes to search. */
  atRest(): Promise<Buffer>;
}

function sqliteBackend(): Backend {
  let dir = '';
  const file = () => join(dir, 'store.db');
  const withDb = <T>(fn: (db: Database.Database) => T): T => {
    const db = new Database(file());
    try {
      return fn(db);
    } finally {
      db.close();
    }
  };
  return {
    name: 'sqlite',
    spec: () => file(),
    setup: async () => {
      dir = mkdtempSync(join(tmpdir(), 'coffer-store-'));
    },
    teardown: async () => rmSync(dir, { recursive: true, force: true }),
    raw: async (sql) => withDb((db) => void db.exec(sql)),
    rows: async (sql) => withDb((db) => db.prepare(sql).all() as Record<string, unknown>[]),
    atRest: async () => Buffer.concat(['', '-wal', '-shm'].map((s) => `${file()}${s}`).filter((f) => existsSync(f)).map((f) => readFileSync(f))),
  };
}

function postgresBackend(): Backend {
  let db: TestDatabase | undefined;
  const the = () => {
    if (!db) throw new Error('no test database');
    return db;
  };
  return {
    name: 'postgres',
    spec: () => the().url,
    setup: async () => {
      db = await freshDatabase('store');
    },
    teardown: async () => db?.drop(),
    raw: async (sql) => void (await the().query(sql)),
    rows: async (sql) => the().query(sql),
    atRest: async () => Buffer.from(await dumpAllTables(the()), 'utf8'),
  };
}

const audit = (action: string, extra: Partial<AuditInput> = {}): AuditInput => ({ at: T0, actor: 'cli:test', action, verdict: 'allow', ...extra });
/** An audit record the database refuses (CHECK on verdict): the change it accompanies must roll back. */
const BAD_AUDIT = { at: T0, actor: 'cli:test', action: 'test.bad', verdict: 'maybe' } as unknown as AuditInput;

function session(id: string, over: Partial<SessionRecord> = {}): SessionRecord {
  return { id, tee: 'snp', version: '0.1.0', nonce: `nonce-${id}`, hashAlg: 'sha384', state: 'pending', createdAt: T0, nonceExpiresAt: T0 + 60_000, expiresAt: T0 + 60_000, ...over };
}

function outcome(digest: string, over: Partial<AttestationOutcome> = {}): AttestationOutcome {
  return { attestedAt: T0 + 1, expiresAt: T0 + 600_000, teePubKey: '{"kty":"EC"}', teePubKeyJkt: 'jkt', binding: 'ab'.repeat(48), evidenceDigest: digest, claims: '{}', tokenId: `jti-${digest}`, ...over };
}

const secretInput = (path: string, value: string, at = T0) => ({
  path,
  kekId: 'file:0123456789abcdef',
  wrappedKey: Buffer.from(`wrapped:${value}`),
  iv: Buffer.alloc(12, 1),
  ciphertext: Buffer.from(`ct:${value}`),
  tag: Buffer.alloc(16, 2),
  alg: 'A256GCM',
  size: value.length,
  createdAt: at,
  updatedAt: at,
  createdBy: 'cli:test',
  updatedBy: 'cli:test',
});

function volumeInput(id: string): VolumeRecord {
  return {
    id,
    label: 'data',
    identity: '{"snp":"aa"}',
    policyText: '{}',
    policySha256: '00',
    kekId: 'file:00',
    wrappedKey: Buffer.from('wk'),
    iv: Buffer.alloc(12, 3),
    ciphertext: Buffer.from('ct'),
    tag: Buffer.alloc(16, 4),
    alg: 'A256GCM',
    keyVersion: 1,
    state: 'active',
    createdAt: T0,
    createdBy: 'cli:test',
    updatedAt: T0,
    updatedBy: 'cli:test',
  };
}

async function rejectsCode(p: Promise<unknown>, code: string): Promise<CofferError> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof CofferError, `expected a CofferError ${code}, got ${String(e)}`);
    assert.equal(e.code, code, e.message);
    return e;
  }
  assert.fail(`expected ${code}, nothing was thrown`);
}

function suite(make: () => Backend): void {
  const b = make();
  describe(`Store on ${b.name}`, () => {
    let s: Store;
    let s2: Store;
    before(async () => {
      await b.setup();
      // Two stores opened at once on an empty database: the migrations run once, under the lock.
      [s, s2] = await Promise.all([openStore(b.spec()), openStore(b.spec())]);
    });
    after(async () => {
      await s?.close();
      await s2?.close();
      await b.teardown();
    });

    test('migrations: every version applied once, idempotent on reopen, a newer schema refused', async () => {
      assert.equal(s.kind, b.name);
      assert.equal(await s.schemaVersion(), NEWEST);
      assert.deepEqual(await s.migrate(), []);
      assert.deepEqual(await s2.migrate(), []);
      const again = await openStore(b.spec());
      assert.deepEqual(await again.migrate(), []);
      await again.close();
      const versions = (await b.rows('SELECT version FROM schema_migrations ORDER BY version')).map((r) => Number(r.version));
      assert.deepEqual(versions, MIGRATIONS.map((m) => m.version).sort((x, y) => x - y));
      await b.raw(`INSERT INTO schema_migrations (version, name, applied_at) VALUES (${NEWEST + 1000}, 'from the future', 0)`);
      try {
        await rejectsCode(openStore(b.spec()), 'STORE_TOO_NEW');
      } finally {
        await b.raw(`DELETE FROM schema_migrations WHERE version = ${NEWEST + 1000}`);
      }
      assert.equal(await s.ping(), true);
    });

    test('sessions: create, get, consume the nonce once; expired or unknown nonces are not consumed', async () => {
      await s.createSession(session('s1'));
      assert.deepEqual(await s.getSession('s1'), session('s1'));
      assert.equal(await s.getSession('nope'), undefined);
      assert.equal(await s.consumeNonce('s1', T0 + 10), true);
      assert.equal(await s2.consumeNonce('s1', T0 + 11), false, 'the other connection sees it consumed');
      const got = await s.getSession('s1');
      assert.equal(got?.state, 'consumed');
      assert.equal(got?.nonceUsedAt, T0 + 10);
      await s.createSession(session('s-expired'));
      assert.equal(await s.consumeNonce('s-expired', T0 + 60_000), false, 'at the expiry instant the nonce is dead');
      assert.equal((await s.getSession('s-expired'))?.state, 'pending');
      assert.equal(await s.consumeNonce('unknown', T0), false);
      await assert.rejects(s.createSession(session('s1')), 'a session id is unique');
    });

    test('consumeNonce is atomic across connections: exactly one of many concurrent attempts wins', async () => {
      const ids = Array.from({ length: 8 }, (_, i) => `race-${i}`);
      for (const id of ids) await s.createSession(session(id));
      const results = await Promise.all(ids.flatMap((id) => Array.from({ length: 6 }, (_, k) => (k % 2 === 0 ? s : s2).consumeNonce(id, T0 + 5))));
      for (let i = 0; i < ids.length; i++) assert.equal(results.slice(i * 6, i * 6 + 6).filter(Boolean).length, 1, `session ${ids[i]}`);
    });

    test('completeAttestation: attested with its audit record; evidence reuse and wrong state change nothing', async () => {
      for (const id of ['a1', 'a2', 'a3']) {
        await s.createSession(session(id));
        if (id !== 'a3') assert.equal(await s.consumeNonce(id, T0), true);
      }
      assert.equal(await s.completeAttestation('a1', outcome('d1'), audit('test.attest', { resource: 'a1' })), 'ok');
      const a1 = await s.getSession('a1');
      assert.equal(a1?.state, 'attested');
      assert.equal(a1?.evidenceDigest, 'd1');
      assert.equal(a1?.tokenId, 'jti-d1');
      assert.equal(a1?.expiresAt, T0 + 600_000);
      assert.equal((await s.queryAudit({ action: 'test.attest' })).length, 1);
      assert.equal(await s2.completeAttestation('a2', outcome('d1'), audit('test.attest')), 'evidence-reused');
      assert.equal((await s.getSession('a2'))?.state, 'consumed');
      // a3 is still pending: refused, and its digest is not remembered.
      assert.equal(await s.completeAttestation('a3', outcome('d3'), audit('test.attest')), 'state');
      assert.equal(await s.completeAttestation('a2', outcome('d3'), audit('test.attest')), 'ok', 'd3 was rolled back with the refused attestation');
      assert.equal(await s.completeAttestation('a2', outcome('d4')), 'state', 'attested is final');
      assert.equal((await s.queryAudit({ action: 'test.attest' })).length, 2, 'only the two successes were audited');
      // An audit record the database refuses takes the attestation down with it.
      await s.createSession(session('a4'));
      await s.consumeNonce('a4', T0);
      await assert.rejects(s.completeAttestation('a4', outcome('d5'), BAD_AUDIT));
      assert.equal((await s.getSession('a4'))?.state, 'consumed');
      assert.equal(await s.completeAttestation('a4', outcome('d5')), 'ok', 'the digest was not kept either');
    });

    test('evidence reuse is decided atomically: the same digest raced on two connections attests one session', async () => {
      const pairs = Array.from({ length: 6 }, (_, i) => [`ev-${i}-x`, `ev-${i}-y`] as const);
      for (const [x, y] of pairs) {
        for (const id of [x, y]) {
          await s.createSession(session(id));
          await s.consumeNonce(id, T0);
        }
      }
      const results = await Promise.all(pairs.flatMap(([x, y], i) => [s.completeAttestation(x, outcome(`race-d${i}`), audit('test.race')), s2.completeAttestation(y, outcome(`race-d${i}`), audit('test.race'))]));
      for (let i = 0; i < pairs.length; i++) assert.deepEqual([results[2 * i], results[2 * i + 1]].sort(), ['evidence-reused', 'ok']);
      assert.equal((await s.queryAudit({ action: 'test.race' })).length, pairs.length);
    });

    test('releases: recorded once per session and resource, with the audit record, atomically across connections', async () => {
      const r = { sessionId: 'rel-1', resourcePath: 'team-a/key/disk', at: T0, evidenceDigest: 'd1' };
      assert.equal(await s.recordRelease(r, audit('test.release', { resource: r.resourcePath })), true);
      assert.equal(await s2.recordRelease({ ...r, at: T0 + 1 }, audit('test.release')), false);
      assert.equal(await s.recordRelease({ ...r, resourcePath: 'team-a/key/other' }), true, 'another resource of the session');
      assert.equal(await s.recordRelease({ ...r, sessionId: 'rel-2' }), true, 'the same resource to another session');
      assert.equal((await s.queryAudit({ action: 'test.release' })).length, 1, 'the refused release wrote no allow record');
      assert.deepEqual(await s.listReleases({ sessionId: 'rel-1' }), [
        { sessionId: 'rel-1', resourcePath: 'team-a/key/disk', at: T0, evidenceDigest: 'd1' },
        { sessionId: 'rel-1', resourcePath: 'team-a/key/other', at: T0, evidenceDigest: 'd1' },
      ]);
      await assert.rejects(s.recordRelease({ ...r, sessionId: 'rel-3' }, BAD_AUDIT));
      assert.deepEqual(await s.listReleases({ sessionId: 'rel-3' }), [], 'no release without its audit record');
      const raced = await Promise.all(Array.from({ length: 10 }, (_, i) => (i % 2 ? s : s2).recordRelease({ sessionId: 'rel-race', resourcePath: 'x/y/z', at: T0 + i }, audit('test.release.race'))));
      assert.equal(raced.filter(Boolean).length, 1);
      assert.equal((await s.queryAudit({ action: 'test.release.race' })).length, 1);
      assert.equal((await s.listReleases()).filter((x) => x.sessionId === 'rel-race').length, 1);
    });

    test('purgeExpired deletes ended sessions and old evidence digests only', async () => {
      await s.createSession(session('old', { expiresAt: 5, nonceExpiresAt: 5, createdAt: 1 }));
      await s.createSession(session('new', { expiresAt: T0 * 2 }));
      const n = await s.purgeExpired(10, 0);
      assert.ok(n >= 1);
      assert.equal(await s.getSession('old'), undefined);
      assert.ok(await s.getSession('new'));
      // d1 was seen at T0 + 1: purging digests seen before T0 + 2 forgets it, so it is accepted again.
      await s.createSession(session('after-purge'));
      await s.consumeNonce('after-purge', T0);
      assert.equal(await s.completeAttestation('after-purge', outcome('d1')), 'evidence-reused');
      await s.purgeExpired(0, T0 + 2);
      assert.equal(await s.completeAttestation('after-purge', outcome('d1')), 'ok');
    });

    test('secrets: versions, metadata, exact prefix listing, audited delete; a refused audit record stores nothing', async () => {
      const m1 = await s.putSecret(secretInput('team-a/key/disk', 'one'), audit('test.put', { detail: 'version {version}' }));
      assert.equal(m1.version, 1);
      const m2 = await s2.putSecret(secretInput('team-a/key/disk', 'two!', T0 + 5), audit('test.put', { detail: 'version {version}' }));
      assert.equal(m2.version, 2);
      assert.equal(m2.createdAt, T0);
      assert.equal(m2.updatedAt, T0 + 5);
      assert.equal(m2.size, 4);
      assert.deepEqual((await s.queryAudit({ action: 'test.put' })).map((r) => r.detail), ['version 1', 'version 2']);
      const got = await s.getSecret('team-a/key/disk');
      assert.ok(got);
      assert.ok(Buffer.isBuffer(got.ciphertext));
      assert.deepEqual(got.ciphertext, Buffer.from('ct:two!'));
      assert.deepEqual(got.wrappedKey, Buffer.from('wrapped:two!'));
      assert.deepEqual(got.iv, Buffer.alloc(12, 1));
      assert.deepEqual(got.tag, Buffer.alloc(16, 2));
      assert.equal(await s.getSecret('team-a/key/none'), undefined);
      for (const p of ['team-a/key/b', 'team-ab/key/x', 'TEAM-A/key/y', 'team/key/z']) await s.putSecret(secretInput(p, 'v'));
      assert.deepEqual((await s.listSecrets('team-a')).map((x) => x.path), ['team-a/key/b', 'team-a/key/disk']);
      assert.deepEqual((await s.listSecrets('team-a/key/disk')).map((x) => x.path), ['team-a/key/disk']);
      assert.deepEqual((await s.listSecrets('team')).map((x) => x.path), ['team/key/z'], 'segment-wise, case-sensitive');
      assert.deepEqual((await s.listSecrets()).map((x) => x.path), ['TEAM-A/key/y', 'team-a/key/b', 'team-a/key/disk', 'team-ab/key/x', 'team/key/z'], 'byte order');
      const meta = (await s.listSecrets('team-a/key/disk'))[0] as unknown as Record<string, unknown>;
      for (const k of ['wrappedKey', 'iv', 'ciphertext', 'tag']) assert.equal(meta[k], undefined, `metadata has no ${k}`);
      await assert.rejects(s.putSecret(secretInput('team-a/key/unaudited', 'x'), BAD_AUDIT));
      assert.equal(await s.getSecret('team-a/key/unaudited'), undefined);
      await assert.rejects(s.putSecret(secretInput('team-a/key/disk', 'three'), BAD_AUDIT));
      assert.equal((await s.getSecret('team-a/key/disk'))?.version, 2, 'the update was rolled back');
      await assert.rejects(s.deleteSecret('team-a/key/b', BAD_AUDIT));
      assert.ok(await s.getSecret('team-a/key/b'), 'the delete was rolled back');
      assert.equal(await s.deleteSecret('team-a/key/b', audit('test.delete')), true);
      assert.equal(await s.deleteSecret('team-a/key/b', audit('test.delete')), false);
      assert.equal((await s.queryAudit({ action: 'test.delete' })).length, 1, 'audited only when deleted');
    });

    test('policies: set (replace), get, list, delete, each change with its audit record', async () => {
      const p = { prefix: 'team-a', policyId: 'a', policyVersion: '1', text: 'id: a\n', sha256: '00', updatedAt: T0, updatedBy: 'cli:test' };
      await s.setPolicy(p, audit('test.policy'));
      await s2.setPolicy({ ...p, policyVersion: '2', text: 'id: a\nversion: 2\n' }, audit('test.policy'));
      assert.equal((await s.getPolicy('team-a'))?.policyVersion, '2');
      await s.setPolicy({ ...p, prefix: 'TEAM' }, audit('test.policy'));
      assert.deepEqual((await s.listPolicies()).map((x) => x.prefix), ['TEAM', 'team-a']);
      await assert.rejects(s.setPolicy({ ...p, prefix: 'unaudited' }, BAD_AUDIT));
      assert.equal(await s.getPolicy('unaudited'), undefined);
      assert.equal(await s.deletePolicy('TEAM', audit('test.policy')), true);
      assert.equal(await s.deletePolicy('TEAM', audit('test.policy')), false);
      assert.equal(await s.getPolicy('TEAM'), undefined);
      assert.equal((await s.queryAudit({ action: 'test.policy' })).length, 4);
    });

    test('tokens: create, get, list, revoke once, count the active ones; ids are unique', async () => {
      const before = await s.countTokens();
      const t = { id: '0123456789abcdef', hash: 'ff'.repeat(32), role: 'auditor' as const, scope: 'team-a', label: 'ci', createdAt: T0 };
      await s.createToken(t, audit('test.token'));
      assert.deepEqual(await s2.getToken(t.id), t);
      await assert.rejects(s.createToken(t), 'duplicate id');
      await assert.rejects(s.createToken({ ...t, id: 'fedcba9876543210', role: 'root' as never }), 'the role is checked by the schema');
      await assert.rejects(s.createToken({ ...t, id: 'aaaaaaaaaaaaaaaa' }, BAD_AUDIT));
      assert.equal(await s.getToken('aaaaaaaaaaaaaaaa'), undefined);
      await s.createToken({ id: '1111111111111111', hash: 'ee'.repeat(32), role: 'admin', createdAt: T0 + 1 });
      assert.equal(await s.countTokens(), before + 2);
      assert.deepEqual((await s.listTokens()).slice(-2).map((x) => x.id), [t.id, '1111111111111111']);
      assert.equal(await s.revokeToken(t.id, T0 + 9, audit('test.token')), true);
      assert.equal(await s2.revokeToken(t.id, T0 + 10, audit('test.token')), false);
      assert.equal((await s.getToken(t.id))?.revokedAt, T0 + 9);
      assert.equal(await s.countTokens(), before + 1);
      assert.equal((await s.queryAudit({ action: 'test.token' })).length, 2);
    });

    test('audit: queries by time, action, verdict, actor, page and scope; append-only against UPDATE and DELETE', async () => {
      const base = 2_000_000_000_000;
      const recs: AuditInput[] = [
        { at: base, actor: 'token:aa', action: 'q.one', verdict: 'allow', resource: 'team-a/key/disk', evidenceDigest: 'ed', rule: 'r@1', detail: 'd', remote: '127.0.0.1' },
        { at: base + 1, actor: 'token:bb', action: 'q.one', verdict: 'deny', resource: 'team-a', problem: 'forbidden' },
        { at: base + 2, actor: 'token:aa', action: 'q.two', verdict: 'allow', resource: 'team-ab/key/x' },
        { at: base + 3, actor: 'anonymous', action: 'q.two', verdict: 'deny' },
      ];
      for (const r of recs) await (r.at % 2 ? s2 : s).appendAudit(r);
      const all = await s.queryAudit({ since: base, limit: 1000 });
      assert.equal(all.length, 4);
      assert.deepEqual(
        all.map(({ seq: _s, ...rest }) => rest),
        recs,
      );
      assert.ok(all.every((r, i) => i === 0 || r.seq > (all[i - 1] as { seq: number }).seq), 'seq increases');
      assert.equal((await s.queryAudit({ since: base, until: base + 2 })).length, 2);
      assert.equal((await s.queryAudit({ since: base, action: 'q.two' })).length, 2);
      assert.equal((await s.queryAudit({ since: base, verdict: 'deny' })).length, 2);
      assert.equal((await s.queryAudit({ since: base, actor: 'token:aa' })).length, 2);
      assert.deepEqual((await s.queryAudit({ since: base, scope: 'team-a' })).map((r) => r.resource), ['team-a/key/disk', 'team-a']);
      assert.deepEqual((await s.queryAudit({ since: base, afterSeq: (all[1] as { seq: number }).seq })).map((r) => r.at), [base + 2, base + 3]);
      assert.equal((await s.queryAudit({ since: base, limit: 1 })).length, 1);
      await assert.rejects(b.raw("UPDATE audit SET verdict = 'allow'"), /append-only/);
      await assert.rejects(b.raw('DELETE FROM audit'), /append-only/);
      if (b.name === 'postgres') await assert.rejects(b.raw('TRUNCATE audit'), /append-only/);
      // Nor through the insert path: SQLite's REPLACE deletes the old row without delete triggers.
      const victim = (all[0] as { seq: number }).seq;
      const cols = '(seq, at, actor, action, verdict)';
      const forged = (seq: number) => `(${seq}, ${base}, 'token:aa', 'q.forged', 'allow')`;
      if (b.name === 'sqlite') {
        for (const sql of [
          `INSERT OR REPLACE INTO audit ${cols} VALUES ${forged(victim)}`,
          `REPLACE INTO audit ${cols} VALUES ${forged(victim)}`,
          `INSERT OR IGNORE INTO audit ${cols} VALUES ${forged(victim)}`,
          `INSERT INTO audit ${cols} VALUES ${forged(victim)} ON CONFLICT (seq) DO UPDATE SET action = 'q.forged'`,
        ]) {
          await assert.rejects(b.raw(sql), /append-only/, sql);
        }
        // An explicit seq above the newest is an append; one slipped into the gap below it is not.
        const top = Math.max(...(await b.rows('SELECT MAX(seq) AS m FROM audit')).map((r) => Number(r.m)));
        await b.raw(`INSERT INTO audit ${cols} VALUES ${forged(top + 10).replace('q.forged', 'q.explicit')}`);
        await assert.rejects(b.raw(`INSERT INTO audit ${cols} VALUES ${forged(top + 5)}`), /append-only/);
      } else {
        await assert.rejects(b.raw(`INSERT INTO audit ${cols} OVERRIDING SYSTEM VALUE VALUES ${forged(victim)} ON CONFLICT (seq) DO UPDATE SET action = 'q.forged'`), /append-only/);
        await assert.rejects(b.raw(`INSERT INTO audit ${cols} OVERRIDING SYSTEM VALUE VALUES ${forged(victim)}`), /duplicate key/);
        await assert.rejects(b.raw(`INSERT INTO audit ${cols} VALUES ${forged(victim)}`), /non-DEFAULT value into column "seq"/);
      }
      assert.deepEqual(await s.queryAudit({ since: base, limit: 1 }), [all[0]], 'the first record is as it was');
      assert.equal((await s.queryAudit({ action: 'q.forged' })).length, 0);
      assert.equal((await s.queryAudit({ since: base, verdict: 'deny' })).length, 2, 'nothing changed');
    });

    test('attestation records and console sessions (console tables)', async () => {
      const rec = { id: 'att-1', at: T0, actor: 'session:00', tee: 'snp', platform: 'sev-snp Milan', verdict: 'allow' as const, policy: 'p@1', evidenceDigest: 'ed', binding: 'bb', claims: '{"a":1}', report: '{"r":1}', remote: '127.0.0.1' };
      await s.recordAttestation(rec);
      await s2.recordAttestation({ id: 'att-2', at: T0 + 1, actor: 'session:01', tee: 'snp', verdict: 'deny', problem: 'evidence-invalid' });
      assert.deepEqual(await s.getAttestation('att-1'), rec);
      assert.deepEqual((await s.listAttestations({})).map((a) => a.id), ['att-2', 'att-1'], 'newest first');
      assert.equal((await s.listAttestations({ verdict: 'deny' })).length, 1);
      assert.equal((await s.listAttestations({ platform: 'sev-snp Milan' }))[0]?.id, 'att-1');
      const summary = (await s.listAttestations({}))[1] as unknown as Record<string, unknown>;
      assert.equal(summary.claims, undefined);
      assert.equal(summary.report, undefined);
      assert.deepEqual((await s.recentAttestationClaims(10)).map((a) => [a.id, a.claims]), [['att-1', '{"a":1}']]);
      const cs = { id: 'cs-1', tokenId: 't1', createdAt: T0, expiresAt: T0 + 10 };
      await s.createConsoleSession(cs, audit('test.console'));
      assert.deepEqual(await s2.getConsoleSession('cs-1'), cs);
      await assert.rejects(s.createConsoleSession({ ...cs, id: 'cs-2' }, BAD_AUDIT));
      assert.equal(await s.getConsoleSession('cs-2'), undefined);
      await s.createConsoleSession({ ...cs, id: 'cs-3', expiresAt: T0 + 1000 });
      assert.equal(await s.purgeConsoleSessions(T0 + 11), 1);
      assert.equal(await s.getConsoleSession('cs-1'), undefined);
      assert.equal(await s.deleteConsoleSession('cs-3', audit('test.console')), true);
      assert.equal(await s.deleteConsoleSession('cs-3', audit('test.console')), false);
      assert.equal((await s.queryAudit({ action: 'test.console' })).length, 2);
    });

    test('one commit per protocol step: session with its audit record; nonce, attestation, console record and audit record together', async () => {
      const att = (id: string, verdict: 'allow' | 'deny' = 'allow') => ({ id, at: T0, actor: `session:${id}`, tee: 'snp', verdict });
      const count = async (action: string) => (await s.queryAudit({ action })).length;
      // createSession with its audit record: both or neither.
      await s.createSession(session('one-auth'), audit('test.auth'));
      assert.ok(await s2.getSession('one-auth'));
      assert.equal(await count('test.auth'), 1);
      await assert.rejects(s.createSession(session('one-auth-bad'), BAD_AUDIT));
      assert.equal(await s.getSession('one-auth-bad'), undefined, 'no session without its audit record');
      await assert.rejects(s.createSession(session('one-auth'), audit('test.auth')), 'a session id is unique');
      assert.equal(await count('test.auth'), 1, 'and the refused insert wrote no audit record');

      // completeAttestation consuming the nonce itself: pending → attested in one statement.
      await s.createSession(session('one-a'));
      assert.equal(await s.completeAttestation('one-a', outcome('one-d1'), audit('test.one'), { consumeNonceAt: T0 + 7, attestation: att('one-att-a') }), 'ok');
      const a = await s2.getSession('one-a');
      assert.equal(a?.state, 'attested');
      assert.equal(a?.nonceUsedAt, T0 + 7);
      assert.equal((await s2.getAttestation('one-att-a'))?.verdict, 'allow');
      assert.equal(await count('test.one'), 1);
      assert.equal(await s.completeAttestation('one-a', outcome('one-d2'), audit('test.one'), { consumeNonceAt: T0 + 8 }), 'state', 'an attested nonce is not consumed twice');
      // Expired at the consuming instant, or already consumed: refused, nothing kept.
      await s.createSession(session('one-exp'));
      assert.equal(await s.completeAttestation('one-exp', outcome('one-d3'), audit('test.one'), { consumeNonceAt: T0 + 60_000, attestation: att('one-att-exp') }), 'state');
      assert.equal((await s.getSession('one-exp'))?.state, 'pending');
      assert.equal(await s.getAttestation('one-att-exp'), undefined);
      await s.createSession(session('one-used'));
      assert.equal(await s.consumeNonce('one-used', T0), true);
      assert.equal(await s.completeAttestation('one-used', outcome('one-d3'), audit('test.one'), { consumeNonceAt: T0 + 1 }), 'state');
      assert.equal(await count('test.one'), 1, 'refusals wrote no allow record');
      assert.equal(await s.completeAttestation('one-used', outcome('one-d3'), audit('test.one')), 'ok', 'one-d3 was rolled back each time');
      // Evidence seen before: nothing kept, the nonce still pending.
      await s.createSession(session('one-reuse'));
      assert.equal(await s.completeAttestation('one-reuse', outcome('one-d1'), audit('test.one'), { consumeNonceAt: T0 + 1 }), 'evidence-reused');
      assert.equal((await s.getSession('one-reuse'))?.state, 'pending');
      // A console record the database refuses (CHECK on verdict) is left out; the attestation stands.
      await s.createSession(session('one-badrec'));
      const badRec = { ...att('one-att-bad'), verdict: 'maybe' } as unknown as ReturnType<typeof att>;
      assert.equal(await s.completeAttestation('one-badrec', outcome('one-d4'), audit('test.one'), { consumeNonceAt: T0 + 1, attestation: badRec }), 'ok');
      assert.equal(await s.getAttestation('one-att-bad'), undefined);
      assert.equal((await s.getSession('one-badrec'))?.state, 'attested');
      assert.equal(await count('test.one'), 3);
      // An audit record the database refuses takes the nonce and the console record down with the attestation.
      await s.createSession(session('one-badaudit'));
      await assert.rejects(s.completeAttestation('one-badaudit', outcome('one-d5'), BAD_AUDIT, { consumeNonceAt: T0 + 1, attestation: att('one-att-badaudit') }));
      assert.equal((await s.getSession('one-badaudit'))?.state, 'pending');
      assert.equal(await s.getAttestation('one-att-badaudit'), undefined);

      // refuseAttestation burning the nonce: once; the second attempt writes nothing.
      await s.createSession(session('one-ref'));
      assert.equal(await s.refuseAttestation(audit('test.refuse', { verdict: 'deny' }), att('one-att-ref1', 'deny'), { sessionId: 'one-ref', at: T0 + 3 }), true);
      const r = await s2.getSession('one-ref');
      assert.equal(r?.state, 'consumed');
      assert.equal(r?.nonceUsedAt, T0 + 3);
      assert.equal((await s.getAttestation('one-att-ref1'))?.verdict, 'deny');
      assert.equal(await s2.refuseAttestation(audit('test.refuse', { verdict: 'deny' }), att('one-att-ref2', 'deny'), { sessionId: 'one-ref', at: T0 + 4 }), false);
      assert.equal(await s.getAttestation('one-att-ref2'), undefined);
      assert.equal(await count('test.refuse'), 1);
      assert.equal(await s.refuseAttestation(audit('test.refuse', { verdict: 'deny' }), att('one-att-ref3', 'deny')), true, 'without a nonce to burn');
      assert.equal(await count('test.refuse'), 2);
      assert.equal(await s.refuseAttestation(audit('test.refuse', { verdict: 'deny' }), badRec), true, 'a refused console record is left out');
      assert.equal(await count('test.refuse'), 3);
      await s.createSession(session('one-ref-bad'));
      await assert.rejects(s.refuseAttestation(BAD_AUDIT, att('one-att-ref4', 'deny'), { sessionId: 'one-ref-bad', at: T0 + 1 }));
      assert.equal((await s.getSession('one-ref-bad'))?.state, 'pending', 'no nonce burnt without its audit record');
      assert.equal(await s.getAttestation('one-att-ref4'), undefined);
      await s.createSession(session('one-ref-exp'));
      assert.equal(await s.refuseAttestation(audit('test.refuse', { verdict: 'deny' }), undefined, { sessionId: 'one-ref-exp', at: T0 + 60_000 }), false, 'an expired nonce is not burnt');
      assert.equal(await count('test.refuse'), 3);

      // Races on one nonce across connections: attests and refusals, exactly one of them wins.
      const ids = Array.from({ length: 6 }, (_, i) => `one-race-${i}`);
      for (const id of ids) await s.createSession(session(id));
      const results = await Promise.all(
        ids.flatMap((id) =>
          Array.from({ length: 6 }, (_, k) => {
            const st = k % 2 === 0 ? s : s2;
            return k < 3
              ? st.completeAttestation(id, outcome(`${id}-d${k}`), audit('test.race1'), { consumeNonceAt: T0 + 1 }).then((x) => x === 'ok')
              : st.refuseAttestation(audit('test.race1', { verdict: 'deny' }), undefined, { sessionId: id, at: T0 + 1 });
          }),
        ),
      );
      for (let i = 0; i < ids.length; i++) assert.equal(results.slice(i * 6, i * 6 + 6).filter(Boolean).length, 1, `session ${ids[i]}`);
      assert.equal(await count('test.race1'), ids.length, 'one audit record per nonce');
    });

    test('volumes, trusted keys and reference values', async () => {
      const v = volumeInput('vol-1');
      assert.equal(await s.createVolume(v, audit('test.volume')), true);
      assert.equal(await s2.createVolume(v, audit('test.volume')), false, 'ids are never reused');
      assert.deepEqual(await s.getVolume('vol-1'), v);
      const re = await s2.rekeyVolume('vol-1', { identity: '{"snp":"bb"}', policyText: '{}', policySha256: '01', kekId: 'file:00', wrappedKey: Buffer.from('wk2'), iv: Buffer.alloc(12, 5), ciphertext: Buffer.from('ct2'), tag: Buffer.alloc(16, 6), alg: 'A256GCM', updatedAt: T0 + 1, updatedBy: 'cli:x' }, audit('test.volume', { detail: 'v{version}' }));
      assert.equal(re?.keyVersion, 2);
      assert.equal(re?.label, 'data', 'label kept when none is given');
      assert.equal((await s.queryAudit({ action: 'test.volume' })).at(-1)?.detail, 'v2');
      assert.deepEqual((await s.getVolume('vol-1'))?.ciphertext, Buffer.from('ct2'));
      assert.deepEqual((await s.listVolumes()).map((x) => [x.id, x.keyVersion, (x as unknown as Record<string, unknown>).ciphertext]), [['vol-1', 2, undefined]]);
      assert.equal(await s.revokeVolume('vol-1', T0 + 2, 'cli:test', audit('test.volume')), true);
      assert.equal(await s.revokeVolume('vol-1', T0 + 3, 'cli:test', audit('test.volume')), false);
      const revoked = await s.getVolume('vol-1');
      assert.equal(revoked?.state, 'revoked');
      assert.equal(revoked?.ciphertext.length, 0, 'key material erased');
      assert.equal(await s.rekeyVolume('vol-1', { identity: '{}', policyText: '{}', policySha256: '02', kekId: 'k', wrappedKey: Buffer.from('x'), iv: Buffer.alloc(12), ciphertext: Buffer.from('x'), tag: Buffer.alloc(16), alg: 'A256GCM', updatedAt: T0, updatedBy: 'x' }), undefined);

      const k = { purpose: 'reference-signer' as const, name: 'build', pem: '-----BEGIN PUBLIC KEY-----', sha256: 'aa', createdAt: T0, createdBy: 'cli:test' };
      await s.putTrustedKey(k, audit('test.trust'));
      await s2.putTrustedKey({ ...k, sha256: 'bb' }, audit('test.trust'));
      await s.putTrustedKey({ ...k, purpose: 'tpm-ak', name: 'ak1' });
      assert.deepEqual((await s.listTrustedKeys('reference-signer')).map((x) => x.sha256), ['bb']);
      assert.equal((await s.listTrustedKeys()).length, 2);
      await assert.rejects(s.putTrustedKey({ ...k, purpose: 'nonsense' as never }), 'purpose checked by the schema');
      assert.equal(await s.deleteTrustedKey('tpm-ak', 'ak1', audit('test.trust')), true);
      assert.equal(await s.deleteTrustedKey('tpm-ak', 'ak1', audit('test.trust')), false);

      const rv = { name: 'img', imageId: 'i', imageVersion: '1', jws: 'a.b.c', sha256: 'cc', signer: 'build', updatedAt: T0, updatedBy: 'cli:test' };
      await s.putReferenceValues(rv, audit('test.rv'));
      await s2.putReferenceValues({ ...rv, imageVersion: '2' }, audit('test.rv'));
      assert.equal((await s.getReferenceValues('img'))?.imageVersion, '2');
      assert.deepEqual((await s.listReferenceValues()).map((x) => x.name), ['img']);
      assert.equal(await s.deleteReferenceValues('img', audit('test.rv')), true);
      assert.equal(await s.deleteReferenceValues('img', audit('test.rv')), false);
      assert.equal(await s.getReferenceValues('img'), undefined);
    });

    test('KEK registry: one current KEK, rotation, compare-and-swap re-wrap, retirement only when unused', async () => {
      assert.deepEqual(await s.listKeks(), []);
      // Two processes starting with different KEKs on an empty registry: one wins, both agree.
      const [k1, kx] = await Promise.all([s.initKek({ id: 'k1', spec: 'file:/a', at: T0 }, audit('test.kek')), s2.initKek({ id: 'kx', spec: 'file:/x', at: T0 }, audit('test.kek'))]);
      assert.equal(k1.id, kx.id);
      assert.equal(k1.state, 'current');
      assert.equal((await s.queryAudit({ action: 'test.kek' })).length, 1, 'only the winner is recorded');
      const first = k1.id;
      const second = first === 'k1' ? 'kx' : 'k1';
      assert.equal((await s.listKeks()).length, 1);
      const w1 = Buffer.from('wrapped-under-first-a');
      const w2 = Buffer.from('wrapped-under-first-b');
      await s.putSecret({ ...secretInput('kek/key/a', 'a'), kekId: first, wrappedKey: w1 });
      await s.putSecret({ ...secretInput('kek/key/b', 'b'), kekId: first, wrappedKey: w2 });
      assert.equal(await s.setCurrentKek({ id: first, spec: 'file:/a', at: T0 }), false, 'already current');
      assert.equal(await s2.setCurrentKek({ id: second, spec: 'file:/new', at: T0 + 1 }, audit('test.kek')), true);
      assert.deepEqual(Object.fromEntries((await s.listKeks()).map((k) => [k.id, k.state])), { [first]: 'retiring', [second]: 'current' });
      assert.equal((await s.getKek(second))?.spec, 'file:/new');
      assert.equal(await s.retireKek(first, T0 + 2), false, 'data keys are still wrapped by it');
      const nw = Buffer.from('wrapped-under-second');
      assert.equal(await s.rewrapSecret('kek/key/a', { kekId: first, wrappedKey: w1 }, { kekId: second, wrappedKey: nw }, audit('test.rewrap')), true);
      assert.equal(await s2.rewrapSecret('kek/key/a', { kekId: first, wrappedKey: w1 }, { kekId: second, wrappedKey: nw }, audit('test.rewrap')), false, 'compare-and-swap');
      assert.equal(await s.rewrapSecret('kek/key/b', { kekId: first, wrappedKey: Buffer.from('stale') }, { kekId: second, wrappedKey: nw }), false);
      await assert.rejects(s.rewrapSecret('kek/key/b', { kekId: first, wrappedKey: w2 }, { kekId: second, wrappedKey: nw }, BAD_AUDIT));
      assert.equal((await s.getSecret('kek/key/b'))?.kekId, first, 'rolled back with its audit record');
      assert.equal(await s.rewrapSecret('kek/key/b', { kekId: first, wrappedKey: w2 }, { kekId: second, wrappedKey: nw }), true);
      const a = await s.getSecret('kek/key/a');
      assert.deepEqual([a?.kekId, a?.wrappedKey, a?.version, a?.ciphertext], [second, nw, 1, Buffer.from('ct:a')], 'only the wrapping changed');
      const counts = await s.countSecretsByKek();
      assert.equal(counts[second], 2);
      assert.equal(counts[first], undefined);
      // An active volume key still wrapped by the old KEK holds its retirement back too.
      const wv = Buffer.from('volume-wrapped-under-first');
      const vol = { ...volumeInput('vol-kek'), kekId: first, wrappedKey: wv };
      assert.equal(await s.createVolume(vol), true);
      assert.equal((await s.countVolumesByKek())[first], 1);
      assert.equal(await s.retireKek(first, T0 + 3), false, 'an active volume is wrapped by it');
      assert.equal(await s.rewrapVolume('vol-kek', { kekId: first, wrappedKey: Buffer.from('stale') }, { kekId: second, wrappedKey: nw }), false);
      assert.equal(await s2.rewrapVolume('vol-kek', { kekId: first, wrappedKey: wv }, { kekId: second, wrappedKey: nw }, audit('test.rewrap')), true);
      assert.equal(await s.rewrapVolume('vol-kek', { kekId: first, wrappedKey: wv }, { kekId: second, wrappedKey: nw }), false, 'compare-and-swap');
      const rv = await s.getVolume('vol-kek');
      assert.deepEqual([rv?.kekId, rv?.wrappedKey, rv?.keyVersion], [second, nw, 1]);
      assert.equal((await s.countVolumesByKek())[first], undefined);
      assert.equal((await s.countVolumesByKek())[second], 1, 'revoked volumes are not counted');
      assert.equal(await s.retireKek(first, T0 + 3, audit('test.kek')), true);
      await assert.rejects(s.createVolume({ ...vol, id: 'vol-kek-2' }), /retired/, 'no active volume under a retired KEK');
      assert.equal(await s.retireKek(first, T0 + 4, audit('test.kek')), false);
      assert.equal((await s.getKek(first))?.retiredAt, T0 + 3);
      await assert.rejects(s.putSecret({ ...secretInput('kek/key/c', 'c'), kekId: first }), /retired/, 'nothing is sealed under a retired KEK');
      await rejectsCode(s.setCurrentKek({ id: first, spec: 'file:/a', at: T0 + 5 }), 'KEK_RETIRED');
      assert.equal((await s.initKek({ id: first, spec: 'file:/a', at: T0 + 5 })).id, second, 'init returns the current KEK');
      assert.equal((await s.queryAudit({ action: 'test.kek' })).length, 3);
      assert.equal((await s.queryAudit({ action: 'test.rewrap' })).length, 2);
    });

    test('ping is false after close', async () => {
      const extra = await openStore(b.spec());
      assert.equal(await extra.ping(), true);
      await extra.close();
      assert.equal(await extra.ping(), false);
      await extra.close();
    });

    test('end to end on this store: attest, token, fetch once, decrypt; nothing of the secret at rest', async () => {
      const SECRET = Buffer.from(`store-e2e-${b.name}-${'5c0ffee5'.repeat(6)}-${Date.now()}`);
      // A store of its own: the suite's made-up KEK ids would stop a real broker from starting.
      const e = make();
      await e.setup();
      const home = mkdtempSync(join(tmpdir(), 'coffer-store-e2e-'));
      const tb = await startTestBroker(home, { store: e.spec() }).catch(async (err: unknown) => {
        rmSync(home, { recursive: true, force: true });
        await e.teardown();
        throw err;
      });
      try {
        const admin = await tb.token('admin');
        const adm = (p: string) => `${tb.url}/admin/v0/${p}`;
        const kbs = (p: string) => `${tb.url}/kbs/v0/${p}`;
        assert.equal((await http(adm('policies/e2e'), { method: 'PUT', bearer: admin, body: { policy: policyFor('e2e-release', MEASUREMENT_A) } })).status, 200);
        const put = await http(adm('secrets/e2e/key/disk'), { method: 'PUT', bearer: admin, body: { value: SECRET.toString('base64') } });
        assert.equal(put.status, 200, put.text);

        const vm = new Attester();
        const auth = await http(kbs('auth'), { body: { version: '0.1.0', tee: 'snp' } });
        const cookie = sessionCookie(auth);
        const body = await vm.attestBody(auth.json.nonce as string);
        const att = await http(kbs('attest'), { body, cookie });
        assert.equal(att.status, 200, att.text);
        const ear = await verifyEar(att.json.token as string, parseJwks((await http(`${tb.url}/.well-known/jwks.json`)).json));
        assert.equal(ear.submods.cvm?.['ear.status'], 'affirming');
        const replay = await http(kbs('attest'), { body, cookie });
        assert.equal(replay.json.type, `${PROBLEM_BASE}nonce-reused`, replay.text);

        const res = await http(kbs('resource/e2e/key/disk'), { cookie });
        assert.equal(res.status, 200, res.text);
        assert.deepEqual(Buffer.from((await flattenedDecrypt(res.json as unknown as FlattenedJWE, vm.privateKey)).plaintext), SECRET);
        await assert.rejects(flattenedDecrypt(res.json as unknown as FlattenedJWE, new Attester().privateKey), 'another key does not decrypt');
        const twice = await http(kbs('resource/e2e/key/disk'), { bearer: att.json.token as string });
        assert.equal(twice.status, 409, twice.text);
        assert.equal(twice.json.type, `${PROBLEM_BASE}already-released`);
        const wrongVm = new Attester(MEASUREMENT_B);
        const auth2 = await http(kbs('auth'), { body: { version: '0.1.0', tee: 'snp' } });
        const c2 = sessionCookie(auth2);
        assert.equal((await http(kbs('attest'), { body: await wrongVm.attestBody(auth2.json.nonce as string), cookie: c2 })).status, 200);
        assert.equal((await http(kbs('resource/e2e/key/disk'), { cookie: c2 })).json.type, `${PROBLEM_BASE}policy-denied`);

        // One nonce, one verdict, now that the nonce is consumed in the transaction that records
        // the outcome: concurrent good and refused attempts on one session, one of them answered.
        const auth3 = await http(kbs('auth'), { body: { version: '0.1.0', tee: 'snp' } });
        const c3 = sessionCookie(auth3);
        const rd3 = await vm.runtimeData(auth3.json.nonce as string);
        const good = { 'runtime-data': rd3, 'tee-evidence': vm.evidence(rd3) };
        const debug = { 'runtime-data': rd3, 'tee-evidence': vm.evidence(rd3, 'sha384', { policy: 0x30000n | (1n << 19n) }) };
        const raced = await Promise.all(Array.from({ length: 6 }, (_, i) => http(kbs('attest'), { body: i % 2 ? good : debug, cookie: c3 })));
        const kinds = raced.map((r) => (r.status === 200 ? 'ok' : String(r.json.type).replace(PROBLEM_BASE, '')));
        assert.equal(kinds.filter((k) => k !== 'nonce-reused').length, 1, kinds.join(','));
        assert.ok(kinds.every((k) => ['ok', 'attestation-denied', 'nonce-reused'].includes(k)), kinds.join(','));
        const sid3 = createHash('sha256').update(c3).digest('hex');
        const verdicts = (await tb.running.broker.store.queryAudit({ action: 'kbs.attest', actor: `session:${sid3.slice(0, 16)}`, limit: 100 })).map((r) => r.problem ?? r.verdict);
        assert.equal(verdicts.length, 6, 'every attempt audited');
        assert.equal(verdicts.filter((v) => v !== 'nonce-reused').length, 1, verdicts.join(','));
        // A refusal burns the nonce: the good evidence on it afterwards is a reuse.
        const auth4 = await http(kbs('auth'), { body: { version: '0.1.0', tee: 'snp' } });
        const c4 = sessionCookie(auth4);
        const rd4 = await vm.runtimeData(auth4.json.nonce as string);
        assert.equal((await http(kbs('attest'), { body: { 'runtime-data': rd4, 'tee-evidence': vm.evidence(rd4, 'sha384', { policy: 0x30000n | (1n << 19n) }) }, cookie: c4 })).json.type, `${PROBLEM_BASE}attestation-denied`);
        assert.equal((await http(kbs('attest'), { body: { 'runtime-data': rd4, 'tee-evidence': vm.evidence(rd4) }, cookie: c4 })).json.type, `${PROBLEM_BASE}nonce-reused`);

        const store = tb.running.broker.store;
        assert.equal(store.kind, b.name);
        assert.equal((await store.listReleases()).filter((r) => r.resourcePath === 'e2e/key/disk').length, 1);
        const resAudit = await store.queryAudit({ action: 'kbs.resource', limit: 1000 });
        assert.deepEqual(resAudit.map((r) => r.problem ?? r.verdict), ['allow', 'already-released', 'policy-denied']);
        await tb.close();

        const rest = await e.atRest();
        // The search works: it finds what is stored in clear (the policy's measurement, the path).
        assert.ok(rest.includes(Buffer.from(MEASUREMENT_A.toString('hex'))), 'the at-rest search sees the policy text');
        assert.ok(rest.includes(Buffer.from('e2e/key/disk')));
        for (const needle of [SECRET, Buffer.from(SECRET.toString('hex')), Buffer.from(SECRET.toString('base64')), Buffer.from(SECRET.subarray(10, 30)), Buffer.from(admin), Buffer.from(cookie)]) {
          assert.ok(!rest.includes(needle), `found ${needle.subarray(0, 12).toString()}… at rest on ${b.name}`);
        }
        const logs = tb.logs.text();
        assert.ok(!logs.includes(SECRET.toString()) && !logs.includes(SECRET.toString('base64')), 'the secret is in no log line');
      } finally {
        await tb.cleanup();
        await e.teardown();
      }
    });

    test('purgeRetention: past retention deleted, recent kept, each rule bounded per pass, release-once kept for live sessions, audit untouched', async () => {
      // Last in the suite: it starts from empty retention tables (the audit log stays as it is).
      await b.raw('DELETE FROM sessions; DELETE FROM evidence_seen; DELETE FROM console_sessions; DELETE FROM attestations; DELETE FROM releases');
      const DAY = 86_400_000;
      const H = 3_600_000;
      const auditBefore = (await b.rows('SELECT COUNT(*) AS n FROM audit'))[0]?.n;
      const verified = (id: string, at: number, verdict: 'allow' | 'deny' = 'allow') => ({ id, at, actor: `session:${id}`, tee: 'snp', verdict, claims: '{"v":1}', report: 'x'.repeat(2000) });
      await s.recordAttestation(verified('old-allow', T0 - 40 * DAY));
      await s.recordAttestation(verified('recent-allow', T0 - DAY));
      await s.recordAttestation(verified('recent-vdeny', T0 - DAY + 1, 'deny'));
      for (let i = 0; i < 10; i++) await s.recordAttestation({ id: `junk-${i}`, at: T0 - 2 * DAY + i, actor: 'session:junk', tee: 'snp', verdict: 'deny', problem: 'evidence-invalid' });
      await s.createSession(session('ret-live', { expiresAt: T0 + H }));
      // Ended long ago; ret-dead-0 the latest of them, so a small pass leaves it (and its release) for later.
      for (let i = 0; i < 5; i++) await s.createSession(session(`ret-dead-${i}`, { expiresAt: T0 - 10 * H + (i === 0 ? 100 : i) }));
      await s.recordRelease({ sessionId: 'ret-live', resourcePath: 'a/b/c', at: T0 - 20 * H });
      await s.recordRelease({ sessionId: 'ret-dead-0', resourcePath: 'a/b/c', at: T0 - 20 * H });
      await s.recordRelease({ sessionId: 'ret-gone', resourcePath: 'a/b/c', at: T0 - 60_000 });
      await s.createConsoleSession({ id: 'cs-old', tokenId: 't', createdAt: T0 - 2 * H, expiresAt: T0 - 1 });
      await s.createConsoleSession({ id: 'cs-live', tokenId: 't', createdAt: T0, expiresAt: T0 + H });
      await b.raw(`INSERT INTO evidence_seen (digest, session_id, seen_at) VALUES ('ev-old', 'x', ${T0 - H}), ('ev-new', 'x', ${T0})`);
      const cut = { sessionsBefore: T0 - H, evidenceBefore: T0 - 60_000, consoleSessionsBefore: T0, attestationsBefore: T0 - 30 * DAY, maxUnverifiedRefusals: 3, maxAttestations: 1000, releasesBefore: T0 - 2 * H, limit: 2 };
      const ids = async () => (await b.rows('SELECT id FROM attestations ORDER BY at, id')).map((r) => String(r.id));
      const releases = async () => (await s.listReleases()).map((r) => r.sessionId).sort();

      const first = await s.purgeRetention(cut);
      assert.deepEqual(first, { sessions: 2, evidence: 1, consoleSessions: 1, attestations: 3, releases: 0, more: true }, 'each rule stops at the limit: 1 aged + 2 of 7 surplus junk');
      assert.ok(await s.getSession('ret-dead-0'), 'a pass bounded at 2 left the latest dead session');
      assert.deepEqual(await releases(), ['ret-dead-0', 'ret-gone', 'ret-live'], 'a release whose session row remains is kept');
      let passes = 1;
      for (let r = first; r.more; passes++) {
        r = await (passes % 2 ? s2 : s).purgeRetention(cut);
        for (const n of [r.sessions, r.evidence, r.consoleSessions, r.releases]) assert.ok(n <= 2, `bounded: ${JSON.stringify(r)}`);
        assert.ok(r.attestations <= 3 * 2, `bounded: ${JSON.stringify(r)}`);
        assert.ok(passes < 10, 'the backlog ends');
      }
      assert.equal(passes, 4, 'seven surplus junk records at two a pass');
      assert.deepEqual(await ids(), ['junk-7', 'junk-8', 'junk-9', 'recent-allow', 'recent-vdeny'], 'old and surplus unverified refusals gone; verified records kept');
      assert.equal(await s.getSession('ret-dead-0'), undefined);
      assert.ok(await s.getSession('ret-live'));
      assert.deepEqual(await releases(), ['ret-gone', 'ret-live'], 'the dead session\'s release went with it; a recent one stays');
      assert.equal(await s.getConsoleSession('cs-old'), undefined);
      assert.ok(await s.getConsoleSession('cs-live'));
      assert.deepEqual((await b.rows('SELECT digest FROM evidence_seen')).map((r) => r.digest), ['ev-new']);
      // Release-once still holds for the live session, whatever retention ran.
      assert.equal(await s.recordRelease({ sessionId: 'ret-live', resourcePath: 'a/b/c', at: T0 }), false);
      assert.deepEqual(await s.purgeRetention(cut), { sessions: 0, evidence: 0, consoleSessions: 0, attestations: 0, releases: 0, more: false }, 'nothing left to do');

      // The total cap, oldest first, bounded; two stores purging at once delete nothing twice.
      const both = await Promise.all([s.purgeRetention({ ...cut, maxAttestations: 2, limit: 100 }), s2.purgeRetention({ ...cut, maxAttestations: 2, limit: 100 })]);
      assert.equal(both[0].attestations + both[1].attestations, 3);
      assert.deepEqual(await ids(), ['recent-allow', 'recent-vdeny']);
      assert.equal((await s.purgeRetention({ ...cut, maxAttestations: 0, limit: 1 })).attestations, 1, 'the cap too is bounded per pass');
      assert.deepEqual(await ids(), ['recent-vdeny']);
      assert.equal((await s.purgeRetention({ ...cut, maxAttestations: 1, attestationsBefore: T0 - DAY + 2, limit: 0 })).attestations, 0, 'limit 0 deletes nothing');
      assert.deepEqual(await ids(), ['recent-vdeny']);
      // Junk newer than a verified record, its own cap above the total: the total cap takes junk first.
      for (let i = 0; i < 3; i++) await s.recordAttestation({ id: `junk-new-${i}`, at: T0 - 1000 + i, actor: 'session:junk', tee: 'snp', verdict: 'deny', problem: 'evidence-invalid' });
      assert.equal((await s.purgeRetention({ ...cut, maxUnverifiedRefusals: 100, maxAttestations: 2, limit: 100 })).attestations, 2);
      assert.deepEqual(await ids(), ['recent-vdeny', 'junk-new-2'], 'the verified record outlives newer unverified refusals');
      await b.raw("DELETE FROM attestations WHERE id = 'junk-new-2'");
      assert.equal((await b.rows('SELECT COUNT(*) AS n FROM audit'))[0]?.n, auditBefore, 'the audit log is never purged');
    });
  });
}

suite(sqliteBackend);
suite(postgresBackend);

describe('opening stores', () => {
  test('openStore: a file path or sqlite: is SQLite, postgres:// and postgresql:// are PostgreSQL, other schemes are refused', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'coffer-open-'));
    const db = await freshDatabase('open');
    try {
      for (const spec of [join(dir, 'a.db'), `sqlite:${join(dir, 'b.db')}`, `sqlite://${join(dir, 'c.db')}`]) {
        const st = await openStore(spec);
        assert.ok(st instanceof SqliteStore, spec);
        await st.close();
      }
      assert.ok(existsSync(join(dir, 'c.db')), 'sqlite:///abs is the absolute path');
      for (const spec of [db.url, db.url.replace(/^postgres:/, 'postgresql:')]) {
        const st = await openStore(spec);
        assert.ok(st instanceof PostgresStore, spec);
        await st.close();
      }
      for (const spec of ['mysql://root@127.0.0.1/x', 'http://example.com/db', 'sqlite:']) await rejectsCode(openStore(spec), 'STORE_BAD_URL');
      assert.equal(describeStore('postgres://app:s3cret-pw@db.internal:5432/coffer?sslmode=require&password=other'), 'postgres://app@db.internal:5432/coffer');
      assert.equal(redactPostgresUrl('postgresql://u:p@h/d'), 'postgresql://u@h/d');
    } finally {
      rmSync(dir, { recursive: true, force: true });
      await db.drop();
    }
  });

  test('coffer broker token create --store: writes to PostgreSQL; a password in --store is refused and never echoed', async () => {
    const db = await freshDatabase('cli');
    try {
      const ok = await runCli(['broker', 'token', 'create', '--role', 'auditor', '--scope', 'team-a', '--store', db.url, '--json']);
      assert.equal(ok.code, 0, ok.stderr);
      const out = JSON.parse(ok.stdout) as { id: string; token: string };
      const rows = await db.query<{ id: string; role: string; hash: string }>('SELECT id, role, hash FROM tokens');
      assert.deepEqual(rows.map((r) => [r.id, r.role]), [[out.id, 'auditor']]);
      assert.ok(!JSON.stringify(rows).includes(out.token), 'only the hash is stored');
      assert.equal((await db.query("SELECT 1 FROM audit WHERE action = 'admin.token.create'")).length, 1);
      const pw = 'n0t-on-the-command-line';
      const bad = await runCli(['broker', 'token', 'create', '--role', 'admin', '--store', db.url.replace('root@', `root:${pw}@`)]);
      assert.equal(bad.code, 2);
      assert.match(bad.stderr, /STORE_PASSWORD_ON_COMMAND_LINE|password/);
      assert.ok(!`${bad.stdout}${bad.stderr}`.includes(pw));
      const down = await runCli(['broker', 'token', 'create', '--role', 'admin', '--store', 'postgres://root@127.0.0.1:1/none']);
      assert.equal(down.code, 2, down.stderr);
      assert.match(down.stderr, /cannot reach the PostgreSQL store postgres:\/\/root@127\.0\.0\.1:1\/none/);
      assert.doesNotMatch(down.stderr, /\n\s+at /, 'no stack trace');
      const both = await runCli(['broker', 'token', 'create', '--role', 'admin', '--store', db.url, '--db', '/tmp/x.db']);
      assert.equal(both.code, 2);
    } finally {
      await db.drop();
    }
  });

  test('an unreachable or refusing PostgreSQL is STORE_UNAVAILABLE, one line, never the password', async () => {
    const pw = 'Tr0ub4dor-and-3-horses';
    // Port 1 on loopback: nothing listens there.
    const e1 = await rejectsCode(PostgresStore.open(`postgres://coffer:${pw}@127.0.0.1:1/coffer`, { connectTimeoutMs: 3000 }), 'STORE_UNAVAILABLE');
    assert.match(e1.message, /ECONNREFUSED/);
    const e2 = await rejectsCode(PostgresStore.open(`postgres://no_such_role:${pw}@127.0.0.1:5432/test?password=${pw}`, {}, { PGPASSWORD: pw }), 'STORE_UNAVAILABLE');
    assert.match(e2.message, /no_such_role/);
    for (const e of [e1, e2]) {
      assert.ok(!e.message.includes(pw), e.message);
      assert.ok(!e.message.includes('\n'), 'one line');
      assert.match(e.message, /^cannot reach the PostgreSQL store postgres:\/\/(coffer|no_such_role)@127\.0\.0\.1:(1|5432)\/(coffer|test):/);
    }
  });
});

describe('retention in the broker', () => {
  test('the purge started by /auth applies the serve options, bounded per pass, a second apart while a backlog remains', async () => {
    const tb = await startTestBroker(undefined, { retention: { attestationDays: 1, maxUnverifiedRefusals: 2, batch: 2 } });
    try {
      const store = tb.running.broker.store;
      const now = Date.now();
      const junk = (i: number) => ({ id: `junk-${i}`, at: now - 60_000 + i, actor: 'session:junk', tee: 'snp', verdict: 'deny' as const, problem: 'evidence-invalid' });
      await store.recordAttestation({ id: 'old', at: now - 2 * 86_400_000, actor: 'session:old', tee: 'snp', verdict: 'allow', claims: '{}' });
      await store.recordAttestation({ id: 'kept', at: now - 3_600_000, actor: 'session:kept', tee: 'snp', verdict: 'allow', claims: '{}' });
      for (let i = 0; i < 6; i++) await store.recordAttestation(junk(i));
      const ids = async () => (await store.listAttestations({ limit: 1000 })).map((a) => a.id).sort();
      const auth = async () => assert.equal((await http(`${tb.url}/kbs/v0/auth`, { body: { version: '0.1.0', tee: 'snp' } })).status, 200);
      await auth();
      // First pass: the old record, and two of the four surplus junk refusals (batch 2).
      assert.deepEqual(await ids(), ['junk-2', 'junk-3', 'junk-4', 'junk-5', 'kept']);
      await auth();
      assert.deepEqual(await ids(), ['junk-2', 'junk-3', 'junk-4', 'junk-5', 'kept'], 'no second pass within the second');
      tb.clock.offsetMs += 1_500;
      await auth();
      assert.deepEqual(await ids(), ['junk-4', 'junk-5', 'kept'], 'a backlog is worked off a second later');
      tb.clock.offsetMs += 1_500;
      await auth();
      tb.clock.offsetMs += 1_500;
      for (let i = 6; i < 9; i++) await store.recordAttestation(junk(i));
      await auth();
      assert.equal((await ids()).length, 6, 'no backlog left: the next pass waits a minute');
      tb.clock.offsetMs += 61_000;
      await auth();
      assert.deepEqual(await ids(), ['junk-6', 'junk-7', 'junk-8', 'kept'], 'three surplus junk refusals, two deleted (batch 2), oldest first');
    } finally {
      await tb.cleanup();
    }
  });

  test('broker serve refuses a retention flag out of range, one line, exit 2', async () => {
    const home = mkdtempSync(join(tmpdir(), 'coffer-retention-'));
    try {
      for (const [flag, v] of [['--retain-attestations-days', '0'], ['--retain-attestations-days', '1.5'], ['--max-attestations', '0'], ['--max-unverified-refusals', '-1']] as const) {
        const r = await runCli(['broker', 'serve', '--home', home, '--listen', '127.0.0.1:0', `${flag}=${v}`]);
        assert.equal(r.code, 2, r.stderr);
        assert.match(r.stderr, new RegExp(`${flag} must be a whole number`));
        assert.equal(r.stderr.trim().split('\n').length, 1);
      }
    } finally {
      rmSync(home, { recursive: true, force: true });
    }
  });
});
