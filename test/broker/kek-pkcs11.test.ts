// The PKCS#11 KEK provider against a real SoftHSM2 token: the key is generated inside the token
// and cannot be read out; wrapping is RFC 3394 and byte-identical to OpenSSL's id-aes256-wrap with
// the same key (an imported key is the oracle); every refusal is a one-line CofferError.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type * as Pkcs11Types from 'pkcs11js';
import { Pkcs11KekProvider, aesKeyWrap, open, openKek, parsePkcs11Spec, seal } from '../../src/broker/index.js';
import { CofferError } from '../../src/errors.js';
import { flattenedDecrypt, type FlattenedJWE } from 'jose';
import { runCli } from '../helpers/cli.js';
import { Attester, MEASUREMENT_A, http, policyFor, sessionCookie, startTestBroker } from './helpers.js';
import { SOFTHSM_MODULE, softHsm, type SoftHsm } from './softhsm.js';

const PIN = '246813';
let hsm: SoftHsm;
const env = () => ({ ...process.env, COFFER_PKCS11_PIN: PIN });
const oneLine = (e: unknown) => e instanceof CofferError && !e.message.includes('\n');

before(() => {
  hsm = softHsm();
  hsm.initToken('coffer', PIN);
  hsm.initToken('other', PIN);
});
after(() => hsm.cleanup());

/** An independent PKCS#11 session (not the provider's code) to inspect and seed the token. */
function raw<T>(fn: (lib: Pkcs11Types.PKCS11, s: Pkcs11Types.Handle, p: typeof Pkcs11Types) => T): T {
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
    try {
      lib.C_Login(s, p.CKU_USER, PIN);
    } catch (e) {
      if (!/ALREADY_LOGGED_IN/.test((e as Error).message)) throw e;
    }
    return fn(lib, s, p);
  } finally {
    lib.C_CloseSession(s);
  }
}

test('spec: parsed, aliases, PIN values and unknown attributes refused', () => {
  const s = parsePkcs11Spec(`pkcs11:module-path=${SOFTHSM_MODULE};token=coffer;object=k1;pin-env=MY_PIN`);
  assert.deepEqual(s, { module: SOFTHSM_MODULE, token: 'coffer', label: 'k1', pinEnv: 'MY_PIN' });
  for (const bad of ['pkcs11:token=coffer;label=k', `pkcs11:module=${SOFTHSM_MODULE};token=coffer;label=k;pin=1234`, `pkcs11:module=${SOFTHSM_MODULE};token=t;label=k;colour=red`, 'pkcs11:module=relative.so;token=t;label=k', `pkcs11:module=${SOFTHSM_MODULE};token=t;label=a b`, `pkcs11:module=${SOFTHSM_MODULE};token=t%zz;label=k`, 'pkcs11:module=/usr/lib/x%E0%A4%A.so;token=t;label=k']) {
    assert.throws(() => parsePkcs11Spec(bad), (e: CofferError) => e.code === 'KEK_BAD_SPEC' && oneLine(e), bad);
  }
  // The PIN value never appears in an error message.
  assert.throws(() => parsePkcs11Spec(`pkcs11:module=${SOFTHSM_MODULE};token=t;label=k;pin=9931-secret`), (e: Error) => !e.message.includes('9931-secret'));
});

test('generated KEK: sensitive, not extractable, value unreadable; wraps and unwraps; id stable on reopen', async () => {
  const k = openKek(hsm.spec('coffer', 'coffer-kek'), { create: true, env: env() });
  try {
    assert.equal(k.created, true);
    assert.match(k.currentId, /^pkcs11:coffer-kek:[0-9a-f]{16}$/);
    assert.match(k.spec, /;id=[0-9a-f]{16}$/);
    assert.ok(!k.spec.includes(PIN));
    raw((lib, s, p) => {
      lib.C_FindObjectsInit(s, [{ type: p.CKA_LABEL, value: 'coffer-kek' }]);
      const [h] = lib.C_FindObjects(s, 2);
      lib.C_FindObjectsFinal(s);
      assert.ok(h);
      const a = lib.C_GetAttributeValue(s, h, [{ type: p.CKA_SENSITIVE }, { type: p.CKA_EXTRACTABLE }, { type: p.CKA_TOKEN }]);
      assert.deepEqual(a.map((x) => (x.value as Buffer)[0]), [1, 0, 1]);
      assert.throws(() => lib.C_GetAttributeValue(s, h, [{ type: p.CKA_VALUE }]), /CKR_ATTRIBUTE_SENSITIVE/);
    });
    const dk = randomBytes(32);
    const { kekId, wrapped } = await k.wrap(dk);
    assert.equal(kekId, k.currentId);
    assert.equal(wrapped.length, 40);
    assert.deepEqual(await k.unwrap(wrapped, kekId), dk);
    const flipped = Buffer.from(wrapped);
    flipped[7] = (flipped[7] as number) ^ 0x10;
    await assert.rejects(k.unwrap(flipped, kekId), (e: CofferError) => e.code === 'KEK_UNWRAP_FAILED');
    await assert.rejects(k.unwrap(wrapped, 'pkcs11:coffer-kek:0000000000000000'), (e: CofferError) => e.code === 'KEK_UNKNOWN');

    // Reopened by label (no create): the same key, the same id; envelope encryption through it.
    const again = openKek(hsm.spec('coffer', 'coffer-kek'), { env: env() });
    try {
      assert.equal(again.created, false);
      assert.equal(again.currentId, k.currentId);
      const sealed = await seal(k, 'team/key/disk', Buffer.from('hsm-sealed value'));
      assert.deepEqual(await open(again, 'team/key/disk', sealed), Buffer.from('hsm-sealed value'));
      await assert.rejects(open(again, 'team/key/other', sealed), (e: CofferError) => e.code === 'SECRET_CORRUPT');
    } finally {
      await again.close();
    }
    // A second key in the token does not unwrap the first one's data keys.
    const other = openKek(hsm.spec('coffer', 'kek-two'), { create: true, env: env() });
    try {
      assert.notEqual(other.currentId, k.currentId);
      await assert.rejects(other.unwrap(wrapped, other.currentId), (e: CofferError) => e.code === 'KEK_UNWRAP_FAILED');
    } finally {
      await other.close();
    }
  } finally {
    await k.close();
  }
  await assert.rejects(k.wrap(randomBytes(32)), (e: CofferError) => e.code === 'KEK_CLOSED');
});

