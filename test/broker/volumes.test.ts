// Provisioned volume keys over real HTTP and a real SQLite file, with the simulated SEV-SNP
// attester: a provisioner makes a per-VM key bound to a launch measurement (and host data); only
// a VM with that identity gets it, as a JWE it alone decrypts; re-provisioning needs an explicit
// flag and destroys the old key; revocation erases it; refusals carry their problem type and an
// audit record. Then the CLI (`coffer broker volume provision|list|revoke`) against the same broker.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, generateKeyPairSync } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { flattenedDecrypt, type FlattenedJWE } from 'jose';
import { PROBLEM_BASE, type AuditRecord } from '../../src/broker/index.js';
import { runCli } from '../helpers/cli.js';
import { Attester, MEASUREMENT_A, MEASUREMENT_B, http, sessionCookie, startTestBroker, type Reply, type TestBroker } from './helpers.js';
import { freshDatabase } from './fixtures/pg.js';

let tb: TestBroker;
let admin: string;
let provisioner: string;
let auditor: string;
const HOST_DATA = Buffer.alloc(32, 0x42);

const kbs = (p: string) => `${tb.url}/kbs/v0/${p}`;
const adm = (p: string) => `${tb.url}/admin/v0/${p}`;
const A = MEASUREMENT_A.toString('hex');

/** An attester whose reports carry HOST_DATA (set by the host at launch). */
class HostDataAttester extends Attester {
  constructor(
    measurement: Buffer,
    readonly hostData: Buffer,
  ) {
    super(measurement);
  }
  override evidence(boundTo: unknown, hash: 'sha256' | 'sha384' | 'sha512' = 'sha384'): Record<string, unknown> {
    return super.evidence(boundTo, hash, { hostData: this.hostData } as never);
  }
}

function assertProblem(r: Reply, status: number, type: string, code?: string): void {
  assert.equal(r.status, status, `${r.status} ${r.text}`);
  assert.equal(r.headers.get('content-type')?.split(';')[0], 'application/problem+json');
  assert.equal(r.json.type, `${PROBLEM_BASE}${type}`, r.text);
  if (code) assert.equal(r.json.code, code, r.text);
}

async function lastDenial(action: string, problem: string): Promise<AuditRecord> {
  const recs = (await tb.running.broker.store.queryAudit({ action, verdict: 'deny', limit: 1000 })).filter((r) => r.problem === problem);
  const last = recs.at(-1);
  assert.ok(last, `no ${action} deny record with problem ${problem}`);
  return last;
}

/** Attest as `att` and fetch `path`. */
async function fetchAs(att: Attester, path: string): Promise<Reply> {
  const auth = await http(kbs('auth'), { body: { version: '0.1.0', tee: 'snp', 'extra-params': '' } });
  assert.equal(auth.status, 200, auth.text);
  const cookie = sessionCookie(auth);
  const r = await http(kbs('attest'), { body: await att.attestBody(auth.json.nonce as string), cookie });
  assert.equal(r.status, 200, r.text);
  return http(kbs(`resource/${path}`), { cookie });
}

async function keyOf(att: Attester, id: string): Promise<Buffer> {
  const r = await fetchAs(att, `volumes/${id}/key`);
  assert.equal(r.status, 200, r.text);
  return Buffer.from((await flattenedDecrypt(r.json as unknown as FlattenedJWE, att.privateKey)).plaintext);
}

const provision = (bearer: string | undefined, body: unknown) => http(adm('volumes'), { method: 'POST', ...(bearer ? { bearer } : {}), body });

before(async () => {
  tb = await startTestBroker();
  admin = readFileSync(tb.running.paths.adminTokenFile, 'utf8').trim();
  provisioner = await tb.token('provisioner');
  auditor = await tb.token('auditor');
});
after(async () => tb.cleanup());

