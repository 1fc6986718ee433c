// PostgreSQL audit paging: sequence numbers follow commit order. Identity values are drawn at
// insert time, so without the advisory lock that insertAudit holds from its insert to the commit,
// a transaction that draws seq n and commits late lets one that drew n+1 commit first: a reader
// paging with `after` (coffer broker audit --follow, the console) reads n+1, then never sees n.
// Here the late commit is made deterministic, with no sleeps: a deferred constraint trigger the
// test adds runs at the slow record's COMMIT and waits there on an advisory lock the test holds.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import { PostgresStore, type AuditInput } from '../../src/broker/index.js';
import { freshDatabase, type TestDatabase } from './fixtures/pg.js';

/** The test's own lock (the trigger waits on it); not the store's audit lock. */
const HOLD = 424242;
/** The store's audit lock key (AUDIT_LOCK in src/broker/store/postgres.ts), to see who waits on it. */
const AUDIT_LOCK = 73950004879731n;

let db: TestDatabase;
let store: PostgresStore;
let holder: pg.Client;

before(async () => {
  db = await freshDatabase('auditorder');
  store = await PostgresStore.open(db.url);
  await db.query(`CREATE FUNCTION test_hold_commit() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      IF NEW.action = 'test.slow' THEN
        PERFORM pg_advisory_lock(${HOLD});
        PERFORM pg_advisory_unlock(${HOLD});
      END IF;
      RETURN NULL;
    END $$`);
  await db.query('CREATE CONSTRAINT TRIGGER test_hold_commit AFTER INSERT ON audit DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION test_hold_commit()');
  holder = new pg.Client({ connectionString: db.url });
  await holder.connect();
});

after(async () => {
  await holder?.end().catch(() => undefined);
  await store?.close();
  await db?.drop();
});

const rec = (action: string): AuditInput => ({ at: 1_700_000_000_000, actor: 'cli:test', action, verdict: 'allow' });

/** Resolves once `n` sessions wait for the advisory lock `key` (pg_locks splits a bigint key in two halves). */
async function waiters(key: bigint, n: number): Promise<void> {
  const hi = Number(key >> 32n);
  const lo = Number(key & 0xffffffffn);
  for (;;) {
    const r = await db.query<{ n: string }>("SELECT COUNT(*) AS n FROM pg_locks WHERE locktype = 'advisory' AND NOT granted AND classid = $1 AND objid = $2 AND objsubid = 1", [hi, lo]);
    if (Number(r[0]?.n) >= n) return;
    await new Promise((res) => setImmediate(res));
  }
}

async function pagedReader(afterSeq: number): Promise<{ seen: string[]; last: number }> {
  const page = await store.queryAudit({ afterSeq, limit: 1000 });
  return { seen: page.map((r) => r.action), last: page.at(-1)?.seq ?? afterSeq };
}

test('PostgreSQL audit: a record that commits late is never skipped by a reader paging with after', { timeout: 30_000 }, async () => {
  await store.appendAudit(rec('test.first'));
  const start = (await store.queryAudit({ limit: 1000 })).at(-1)?.seq ?? 0;
  await holder.query('SELECT pg_advisory_lock($1)', [HOLD]);
  let held = true;
  try {
    // The slow record: inserted (its seq drawn), then held at its COMMIT by the trigger.
    const slow = store.appendAudit(rec('test.slow'));
    await waiters(BigInt(HOLD), 1);
    // The fast record, from another pooled connection: with the lock it waits for the slow
    // commit; without it, it commits at once with the higher seq.
    let fastDone = false;
    const fast = store.appendAudit(rec('test.fast')).then(() => {
      fastDone = true;
    });
    await Promise.race([fast, waiters(AUDIT_LOCK, 1)]);
    // A reader pages now, and again after both committed.
    const page1 = await pagedReader(start);
    const waited = !fastDone;
    await holder.query('SELECT pg_advisory_unlock($1)', [HOLD]);
    held = false;
    await Promise.all([slow, fast]);
    const page2 = await pagedReader(page1.last);
    assert.deepEqual([...page1.seen, ...page2.seen], ['test.slow', 'test.fast'], 'the reader saw every record, in commit order');
    assert.deepEqual(page1.seen, [], 'nothing was visible while the earlier record was uncommitted');
    assert.ok(waited, 'the later record waited for the earlier one to commit');
  } finally {
    if (held) await holder.query('SELECT pg_advisory_unlock($1)', [HOLD]);
  }
});

test('the twin: a writer that bypasses the lock (a raw INSERT) is skipped, so the harness does see the anomaly', { timeout: 30_000 }, async () => {
  const start = (await store.queryAudit({ limit: 1000 })).at(-1)?.seq ?? 0;
  const raw = new pg.Client({ connectionString: db.url });
  await raw.connect();
  try {
    await raw.query('BEGIN');
    await raw.query("INSERT INTO audit (at, actor, action, verdict) VALUES (1, 'cli:test', 'test.raw-slow', 'allow')");
    await store.appendAudit(rec('test.fast2'));
    const page1 = await pagedReader(start);
    await raw.query('COMMIT');
    const page2 = await pagedReader(page1.last);
    assert.deepEqual([...page1.seen, ...page2.seen], ['test.fast2'], 'the raw record was skipped');
    const all = (await store.queryAudit({ afterSeq: start, limit: 1000 })).map((r) => r.action);
    assert.deepEqual(all, ['test.raw-slow', 'test.fast2'], 'it is there, with the lower seq');
  } finally {
    await raw.end();
  }
});