test('CKM_AES_KEY_WRAP in the token is byte-identical to OpenSSL id-aes256-wrap (imported key as the oracle)', async () => {
  const kekBytes = randomBytes(32);
  raw((lib, s, p) => {
    lib.C_CreateObject(s, [
      { type: p.CKA_CLASS, value: p.CKO_SECRET_KEY },
      { type: p.CKA_KEY_TYPE, value: p.CKK_AES },
      { type: p.CKA_VALUE, value: kekBytes },
      { type: p.CKA_TOKEN, value: true },
      { type: p.CKA_SENSITIVE, value: true },
      { type: p.CKA_EXTRACTABLE, value: false },
      { type: p.CKA_WRAP, value: true },
      { type: p.CKA_UNWRAP, value: true },
      { type: p.CKA_LABEL, value: 'imported' },
      { type: p.CKA_ID, value: Buffer.from('abcd', 'hex') },
    ]);
  });
  const k = openKek(hsm.spec('coffer', 'imported'), { env: env() });
  try {
    assert.equal(k.currentId, 'pkcs11:imported:abcd');
    for (let i = 0; i < 3; i++) {
      const dk = randomBytes(32);
      const { wrapped } = await k.wrap(dk);
      assert.deepEqual(wrapped, aesKeyWrap(kekBytes, dk));
      const wrongKek = Buffer.from(kekBytes);
      wrongKek[0] = (wrongKek[0] as number) ^ 1;
      assert.notDeepEqual(wrapped, aesKeyWrap(wrongKek, dk));
    }
  } finally {
    await k.close();
  }
});

test('refused: wrong PIN, no PIN, loose PIN file, missing token, missing key, extractable key, missing module', async () => {
  const spec = hsm.spec('coffer', 'coffer-kek');
  assert.throws(() => openKek(spec, { env: { ...process.env, COFFER_PKCS11_PIN: '000000' } }), (e: CofferError) => e.code === 'KEK_PKCS11_BAD_PIN' && oneLine(e) && !e.message.includes('000000'));
  const noPin = { ...process.env };
  delete noPin.COFFER_PKCS11_PIN;
  assert.throws(() => openKek(spec, { env: noPin }), (e: CofferError) => e.code === 'KEK_PKCS11_NO_PIN' && oneLine(e));
  // PIN from a 0600 file; a file others can read is refused.
  const pinFile = join(hsm.dir, 'pin');
  writeFileSync(pinFile, `${PIN}\n`, { mode: 0o600 });
  const viaFile = openKek(`${spec};pin-file=${pinFile}`, { env: noPin });
  await viaFile.close();
  chmodSync(pinFile, 0o644);
  assert.throws(() => openKek(`${spec};pin-file=${pinFile}`, { env: noPin }), (e: CofferError) => e.code === 'KEK_INSECURE_FILE');
  // PIN from another variable.
  const custom = openKek(`${spec};pin-env=HSM_PIN_X`, { env: { ...noPin, HSM_PIN_X: PIN } });
  await custom.close();

  assert.throws(() => openKek(hsm.spec('nosuch', 'coffer-kek'), { env: env() }), (e: CofferError) => e.code === 'KEK_PKCS11_NO_TOKEN' && oneLine(e) && /coffer/.test(e.message));
  assert.throws(() => openKek(hsm.spec('other', 'coffer-kek'), { env: env() }), (e: CofferError) => e.code === 'KEK_PKCS11_NO_KEY' && oneLine(e));
  assert.throws(() => openKek(hsm.spec('coffer', 'coffer-kek', ';id=0102'), { env: env() }), (e: CofferError) => e.code === 'KEK_PKCS11_NO_KEY');

  raw((lib, s, p) => {
    lib.C_GenerateKey(s, { mechanism: p.CKM_AES_KEY_GEN }, [
      { type: p.CKA_CLASS, value: p.CKO_SECRET_KEY },
      { type: p.CKA_KEY_TYPE, value: p.CKK_AES },
      { type: p.CKA_VALUE_LEN, value: 32 },
      { type: p.CKA_TOKEN, value: true },
      { type: p.CKA_SENSITIVE, value: false },
      { type: p.CKA_EXTRACTABLE, value: true },
      { type: p.CKA_WRAP, value: true },
      { type: p.CKA_UNWRAP, value: true },
      { type: p.CKA_LABEL, value: 'leaky' },
      { type: p.CKA_ID, value: Buffer.from('01', 'hex') },
    ]);
  });
  assert.throws(() => openKek(hsm.spec('coffer', 'leaky'), { env: env() }), (e: CofferError) => e.code === 'KEK_PKCS11_INSECURE_KEY' && oneLine(e));
  assert.throws(() => Pkcs11KekProvider.open(`pkcs11:module=${join(hsm.dir, 'nope.so')};token=coffer;label=x`, { env: env() }), (e: CofferError) => e.code === 'KEK_PKCS11_MODULE' && oneLine(e));
  // After all those refusals the module still works.
  const ok = openKek(spec, { env: env() });
  await ok.close();
});