test('provision → only the VM with that measurement gets the 32-byte key, as a JWE it alone decrypts; metadata never shows it', async () => {
  const r = await provision(provisioner, { id: 'vm-a', label: 'db disk', identity: { snp: { measurements: [A] } } });
  assert.equal(r.status, 201, r.text);
  assert.equal(r.json.id, 'vm-a');
  assert.equal(r.json.path, 'volumes/vm-a/key');
  assert.equal(r.json.keyVersion, 1);
  assert.equal(r.json.state, 'active');
  for (const k of ['wrappedKey', 'iv', 'ciphertext', 'tag', 'key', 'value']) assert.equal(r.json[k], undefined, `no ${k} in the reply`);
  assert.match(r.json.policyText as string, /"sev-snp"/);

  const att = new Attester(MEASUREMENT_A);
  const key = await keyOf(att, 'vm-a');
  assert.equal(key.length, 32);
  assert.notDeepEqual(key, Buffer.alloc(32));

  // The key is nowhere in the admin API's answers nor in the database file in clear.
  const list = await http(adm('volumes'), { bearer: auditor });
  assert.equal(list.status, 200, list.text);
  assert.ok(!list.text.includes(key.toString('base64')) && !list.text.includes(key.toString('hex')));
  assert.deepEqual((list.json.volumes as { id: string }[]).map((v) => v.id), ['vm-a']);
  for (const f of [tb.running.paths.db, `${tb.running.paths.db}-wal`]) {
    const bytes = existsSync(f) ? readFileSync(f) : Buffer.alloc(0);
    assert.equal(bytes.indexOf(key), -1, `the volume key is not in ${f} in clear`);
  }

  // Another VM (other measurement): refused by the volume's generated policy, audited.
  const other = await fetchAs(new Attester(MEASUREMENT_B), 'volumes/vm-a/key');
  assertProblem(other, 403, 'policy-denied', 'KBS_POLICY_DENIED');
  assert.equal(other.json.rule, 'measurement');
  const rec = await lastDenial('kbs.resource', 'policy-denied');
  assert.equal(rec.resource, 'volumes/vm-a/key');
  assert.equal(rec.rule, 'measurement');
});

test('host data narrows the identity: the right measurement with other host data is refused', async () => {
  const r = await provision(provisioner, { id: 'vm-h', identity: { snp: { measurements: [A], hostData: [HOST_DATA.toString('hex')] } } });
  assert.equal(r.status, 201, r.text);
  assert.equal((await keyOf(new HostDataAttester(MEASUREMENT_A, HOST_DATA), 'vm-h')).length, 32);
  const wrong = await fetchAs(new HostDataAttester(MEASUREMENT_A, Buffer.alloc(32, 0x43)), 'volumes/vm-h/key');
  assertProblem(wrong, 403, 'policy-denied');
  assert.equal(wrong.json.rule, 'workload.digest');
  // Host data alone names no VM: the host chooses it.
  assertProblem(await provision(provisioner, { id: 'vm-x', identity: { snp: { hostData: [HOST_DATA.toString('hex')] } } }), 400, 'bad-request', 'VOLUME_NO_IDENTITY');
  assert.equal((await lastDenial('admin.volume.provision', 'bad-request')).resource, 'volumes/vm-x');
});

test('re-provisioning needs reprovision: true; the new key replaces the old one for good', async () => {
  await provision(provisioner, { id: 'vm-r', identity: { snp: { measurements: [A] } } });
  const att = new Attester(MEASUREMENT_A);
  const k1 = await keyOf(att, 'vm-r');
  const again = await provision(provisioner, { id: 'vm-r', identity: { snp: { measurements: [A] } } });
  assertProblem(again, 409, 'conflict', 'VOLUME_EXISTS');
  assert.match(again.json.detail as string, /unreadable/);
  await lastDenial('admin.volume.provision', 'conflict');
  const re = await provision(provisioner, { id: 'vm-r', identity: { snp: { measurements: [A] } }, reprovision: true });
  assert.equal(re.status, 200, re.text);
  assert.equal(re.json.keyVersion, 2);
  const k2 = await keyOf(att, 'vm-r');
  assert.notDeepEqual(k1, k2, 'a new key');
  const allow = (await tb.running.broker.store.queryAudit({ action: 'admin.volume.reprovision', verdict: 'allow' })).at(-1);
  assert.match(allow?.detail ?? '', /key version 2, the previous key is destroyed/);
  assertProblem(await provision(provisioner, { id: 'vm-none', identity: { snp: { measurements: [A] } }, reprovision: true }), 404, 'not-found', 'VOLUME_NOT_FOUND');
});

