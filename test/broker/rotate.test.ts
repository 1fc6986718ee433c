// KEK rotation against a running broker on a real SQLite file: file → file, file → PKCS#11
// (SoftHSM2), PKCS#11 → PKCS#11. Every secret stays readable through a real release (auth →
// attest → resource → JWE decrypted by the attester) before, during and after; the old KEK is
// removed afterwards and nothing needs it; a rotation that throws midway, or is SIGKILLed midway
// in another process, completes when run again.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { flattenedDecrypt, type FlattenedJWE } from 'jose';
import type * as Pkcs11Types from 'pkcs11js';
import { FileKekProvider, SqliteStore, open, openBrokerKeks, rotateKek, seal, type RotateResult } from '../../src/broker/index.js';
import type { CofferError } from '../../src/errors.js';
import { runCli } from '../helpers/cli.js';
import { Attester, MEASUREMENT_A, http, policyFor, sessionCookie, startTestBroker, type TestBroker } from './helpers.js';
import { SOFTHSM_MODULE, softHsm, type SoftHsm } from './softhsm.js';

const PIN = '771133';
let hsm: SoftHsm;
let tb: TestBroker;
let admin: string;
const secrets = new Map<string, Buffer>();
const att = new Attester(MEASUREMENT_A);

before(async () => {
  hsm = softHsm();
  hsm.initToken('coffer', PIN);
  process.env.COFFER_PKCS11_PIN = PIN;
  tb = await startTestBroker();
  admin = readFileSync(tb.running.paths.adminTokenFile, 'utf8').trim();
  const r = await http(`${tb.url}/admin/v0/policies/team`, { method: 'PUT', bearer: admin, body: { policy: policyFor('team-release', MEASUREMENT_A) } });
  assert.equal(r.status, 200, r.text);
  for (let i = 0; i < 6; i++) await put(`team/key/s${i}`, Buffer.from(`rotation-secret-${i}-${'9c'.repeat(12)}`));
  // A provisioned volume key is sealed by the KEK too: its value is only ever seen by the VM, so
  // the expectation is what the VM gets before any rotation.
  const v = await http(`${tb.url}/admin/v0/volumes`, { method: 'POST', bearer: admin, body: { id: 'vm-1', identity: { snp: { measurements: [MEASUREMENT_A.toString('hex')] } } } });
  assert.equal(v.status, 201, v.text);
  const key = await release('volumes/vm-1/key');
  assert.equal(key.length, 32);
  secrets.set('volumes/vm-1/key', key);
});
after(async () => {
  await tb.cleanup();
  hsm.cleanup();
});

async function put(path: string, value: Buffer): Promise<void> {
  const r = await http(`${tb.url}/admin/v0/secrets/${path}`, { method: 'PUT', bearer: admin, body: { value: value.toString('base64') } });
  assert.equal(r.status, 200, r.text);
  secrets.set(path, value);
}

/** A real release: a fresh session, attested, the resource fetched and decrypted by the attester. */
async function release(path: string): Promise<Buffer> {
  const a = await http(`${tb.url}/kbs/v0/auth`, { body: { version: '0.1.0', tee: 'snp', 'extra-params': '' } });
  const cookie = sessionCookie(a);
  const t = await http(`${tb.url}/kbs/v0/attest`, { body: await att.attestBody(a.json.nonce as string), cookie });
  assert.equal(t.status, 200, t.text);
  const r = await http(`${tb.url}/kbs/v0/resource/${path}`, { cookie });
  assert.equal(r.status, 200, `${path}: ${r.text}`);
  return Buffer.from((await flattenedDecrypt(r.json as unknown as FlattenedJWE, att.privateKey)).plaintext);
}

async function allReadable(): Promise<void> {
  for (const [path, value] of secrets) assert.deepEqual(await release(path), value, path);
}

/** The rotation as another process would run it: its own connection to the database file. */
async function rotate(to: string, onRewrapped?: (path: string, done: number) => void | Promise<void>): Promise<RotateResult> {
  const store = await SqliteStore.open(tb.running.paths.db);
  try {
    return await rotateKek({ store, to, actor: 'test', ...(onRewrapped ? { onRewrapped: (p: string, d: number) => onRewrapped(p, d) } : {}) });
  } finally {
    await store.close();
  }
}

