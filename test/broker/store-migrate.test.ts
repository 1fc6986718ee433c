// Migrations between processes: a store opened while another process is in the middle of
// migrating the same database waits for it and finds the schema current (SQLite: the write lock
// is taken before the applied versions are read; PostgreSQL: the advisory lock), and a replica
// running as a role that may not create tables opens an already migrated PostgreSQL database.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import pg from 'pg';
import { MIGRATIONS, PostgresStore, openStore } from '../../src/broker/index.js';
import { PG_ADMIN_URL, freshDatabase } from './fixtures/pg.js';
import { startTestBroker } from './helpers.js';

const CHILD = new URL('./fixtures/open-store.ts', import.meta.url).pathname;

interface Opened {
  ok: boolean;
  code?: string;
  message?: string;
}

/** Opens `spec` in a child process; `onOpening` runs when the child is about to open it. */
function openInChild(spec: string, onOpening: () => void, timeoutMs = 60_000): Promise<Opened> {
  const proc = spawn(process.execPath, ['--import', 'tsx', CHILD, spec], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  let told = false;
  proc.stderr.on('data', (d: Buffer) => (err += d.toString('utf8')));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      proc.kill('SIGKILL');
      reject(new Error(`the child did not finish in ${timeoutMs} ms: ${err}`));
    }, timeoutMs);
    proc.stdout.on('data', (d: Buffer) => {
      out += d.toString('utf8');
      if (!told && out.includes('opening\n')) {
        told = true;
        onOpening();
      }
    });
    proc.once('exit', (code) => {
      clearTimeout(timer);
      const line = out.split('\n').find((l) => l.startsWith('{'));
      if (!line) reject(new Error(`the child exited (${code}) without a result: ${err}`));
      else resolve(JSON.parse(line) as Opened);
    });
  });
}