test('revocation: never released again, key material erased, id never reused; audited', async () => {
  await provision(admin, { id: 'vm-v', identity: { snp: { measurements: [A] } } });
  const att = new Attester(MEASUREMENT_A);
  assert.equal((await keyOf(att, 'vm-v')).length, 32);
  const del = await http(adm('volumes/vm-v'), { method: 'DELETE', bearer: provisioner });
  assert.equal(del.status, 204, del.text);
  const allow = (await tb.running.broker.store.queryAudit({ action: 'admin.volume.revoke', verdict: 'allow' })).at(-1);
  assert.equal(allow?.resource, 'volumes/vm-v');
  const r = await fetchAs(att, 'volumes/vm-v/key');
  assertProblem(r, 410, 'resource-revoked', 'KBS_VOLUME_REVOKED');
  assert.equal((await lastDenial('kbs.resource', 'resource-revoked')).resource, 'volumes/vm-v/key');
  const row = new Database(tb.running.paths.db, { readonly: true }).prepare('SELECT wrapped_key, ciphertext, state FROM volumes WHERE id = ?').get('vm-v') as { wrapped_key: Buffer; ciphertext: Buffer; state: string };
  assert.equal(row.state, 'revoked');
  assert.equal(row.wrapped_key.length + row.ciphertext.length, 0, 'the key material is erased');
  assertProblem(await provision(admin, { id: 'vm-v', identity: { snp: { measurements: [A] } }, reprovision: true }), 410, 'resource-revoked', 'VOLUME_REVOKED');
  assertProblem(await http(adm('volumes/vm-v'), { method: 'DELETE', bearer: admin }), 410, 'resource-revoked');
  const meta = await http(adm('volumes/vm-v'), { bearer: auditor });
  assert.equal(meta.status, 200);
  assert.equal(meta.json.state, 'revoked');
});

test('refused: auditor cannot provision or revoke, missing token, out-of-scope provisioner, a secret in the volumes repository; all audited', async () => {
  const body = { id: 'vm-z', identity: { snp: { measurements: [A] } } };
  assertProblem(await provision(auditor, body), 403, 'forbidden', 'ADMIN_ROLE');
  assert.match((await lastDenial('admin.volume.provision', 'forbidden')).actor, /^token:/);
  assertProblem(await http(adm('volumes/vm-a'), { method: 'DELETE', bearer: auditor }), 403, 'forbidden', 'ADMIN_ROLE');
  await lastDenial('admin.volume.revoke', 'forbidden');
  assertProblem(await provision(undefined, body), 401, 'unauthorized', 'ADMIN_NO_TOKEN');
  assert.equal((await lastDenial('admin.volume.provision', 'unauthorized')).actor, 'anonymous');
  const scoped = await tb.token('provisioner', 'volumes/vm-s');
  assert.equal((await provision(scoped, { id: 'vm-s', identity: { snp: { measurements: [A] } } })).status, 201);
  assertProblem(await provision(scoped, body), 403, 'out-of-scope', 'ADMIN_SCOPE');
  const seen = await http(adm('volumes'), { bearer: scoped });
  assert.deepEqual((seen.json.volumes as { id: string }[]).map((v) => v.id), ['vm-s'], 'a scoped token lists only its volumes');
  assertProblem(await http(adm('secrets/volumes/vm-a/key'), { method: 'PUT', bearer: admin, body: { value: Buffer.from('x').toString('base64') } }), 400, 'bad-request', 'SECRET_RESERVED_PATH');
  assertProblem(await provision(admin, { id: '../x', identity: { snp: { measurements: [A] } } }), 400, 'bad-request');
  assertProblem(await provision(admin, { id: 'vm-q', identity: { snp: { measurements: ['zz'] } } }), 400, 'bad-request');
  assertProblem(await provision(admin, { id: 'vm-q', identity: {} }), 400, 'bad-request');
  assertProblem(await fetchAs(new Attester(MEASUREMENT_A), 'volumes/vm-unknown/key'), 404, 'resource-not-found');
});

