// Crash safety: a broker child process is killed with SIGKILL at random moments while clients
// write secrets and run attest-and-release flows against it, then restarted, several times, on
// SQLite and on PostgreSQL. Afterwards: every write the broker acknowledged reads back and
// decrypts, no session received one resource twice (not even a session whose release was in
// flight at the kill and is retried after the restart), and the audit log has one record for
// every committed change.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes, randomInt } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { flattenedDecrypt, type FlattenedJWE } from 'jose';
import { PROBLEM_BASE } from '../../src/broker/index.js';
import { Attester, MEASUREMENT_A, http, policyFor, sessionCookie, type Reply } from './helpers.js';
import { startChild, writeFakeArk, type ChildBroker } from './fixtures/children.js';
import { freshDatabase } from './fixtures/pg.js';

const KILLS = 3;
const WRITERS = 2;
const RELEASERS = 3;
const FIXED = Buffer.from(`crash-fixed-secret-${'c3'.repeat(16)}`);
const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');

interface Target {
  spec: string;
  rows(sql: string): Promise<Record<string, unknown>[]>;
  cleanup(): Promise<void>;
}

interface Ledger {
  /** Writes answered 2xx: path → value. */
  acked: Map<string, Buffer>;
  /** Sessions (cookie) that attested, and how many 200 releases of the fixed secret each received. */
  sessions: Map<string, { vm: Attester; got: number; afterRestart: boolean }>;
}

/** Unreachable broker (killed) ends a worker; anything else is a test failure. */
const gone = (e: unknown) => {
  const code = (e as { cause?: { code?: string } }).cause?.code ?? '';
  return /ECONNREFUSED|ECONNRESET|EPIPE|UND_ERR_SOCKET|UND_ERR_CLOSED/.test(code) || /fetch failed|other side closed|terminated|socket/i.test(String((e as Error).message));
};

async function writer(b: ChildBroker, admin: string, id: number, round: number, ledger: Ledger, alive: () => boolean, progress: () => void): Promise<void> {
  for (let n = 0; alive(); n++) {
    const path = `crash/key/r${round}-w${id}-${n}`;
    const value = randomBytes(24 + randomInt(40));
    let r: Reply;
    try {
      r = await http(`${b.url}/admin/v0/secrets/${path}`, { method: 'PUT', bearer: admin, body: { value: value.toString('base64') } });
    } catch (e) {
      if (gone(e)) return;
      throw e;
    }
    assert.equal(r.status, 200, r.text);
    ledger.acked.set(path, value);
    progress();
  }
}

async function fetchFixed(b: ChildBroker, cookie: string, ledger: Ledger, retry = false): Promise<void> {
  const r = await http(`${b.url}/kbs/v0/resource/crash/key/fixed`, { cookie });
  const s = ledger.sessions.get(cookie);
  assert.ok(s);
  if (r.status === 200) {
    assert.deepEqual(Buffer.from((await flattenedDecrypt(r.json as unknown as FlattenedJWE, s.vm.privateKey)).plaintext), FIXED);
    s.got++;
    s.afterRestart = retry;
  } else {
    assert.equal(r.json.type, `${PROBLEM_BASE}already-released`, r.text);
  }
}

async function releaser(b: ChildBroker, ledger: Ledger, alive: () => boolean, progress: () => void): Promise<void> {
  while (alive()) {
    try {
      const vm = new Attester();
      const a = await http(`${b.url}/kbs/v0/auth`, { body: { version: '0.1.0', tee: 'snp' } });
      assert.equal(a.status, 200, a.text);
      const cookie = sessionCookie(a);
      const att = await http(`${b.url}/kbs/v0/attest`, { body: await vm.attestBody(a.json.nonce as string), cookie });
      assert.equal(att.status, 200, att.text);
      ledger.sessions.set(cookie, { vm, got: 0, afterRestart: false });
      // Progress after the attestation too, so that some kills land while releases are in flight.
      progress();
      // Two at once on one session: the store lets one through.
      await Promise.all([fetchFixed(b, cookie, ledger), fetchFixed(b, cookie, ledger)]);
      progress();
    } catch (e) {
      if (gone(e)) return;
      throw e;
    }
  }
}

