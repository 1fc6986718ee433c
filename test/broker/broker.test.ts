// The key broker end to end over real HTTP (fastify on 127.0.0.1:0) and a real SQLite file:
// a simulated SEV-SNP attester runs the KBS protocol (auth → attest → resource), decrypts the
// JWE with the key that never left it, and every refusal comes with its problem type and an
// audit record. Then: secrets at rest, restart, the admin API's roles and scopes.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { flattenedDecrypt, type FlattenedJWE } from 'jose';
import { verifyEar, parseJwks } from '../../src/appraisal/index.js';
import { MIGRATIONS, PROBLEM_BASE, servedRoutes, type AuditRecord } from '../../src/broker/index.js';
import { Attester, MEASUREMENT_A, MEASUREMENT_B, http, policyFor, sessionCookie, startTestBroker, type Reply, type TestBroker } from './helpers.js';

let tb: TestBroker;
let admin: string;
// Distinctive bytes to hunt for at rest: printable so that a text log would show them too.
const SECRET = Buffer.from(`disk-key-${'7f3a9c'.repeat(8)}-${Date.now()}`);
const SECRET_B = Buffer.from(`team-b-secret-${'e1d2c3'.repeat(6)}`);

const kbs = (p: string) => `${tb.url}/kbs/v0/${p}`;
const adm = (p: string) => `${tb.url}/admin/v0/${p}`;

function assertProblem(r: Reply, status: number, type: string): void {
  assert.equal(r.status, status, `${r.status} ${r.text}`);
  assert.equal(r.headers.get('content-type')?.split(';')[0], 'application/problem+json');
  assert.equal(r.json.type, `${PROBLEM_BASE}${type}`, r.text);
  assert.equal(typeof r.json.detail, 'string');
}

async function auditFor(action: string, problem?: string): Promise<AuditRecord[]> {
  const recs = await tb.running.broker.store.queryAudit({ action, limit: 1000 });
  return problem ? recs.filter((r) => r.problem === problem) : recs;
}

async function assertAudited(action: string, problem: string, rule?: string): Promise<AuditRecord> {
  const recs = await auditFor(action, problem);
  const last = recs.at(-1);
  assert.ok(last, `no ${action} audit record with problem ${problem}`);
  assert.equal(last.verdict, 'deny');
  if (rule) assert.equal(last.rule, rule);
  return last;
}

async function authed(hash?: string): Promise<{ cookie: string; nonce: string }> {
  const r = await http(kbs('auth'), { body: { version: '0.1.0', tee: 'snp', 'extra-params': hash ? { 'runtime-data-hash-algorithm': hash } : '' } });
  assert.equal(r.status, 200, r.text);
  return { cookie: sessionCookie(r), nonce: r.json.nonce as string };
}

async function attested(att: Attester): Promise<{ cookie: string; token: string }> {
  const { cookie, nonce } = await authed();
  const r = await http(kbs('attest'), { body: await att.attestBody(nonce), cookie });
  assert.equal(r.status, 200, r.text);
  return { cookie, token: r.json.token as string };
}

before(async () => {
  tb = await startTestBroker();
  const file = tb.running.paths.adminTokenFile;
  assert.ok(tb.running.created.adminToken && existsSync(file), 'first start writes a bootstrap admin token');
  assert.equal(statSync(file).mode & 0o777, 0o600);
  admin = readFileSync(file, 'utf8').trim();
  for (const [prefix, m] of [['team-a', MEASUREMENT_A], ['team-b', MEASUREMENT_B]] as const) {
    const r = await http(adm(`policies/${prefix}`), { method: 'PUT', bearer: admin, body: { policy: policyFor(`${prefix}-release`, m) } });
    assert.equal(r.status, 200, r.text);
  }
  for (const [path, v] of [['team-a/key/disk', SECRET], ['team-b/key/disk', SECRET_B], ['nobody/key/x', Buffer.from('unowned')]] as const) {
    const r = await http(adm(`secrets/${path}`), { method: 'PUT', bearer: admin, body: { value: v.toString('base64') } });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.size, v.length);
    assert.equal(r.json.value, undefined);
  }
});
after(async () => tb.cleanup());