test('CLI: coffer broker volume provision | list | revoke', async () => {
  const common = ['--url', tb.url, '--token-file', tb.running.paths.adminTokenFile];
  const p = await runCli(['broker', 'volume', 'provision', 'vm-cli', '--snp-measurement', A, '--label', 'cli disk', '--json', ...common]);
  assert.equal(p.code, 0, p.stderr);
  const out = JSON.parse(p.stdout) as { ok: boolean; volume: { id: string; keyVersion: number } };
  assert.equal(out.volume.id, 'vm-cli');
  assert.equal(out.volume.keyVersion, 1);
  const again = await runCli(['broker', 'volume', 'provision', 'vm-cli', '--snp-measurement', A, ...common]);
  assert.equal(again.code, 1, again.stdout);
  assert.match(again.stderr, /VOLUME_EXISTS|--reprovision/);
  const re = await runCli(['broker', 'volume', 'provision', 'vm-cli', '--snp-measurement', A, '--reprovision', ...common]);
  assert.equal(re.code, 0, re.stderr);
  assert.match(re.stdout, /key version 2/);
  const noId = await runCli(['broker', 'volume', 'provision', 'vm-cli2', ...common]);
  assert.equal(noId.code, 2, noId.stdout);
  const list = await runCli(['broker', 'volume', 'list', ...common]);
  assert.equal(list.code, 0, list.stderr);
  assert.match(list.stdout, /vm-cli\s+active\s+2/);
  const noYes = await runCli(['broker', 'volume', 'revoke', 'vm-cli', ...common]);
  assert.equal(noYes.code, 2);
  const rv = await runCli(['broker', 'volume', 'revoke', 'vm-cli', '--yes', ...common]);
  assert.equal(rv.code, 0, rv.stderr);
  assertProblem(await fetchAs(new Attester(MEASUREMENT_A), 'volumes/vm-cli/key'), 410, 'resource-revoked');
});