async function kekCounts(): Promise<Record<string, number>> {
  return tb.running.broker.store.countSecretsByKek();
}

test('file → file while serving: reads and writes during the rotation, old KEK retired and removed, restart needs only the new one', async () => {
  const oldId = tb.running.kek.id;
  assert.match(oldId, /^file:/);
  assert.deepEqual(await kekCounts(), { [oldId]: 6 });
  const newFile = join(tb.dir, 'kek-2.key');
  let during = 0;
  const r = await rotate(newFile, async (path, done) => {
    if (done === 3) {
      // Mid-rotation, the running broker serves a secret still under the old KEK and one under
      // the new, and a write lands under the new KEK (the store says it is current).
      const counts = await kekCounts();
      assert.equal(Object.keys(counts).length, 2, JSON.stringify(counts));
      await allReadable();
      await put('team/key/written-during', Buffer.from('written while rotating'));
      during++;
    }
    assert.ok(path.startsWith('team/key/') || path === 'volumes/vm-1/key', path);
  });
  assert.equal(during, 1);
  assert.equal(r.created, true);
  assert.equal(r.switched, true);
  assert.equal(r.rewrapped, 7, '6 secrets and the volume key; the secret written during the rotation was already under the new KEK');
  assert.deepEqual(r.retired, [oldId]);
  assert.deepEqual(r.counts, { [r.kekId]: 7 });
  assert.deepEqual(r.volumeCounts, { [r.kekId]: 1 });
  const keks = await tb.running.broker.store.listKeks();
  assert.deepEqual(keks.map((k) => [k.id, k.state]), [[oldId, 'retired'], [r.kekId, 'current']]);
  // Values, versions and authors did not change: only the wrapped data keys.
  for (const s of await tb.running.broker.store.listSecrets()) assert.equal(s.version, 1);

  // A retired KEK never becomes current again.
  await assert.rejects(rotate(tb.running.paths.kek), (e: CofferError) => e.code === 'KEK_RETIRED');
  assert.equal((await tb.running.broker.store.listKeks()).find((k) => k.state === 'current')?.id, r.kekId);

  // The old KEK is gone; a restart opens the store's current KEK and everything is readable.
  rmSync(tb.running.paths.kek);
  await tb.restart();
  assert.equal(tb.running.kek.id, r.kekId);
  assert.equal(tb.running.created.kek, false, 'the default kek.key is not re-created');
  await allReadable();

  // Running it again does nothing.
  const again = await rotate(newFile);
  assert.deepEqual([again.switched, again.rewrapped, again.retired.length], [false, 0, 0]);

  // Refused: starting with the old --kek, making the retired KEK current again, and (the schema)
  // a secret written under the retired KEK.
  writeFileSync(join(tb.dir, 'other.key'), Buffer.alloc(32, 7), { mode: 0o600 });
  const cli = await runCli(['broker', 'serve', '--home', tb.dir, '--listen', '127.0.0.1:0', '--kek', join(tb.dir, 'other.key')]);
  assert.equal(cli.code, 2, cli.stderr);
  assert.match(cli.stderr, /KEK_NOT_CURRENT|is KEK file:/);
  assert.equal(cli.stderr.trim().split('\n').length, 1, 'one line');
  const db = new Database(tb.running.paths.db);
  try {
    assert.throws(
      () => db.prepare("INSERT INTO secrets (path, kek_id, wrapped_key, iv, ciphertext, tag, alg, size, version, created_at, updated_at, created_by, updated_by) VALUES ('x/y/z', ?, x'00', x'00', x'00', x'00', 'A256GCM+A256KW', 1, 1, 0, 0, 't', 't')").run(oldId),
      /retired/,
    );
    db.prepare("INSERT INTO secrets (path, kek_id, wrapped_key, iv, ciphertext, tag, alg, size, version, created_at, updated_at, created_by, updated_by) VALUES ('x/y/z', ?, x'00', x'00', x'00', x'00', 'A256GCM+A256KW', 1, 1, 0, 0, 't', 't')").run(r.kekId);
    db.prepare("DELETE FROM secrets WHERE path = 'x/y/z'").run();
  } finally {
    db.close();
  }
});

