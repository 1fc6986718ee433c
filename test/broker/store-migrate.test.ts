// Migrations between processes: a store opened while another process is in the middle of
// migrating the same database waits for it and finds the schema current (SQLite: the write lock
// is taken before the applied versions are read; PostgreSQL: the advisory lock), and a replica
// running as a role that may not create tables opens an already migrated PostgreSQL database.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { MIGRATIONS, openStore } from '../../src/broker/index.js';

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