test('host data never identifies a VM alone: not as a release policy, not beside another TEE anchor in a volume, not from an old stored policy', async () => {
  const H = HOST_DATA.toString('hex');
  const pol = (text: string) => http(adm('policies/hd'), { method: 'PUT', bearer: admin, body: { policy: text } });
  // Any image launched by the host with HOST_DATA = H would have passed.
  assertProblem(await pol(`id: hd\nversion: 1\nworkload:\n  digest: ["${H}"]\n`), 400, 'bad-request', 'POLICY_NO_IDENTITY');
  assertProblem(await pol(`id: hd\nversion: 1\nrtmrs:\n  "1": "${'ab'.repeat(48)}"\n`), 400, 'bad-request', 'POLICY_NO_IDENTITY');
  assertProblem(await provision(provisioner, { id: 'vm-mix', identity: { snp: { hostData: [H] }, tpm: { pcrs: { sha256: { '0': 'cd'.repeat(32) } } } } }), 400, 'bad-request', 'VOLUME_NO_IDENTITY');
  assertProblem(await provision(provisioner, { id: 'vm-mix', identity: { tdx: { mrConfigId: ['ab'.repeat(48)], rtmrs: { '1': 'ab'.repeat(48) } } } }), 400, 'bad-request', 'VOLUME_NO_IDENTITY');
  // PCRs 16-23 can be reset from inside the VM (16, 23) or by DRTM (17-22): they narrow, never identify.
  assertProblem(await pol(`id: hd\nversion: 1\npcrs:\n  sha256:\n    "16": "${'cd'.repeat(32)}"\n    "23": "${'cd'.repeat(32)}"\n`), 400, 'bad-request', 'POLICY_NO_IDENTITY');
  assertProblem(await provision(provisioner, { id: 'vm-pcr16', identity: { tpm: { pcrs: { sha256: { '16': 'cd'.repeat(32) } } } } }), 400, 'bad-request', 'VOLUME_NO_IDENTITY');
  const pcr7 = await provision(provisioner, { id: 'vm-pcr7', identity: { tpm: { pcrs: { sha256: { '7': 'cd'.repeat(32), '16': 'cd'.repeat(32) } }, ak: 'ab'.repeat(32) } } });
  assert.equal(pcr7.status, 201, pcr7.text);
  // A workload-only policy stored before this rule: it matches, but identifies nothing.
  const text = `id: hd-old\nversion: 1\nworkload:\n  digest: ["${H}"]\n`;
  await tb.running.broker.store.setPolicy({ prefix: 'hd', policyId: 'hd-old', policyVersion: '1', text, sha256: createHash('sha256').update(text).digest('hex'), updatedAt: Date.now(), updatedBy: 'test' });
  assert.equal((await http(adm('secrets/hd/key/x'), { method: 'PUT', bearer: admin, body: { value: Buffer.from('hd secret').toString('base64') } })).status, 200);
  const r = await fetchAs(new HostDataAttester(MEASUREMENT_B, HOST_DATA), 'hd/key/x');
  assertProblem(r, 403, 'policy-denied', 'KBS_POLICY_NO_IDENTITY_MATCH');
  assert.equal(r.json.rule, 'identity');
  assert.equal((await lastDenial('kbs.resource', 'policy-denied')).resource, 'hd/key/x');
  // Twin: host data beside the measurement still releases, and still narrows.
  const ok = await pol(`id: hd\nversion: 2\nmeasurements:\n  snp: ["${A}"]\nworkload:\n  digest: ["${H}"]\n`);
  assert.equal(ok.status, 200, ok.text);
  assert.equal((await fetchAs(new HostDataAttester(MEASUREMENT_A, HOST_DATA), 'hd/key/x')).status, 200);
  assertProblem(await fetchAs(new HostDataAttester(MEASUREMENT_B, HOST_DATA), 'hd/key/x'), 403, 'policy-denied', 'KBS_POLICY_DENIED');
});

