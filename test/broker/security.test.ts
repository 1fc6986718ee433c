// The security review of the key broker, finding by finding: each test runs the reviewer's attack
// (from their scripts) against a real broker over HTTP on real files, and asserts the refusal.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, generateKeyPairSync } from 'node:crypto';
import { chmodSync, chownSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { exportJWK, flattenedDecrypt, type FlattenedJWE } from 'jose';
import { FileKekProvider, PROBLEM_BASE, SNP_SIGNED_LENGTH, SqliteStore, brokerPaths, readPrivateFile, snpVerifier, startBroker, type AuditRecord } from '../../src/broker/index.js';
import type { CofferError } from '../../src/errors.js';
import { Attester, MEASUREMENT_A, MEASUREMENT_B, fakeRoots, http, policyFor, sessionCookie, startTestBroker, type Reply, type TestBroker } from './helpers.js';

let tb: TestBroker;
let root: string;
const work = mkdtempSync(join(tmpdir(), 'coffer-sec-'));
const kbs = (p: string) => `${tb.url}/kbs/v0/${p}`;
const adm = (p: string) => `${tb.url}/admin/v0/${p}`;
const TCB = 'tcb:\n  sev-snp:\n    Milan: { bootloader: 0, tee: 0, snp: 0, microcode: 0 }\n';

function assertProblem(r: Reply, status: number, type: string, code?: string): void {
  assert.equal(r.status, status, `${r.status} ${r.text}`);
  assert.equal(r.headers.get('content-type')?.split(';')[0], 'application/problem+json', r.text);
  assert.equal(r.json.type, `${PROBLEM_BASE}${type}`, r.text);
  if (code) assert.equal(r.json.code, code, r.text);
}

async function lastAudit(action: string): Promise<AuditRecord | undefined> {
  return (await tb.running.broker.store.queryAudit({ action, limit: 1000 })).at(-1);
}

async function authed(): Promise<{ cookie: string; nonce: string }> {
  const r = await http(kbs('auth'), { body: { version: '0.1.0', tee: 'snp' } });
  assert.equal(r.status, 200, r.text);
  return { cookie: sessionCookie(r), nonce: r.json.nonce as string };
}

async function attested(att: Attester): Promise<string> {
  const { cookie, nonce } = await authed();
  const r = await http(kbs('attest'), { body: await att.attestBody(nonce), cookie });
  assert.equal(r.status, 200, r.text);
  return cookie;
}

const putPolicy = (bearer: string, prefix: string, policy: string) => http(adm(`policies/${prefix}`), { method: 'PUT', bearer, body: { policy } });
const putSecret = (bearer: string, path: string, value: string) => http(adm(`secrets/${path}`), { method: 'PUT', bearer, body: { value: Buffer.from(value).toString('base64') } });

before(async () => {
  tb = await startTestBroker();
  root = await tb.token('admin');
  for (const [prefix, m] of [['team-a', MEASUREMENT_A], ['team-b', MEASUREMENT_B]] as const) assert.equal((await putPolicy(root, prefix, policyFor(`${prefix}-release`, m))).status, 200);
  for (const p of ['team-a/key/disk', 'team-b/key/disk']) assert.equal((await putSecret(root, p, `secret of ${p}`)).status, 200);
});
after(async () => {
  await tb.cleanup();
  rmSync(work, { recursive: true, force: true });
});

test('1: a scoped admin cannot mint a token outside its scope, nor a stronger one', async () => {
  const scopedAdmin = await tb.token('admin', 'team-a');
  // The reviewer's attack: team-a's admin creates an unscoped admin, which then rewrites team-b's policy.
  const unscoped = await http(adm('tokens'), { method: 'POST', bearer: scopedAdmin, body: { role: 'admin' } });
  assertProblem(unscoped, 403, 'out-of-scope', 'ADMIN_SCOPE_ESCALATION');
  assert.equal((await lastAudit('admin.token.create'))?.problem, 'out-of-scope');
  assertProblem(await http(adm('tokens'), { method: 'POST', bearer: scopedAdmin, body: { role: 'admin', scope: 'team-b' } }), 403, 'out-of-scope');
  assertProblem(await http(adm('tokens'), { method: 'POST', bearer: scopedAdmin, body: { role: 'admin', scope: 'team-ab' } }), 403, 'out-of-scope');
  // Inside its own scope it may.
  const sub = await http(adm('tokens'), { method: 'POST', bearer: scopedAdmin, body: { role: 'provisioner', scope: 'team-a/key' } });
  assert.equal(sub.status, 201, sub.text);
  assertProblem(await putPolicy(sub.json.token as string, 'team-b', policyFor('x', MEASUREMENT_A)), 403, 'out-of-scope');

  // Role: no token creates a stronger one (only admins reach this over HTTP; the rule holds below it).
  const prov = (await tb.running.broker.store.listTokens()).find((t) => t.role === 'provisioner' && t.scope === 'team-a/key');
  assert.ok(prov);
  await assert.rejects(tb.running.broker.createAdminToken({ token: prov }, 'admin', { scope: 'team-a/key' }), (e: CofferError) => e.code === 'ADMIN_ROLE_ESCALATION');
  await assert.rejects(tb.running.broker.createAdminToken({ token: prov }, 'auditor', { scope: 'team-a/key' }), (e: CofferError) => e.code === 'ADMIN_ROLE_ESCALATION');
});

test('1/5: token list and revoke are confined to the scope; the unscoped admin cannot be revoked by a scoped one', async () => {
  const scopedAdmin = await tb.token('admin', 'team-a');
  await tb.token('provisioner', 'team-b');
  const mine = await http(adm('tokens'), { method: 'POST', bearer: scopedAdmin, body: { role: 'auditor', scope: 'team-a' } });
  assert.equal(mine.status, 201);
  const list = await http(adm('tokens'), { bearer: scopedAdmin });
  assert.equal(list.status, 200);
  const scopes = (list.json.tokens as { scope?: string }[]).map((t) => t.scope);
  assert.ok(scopes.length >= 2);
  for (const s of scopes) assert.ok(s === 'team-a' || s?.startsWith('team-a/'), `a team-a admin sees a token scoped ${String(s)}`);
  const rootId = root.split('_')[1] as string;
  assertProblem(await http(adm(`tokens/${rootId}`), { method: 'DELETE', bearer: scopedAdmin }), 404, 'not-found');
  assert.equal((await http(adm('tokens'), { bearer: root })).status, 200, 'the unscoped admin token still works');
  const del = await http(adm(`tokens/${mine.json.id as string}`), { method: 'DELETE', bearer: scopedAdmin });
  assert.equal(del.status, 204);
});

test('5: a scoped auditor or admin reads only the audit records of its scope', async () => {
  // Activity on both teams (a release on team-b included).
  const vm = new Attester(MEASUREMENT_B);
  const cookie = await attested(vm);
  assert.equal((await http(kbs('resource/team-b/key/disk'), { cookie })).status, 200);
  await putSecret(root, 'TEAM-A/key/x', 'upper case is another team');
  for (const role of ['auditor', 'admin'] as const) {
    const tok = await tb.token(role, 'team-a');
    const r = await http(adm('audit?limit=1000'), { bearer: tok });
    assert.equal(r.status, 200, r.text);
    const recs = r.json.records as AuditRecord[];
    assert.ok(recs.length > 0, 'it does see its own scope');
    for (const rec of recs) assert.ok(rec.resource === 'team-a' || rec.resource?.startsWith('team-a/'), `${role} scoped team-a sees ${JSON.stringify(rec)}`);
  }
  const all = await http(adm('audit?limit=1000'), { bearer: root });
  assert.ok((all.json.records as AuditRecord[]).some((r) => r.resource === 'team-b/key/disk'), 'the unscoped admin sees everything');
});

test('2: a release policy must name a VM identity and cannot go below the baseline; no TCB minimum is a warning', async () => {
  // The reviewer's attack: a policy with no identity rule released team-b's secret to any genuine SNP VM.
  const open = await putPolicy(root, 'team-c', 'id: open\nversion: 1\n');
  assertProblem(open, 400, 'bad-request', 'POLICY_NO_IDENTITY');
  const rec = await lastAudit('admin.policy.set');
  assert.equal(rec?.verdict, 'deny');
  assert.equal(rec?.resource, 'team-c');
  const onlyTcb = await putPolicy(root, 'team-c', `id: tcb-only\nversion: 1\n${TCB}`);
  assertProblem(onlyTcb, 400, 'bad-request', 'POLICY_NO_IDENTITY');
  for (const weaker of ['debug: allowed', 'migration: allowed', 'freshness:\n  nonce: optional']) {
    const r = await putPolicy(root, 'team-c', `id: weak\nversion: 1\nmeasurements:\n  snp: ["${MEASUREMENT_A.toString('hex')}"]\n${weaker}\n`);
    assertProblem(r, 400, 'bad-request', 'POLICY_BELOW_BASELINE');
  }
  assert.equal((await tb.running.broker.store.getPolicy('team-c')), undefined, 'nothing was stored');
  // HOST_DATA / MRCONFIGID are the host's choice: alone they name no VM (test/broker/volumes.test.ts).
  const workload = await putPolicy(root, 'team-c', `id: wl\nversion: 1\nworkload:\n  digest: ["${'ab'.repeat(32)}"]\n${TCB}`);
  assertProblem(workload, 400, 'bad-request', 'POLICY_NO_IDENTITY');
  const withTcb = await putPolicy(root, 'team-c', `id: wl\nversion: 1\nmeasurements:\n  snp: ["${MEASUREMENT_A.toString('hex')}"]\nworkload:\n  digest: ["${'ab'.repeat(32)}"]\n${TCB}`);
  assert.equal(withTcb.status, 200, withTcb.text);
  assert.deepEqual(withTcb.json.warnings, []);
  const noTcb = await putPolicy(root, 'team-c', policyFor('team-c', MEASUREMENT_A));
  assert.equal(noTcb.status, 200);
  assert.match((noTcb.json.warnings as string[])[0] ?? '', /no TCB minimum/);
});

test('2: the built-in baseline holds at release even when a stored policy and the attestation policy allow debug', async () => {
  const dir = mkdtempSync(join(work, 'lax-'));
  const lax = join(work, 'lax-attestation.yaml');
  writeFileSync(lax, 'id: lax\nversion: 1\ndebug: allowed\nmigration: allowed\n');
  const b = await startTestBroker(dir, { attestationPolicyFile: lax });
  try {
    const now = Date.now();
    // As a broker before this fix could have stored it: straight into the store.
    const text = `id: old-lax\nversion: 1\nmeasurements:\n  snp: ["${MEASUREMENT_A.toString('hex')}"]\ndebug: allowed\n`;
    await b.running.broker.store.setPolicy({ prefix: 'lab', policyId: 'old-lax', policyVersion: '1', text, sha256: createHash('sha256').update(text).digest('hex'), updatedAt: now, updatedBy: 'test' });
    const tok = await b.token('admin');
    assert.equal((await http(`${b.url}/admin/v0/secrets/lab/key/disk`, { method: 'PUT', bearer: tok, body: { value: 'AAAA' } })).status, 200);
    const vm = new Attester(MEASUREMENT_A);
    const s = await http(`${b.url}/kbs/v0/auth`, { body: { version: '0.1.0', tee: 'snp' } });
    const cookie = sessionCookie(s);
    const rd = await vm.runtimeData(s.json.nonce as string);
    const at = await http(`${b.url}/kbs/v0/attest`, { body: { 'runtime-data': rd, 'tee-evidence': vm.evidence(rd, 'sha384', { policy: 0x30000n | (1n << 19n) }) }, cookie });
    assert.equal(at.status, 200, 'the lax attestation policy let a debuggable guest attest');
    const res = await http(`${b.url}/kbs/v0/resource/lab/key/disk`, { cookie });
    assertProblem(res, 403, 'policy-denied', 'KBS_POLICY_DENIED');
    assert.equal(res.json.rule, 'debug');
    assert.match(res.json.detail as string, /coffer-release-baseline/);
  } finally {
    await b.cleanup();
  }
});

test('3: every policy along the path must pass (the reviewer\'s team-d scenario)', async () => {
  assert.equal((await putPolicy(root, 'team-d', policyFor('team-d', MEASUREMENT_A))).status, 200);
  assert.equal((await putSecret(root, 'team-d/key/disk', 'team-d disk key')).status, 200);
  const sub = await tb.token('provisioner', 'team-d/key');
  // The attack: the sub-scope provisioner puts an open policy on team-d/key ...
  assertProblem(await putPolicy(sub, 'team-d/key', 'id: open\nversion: 1\n'), 400, 'bad-request', 'POLICY_NO_IDENTITY');
  // ... or one naming its own VM's measurement: the narrower policy no longer replaces team-d's.
  assert.equal((await putPolicy(sub, 'team-d/key', policyFor('sub', MEASUREMENT_B))).status, 200);
  const evil = await attested(new Attester(MEASUREMENT_B));
  const r = await http(kbs('resource/team-d/key/disk'), { cookie: evil });
  assertProblem(r, 403, 'policy-denied');
  assert.equal(r.json.rule, 'measurement');
  assert.match(r.json.detail as string, /team-d@1 \(prefix team-d\)/);
  // A VM team-d trusts is now also held to the narrower policy.
  const good = new Attester(MEASUREMENT_A);
  const goodCookie = await attested(good);
  assertProblem(await http(kbs('resource/team-d/key/disk'), { cookie: goodCookie }), 403, 'policy-denied');
  // When both agree, the release names both policies.
  assert.equal((await putPolicy(sub, 'team-d/key', policyFor('sub', MEASUREMENT_A))).status, 200);
  const ok = await http(kbs('resource/team-d/key/disk'), { cookie: goodCookie });
  assert.equal(ok.status, 200, ok.text);
  assert.equal(Buffer.from((await flattenedDecrypt(ok.json as unknown as FlattenedJWE, good.privateKey)).plaintext).toString(), 'team-d disk key');
  assert.equal((await lastAudit('kbs.resource'))?.rule, 'team-d@1 + sub@1');
});

/** Makes the audit insert fail for one action's allow records (a full disk, say), from another connection. */
function failAuditOf(action: string): () => void {
  const db = new Database(tb.running.paths.db);
  db.exec(`CREATE TRIGGER test_audit_fails BEFORE INSERT ON audit WHEN NEW.action = '${action}' AND NEW.verdict = 'allow' BEGIN SELECT RAISE(ABORT, 'disk full at /srv/secret/path'); END`);
  return () => {
    db.exec('DROP TRIGGER test_audit_fails');
    db.close();
  };
}

test('4: when the audit record cannot be written, the attestation is not committed', async () => {
  const vm = new Attester(MEASUREMENT_A);
  const { cookie, nonce } = await authed();
  const body = await vm.attestBody(nonce);
  const restore = failAuditOf('kbs.attest');
  let a: Reply;
  try {
    a = await http(kbs('attest'), { body, cookie });
  } finally {
    restore();
  }
  assertProblem(a, 500, 'internal', 'INTERNAL');
  const sid = createHash('sha256').update(cookie).digest('hex');
  assert.equal((await tb.running.broker.store.getSession(sid))?.state, 'consumed', 'the session did not become attested');
  assertProblem(await http(kbs('resource/team-a/key/disk'), { cookie }), 401, 'not-attested');
  const digest = snpVerifier.verify(body['tee-evidence'], { at: new Date(), snpRoots: fakeRoots() }).digest;
  const db = new Database(tb.running.paths.db, { readonly: true });
  try {
    assert.equal((db.prepare('SELECT COUNT(*) AS n FROM evidence_seen WHERE digest = ?').get(digest) as { n: number }).n, 0, 'the evidence was not recorded as seen');
  } finally {
    db.close();
  }
  const recs = await tb.running.broker.store.queryAudit({ actor: `session:${sid.slice(0, 16)}`, action: 'kbs.attest' });
  assert.deepEqual(recs.map((r) => r.verdict), ['deny'], 'only the refusal is recorded');
});

test('4: secret put, policy set, token create and revoke are not committed without their audit record', async () => {
  let restore = failAuditOf('admin.secret.put');
  try {
    assertProblem(await putSecret(root, 'team-a/key/unaudited', 'v'), 500, 'internal');
  } finally {
    restore();
  }
  assert.equal(await tb.running.broker.store.getSecret('team-a/key/unaudited'), undefined);

  restore = failAuditOf('admin.policy.set');
  try {
    assertProblem(await putPolicy(root, 'team-e', policyFor('team-e', MEASUREMENT_A)), 500, 'internal');
  } finally {
    restore();
  }
  assert.equal(await tb.running.broker.store.getPolicy('team-e'), undefined);

  const before = (await tb.running.broker.store.listTokens()).length;
  restore = failAuditOf('admin.token.create');
  try {
    assertProblem(await http(adm('tokens'), { method: 'POST', bearer: root, body: { role: 'auditor' } }), 500, 'internal');
  } finally {
    restore();
  }
  assert.equal((await tb.running.broker.store.listTokens()).length, before);

  const victim = await http(adm('tokens'), { method: 'POST', bearer: root, body: { role: 'auditor' } });
  restore = failAuditOf('admin.token.revoke');
  try {
    assertProblem(await http(adm(`tokens/${victim.json.id as string}`), { method: 'DELETE', bearer: root }), 500, 'internal');
  } finally {
    restore();
  }
  assert.equal((await http(adm('audit'), { bearer: victim.json.token as string })).status, 200, 'the token was not revoked');
});

test('4: a release is not handed out when its audit record cannot be written', async () => {
  const cookie = await attested(new Attester(MEASUREMENT_A));
  const restore = failAuditOf('kbs.resource');
  let r: Reply;
  try {
    r = await http(kbs('resource/team-a/key/disk'), { cookie });
  } finally {
    restore();
  }
  assertProblem(r, 500, 'internal');
  assert.equal(r.json.ciphertext, undefined);
});

test('12: a 500 carries a generic message and an error id that is in the log, never an internal message', async () => {
  assert.equal((await putSecret(root, 'team-a/key/lost', 'v')).status, 200);
  const db = new Database(tb.running.paths.db);
  try {
    db.prepare("UPDATE secrets SET kek_id = 'file:0123456789abcdef' WHERE path = 'team-a/key/lost'").run();
  } finally {
    db.close();
  }
  const cookie = await attested(new Attester(MEASUREMENT_A));
  const r = await http(kbs('resource/team-a/key/lost'), { cookie });
  assertProblem(r, 500, 'internal', 'INTERNAL');
  assert.doesNotMatch(r.text, /file:|0123456789abcdef|KEK|\/tmp|team-a/);
  const id = r.json.errorId as string;
  assert.match(id, /^[0-9a-f]{16}$/);
  assert.ok((r.json.detail as string).includes(id));
  const line = tb.logs.lines.find((l) => l.includes(id));
  assert.ok(line, 'the error id is in the log');
  assert.match(line, /KEK_UNKNOWN/);
  // The failure of the audit trigger above did not leak its message either.
  assert.ok(!tb.logs.text().includes('"detail":"disk full'));
});

test('7: a non-ASCII nonce is a nonce mismatch (consumed and audited), not a 500', async () => {
  const { cookie, nonce } = await authed();
  const bad = 'é'.repeat(nonce.length);
  const r = await http(kbs('attest'), { body: { 'runtime-data': { nonce: bad, 'tee-pubkey': {} }, 'tee-evidence': {} }, cookie });
  assertProblem(r, 401, 'nonce-mismatch', 'KBS_NONCE_MISMATCH');
  const sid = createHash('sha256').update(cookie).digest('hex');
  assert.equal((await tb.running.broker.store.getSession(sid))?.state, 'consumed');
  assert.equal((await lastAudit('kbs.attest'))?.problem, 'nonce-mismatch');
  // Another length entirely, too.
  const s2 = await authed();
  assertProblem(await http(kbs('attest'), { body: { 'runtime-data': { nonce: 'x', 'tee-pubkey': {} }, 'tee-evidence': {} }, cookie: s2.cookie }), 401, 'nonce-mismatch');
});

test('8: tee-pubkey: RSA only with e = 65537 and 2048-8192 bits; EC P-256/P-384/P-521 only (P-521 end to end)', async () => {
  const vm = new Attester(MEASUREMENT_A);
  const tryKey = async (jwk: Record<string, unknown>) => {
    const { cookie, nonce } = await authed();
    const rd = { nonce, 'tee-pubkey': jwk };
    return http(kbs('attest'), { body: { 'runtime-data': rd, 'tee-evidence': vm.evidence(rd) }, cookie });
  };
  const n2048 = Buffer.alloc(256, 0xff).toString('base64url');
  for (const e of ['AQ', 'Aw', 'AQAA', 'AAEAAQ']) assertProblem(await tryKey({ kty: 'RSA', n: n2048, e }), 400, 'bad-tee-pubkey');
  const rsa1024 = (await exportJWK(generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey)) as Record<string, unknown>;
  assertProblem(await tryKey(rsa1024), 400, 'bad-tee-pubkey');
  const huge = Buffer.alloc(1025, 0xff);
  assertProblem(await tryKey({ kty: 'RSA', n: huge.toString('base64url'), e: 'AQAB' }), 400, 'bad-tee-pubkey');
  const k1 = (await exportJWK(generateKeyPairSync('ec', { namedCurve: 'secp256k1' }).publicKey)) as Record<string, unknown>;
  assertProblem(await tryKey(k1), 400, 'bad-tee-pubkey');

  const p521 = generateKeyPairSync('ec', { namedCurve: 'P-521' });
  const { cookie, nonce } = await authed();
  const rd = { nonce, 'tee-pubkey': await exportJWK(p521.publicKey) };
  const at = await http(kbs('attest'), { body: { 'runtime-data': rd, 'tee-evidence': vm.evidence(rd) }, cookie });
  assert.equal(at.status, 200, at.text);
  const res = await http(kbs('resource/team-a/key/disk'), { cookie });
  assert.equal(res.status, 200, res.text);
  assert.equal(Buffer.from((await flattenedDecrypt(res.json as unknown as FlattenedJWE, p521.privateKey)).plaintext).toString(), 'secret of team-a/key/disk');
});

test('9: the evidence digest covers only the signed bytes, so a malleated signature (r, n - s) is the same evidence', () => {
  const vm = new Attester(MEASUREMENT_A);
  const ev = vm.evidence({ nonce: 'x' }) as { report: string; vcek: string; cert_chain: string };
  const rep = Buffer.from(ev.report, 'base64');
  const n = BigInt('0xffffffffffffffffffffffffffffffffffffffffffffffffc7634d81f4372ddf581a0db248b0a77aecec196accc52973');
  const le2big = (b: Buffer) => BigInt(`0x${Buffer.from(b).reverse().toString('hex')}`);
  const sOff = SNP_SIGNED_LENGTH + 72;
  const s = le2big(rep.subarray(sOff, sOff + 48));
  const rep2 = Buffer.from(rep);
  Buffer.from((n - s).toString(16).padStart(96, '0'), 'hex').reverse().copy(rep2, sOff);
  assert.ok(!rep.equals(rep2));
  const ctx = { at: new Date(), snpRoots: fakeRoots() };
  const v1 = snpVerifier.verify(ev, ctx);
  const v2 = snpVerifier.verify({ ...ev, report: rep2.toString('base64') }, ctx);
  assert.equal(v2.digest, v1.digest);
  assert.equal(v1.digest, createHash('sha256').update(rep.subarray(0, 0x2a0)).digest('hex'));
});

test('10: admin requests refused by validation after the token was accepted are audited', async () => {
  const seen = async (action: string) => {
    const rec = await lastAudit(action);
    assert.equal(rec?.verdict, 'deny', action);
    assert.equal(rec?.problem, 'bad-request', action);
    assert.match(rec?.actor ?? '', /^token:[0-9a-f]{16}$/);
  };
  assertProblem(await http(adm('secrets/team-a/key/z'), { method: 'PUT', bearer: root, body: { value: '!!notb64' } }), 400, 'bad-request');
  await seen('admin.secret.put');
  assertProblem(await http(adm('audit?bogus=1'), { bearer: root }), 400, 'bad-request');
  await seen('admin.audit.query');
  assertProblem(await http(adm('audit?since=yesterday'), { bearer: root }), 400, 'bad-request');
  await seen('admin.audit.query');
  assertProblem(await http(adm('tokens'), { method: 'POST', bearer: root, body: { role: 'root' } }), 400, 'bad-request');
  await seen('admin.token.create');
  assertProblem(await http(adm('policies/team-a'), { method: 'PUT', bearer: root, body: { nope: 1 } }), 400, 'bad-request');
  await seen('admin.policy.set');
});

test('10: router errors are problems that do not echo the URL; a 128-character segment reaches the handler', async () => {
  const long = 'q'.repeat(3000);
  const r = await http(kbs(`resource/${long}/b/c`));
  assertProblem(r, 414, 'uri-too-long', 'URI_TOO_LONG');
  assert.ok(!r.text.includes('qqqq'));
  const bad = await fetch(`${tb.url}/kbs/v0/resource/%E0%A4%ZZsecret/b/c`);
  const badText = await bad.text();
  assert.equal(bad.status, 400, badText);
  assert.equal(bad.headers.get('content-type')?.split(';')[0], 'application/problem+json');
  assert.ok(!badText.includes('secret'));
  const nf = await http(`${tb.url}/no/such/route-with-a-marker`);
  assertProblem(nf, 404, 'not-found');
  assert.ok(!nf.text.includes('marker'));
  // Path segments may be 128 characters (paths.ts): the router passes them on.
  const seg = `a${'b'.repeat(127)}`;
  assertProblem(await http(adm(`secrets/${seg}/key/x`), { bearer: root }), 404, 'not-found', 'SECRET_NOT_FOUND');
  assertProblem(await http(adm(`secrets/${seg}b/key/x`), { bearer: root }), 414, 'uri-too-long');
});

test('11: listing by prefix is exact: team-a lists neither TEAM-A nor team_a', async () => {
  for (const p of ['TEAM-A/key/x', 'team_a/key/x', 'team-a/key/y', 'Team-a/key/z']) assert.equal((await putSecret(root, p, 'v')).status, 200);
  const r = await http(adm('secrets?prefix=team-a'), { bearer: root });
  const paths = (r.json.secrets as { path: string }[]).map((s) => s.path);
  assert.ok(paths.includes('team-a/key/y'));
  for (const p of paths) assert.ok(p.startsWith('team-a/'), `prefix team-a listed ${p}`);
  const scoped = await tb.token('provisioner', 'team-a');
  for (const p of ((await http(adm('secrets'), { bearer: scoped })).json.secrets as { path: string }[]).map((s) => s.path)) assert.ok(p.startsWith('team-a/'), p);
});

test('6: key files: group- or other-accessible, foreign-owned or symlinked files are refused', async () => {
  const dir = mkdtempSync(join(work, 'kek-'));
  const kek = join(dir, 'kek.key');
  const k = FileKekProvider.open(kek, { create: true });
  assert.equal(statSync(kek).mode & 0o777, 0o600);
  void k.close();
  for (const mode of [0o640, 0o604, 0o620, 0o610]) {
    chmodSync(kek, mode);
    assert.throws(() => FileKekProvider.open(kek), (e: CofferError) => e.code === 'KEK_INSECURE_FILE', mode.toString(8));
  }
  chmodSync(kek, 0o600);
  const link = join(dir, 'link.key');
  symlinkSync(kek, link);
  assert.throws(() => FileKekProvider.open(link), (e: CofferError) => e.code === 'KEK_INSECURE_FILE' && /symbolic link/.test(e.message));
  assert.throws(() => FileKekProvider.open(link, { create: true }), (e: CofferError) => e.code === 'KEK_INSECURE_FILE');

  const pem = join(dir, 'tls.key');
  writeFileSync(pem, 'key', { mode: 0o600 });
  assert.equal(readPrivateFile(pem, 'TLS key').toString(), 'key');
  chmodSync(pem, 0o640);
  assert.throws(() => readPrivateFile(pem, 'TLS key'), (e: CofferError) => e.code === 'KEY_INSECURE_FILE');
  chmodSync(pem, 0o600);
  symlinkSync(pem, join(dir, 'tls-link.key'));
  assert.throws(() => readPrivateFile(join(dir, 'tls-link.key'), 'TLS key'), (e: CofferError) => e.code === 'KEY_INSECURE_FILE');

  // The database: a symbolic link is refused too.
  symlinkSync(kek, join(dir, 'broker.db'));
  await assert.rejects(SqliteStore.open(join(dir, 'broker.db')), (e: CofferError) => e.code === 'STORE_INSECURE_FILE');

  // Owned by another user: as root, give the file away; otherwise a root-owned 0600-less file refuses on owner first.
  let foreign = '/etc/passwd';
  if (process.getuid?.() === 0) {
    foreign = join(dir, 'foreign.key');
    writeFileSync(foreign, Buffer.alloc(32), { mode: 0o600 });
    chownSync(foreign, 1, 1);
  }
  assert.throws(() => FileKekProvider.open(foreign), (e: CofferError) => e.code === 'KEK_INSECURE_FILE' && /owned by uid/.test(e.message));
  assert.throws(() => readPrivateFile(foreign, 'TLS key'), (e: CofferError) => e.code === 'KEY_INSECURE_FILE' && /owned by uid/.test(e.message));
});

test('6: with umask 000 every file and directory the broker creates is private; a loose home or signing key is refused', async () => {
  const home = join(work, 'fresh', 'home');
  const old = process.umask(0);
  let running;
  try {
    running = await startBroker({ paths: brokerPaths({ home }), host: '127.0.0.1', port: 0, logLevel: 'silent', logStream: { write: () => true } as never, testOnlySnpRoots: fakeRoots() });
    // Writes so that -wal and -shm exist.
    const tok = readFileSync(running.paths.adminTokenFile, 'utf8').trim();
    assert.equal((await http(`${running.url}/admin/v0/secrets/a/b/c`, { method: 'PUT', bearer: tok, body: { value: 'AAAA' } })).status, 200);
  } finally {
    process.umask(old);
  }
  try {
    assert.equal(statSync(home).mode & 0o777, 0o700);
    assert.equal(statSync(join(work, 'fresh')).mode & 0o777, 0o700, 'parents it creates too');
    for (const f of ['kek.key', 'ear-signing.pem', 'admin.token', 'broker.db', 'broker.db-wal', 'broker.db-shm']) assert.equal(statSync(join(home, f)).mode & 0o777, 0o600, f);
  } finally {
    await running.close();
  }

  // A database left 0644 by an older broker is tightened.
  chmodSync(join(home, 'broker.db'), 0o644);
  const again = await startBroker({ paths: brokerPaths({ home }), host: '127.0.0.1', port: 0, logLevel: 'silent', logStream: { write: () => true } as never });
  await again.close();
  assert.equal(statSync(join(home, 'broker.db')).mode & 0o777, 0o600);

  chmodSync(join(home, 'ear-signing.pem'), 0o640);
  await assert.rejects(startBroker({ paths: brokerPaths({ home }), host: '127.0.0.1', port: 0 }), (e: CofferError) => e.code === 'KEY_INSECURE_FILE');
  chmodSync(join(home, 'ear-signing.pem'), 0o600);
  for (const mode of [0o755, 0o705, 0o770, 0o701]) {
    chmodSync(home, mode);
    await assert.rejects(startBroker({ paths: brokerPaths({ home }), host: '127.0.0.1', port: 0 }), (e: CofferError) => e.code === 'BROKER_INSECURE_HOME', mode.toString(8));
  }
  chmodSync(home, 0o700);
});