test('file → PKCS#11: a rotation that throws midway leaves every secret readable and completes when re-run', async () => {
  const fileId = tb.running.kek.id;
  const spec = hsm.spec('coffer', 'kek-a');
  await assert.rejects(
    rotate(spec, (_p, done) => {
      if (done === 2) throw new Error('simulated crash');
    }),
    /simulated crash/,
  );
  const counts = await kekCounts();
  const hsmId = Object.keys(counts).find((k) => k.startsWith('pkcs11:kek-a:'));
  assert.ok(hsmId, JSON.stringify(counts));
  assert.deepEqual(counts, { [fileId]: 5, [hsmId]: 2 });
  // Half-rotated: the running broker reads both, and writes go to the HSM KEK.
  await allReadable();
  await put('team/key/under-hsm', Buffer.from('sealed by the HSM'));
  assert.equal((await kekCounts())[hsmId], 3);

  const r = await rotate(spec);
  assert.equal(r.kekId, hsmId);
  assert.deepEqual([r.created, r.switched, r.rewrapped], [false, false, 6]);
  assert.deepEqual(r.retired, [fileId]);
  assert.deepEqual(r.counts, { [hsmId]: 8 });
  assert.deepEqual(r.volumeCounts, { [hsmId]: 1 });
  rmSync(join(tb.dir, 'kek-2.key'));
  await tb.restart();
  assert.equal(tb.running.kek.id, hsmId);
  await allReadable();
});

test('PKCS#11 → PKCS#11 through the CLI, SIGKILLed midway in another process, resumed; the old token key destroyed', async () => {
  const oldId = tb.running.kek.id;
  const spec = hsm.spec('coffer', 'kek-b');
  const root = new URL('../..', import.meta.url).pathname;
  const script = join(hsm.dir, 'rotate-child.mts');
  // Reports each re-wrap, then hangs after the third so the parent kills it at a known point.
  writeFileSync(
    script,
    `import { SqliteStore, rotateKek } from ${JSON.stringify(join(root, 'src/broker/index.ts'))};
const store = await SqliteStore.open(process.argv[2]);
await rotateKek({ store, to: process.argv[3], onRewrapped: async (_p, done) => { process.stdout.write('done ' + done + '\\n'); if (done === 3) await new Promise(() => {}); } });
`,
  );
  const child = spawn(process.execPath, ['--import', 'tsx', script, tb.running.paths.db, spec], { cwd: root, env: { ...process.env, COFFER_PKCS11_PIN: PIN }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<NodeJS.Signals | null>((resolve) => child.on('exit', (_c, sig) => resolve(sig)));
  await new Promise<void>((resolve, reject) => {
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('done 3')) resolve();
    });
    child.on('exit', () => reject(new Error(`the rotation child exited early: ${out} ${err}`)));
  });
  child.kill('SIGKILL');
  assert.equal(await exited, 'SIGKILL');
  const counts = await kekCounts();
  const newId = Object.keys(counts).find((k) => k.startsWith('pkcs11:kek-b:'));
  assert.ok(newId);
  assert.deepEqual(counts, { [oldId]: 5, [newId]: 3 });
  await allReadable();

  // Mid-rotation, `kek list` shows both KEKs and what each still seals.
  const mid = await runCli(['broker', 'kek', 'list', '--db', tb.running.paths.db, '--json']);
  assert.equal(mid.code, 0, mid.stderr);
  const rows = (JSON.parse(mid.stdout) as { keks: { id: string; state: string; secrets: number; volumes: number }[] }).keks;
  assert.deepEqual(
    rows.filter((k) => k.state !== 'retired').map((k) => [k.id, k.state, k.secrets, k.volumes]),
    [
      [oldId, 'retiring', 5, 1],
      [newId, 'current', 3, 0],
    ],
  );

  // Resumed through the CLI (in-process), then the old key is destroyed in the token.
  const cli = await runCli(['broker', 'rotate-kek', '--db', tb.running.paths.db, '--to', spec, '--json']);
  assert.equal(cli.code, 0, cli.stderr);
  const res = JSON.parse(cli.stdout) as RotateResult;
  assert.deepEqual([res.kekId, res.switched, res.rewrapped, res.retired], [newId, false, 6, [oldId]]);
  assert.deepEqual(res.volumeCounts, { [newId]: 1 });
  const p = createRequire(import.meta.url)('pkcs11js') as typeof Pkcs11Types;
  const lib = new p.PKCS11();
  lib.load(SOFTHSM_MODULE);
  try {
    lib.C_Initialize();
  } catch (e) {
    if (!/ALREADY_INITIALIZED/.test((e as Error).message)) throw e;
  }
  const slot = lib.C_GetSlotList(true).find((x) => lib.C_GetTokenInfo(x).label.trim() === 'coffer');
  assert.ok(slot);
  const s = lib.C_OpenSession(slot, p.CKF_SERIAL_SESSION | p.CKF_RW_SESSION);
  try {
    lib.C_Login(s, p.CKU_USER, PIN);
  } catch (e) {
    if (!/ALREADY_LOGGED_IN/.test((e as Error).message)) throw e;
  }
  lib.C_FindObjectsInit(s, [{ type: p.CKA_LABEL, value: 'kek-a' }]);
  const found = lib.C_FindObjects(s, 5);
  lib.C_FindObjectsFinal(s);
  assert.equal(found.length, 1);
  lib.C_DestroyObject(s, found[0] as Pkcs11Types.Handle);
  lib.C_CloseSession(s);
  await tb.restart();
  assert.equal(tb.running.kek.id, newId);
  await allReadable();

  // Negative twin: a secret under a KEK the store does not know is not released (internal, no secret).
  const store = tb.running.broker.store as SqliteStore;
  const rec = await store.getSecret('team/key/s0');
  assert.ok(rec);
  await assert.rejects(tb.running.broker.kek.unwrap(rec.wrappedKey, 'pkcs11:kek-zz:00'), (e: CofferError) => e.code === 'KEK_UNKNOWN');
});