test('end to end: auth → attest → EAR token (verified with the JWKS) → resource → JWE decrypted by the attester', async () => {
  const att = new Attester();
  const auth = await http(kbs('auth'), { body: { version: '0.1.0', tee: 'snp', 'extra-params': '' } });
  assert.equal(auth.status, 200);
  const setCookie = auth.headers.get('set-cookie') ?? '';
  assert.match(setCookie, /^kbs-session-id=[A-Za-z0-9_-]{43}; /);
  assert.match(setCookie, /HttpOnly/);
  assert.match(setCookie, /SameSite=Strict/);
  assert.doesNotMatch(setCookie, /Secure/, 'plain HTTP on loopback: no Secure flag');
  assert.equal(Buffer.from(auth.json.nonce as string, 'base64').length, 32);
  assert.deepEqual(JSON.parse(auth.json['extra-params'] as string), { 'runtime-data-hash-algorithm': 'sha384' });
  const cookie = sessionCookie(auth);

  const att1 = await http(kbs('attest'), { body: await att.attestBody(auth.json.nonce as string), cookie });
  assert.equal(att1.status, 200, att1.text);
  const token = att1.json.token as string;
  const jwks = await http(`${tb.url}/.well-known/jwks.json`);
  const ear = await verifyEar(token, parseJwks(jwks.json));
  assert.equal(ear.submods.cvm?.['ear.status'], 'affirming');
  const claims = ear as unknown as Record<string, unknown>;
  assert.equal((claims.cnf as { jwk: { x: string } }).jwk.x, (await att.jwk()).x, 'the token is bound to the tee-pubkey');
  assert.equal(typeof claims['coffer.session'], 'string');
  assert.ok(typeof claims.exp === 'number' && claims.exp > Date.now() / 1000);

  const res = await http(kbs('resource/team-a/key/disk'), { cookie });
  assert.equal(res.status, 200, res.text);
  assert.equal(res.headers.get('content-type')?.split(';')[0], 'application/jose+json');
  assert.equal(res.headers.get('cache-control'), 'no-store');
  const jwe = res.json as unknown as FlattenedJWE;
  const header = JSON.parse(Buffer.from(jwe.protected ?? '', 'base64url').toString()) as Record<string, unknown>;
  assert.equal(header.alg, 'ECDH-ES+A256KW');
  assert.equal(header.enc, 'A256GCM');
  const { plaintext } = await flattenedDecrypt(jwe, att.privateKey);
  assert.deepEqual(Buffer.from(plaintext), SECRET);

  // Released once per attested session: a second fetch, by cookie or by token, is refused.
  assertProblem(await http(kbs('resource/team-a/key/disk'), { bearer: token }), 409, 'already-released');
  assert.equal((await assertAudited('kbs.resource', 'already-released', 'release.once')).resource, 'team-a/key/disk');

  // The token alone (no cookie) also works.
  const again = await attested(att);
  const byToken = await http(kbs('resource/team-a/key/disk'), { bearer: again.token });
  assert.equal(byToken.status, 200, byToken.text);
  assert.deepEqual(Buffer.from((await flattenedDecrypt(byToken.json as unknown as FlattenedJWE, att.privateKey)).plaintext), SECRET);

  const recs = await tb.running.broker.store.queryAudit({ action: 'kbs.resource', verdict: 'allow' });
  const rec = recs.at(-1);
  assert.ok(rec);
  assert.equal(rec.resource, 'team-a/key/disk');
  assert.equal(rec.rule, 'team-a-release@1');
  assert.match(rec.evidenceDigest ?? '', /^[0-9a-f]{64}$/);
  assert.match(rec.actor, /^session:[0-9a-f]{16}$/);
});

test('RSA tee-pubkey gets RSA-OAEP-256; SHA-512 binding negotiated through extra-params', async () => {
  const att = new Attester(MEASUREMENT_A, 'rsa');
  const { cookie, nonce } = await authed('sha512');
  const r = await http(kbs('attest'), { body: await att.attestBody(nonce, 'sha512'), cookie });
  assert.equal(r.status, 200, r.text);
  const res = await http(kbs('resource/team-a/key/disk'), { cookie });
  const jwe = res.json as unknown as FlattenedJWE;
  assert.equal((JSON.parse(Buffer.from(jwe.protected ?? '', 'base64url').toString()) as { alg: string }).alg, 'RSA-OAEP-256');
  assert.deepEqual(Buffer.from((await flattenedDecrypt(jwe, att.privateKey)).plaintext), SECRET);
});

test('refused: wrong measurement (policy-denied, rule measurement)', async () => {
  const { cookie } = await attested(new Attester(MEASUREMENT_B));
  const r = await http(kbs('resource/team-a/key/disk'), { cookie });
  assertProblem(r, 403, 'policy-denied');
  assert.equal(r.json.rule, 'measurement');
  await assertAudited('kbs.resource', 'policy-denied', 'measurement');
});

