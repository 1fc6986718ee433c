// Scale-out: two broker processes (real child processes) on one PostgreSQL database, sharing the
// KEK and the token-signing key, with no sticky routing: each step of a session may land on
// either replica. The races that matter (a nonce, one evidence, one release per session) are
// decided by the database, so they hold across processes.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { flattenedDecrypt, type FlattenedJWE } from 'jose';
import { verifyEar, parseJwks } from '../../src/appraisal/index.js';
import { PROBLEM_BASE } from '../../src/broker/index.js';
import { Attester, MEASUREMENT_A, http, policyFor, sessionCookie, type Reply } from './helpers.js';
import { startChild, writeFakeArk, type ChildBroker } from './fixtures/children.js';
import { freshDatabase, type TestDatabase } from './fixtures/pg.js';

let db: TestDatabase;
let home: string;
let A: ChildBroker;
let B: ChildBroker;
let admin: string;
const SECRET = Buffer.from(`scale-out-secret-${'a5'.repeat(16)}`);
const OTHER = Buffer.from(`scale-out-other-${'b6'.repeat(16)}`);

function assertProblem(r: Reply, status: number, type: string): void {
  assert.equal(r.status, status, r.text);
  assert.equal(r.json.type, `${PROBLEM_BASE}${type}`, r.text);
}

const auth = async (on: ChildBroker) => {
  const r = await http(`${on.url}/kbs/v0/auth`, { body: { version: '0.1.0', tee: 'snp' } });
  assert.equal(r.status, 200, r.text);
  return { cookie: sessionCookie(r), nonce: r.json.nonce as string };
};

before(async () => {
  db = await freshDatabase('scaleout');
  home = mkdtempSync(join(tmpdir(), 'coffer-scaleout-'));
  const ark = writeFakeArk(home);
  // A first: it creates the shared KEK, signing key and bootstrap token; B finds them.
  A = await startChild(home, db.url, ark);
  B = await startChild(home, db.url, ark);
  admin = readFileSync(join(home, 'admin.token'), 'utf8').trim();
  const putPolicy = await http(`${A.url}/admin/v0/policies/fleet`, { method: 'PUT', bearer: admin, body: { policy: policyFor('fleet-release', MEASUREMENT_A) } });
  assert.equal(putPolicy.status, 200, putPolicy.text);
  // Written on different replicas, read by both.
  assert.equal((await http(`${A.url}/admin/v0/secrets/fleet/key/disk`, { method: 'PUT', bearer: admin, body: { value: SECRET.toString('base64') } })).status, 200);
  assert.equal((await http(`${B.url}/admin/v0/secrets/fleet/key/other`, { method: 'PUT', bearer: admin, body: { value: OTHER.toString('base64') } })).status, 200);
});

after(async () => {
  await Promise.all([A?.stop(), B?.stop()]);
  await db?.drop();
  rmSync(home, { recursive: true, force: true });
});

test('auth on A, attest on B, fetch from either; the same resource a second time is refused on the other replica', async () => {
  const vm = new Attester();
  const { cookie, nonce } = await auth(A);
  const att = await http(`${B.url}/kbs/v0/attest`, { body: await vm.attestBody(nonce), cookie });
  assert.equal(att.status, 200, att.text);
  // Both replicas sign with the one shared key: A's JWKS verifies B's token.
  const ear = await verifyEar(att.json.token as string, parseJwks((await http(`${A.url}/.well-known/jwks.json`)).json));
  assert.equal(ear.submods.cvm?.['ear.status'], 'affirming');

  const fromA = await http(`${A.url}/kbs/v0/resource/fleet/key/disk`, { cookie });
  assert.equal(fromA.status, 200, fromA.text);
  assert.deepEqual(Buffer.from((await flattenedDecrypt(fromA.json as unknown as FlattenedJWE, vm.privateKey)).plaintext), SECRET);
  assertProblem(await http(`${B.url}/kbs/v0/resource/fleet/key/disk`, { cookie }), 409, 'already-released');
  assertProblem(await http(`${A.url}/kbs/v0/resource/fleet/key/disk`, { bearer: att.json.token as string }), 409, 'already-released');

  const other = await http(`${B.url}/kbs/v0/resource/fleet/key/other`, { bearer: att.json.token as string });
  assert.equal(other.status, 200, other.text);
  assert.deepEqual(Buffer.from((await flattenedDecrypt(other.json as unknown as FlattenedJWE, vm.privateKey)).plaintext), OTHER);

  // The refusal is in the shared audit log, whichever replica is asked.
  const recs = (await http(`${A.url}/admin/v0/audit?action=kbs.resource&verdict=deny&limit=1000`, { bearer: admin })).json.records as { problem?: string; resource?: string }[];
  assert.equal(recs.filter((r) => r.problem === 'already-released' && r.resource === 'fleet/key/disk').length, 2);
});