test('a store whose KEK the registry does not record (written before migration 4): rotate-kek refuses before changing anything; after a start registers it, the rotation works', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'coffer-rotate-unregistered-'));
  const store = await SqliteStore.open(join(dir, 'broker.db'));
  try {
    const old = FileKekProvider.open(join(dir, 'old.key'), { create: true });
    const s = await seal(old, 'a/b/c', Buffer.from('pre-registry secret'));
    await store.putSecret({ path: 'a/b/c', kekId: s.kekId, wrappedKey: s.wrappedKey, iv: s.iv, ciphertext: s.ciphertext, tag: s.tag, alg: s.alg, size: 19, createdAt: 1, updatedAt: 1, createdBy: 'test', updatedBy: 'test' });
    await old.close();
    const to = `file:${join(dir, 'new.key')}`;
    await assert.rejects(rotateKek({ store, to }), (e: CofferError) => e.code === 'KEK_UNREGISTERED' && e.kind === 'input');
    assert.deepEqual(await store.listKeks(), [], 'no KEK was made current');
    assert.equal(existsSync(join(dir, 'new.key')), false, 'no key was created');
    // A start with the old key registers it; then the rotation completes and the secret reads.
    const started = await openBrokerKeks(store, { spec: `file:${join(dir, 'old.key')}`, defaultFile: join(dir, 'unused.key'), at: 2 });
    await started.ring.close();
    const r = await rotateKek({ store, to });
    assert.equal(r.rewrapped, 1);
    assert.equal(r.retired.length, 1);
    const ring = (await openBrokerKeks(store, { defaultFile: join(dir, 'unused.key'), at: 3 })).ring;
    try {
      const rec = await store.getSecret('a/b/c');
      assert.ok(rec);
      assert.equal(rec.kekId, r.kekId);
      assert.equal((await open(ring, 'a/b/c', rec)).toString(), 'pre-registry secret');
    } finally {
      await ring.close();
    }
  } finally {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