test('a broker on a PKCS#11 KEK from its first start: key generated in the token, secret released; wrong PIN at start is one line, exit 2', async () => {
  const spec = hsm.spec('coffer', 'broker-kek');
  const saved = process.env.COFFER_PKCS11_PIN;
  process.env.COFFER_PKCS11_PIN = PIN;
  const tb = await startTestBroker(undefined, { kek: spec });
  try {
    assert.equal(tb.running.created.kek, true);
    assert.match(tb.running.kek.id, /^pkcs11:broker-kek:[0-9a-f]{16}$/);
    assert.ok(!existsSync(tb.running.paths.kek), 'no key file is made');
    const admin = readFileSync(tb.running.paths.adminTokenFile, 'utf8').trim();
    assert.equal((await http(`${tb.url}/admin/v0/policies/hsm`, { method: 'PUT', bearer: admin, body: { policy: policyFor('hsm', MEASUREMENT_A) } })).status, 200);
    const put = await http(`${tb.url}/admin/v0/secrets/hsm/key/disk`, { method: 'PUT', bearer: admin, body: { value: Buffer.from('sealed in the HSM').toString('base64') } });
    assert.equal(put.json.kekId, tb.running.kek.id);
    const att = new Attester();
    const a = await http(`${tb.url}/kbs/v0/auth`, { body: { version: '0.1.0', tee: 'snp' } });
    const cookie = sessionCookie(a);
    assert.equal((await http(`${tb.url}/kbs/v0/attest`, { body: await att.attestBody(a.json.nonce as string), cookie })).status, 200);
    const r = await http(`${tb.url}/kbs/v0/resource/hsm/key/disk`, { cookie });
    assert.equal(r.status, 200, r.text);
    assert.equal(Buffer.from((await flattenedDecrypt(r.json as unknown as FlattenedJWE, att.privateKey)).plaintext).toString(), 'sealed in the HSM');
    // Restarted without --kek: the store's registry names the HSM key.
    await tb.close();
    process.env.COFFER_PKCS11_PIN = '999999';
    const cli = await runCli(['broker', 'serve', '--home', tb.dir, '--listen', '127.0.0.1:0']);
    assert.equal(cli.code, 2, cli.stdout);
    assert.match(cli.stderr, /PIN for PKCS#11 token coffer is wrong/);
    assert.equal(cli.stderr.trim().split('\n').length, 1);
    assert.ok(!cli.stderr.includes('999999') && !cli.stderr.includes(PIN));
  } finally {
    process.env.COFFER_PKCS11_PIN = saved;
    await tb.cleanup();
  }
});

test('a lost session is reported as a token failure (KEK_PKCS11_ERROR with the return value), not as a bad or altered key', async () => {
  const k = openKek(hsm.spec('other', 'session-kek'), { create: true, env: env() });
  try {
    const dk = randomBytes(32);
    const { wrapped } = await k.wrap(dk);
    assert.deepEqual(await k.unwrap(wrapped, k.currentId), dk);
    const flipped = Buffer.from(wrapped);
    flipped[3] = (flipped[3] as number) ^ 1;
    await assert.rejects(k.unwrap(flipped, k.currentId), (e: CofferError) => e.code === 'KEK_UNWRAP_FAILED');
    // Every session on the token closed under the provider (what a token reset does).
    raw((lib) => {
      const slot = lib.C_GetSlotList(true).find((x) => lib.C_GetTokenInfo(x).label.trim() === 'other');
      assert.ok(slot);
      lib.C_CloseAllSessions(slot);
    });
    await assert.rejects(k.unwrap(wrapped, k.currentId), (e: CofferError) => e.code === 'KEK_PKCS11_ERROR' && /CKR_SESSION_HANDLE_INVALID/.test(e.message) && oneLine(e));
    await assert.rejects(k.wrap(dk), (e: CofferError) => e.code === 'KEK_PKCS11_ERROR');
  } finally {
    await k.close();
  }
});