test('a nonce used on A is refused on B', async () => {
  const vm = new Attester();
  const { cookie, nonce } = await auth(B);
  const body = await vm.attestBody(nonce);
  assert.equal((await http(`${A.url}/kbs/v0/attest`, { body, cookie })).status, 200);
  assertProblem(await http(`${B.url}/kbs/v0/attest`, { body, cookie }), 409, 'nonce-reused');
  // The twin: a fresh nonce from A attests on B.
  const fresh = await auth(A);
  assert.equal((await http(`${B.url}/kbs/v0/attest`, { body: await vm.attestBody(fresh.nonce), cookie: fresh.cookie })).status, 200);
});

test('races between the replicas: one attestation per nonce, one release per session and resource', async () => {
  const vm = new Attester();
  const { cookie, nonce } = await auth(A);
  const body = await vm.attestBody(nonce);
  const attempts = await Promise.all(Array.from({ length: 6 }, (_, i) => http(`${(i % 2 ? A : B).url}/kbs/v0/attest`, { body, cookie })));
  assert.equal(attempts.filter((r) => r.status === 200).length, 1, attempts.map((r) => r.status).join(','));
  for (const r of attempts.filter((x) => x.status !== 200)) assertProblem(r, 409, 'nonce-reused');

  const fetches = await Promise.all(Array.from({ length: 8 }, (_, i) => http(`${(i % 2 ? A : B).url}/kbs/v0/resource/fleet/key/disk`, { cookie })));
  const ok = fetches.filter((r) => r.status === 200);
  assert.equal(ok.length, 1, fetches.map((r) => r.status).join(','));
  for (const r of fetches.filter((x) => x.status !== 200)) assertProblem(r, 409, 'already-released');
  assert.deepEqual(Buffer.from((await flattenedDecrypt(ok[0]?.json as unknown as FlattenedJWE, vm.privateKey)).plaintext), SECRET);

  const rows = await db.query<{ session_id: string; n: string }>("SELECT session_id, COUNT(*) AS n FROM releases WHERE resource_path = 'fleet/key/disk' GROUP BY session_id");
  assert.ok(rows.length >= 2);
  assert.ok(rows.every((r) => Number(r.n) === 1), 'one release row per session');
  const allows = await db.query<{ n: string }>("SELECT COUNT(*) AS n FROM audit WHERE action = 'kbs.resource' AND verdict = 'allow' AND resource = 'fleet/key/disk'");
  assert.equal(Number(allows[0]?.n), rows.length, 'one allow record per release');
});

test('a session survives the replica that began it: A stops, B continues', async () => {
  const vm = new Attester();
  const { cookie, nonce } = await auth(A);
  const ark = join(home, 'fake-ark.der');
  await A.stop();
  try {
    const att = await http(`${B.url}/kbs/v0/attest`, { body: await vm.attestBody(nonce), cookie });
    assert.equal(att.status, 200, att.text);
    const r = await http(`${B.url}/kbs/v0/resource/fleet/key/disk`, { cookie });
    assert.equal(r.status, 200, r.text);
  } finally {
    A = await startChild(home, db.url, ark);
  }
  assert.equal((await http(`${A.url}/readyz`)).status, 200);
});