test('refused: resource outside the policy (another team\'s prefix; a path no policy covers)', async () => {
  const { cookie } = await attested(new Attester(MEASUREMENT_A));
  const r = await http(kbs('resource/team-b/key/disk'), { cookie });
  assertProblem(r, 403, 'policy-denied');
  assert.equal(r.json.rule, 'measurement');
  const none = await http(kbs('resource/nobody/key/x'), { cookie });
  assertProblem(none, 403, 'no-policy');
  await assertAudited('kbs.resource', 'no-policy');
});

test('refused: replayed nonce (the same attest twice) and a nonce from another session', async () => {
  const att = new Attester();
  const { cookie, nonce } = await authed();
  const body = await att.attestBody(nonce);
  assert.equal((await http(kbs('attest'), { body, cookie })).status, 200);
  const again = await http(kbs('attest'), { body, cookie });
  assertProblem(again, 409, 'nonce-reused');
  await assertAudited('kbs.attest', 'nonce-reused', 'freshness.nonce');

  // The old evidence on a fresh session: its nonce is not this session's.
  const fresh = await authed();
  const replay = await http(kbs('attest'), { body, cookie: fresh.cookie });
  assertProblem(replay, 401, 'nonce-mismatch');
  await assertAudited('kbs.attest', 'nonce-mismatch');
});

test('refused: expired nonce', async () => {
  const att = new Attester();
  const { cookie, nonce } = await authed();
  tb.clock.offsetMs = 61_000;
  try {
    const r = await http(kbs('attest'), { body: await att.attestBody(nonce), cookie });
    assertProblem(r, 401, 'nonce-expired');
  } finally {
    tb.clock.offsetMs = 0;
  }
  await assertAudited('kbs.attest', 'nonce-expired', 'freshness.nonce');
});

test('refused: report data not bound to the tee-pubkey that is sent', async () => {
  const att = new Attester();
  const other = new Attester();
  const { cookie, nonce } = await authed();
  // The report binds the attester's key, the request substitutes another (a man in the middle).
  const r = await http(kbs('attest'), { body: { 'runtime-data': await other.runtimeData(nonce), 'tee-evidence': att.evidence(await att.runtimeData(nonce)) }, cookie });
  assertProblem(r, 403, 'evidence-unbound');
  const rec = await assertAudited('kbs.attest', 'evidence-unbound', 'freshness.binding');
  assert.match(rec.evidenceDigest ?? '', /^[0-9a-f]{64}$/);
  // SHA-256 binding when the session negotiated the default SHA-384 is also unbound.
  const s2 = await authed();
  const rd = await att.runtimeData(s2.nonce);
  assertProblem(await http(kbs('attest'), { body: { 'runtime-data': rd, 'tee-evidence': att.evidence(rd, 'sha256') }, cookie: s2.cookie }), 403, 'evidence-unbound');
});

test('refused: evidence that does not verify, and a debuggable guest under the attestation policy', async () => {
  const att = new Attester();
  const { cookie, nonce } = await authed();
  const body = await att.attestBody(nonce);
  const ev = body['tee-evidence'] as { report: string };
  const raw = Buffer.from(ev.report, 'base64');
  raw[0x90] = (raw[0x90] ?? 0) ^ 1; // a measurement bit: the signature no longer holds
  ev.report = raw.toString('base64');
  assertProblem(await http(kbs('attest'), { body, cookie }), 403, 'evidence-invalid');
  await assertAudited('kbs.attest', 'evidence-invalid', 'evidence.verified');

  const s = await authed();
  const rd = await att.runtimeData(s.nonce);
  const debug = await http(kbs('attest'), { body: { 'runtime-data': rd, 'tee-evidence': att.evidence(rd, 'sha384', { policy: 0x30000n | (1n << 19n) }) }, cookie: s.cookie });
  assertProblem(debug, 403, 'attestation-denied');
  assert.equal(debug.json.rule, 'debug');
});

test('refused: the token of another session (cookie of client B, token of client A); no session at all', async () => {
  const a = await attested(new Attester());
  const b = await authed();
  const r = await http(kbs('resource/team-a/key/disk'), { cookie: b.cookie, bearer: a.token });
  assertProblem(r, 403, 'session-mismatch');
  await assertAudited('kbs.resource', 'session-mismatch');
  assertProblem(await http(kbs('resource/team-a/key/disk'), { cookie: b.cookie }), 401, 'not-attested');
  assertProblem(await http(kbs('resource/team-a/key/disk')), 401, 'not-attested');
  assertProblem(await http(kbs('resource/team-a/key/disk'), { bearer: `${a.token.slice(0, -4)}AAAA` }), 401, 'token-invalid');
});