async function crashRun(target: Target): Promise<string> {
  const home = mkdtempSync(join(tmpdir(), 'coffer-crash-'));
  const ark = writeFakeArk(home);
  const ledger: Ledger = { acked: new Map(), sessions: new Map() };
  const t0 = Date.now();
  const marks: string[] = [];
  const mark = (what: string) => marks.push(`${what} ${((Date.now() - t0) / 1000).toFixed(1)}s`);
  // The broker to stop at the end, whatever fails.
  const live: { b?: ChildBroker } = {};
  try {
    let b = await startChild(home, target.spec, ark);
    live.b = b;
    mark('started');
    const admin = readFileSync(join(home, 'admin.token'), 'utf8').trim();
    assert.equal((await http(`${b.url}/admin/v0/policies/crash`, { method: 'PUT', bearer: admin, body: { policy: policyFor('crash-release', MEASUREMENT_A) } })).status, 200);
    assert.equal((await http(`${b.url}/admin/v0/secrets/crash/key/fixed`, { method: 'PUT', bearer: admin, body: { value: FIXED.toString('base64') } })).status, 200);

    for (let round = 0; round < KILLS; round++) {
      // Sessions from before the last kill retry: whatever was in flight is released at most once.
      await Promise.all([...ledger.sessions.keys()].map((c) => fetchFixed(b, c, ledger, true)));
      let alive = true;
      const acks = { write: 0, release: 0 };
      // A random moment, mid-flight: after a random number of acknowledged writes and releases.
      const killAt = { write: 2 + randomInt(12), release: 1 + randomInt(5) };
      let killed: Promise<void> | undefined;
      const current = b;
      const progress = (kind: 'write' | 'release') => () => {
        acks[kind]++;
        // The kill lands a random few milliseconds later, while the requests the workers sent
        // since are being served (killed at the acknowledgement itself, it would fall between them).
        if (!killed && acks.write >= killAt.write && acks.release >= killAt.release) {
          killed = new Promise<void>((resolve) => setTimeout(resolve, randomInt(25))).then(() => current.kill()).then(() => void (alive = false));
        }
      };
      const work = [
        ...Array.from({ length: WRITERS }, (_, i) => writer(current, admin, i, round, ledger, () => alive, progress('write'))),
        ...Array.from({ length: RELEASERS }, () => releaser(current, ledger, () => alive, progress('release'))),
      ];
      await Promise.all(work.map((w) => w.catch((e: unknown) => e))).then((results) => {
        const failed = results.find((x) => x !== undefined);
        if (failed) throw failed;
      });
      await killed;
      assert.ok(current.proc.signalCode === 'SIGKILL', `round ${round}: the broker was killed`);
      mark(`kill ${round + 1}`);
      b = await startChild(home, target.spec, ark);
      live.b = b;
      mark('restarted');
    }

    // After the last restart: the in-flight sessions retry once more; no session ever got two.
    await Promise.all([...ledger.sessions.keys()].map((c) => fetchFixed(b, c, ledger, true)));
    for (const [c, s] of ledger.sessions) assert.ok(s.got <= 1, `session ${sha256(c).slice(0, 16)} received the secret ${s.got} times`);
    assert.ok(ledger.acked.size >= KILLS, `writes were acknowledged (${ledger.acked.size})`);
    assert.ok(ledger.sessions.size >= 1, 'sessions attested');

    // Every acknowledged write reads back and decrypts, through a release to a fresh session.
    const vm = new Attester();
    const a = await http(`${b.url}/kbs/v0/auth`, { body: { version: '0.1.0', tee: 'snp' } });
    const cookie = sessionCookie(a);
    assert.equal((await http(`${b.url}/kbs/v0/attest`, { body: await vm.attestBody(a.json.nonce as string), cookie })).status, 200);
    mark('retried');
    const paths = [...ledger.acked.keys()];
    for (let i = 0; i < paths.length; i += 16) {
      await Promise.all(
        paths.slice(i, i + 16).map(async (p) => {
          const r = await http(`${b.url}/kbs/v0/resource/${p}`, { cookie });
          assert.equal(r.status, 200, `${p}: ${r.text}`);
          assert.deepEqual(Buffer.from((await flattenedDecrypt(r.json as unknown as FlattenedJWE, vm.privateKey)).plaintext), ledger.acked.get(p), p);
        }),
      );
    }
    mark('read back');
  } finally {
    await live.b?.stop();
    rmSync(home, { recursive: true, force: true });
  }

  // The store after the storm: one release row per session and resource, each with exactly one
  // allow record; every stored secret with exactly one put record (each path was written once).
  const dupes = await target.rows('SELECT session_id, resource_path, COUNT(*) AS n FROM releases GROUP BY session_id, resource_path HAVING COUNT(*) > 1');
  assert.deepEqual(dupes, []);
  const releases = await target.rows('SELECT session_id, resource_path FROM releases');
  const allows = await target.rows("SELECT actor, resource FROM audit WHERE action = 'kbs.resource' AND verdict = 'allow'");
  const key = (actor: string, res: string) => `${actor}|${res}`;
  const allowCount = new Map<string, number>();
  for (const r of allows) allowCount.set(key(String(r.actor), String(r.resource)), (allowCount.get(key(String(r.actor), String(r.resource))) ?? 0) + 1);
  assert.equal(allows.length, releases.length, 'one allow record per release row');
  for (const r of releases) assert.equal(allowCount.get(key(`session:${String(r.session_id).slice(0, 16)}`, String(r.resource_path))), 1);
  for (const [c, s] of ledger.sessions) if (s.got === 1) assert.ok(releases.some((r) => r.session_id === sha256(c) && r.resource_path === 'crash/key/fixed'), 'a release the client received is recorded');
  const secrets = await target.rows("SELECT path, version FROM secrets WHERE path LIKE 'crash/key/r%'");
  const puts = await target.rows("SELECT resource FROM audit WHERE action = 'admin.secret.put' AND verdict = 'allow'");
  const putCount = new Map<string, number>();
  for (const p of puts) putCount.set(String(p.resource), (putCount.get(String(p.resource)) ?? 0) + 1);
  assert.ok(secrets.length >= ledger.acked.size);
  for (const s of secrets) {
    assert.equal(Number(s.version), 1);
    assert.equal(putCount.get(String(s.path)), 1, `${String(s.path)} has one put record`);
  }
  assert.equal(puts.filter((p) => String(p.resource).startsWith('crash/key/r')).length, secrets.length, 'no put record without its secret');
  const released = [...ledger.sessions.values()].filter((x) => x.got === 1).length;
  const late = [...ledger.sessions.values()].filter((x) => x.afterRestart).length;
  // Committed, but the reply died with the broker: refused on every retry, never handed out twice.
  const lost = [...ledger.sessions].filter(([c, x]) => x.got === 0 && releases.some((r) => r.session_id === sha256(c) && r.resource_path === 'crash/key/fixed')).length;
  return `${KILLS} kills: ${ledger.acked.size} acknowledged writes (${secrets.length} committed), ${ledger.sessions.size} attested sessions, ${released} releases received (${late} only after a restart, ${lost} committed with the reply lost), ${releases.length} release rows (${marks.join(', ')})`;
}

describe('crash safety: SIGKILL during concurrent writes and releases', { concurrency: 2 }, () => {
  test('SQLite', { timeout: 240_000 }, async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'coffer-crash-db-'));
    const file = join(dir, 'broker.db');
    const target: Target = {
      spec: file,
      rows: async (sql) => {
        const db = new Database(file, { readonly: true });
        try {
          return db.prepare(sql).all() as Record<string, unknown>[];
        } finally {
          db.close();
        }
      },
      cleanup: async () => rmSync(dir, { recursive: true, force: true }),
    };
    try {
      t.diagnostic(await crashRun(target));
      const db = new Database(file, { readonly: true });
      try {
        assert.equal(db.pragma('integrity_check', { simple: true }), 'ok');
      } finally {
        db.close();
      }
    } finally {
      await target.cleanup();
    }
  });

  test('PostgreSQL', { timeout: 240_000 }, async (t) => {
    const db = await freshDatabase('crash');
    try {
      t.diagnostic(await crashRun({ spec: db.url, rows: (sql) => db.query(sql), cleanup: async () => undefined }));
    } finally {
      await db.drop();
    }
  });
});