test('a TPM identity names the attestation key (identity.tpm.ak) unless it says shared: true; the generated policy requires it (rule tpm.ak)', async () => {
  const pcrs = { sha256: { '7': 'cd'.repeat(32) } };
  const FP = 'ab'.repeat(32);
  // PCR values alone: every VM booted from the image would match.
  const none = await provision(provisioner, { id: 'vm-ak-none', identity: { tpm: { pcrs } } });
  assertProblem(none, 400, 'bad-request', 'VOLUME_TPM_AK_REQUIRED');
  assert.match(String(none.json.detail), /identity\.tpm\.ak is required.*coffer agent tpm-ak.*shared: true/);
  assertProblem(await provision(provisioner, { id: 'vm-ak-none', identity: { tpm: { pcrs, shared: false } } }), 400, 'bad-request', 'VOLUME_TPM_AK_REQUIRED');
  assertProblem(await provision(provisioner, { id: 'vm-ak-both', identity: { tpm: { pcrs, ak: FP, shared: true } } }), 400, 'bad-request', 'VOLUME_TPM_AK_SHARED');
  for (const ak of ['ab'.repeat(31), 'ab'.repeat(33), `000b${'ab'.repeat(31)}`, 'zz'.repeat(32), 42]) {
    const r = await provision(provisioner, { id: 'vm-ak-bad', identity: { tpm: { pcrs, ak } } });
    assert.equal(r.status, 400, `${String(ak)}: ${r.text}`);
    assert.match(r.text, /tpm\.ak/);
  }
  assert.equal((await http(adm('volumes/vm-ak-bad'), { bearer: admin })).status, 404);
  // By fingerprint (upper case is normalised) and by TPM name; the policy names the key.
  const byFp = await provision(provisioner, { id: 'vm-ak-fp', identity: { tpm: { pcrs, ak: FP.toUpperCase() } } });
  assert.equal(byFp.status, 201, byFp.text);
  assert.deepEqual((JSON.parse(String(byFp.json.policyText)) as { tpm: unknown }).tpm, { ak: [FP] });
  const NAME = `000b${'cd'.repeat(32)}`;
  const byName = await provision(provisioner, { id: 'vm-ak-name', identity: { tpm: { pcrs, ak: NAME } } });
  assert.equal(byName.status, 201, byName.text);
  assert.deepEqual((JSON.parse(String(byName.json.policyText)) as { tpm: unknown }).tpm, { ak: [NAME] });
  // Shared on purpose: no AK rule.
  const shared = await provision(provisioner, { id: 'vm-ak-shared', identity: { tpm: { pcrs, shared: true } } });
  assert.equal(shared.status, 201, shared.text);
  assert.equal((JSON.parse(String(shared.json.policyText)) as { tpm?: unknown }).tpm, undefined);
  // The CLI: --tpm-ak takes the fingerprint or a PEM public key file; without it (or --tpm-shared) exit 2.
  const common = ['--url', tb.url, '--token-file', tb.running.paths.adminTokenFile];
  const { publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const pem = join(tb.dir, 'ak.pem');
  writeFileSync(pem, publicKey.export({ type: 'spki', format: 'pem' }));
  const fp = createHash('sha256').update(publicKey.export({ type: 'spki', format: 'der' })).digest('hex');
  const noAk = await runCli(['broker', 'volume', 'provision', 'vm-ak-cli', '--pcr', `sha256:7=${'cd'.repeat(32)}`, ...common]);
  assert.equal(noAk.code, 2, noAk.stdout);
  assert.match(noAk.stderr, /VOLUME_TPM_AK_REQUIRED|identity\.tpm\.ak/);
  assert.equal((await runCli(['broker', 'volume', 'provision', 'vm-ak-cli', '--tpm-ak', fp, ...common])).code, 2);
  const fromFile = await runCli(['broker', 'volume', 'provision', 'vm-ak-cli', '--pcr', `sha256:7=${'cd'.repeat(32)}`, '--tpm-ak', pem, '--json', ...common]);
  assert.equal(fromFile.code, 0, fromFile.stderr);
  assert.deepEqual((JSON.parse(String((JSON.parse(fromFile.stdout) as { volume: { policyText: string } }).volume.policyText)) as { tpm: unknown }).tpm, { ak: [fp] });
  const byHex = await runCli(['broker', 'volume', 'provision', 'vm-ak-cli2', '--pcr', `sha256:7=${'cd'.repeat(32)}`, '--tpm-ak', fp, '--json', ...common]);
  assert.equal(byHex.code, 0, byHex.stderr);
  assert.deepEqual((JSON.parse(String((JSON.parse(byHex.stdout) as { volume: { policyText: string } }).volume.policyText)) as { tpm: unknown }).tpm, { ak: [fp] });
  const sharedCli = await runCli(['broker', 'volume', 'provision', 'vm-ak-cli3', '--pcr', `sha256:7=${'cd'.repeat(32)}`, '--tpm-shared', ...common]);
  assert.equal(sharedCli.code, 0, sharedCli.stderr);
});

// ----- First-boot marking (migration 6): the release's protected header says whether the volume
// was initialized; only the session that was released the key may mark it.

/** Attest as `att`, fetch the volume key; the cookie, token, key and the authenticated `coffer.volume` header. */
async function releaseVolume(url: string, att: Attester, id: string): Promise<{ cookie: string; token: string; key: Buffer; header: Record<string, unknown> }> {
  const auth = await http(`${url}/kbs/v0/auth`, { body: { version: '0.1.0', tee: 'snp', 'extra-params': '' } });
  assert.equal(auth.status, 200, auth.text);
  const cookie = sessionCookie(auth);
  const at = await http(`${url}/kbs/v0/attest`, { body: await att.attestBody(auth.json.nonce as string), cookie });
  assert.equal(at.status, 200, at.text);
  const r = await http(`${url}/kbs/v0/resource/volumes/${id}/key`, { cookie });
  assert.equal(r.status, 200, r.text);
  const out = await flattenedDecrypt(r.json as unknown as FlattenedJWE, att.privateKey);
  return { cookie, token: at.json.token as string, key: Buffer.from(out.plaintext), header: (out.protectedHeader as Record<string, unknown>)['coffer.volume'] as Record<string, unknown> };
}

const markAs = (url: string, creds: { cookie?: string; bearer?: string }, body: unknown) => http(`${url}/kbs/v0/volume-initialized`, { method: 'POST', ...creds, body });

/** The scenario on one broker (SQLite here, PostgreSQL below). */
async function initializedScenario(b: { url: string; broker: TestBroker['running']['broker'] }, prov: string, id: string): Promise<void> {
  const p = await http(`${b.url}/admin/v0/volumes`, { method: 'POST', bearer: prov, body: { id, identity: { snp: { measurements: [A] } } } });
  assert.equal(p.status, 201, p.text);
  assert.equal(p.json.initializedAt, undefined);
  const att = new Attester(MEASUREMENT_A);

  const first = await releaseVolume(b.url, att, id);
  assert.deepEqual(first.header, { id, keyVersion: 1, initialized: false });

  // Another attested session (same VM identity) that fetched nothing, and one that fetched another
  // volume's key, may not mark this one: refused and audited.
  const stranger = await http(`${b.url}/kbs/v0/auth`, { body: { version: '0.1.0', tee: 'snp', 'extra-params': '' } });
  const sc = sessionCookie(stranger);
  assert.equal((await http(`${b.url}/kbs/v0/attest`, { body: await att.attestBody(stranger.json.nonce as string), cookie: sc })).status, 200);
  const refused = await markAs(b.url, { cookie: sc }, { volume: id, keyVersion: 1 });
  assertProblem(refused, 403, 'not-released', 'KBS_VOLUME_NOT_RELEASED');
  const deny = (await b.broker.store.queryAudit({ action: 'kbs.volume-initialized', verdict: 'deny', limit: 1000 })).at(-1);
  assert.equal(deny?.problem, 'not-released');
  assert.equal(deny?.resource, `volumes/${id}/key`);
  assert.equal(deny?.rule, 'volume.released');
  // No credentials, a session that never attested, a malformed body, a stale key version.
  assertProblem(await markAs(b.url, {}, { volume: id, keyVersion: 1 }), 401, 'not-attested', 'KBS_NO_SESSION');
  const fresh = sessionCookie(await http(`${b.url}/kbs/v0/auth`, { body: { version: '0.1.0', tee: 'snp', 'extra-params': '' } }));
  assertProblem(await markAs(b.url, { cookie: fresh }, { volume: id, keyVersion: 1 }), 401, 'not-attested', 'KBS_NOT_ATTESTED');
  assertProblem(await markAs(b.url, { cookie: first.cookie }, { volume: id, keyVersion: 1, extra: true }), 400, 'bad-request');
  assertProblem(await markAs(b.url, { cookie: first.cookie }, { volume: id, keyVersion: 2 }), 409, 'conflict', 'KBS_VOLUME_KEY_VERSION');
  // The EAR token of another session with this session's cookie: a mismatch.
  assertProblem(await markAs(b.url, { cookie: first.cookie, bearer: (await releaseVolumeToken(b.url, att)).token }, { volume: id, keyVersion: 1 }), 403, 'session-mismatch');
  assert.equal((await b.broker.store.getVolume(id))?.initializedAt, undefined, 'nothing refused marked it');

  // The session that was released the key marks it, by its token alone; again: idempotent.
  const ok = await markAs(b.url, { bearer: first.token }, { volume: id, keyVersion: 1 });
  assert.equal(ok.status, 200, ok.text);
  assert.equal(ok.json.changed, true);
  assert.equal(ok.json.keyVersion, 1);
  const again = await markAs(b.url, { cookie: first.cookie }, { volume: id, keyVersion: 1 });
  assert.equal(again.status, 200, again.text);
  assert.equal(again.json.changed, false);
  assert.equal(again.json.initializedAt, ok.json.initializedAt);
  const allows = (await b.broker.store.queryAudit({ action: 'kbs.volume-initialized', verdict: 'allow', limit: 1000 })).filter((r) => r.resource === `volumes/${id}/key`);
  assert.equal(allows.length, 2);
  assert.match(allows[0]?.detail ?? '', /key version 1 initialized/);
  assert.match(allows[1]?.detail ?? '', /already initialized/);
  const meta = await http(`${b.url}/admin/v0/volumes/${id}`, { bearer: prov });
  assert.equal(typeof meta.json.initializedAt, 'number', meta.text);

  const second = await releaseVolume(b.url, att, id);
  assert.deepEqual(second.header, { id, keyVersion: 1, initialized: true });
  assert.deepEqual(second.key, first.key);

  // Re-provisioning clears it; the old session (key version 1) cannot mark the new key.
  const re = await http(`${b.url}/admin/v0/volumes`, { method: 'POST', bearer: prov, body: { id, identity: { snp: { measurements: [A] } }, reprovision: true } });
  assert.equal(re.status, 200, re.text);
  assert.equal(re.json.initializedAt, undefined);
  assertProblem(await markAs(b.url, { cookie: second.cookie }, { volume: id, keyVersion: 2 }), 409, 'conflict', 'KBS_VOLUME_KEY_VERSION');
  const third = await releaseVolume(b.url, att, id);
  assert.deepEqual(third.header, { id, keyVersion: 2, initialized: false });
  assert.notDeepEqual(third.key, first.key);
  assert.equal((await markAs(b.url, { cookie: third.cookie }, { volume: id, keyVersion: 2 })).status, 200);
  assert.deepEqual((await releaseVolume(b.url, att, id)).header, { id, keyVersion: 2, initialized: true });

  // Revoked: nothing to mark.
  assert.equal((await http(`${b.url}/admin/v0/volumes/${id}`, { method: 'DELETE', bearer: prov })).status, 204);
  assertProblem(await markAs(b.url, { cookie: third.cookie }, { volume: id, keyVersion: 2 }), 410, 'resource-revoked');
}

/** An attested session that fetched nothing: its EAR token. */
async function releaseVolumeToken(url: string, att: Attester): Promise<{ token: string }> {
  const auth = await http(`${url}/kbs/v0/auth`, { body: { version: '0.1.0', tee: 'snp', 'extra-params': '' } });
  const at = await http(`${url}/kbs/v0/attest`, { body: await att.attestBody(auth.json.nonce as string), cookie: sessionCookie(auth) });
  assert.equal(at.status, 200, at.text);
  return { token: at.json.token as string };
}

test('initialized flag (SQLite): header false → marked by the releasing session only → true; idempotent; re-provision clears it; audited', async () => {
  await initializedScenario({ url: tb.url, broker: tb.running.broker }, provisioner, 'vm-init');
});

test('initialized flag (PostgreSQL): the same, on a PostgreSQL store (migration 6)', async () => {
  const db = await freshDatabase('volinit');
  const home = mkdtempSync(join(tmpdir(), 'coffer-volinit-'));
  try {
    const pb = await startTestBroker(home, { store: db.url });
    try {
      await initializedScenario({ url: pb.url, broker: pb.running.broker }, await pb.token('provisioner'), 'vm-init-pg');
      const cols = await db.query<{ data_type: string; is_nullable: string }>("SELECT data_type, is_nullable FROM information_schema.columns WHERE table_name = 'volumes' AND column_name = 'initialized_at'");
      assert.deepEqual(cols, [{ data_type: 'bigint', is_nullable: 'YES' }]);
    } finally {
      await pb.cleanup();
    }
  } finally {
    rmSync(home, { recursive: true, force: true });
    await db.drop();
  }
});