test('protocol input errors are problems: bad version, unknown tee, bad tee-pubkey, malformed JSON', async () => {
  assertProblem(await http(kbs('auth'), { body: { version: '9.0.0', tee: 'snp' } }), 400, 'unsupported-version');
  assertProblem(await http(kbs('auth'), { body: { version: '0.1.0', tee: 'sgx' } }), 400, 'unsupported-tee');
  const { cookie, nonce } = await authed();
  assertProblem(await http(kbs('attest'), { body: { 'runtime-data': { nonce, 'tee-pubkey': { kty: 'oct', k: 'AAAA' } }, 'tee-evidence': {} }, cookie }), 400, 'bad-tee-pubkey');
  const raw = await fetch(kbs('auth'), { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"version": "0.1.0", "tee": "snp", SECRET-LOOKING' });
  assert.equal(raw.status, 400);
  const body = await raw.text();
  assert.doesNotMatch(body, /SECRET-LOOKING/, 'a parser error never echoes the body');
  assert.equal(JSON.parse(body).type, `${PROBLEM_BASE}bad-request`);
});

test('admin API: missing or wrong token, role too weak, out of scope — each refused and audited', async () => {
  const put = (bearer: string | undefined, path = 'team-a/key/other') => http(adm(`secrets/${path}`), { method: 'PUT', body: { value: 'AAAA' }, ...(bearer ? { bearer } : {}) });
  assertProblem(await put(undefined), 401, 'unauthorized');
  await assertAudited('admin.secret.put', 'unauthorized');
  const wrong = `${admin.slice(0, -4)}AAAA`;
  assertProblem(await put(wrong), 401, 'unauthorized');
  const rec = await assertAudited('admin.secret.put', 'unauthorized');
  assert.match(rec.actor, /^token:[0-9a-f]{16}$/, 'the actor is the token id, never the token');
  const auditor = await tb.token('auditor');
  assertProblem(await put(auditor), 403, 'forbidden');
  await assertAudited('admin.secret.put', 'forbidden');
  const provA = await tb.token('provisioner', 'team-a');
  assert.equal((await put(provA)).status, 200);
  assertProblem(await put(provA, 'team-b/key/disk'), 403, 'out-of-scope');
  assertProblem(await http(adm('policies/team-b'), { method: 'PUT', bearer: provA, body: { policy: policyFor('x', MEASUREMENT_A) } }), 403, 'out-of-scope');
  await assertAudited('admin.policy.set', 'out-of-scope');
  // The auditor reads metadata and the audit log, never a value.
  const meta = await http(adm('secrets/team-a/key/disk'), { bearer: auditor });
  assert.equal(meta.status, 200);
  assert.deepEqual(Object.keys(meta.json).sort(), ['alg', 'createdAt', 'createdBy', 'kekId', 'path', 'size', 'updatedAt', 'updatedBy', 'version']);
  const list = await http(adm('secrets?prefix=team-a'), { bearer: provA });
  assert.deepEqual((list.json.secrets as { path: string }[]).map((s) => s.path), ['team-a/key/disk', 'team-a/key/other']);
  const audit = await http(adm(`audit?action=admin.secret.put&verdict=deny&since=${new Date(Date.now() - 60_000).toISOString()}`), { bearer: auditor });
  assert.equal(audit.status, 200, audit.text);
  assert.ok((audit.json.records as AuditRecord[]).length >= 3);
  assertProblem(await http(adm('audit'), { bearer: provA }), 403, 'forbidden');
  // A policy that does not parse is refused with its line.
  const bad = await http(adm('policies/team-a'), { method: 'PUT', bearer: admin, body: { policy: 'id: x\nversion: 1\nmeasurments: {}\n' } });
  assertProblem(bad, 400, 'bad-request');
  assert.match(bad.json.detail as string, /measurments/);
});

test('the audit log is append-only and holds no secret or token', async () => {
  const db = new Database(tb.running.paths.db);
  try {
    assert.throws(() => db.prepare("UPDATE audit SET verdict = 'allow'").run(), /append-only/);
    assert.throws(() => db.prepare('DELETE FROM audit').run(), /append-only/);
    const rows = JSON.stringify(db.prepare('SELECT * FROM audit').all());
    for (const needle of [SECRET.toString(), SECRET.toString('base64'), admin, admin.split('_')[2] ?? 'x']) assert.ok(!rows.includes(needle), 'audit holds a secret or token');
    const versions = db.prepare('SELECT version, name FROM schema_migrations ORDER BY version').all() as { version: number }[];
    assert.deepEqual(versions.map((v) => v.version), MIGRATIONS.map((m) => m.version).sort((a, b) => a - b), 'every migration applied once');
    assert.deepEqual(versions[0], { version: 1, name: 'initial' });
    assert.equal(db.pragma('journal_mode', { simple: true }), 'wal');
  } finally {
    db.close();
  }
});

test('at rest: the secret appears in no SQLite file (db, -wal, -shm), log line or audit record', async () => {
  const files = ['', '-wal', '-shm'].map((s) => `${tb.running.paths.db}${s}`).filter((f) => existsSync(f));
  assert.ok(files.length >= 2, 'WAL mode leaves a -wal file beside the database');
  const needles = [SECRET, Buffer.from(SECRET.toString('base64')), Buffer.from(SECRET.toString('hex')), SECRET_B, Buffer.from(admin)];
  for (const f of files) {
    const data = readFileSync(f);
    for (const n of needles) assert.equal(data.indexOf(n), -1, `${f} contains a secret`);
  }
  const logs = tb.logs.text();
  assert.ok(logs.length > 1000, 'the broker logged');
  for (const n of needles) assert.ok(!logs.includes(n.toString()), 'the logs contain a secret or token');
  const audit = JSON.stringify(await tb.running.broker.store.queryAudit({ limit: 1000 }));
  for (const n of needles) assert.ok(!audit.includes(n.toString()));
  assert.equal(statSync(tb.running.paths.kek).mode & 0o777, 0o600);
  assert.equal(statSync(tb.running.paths.earKey).mode & 0o777, 0o600);
});

test('restart: a session begun before a restart attests and fetches after it', async () => {
  const att = new Attester();
  const { cookie, nonce } = await authed();
  await tb.restart();
  assert.equal(tb.running.created.adminToken, false, 'no second bootstrap token');
  const r = await http(kbs('attest'), { body: await att.attestBody(nonce), cookie });
  assert.equal(r.status, 200, r.text);
  await tb.restart();
  const res = await http(kbs('resource/team-a/key/disk'), { cookie });
  assert.equal(res.status, 200, res.text);
  assert.deepEqual(Buffer.from((await flattenedDecrypt(res.json as unknown as FlattenedJWE, att.privateKey)).plaintext), SECRET);
});

test('service surface: OpenAPI lists every route, health, readiness, security headers, JSON 404', async () => {
  const doc = (await http(`${tb.url}/openapi.json`)).json as { paths: Record<string, Record<string, unknown>> };
  const listed = new Set(Object.entries(doc.paths).flatMap(([p, ops]) => Object.keys(ops).map((m) => `${m.toUpperCase()} ${p}`)));
  const routes = servedRoutes(tb.running.app);
  // the route list is parsed from the server, so check it found the protocol's own routes before trusting it
  for (const core of ['POST /kbs/v0/auth', 'POST /kbs/v0/attest', 'GET /kbs/v0/resource/{repository}/{type}/{tag}', 'GET /admin/v0/audit', 'GET /metrics', 'POST /admin/v0/volumes']) {
    assert.ok(routes.includes(core), `${core} not among the ${routes.length} parsed routes`);
  }
  for (const r of routes) assert.ok(listed.has(r), `OpenAPI does not list ${r}`);
  for (const l of listed) assert.ok(routes.includes(l), `OpenAPI lists ${l}, which the server does not serve`);
  assert.deepEqual((await http(`${tb.url}/healthz`)).json, { status: 'ok' });
  const ready = await http(`${tb.url}/readyz`);
  assert.equal(ready.json.status, 'ready');
  const h = (await http(`${tb.url}/healthz`)).headers;
  assert.equal(h.get('x-content-type-options'), 'nosniff');
  assert.ok(h.get('content-security-policy'));
  assert.ok(h.get('x-ratelimit-limit') === null || Number(h.get('x-ratelimit-limit')) > 0);
  assertProblem(await http(`${tb.url}/nope`), 404, 'not-found');
  assert.ok(!existsSync(join(tb.dir, 'nope')));
});