test('SQLite: a process opening the store while another is migrating it waits, then finds the schema current', { timeout: 120_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'coffer-migrate-race-'));
  const file = join(dir, 'broker.db');
  writeFileSync(file, '', { mode: 0o600 });
  const other = new Database(file);
  try {
    other.pragma('journal_mode = WAL');
    // The other process has committed the bookkeeping table and is migrating: its schema is not
    // visible yet, and it holds the write lock until it commits.
    other.exec('CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)');
    other.exec('BEGIN IMMEDIATE');
    for (const m of [...MIGRATIONS].sort((a, b) => a.version - b.version)) {
      for (const sql of [...m.common, ...m.sqlite]) other.exec(sql);
      other.prepare('INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, 0)').run(m.version, m.name);
    }
    // Committed a moment after the child starts opening. Correctness does not hang on the delay
    // (the child waits up to its 5 s busy timeout for the lock, and then must find every version
    // applied); the delay lets the unfixed store read the versions before the commit: it read
    // none, then failed on "table sessions already exists".
    let committed: NodeJS.Timeout | undefined;
    const r = await openInChild(file, () => {
      committed = setTimeout(() => other.exec('COMMIT'), 750);
    });
    clearTimeout(committed);
    assert.deepEqual(r, { ok: true }, JSON.stringify(r));
    const versions = (other.prepare('SELECT version FROM schema_migrations ORDER BY version').all() as { version: number }[]).map((x) => x.version);
    assert.deepEqual(versions, MIGRATIONS.map((m) => m.version).sort((a, b) => a - b), 'every version once');
    // The twin: with nothing in the way the store opens and has nothing to apply.
    const s = await openStore(file);
    assert.deepEqual(await s.migrate(), []);
    await s.close();
  } finally {
    if (other.inTransaction) other.exec('ROLLBACK');
    other.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('PostgreSQL: a replica whose role may not create tables opens a migrated database and works', { timeout: 60_000 }, async () => {
  const db = await freshDatabase('role');
  const role = `coffer_dml_${process.pid}`;
  const admin = new pg.Client({ connectionString: PG_ADMIN_URL });
  await admin.connect();
  try {
    // The first start, as the schema owner, migrates.
    const owner = await PostgresStore.open(db.url);
    await owner.close();
    await admin.query(`CREATE ROLE ${role} LOGIN`);
    await db.query(`GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO ${role}`);
    const url = new URL(db.url);
    url.username = role;
    // Before the fix: STORE_MIGRATION_FAILED, permission denied for schema public.
    const s = await PostgresStore.open(url.href);
    try {
      assert.deepEqual(await s.migrate(), []);
      assert.equal(await s.schemaVersion(), Math.max(...MIGRATIONS.map((m) => m.version)));
      await s.appendAudit({ at: 1, actor: 'cli:test', action: 'test.role', verdict: 'allow' });
      assert.equal((await s.queryAudit({ action: 'test.role' })).length, 1);
      // The twin: this role cannot create what a pending migration would, so an unmigrated
      // database is refused with a clear code, not opened half-way.
      // The newest migration that creates a table (the newest of all may create nothing on
      // PostgreSQL, or alter a table, which fails with "must be owner" instead).
      const creating = Math.max(...MIGRATIONS.filter((m) => [...m.common, ...m.postgres].some((q) => /^\s*CREATE TABLE/i.test(q))).map((m) => m.version));
      await db.query('DELETE FROM schema_migrations WHERE version = $1', [creating]);
      await assert.rejects(PostgresStore.open(url.href), (e: Error & { code?: string }) => e.code === 'STORE_MIGRATION_FAILED' && /permission denied/.test(e.message));
    } finally {
      await s.close();
    }
  } finally {
    await db.drop();
    await admin.query(`DROP ROLE IF EXISTS ${role}`);
    await admin.end();
  }
});

test('the bootstrap admin token is in the audit log, and so is its revocation when its file exists already', { timeout: 60_000 }, async () => {
  const tb = await startTestBroker();
  try {
    const token = readFileSync(join(tb.dir, 'admin.token'), 'utf8').trim();
    const id = /^coffer_([0-9a-f]{16})_/.exec(token)?.[1];
    assert.ok(id, 'a bootstrap token was written');
    const created = await tb.running.broker.store.queryAudit({ action: 'admin.token.create' });
    assert.deepEqual(
      created.map((r) => [r.actor, r.verdict, r.detail?.includes(`token:${id}`)]),
      [['broker', 'allow', true]],
    );
    // A restart finds a token: no new one, no new record.
    await tb.restart();
    assert.equal((await tb.running.broker.store.queryAudit({ action: 'admin.token.create' })).length, 1);
  } finally {
    await tb.cleanup();
  }
  // The twin: a fresh store but an old token file, which is never overwritten.
  const dir = mkdtempSync(join(tmpdir(), 'coffer-bootstrap-'));
  writeFileSync(join(dir, 'admin.token'), 'coffer_0000000000000000_old\n', { mode: 0o600 });
  const tb2 = await startTestBroker(dir);
  try {
    const store = tb2.running.broker.store;
    const [made] = await store.listTokens();
    assert.ok(made?.revokedAt !== undefined, 'the unwritten bootstrap token is revoked');
    const revoked = await store.queryAudit({ action: 'admin.token.revoke' });
    assert.deepEqual(revoked.map((r) => [r.actor, r.detail?.includes(`token:${made?.id}`)]), [['broker', true]]);
    assert.equal(readFileSync(join(dir, 'admin.token'), 'utf8'), 'coffer_0000000000000000_old\n');
  } finally {
    await tb2.cleanup();
  }
});

test('sqlite://name.db is refused rather than taken for /name.db; sqlite:///abs and sqlite:rel still open', async () => {
  await assert.rejects(openStore('sqlite://coffer-review-never-created.db'), (e: Error & { code?: string }) => e.code === 'STORE_BAD_URL' && /takes no host/.test(e.message));
  const dir = mkdtempSync(join(tmpdir(), 'coffer-sqlite-url-'));
  try {
    const s = await openStore(`sqlite://${join(dir, 'abs.db')}`);
    assert.equal(s.kind, 'sqlite');
    await s.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
