// EFI_SIGNATURE_LIST and time-based authenticated variables against efitools and openssl,
// byte for byte, and Coffer's keys and certificates (keygen) checked by the same tools.
import { test, describe, before } from 'node:test';
import assert from 'node:assert/strict';
import { createPrivateKey } from 'node:crypto';
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CofferError } from '../../src/errors.js';
import { parseCertificates, type Certificate } from '../../src/pki/certificate.js';
import {
  authSignedBytes,
  authenticodeHash,
  buildAuthVariable,
  efiTime,
  encodeSignatureDatabase,
  generateSecureBootKeys,
  keySetFiles,
  parseAuthVariable,
  parseSignatureDatabase,
  sha256SignatureList,
  signatureDbEntries,
  verifyAuthVariable,
  x509SignatureList,
  wrapContentInfo,
  guidBytes,
  formatGuid,
  SHIM_LOCK_GUID,
  type Signer,
} from '../../src/image/index.js';
import { LINUX_STUB, SYSTEMD_BOOT, flip, opensslKey, packagedFile, tempDir, tool } from './tools.js';

const OWNER = '26dc4851-195f-4ae1-9a19-fbf883bbb35e';
const STAMP = '2024-03-05 06:07:08';
const AT = new Date(Date.UTC(2024, 2, 5, 6, 7, 8));

let dir: string;
const certs: Record<string, Certificate> = {};
const signers: Record<string, Signer> = {};
const crt = (n: string) => join(dir, `${n}.crt`);
const key = (n: string) => join(dir, `${n}.key`);

before(() => {
  dir = tempDir('sb');
  for (const n of ['PK', 'KEK', 'db', 'other']) {
    opensslKey(dir, n, `openssl ${n}`);
    certs[n] = parseCertificates(readFileSync(crt(n)))[0] as Certificate;
    signers[n] = { certificate: certs[n] as Certificate, privateKey: createPrivateKey(readFileSync(key(n))) };
  }
});

function efitoolsEsl(n: string, owner = OWNER): Buffer {
  const out = join(dir, `${n}-${owner}.esl`);
  tool('cert-to-efi-sig-list', ['-g', owner, crt(n), out]);
  return readFileSync(out);
}

function efitoolsAuth(variable: string, esl: Buffer, signer: string, append: boolean): { auth: Buffer; tbs: Buffer } {
  const eslPath = join(dir, `in-${variable}.esl`);
  writeFileSync(eslPath, esl);
  const auth = join(dir, `${variable}-${signer}-${append}.auth`);
  const tbs = join(dir, `${variable}-${append}.tbs`);
  const a = append ? ['-a'] : [];
  tool('sign-efi-sig-list', ['-g', OWNER, ...a, '-t', STAMP, '-k', key(signer), '-c', crt(signer), variable, eslPath, auth]);
  tool('sign-efi-sig-list', ['-g', OWNER, ...a, '-t', STAMP, '-o', variable, eslPath, tbs]);
  return { auth: readFileSync(auth), tbs: readFileSync(tbs) };
}

describe('GUIDs', () => {
  test('text to mixed-endian bytes and back', () => {
    const b = guidBytes('8be4df61-93ca-11d2-aa0d-00e098032b8c');
    assert.equal(b.toString('hex'), '61dfe48bca93d211aa0d00e098032b8c');
    assert.equal(formatGuid(b), '8be4df61-93ca-11d2-aa0d-00e098032b8c');
    assert.throws(() => guidBytes('8be4df61-93ca-11d2-aa0d'), (e: unknown) => e instanceof CofferError && e.code === 'BAD_GUID');
  });
});

describe('EFI_SIGNATURE_LIST', () => {
  test('an X.509 list is byte-identical to cert-to-efi-sig-list -g', () => {
    for (const n of ['PK', 'KEK', 'db']) {
      const ours = x509SignatureList(certs[n] as Certificate, OWNER);
      assert.deepEqual(ours, efitoolsEsl(n));
      assert.equal(ours.readUInt32LE(16), ours.length);
      assert.equal(ours.readUInt32LE(24), 16 + (certs[n] as Certificate).der.length);
    }
  });

  test('a SHA-256 list of PE images is byte-identical to hash-to-efi-sig-list', () => {
    const images = [packagedFile(SYSTEMD_BOOT, 'systemd-boot-efi'), packagedFile(LINUX_STUB, 'systemd-boot-efi')];
    const out = join(dir, 'hashes.esl');
    tool('hash-to-efi-sig-list', [...images, out]);
    const ours = sha256SignatureList(images.map((i) => authenticodeHash(readFileSync(i))), SHIM_LOCK_GUID);
    assert.deepEqual(ours, readFileSync(out));
    assert.equal(ours.length, 28 + 2 * 48);
  });

  test('several lists in one variable: certificates each in their own list, hashes grouped; parsed back entry by entry', () => {
    const h1 = Buffer.alloc(32, 0xa1);
    const h2 = Buffer.alloc(32, 0xb2);
    const db = encodeSignatureDatabase([
      { kind: 'x509', owner: OWNER, certificate: certs.db as Certificate },
      { kind: 'x509', owner: OWNER, certificate: certs.other as Certificate },
      { kind: 'sha256', owner: OWNER, hash: h1 },
      { kind: 'sha256', owner: OWNER, hash: h2 },
    ]);
    assert.deepEqual(db, Buffer.concat([efitoolsEsl('db'), efitoolsEsl('other'), sha256SignatureList([h1, h2], OWNER)]));
    const parsed = parseSignatureDatabase(db);
    assert.deepEqual(
      parsed.map((e) => [e.kind, e.owner, e.sha256]),
      [
        ['x509', OWNER, (certs.db as Certificate).sha256],
        ['x509', OWNER, (certs.other as Certificate).sha256],
        ['sha256', OWNER, h1.toString('hex')],
        ['sha256', OWNER, h2.toString('hex')],
      ],
    );
    const { entries } = signatureDbEntries(db);
    assert.deepEqual(encodeSignatureDatabase(entries), db);
    // sig-list-to-certs extracts the same certificates from Coffer's list
    const eslPath = join(dir, 'multi.esl');
    writeFileSync(eslPath, db);
    tool('sig-list-to-certs', [eslPath, join(dir, 'extracted')]);
    const ders = readdirSync(dir).filter((f) => f.startsWith('extracted') && f.endsWith('.der')).sort();
    assert.deepEqual(ders.map((f) => readFileSync(join(dir, f)).toString('hex')), [(certs.db as Certificate).der.toString('hex'), (certs.other as Certificate).der.toString('hex')]);
  });

  test('a damaged list is one CofferError', () => {
    const esl = efitoolsEsl('db');
    const bad = Buffer.from(esl);
    bad.writeUInt32LE(esl.length + 1, 16);
    assert.throws(() => parseSignatureDatabase(bad), (e: unknown) => e instanceof CofferError && e.code === 'SECUREBOOT_BAD_ESL');
    assert.throws(() => parseSignatureDatabase(esl.subarray(0, 20)), (e: unknown) => e instanceof CofferError && e.code === 'SECUREBOOT_BAD_ESL');
  });
});

describe('authenticated variables (.auth)', () => {
  const cases = [
    { variable: 'PK', signer: 'PK', esl: 'PK', append: false },
    { variable: 'KEK', signer: 'PK', esl: 'KEK', append: false },
    { variable: 'db', signer: 'KEK', esl: 'db', append: false },
    { variable: 'db', signer: 'KEK', esl: 'other', append: true },
    { variable: 'dbx', signer: 'KEK', esl: 'hash', append: true },
  ];
  for (const c of cases) {
    test(`${c.variable} ${c.append ? 'append' : 'replace'} signed by ${c.signer}: same signed bytes and same .auth as sign-efi-sig-list`, () => {
      const esl = c.esl === 'hash' ? sha256SignatureList([Buffer.alloc(32, 7)], OWNER) : efitoolsEsl(c.esl);
      const ref = efitoolsAuth(c.variable, esl, c.signer, c.append);
      assert.deepEqual(authSignedBytes({ name: c.variable, append: c.append }, efiTime(AT), esl), ref.tbs);
      const ours = buildAuthVariable({ name: c.variable, append: c.append }, AT, esl, signers[c.signer] as Signer);
      // RSA PKCS#1 v1.5 without signed attributes is deterministic: the whole file matches.
      assert.deepEqual(ours, ref.auth);
      const v = verifyAuthVariable(ref.auth, { name: c.variable, append: c.append }, [certs[c.signer] as Certificate]);
      assert.equal(v.signer.sha256, (certs[c.signer] as Certificate).sha256);
      assert.deepEqual(v.parsed.data, esl);
      assert.deepEqual(v.parsed.timestamp, { year: 2024, month: 3, day: 5, hour: 6, minute: 7, second: 8 });
      assert.deepEqual(v.checks.map((x) => [x.name, x.ok]), [['auth.signature', true], ['auth.trust', true]]);
    });
  }

  test('openssl smime verifies the PKCS#7 of a Coffer .auth over the signed bytes', () => {
    const esl = efitoolsEsl('KEK');
    const auth = buildAuthVariable({ name: 'KEK' }, AT, esl, signers.PK as Signer);
    const parsed = parseAuthVariable(auth);
    const p7 = join(dir, 'kek.p7');
    const tbs = join(dir, 'kek.tbs');
    writeFileSync(p7, wrapContentInfo(parsed.pkcs7));
    writeFileSync(tbs, authSignedBytes({ name: 'KEK' }, parsed.timestamp, esl));
    const ok = tool('openssl', ['smime', '-verify', '-binary', '-inform', 'DER', '-in', p7, '-content', tbs, '-noverify', '-out', '/dev/null']);
    assert.match(ok.stderr, /Verification successful/);
    writeFileSync(tbs, flip(authSignedBytes({ name: 'KEK' }, parsed.timestamp, esl), 40));
    const bad = tool('openssl', ['smime', '-verify', '-binary', '-inform', 'DER', '-in', p7, '-content', tbs, '-noverify', '-out', '/dev/null'], { allowFail: true });
    assert.notEqual(bad.status, 0);
  });

  test('negative: a flipped byte in the data, the timestamp or the signature; the wrong variable, attributes or signer', () => {
    const esl = efitoolsEsl('db');
    const { auth } = efitoolsAuth('db', esl, 'KEK', false);
    const target = { name: 'db' };
    const trust = [certs.KEK as Certificate];
    const code = (buf: Buffer, t: { name: string; append?: boolean } = target, tr: Certificate[] = trust) => {
      try {
        verifyAuthVariable(buf, t, tr);
        return 'OK';
      } catch (e) {
        assert.ok(e instanceof CofferError, String(e));
        return e.code;
      }
    };
    assert.equal(code(auth), 'OK');
    const parsed = parseAuthVariable(auth);
    const sigAt = auth.indexOf((parsed.signedData.signerInfos[0] as { signature: Buffer }).signature);
    assert.ok(sigAt > 40);
    assert.equal(code(flip(auth, auth.length - 10)), 'SECUREBOOT_BAD_SIGNATURE', 'ESL byte');
    assert.equal(code(flip(auth, 6)), 'SECUREBOOT_BAD_SIGNATURE', 'timestamp second');
    assert.equal(code(flip(auth, sigAt + 100)), 'SECUREBOOT_BAD_SIGNATURE', 'signature byte');
    assert.equal(code(auth, { name: 'dbx' }), 'SECUREBOOT_BAD_SIGNATURE', 'other variable');
    assert.equal(code(auth, { name: 'db', append: true }), 'SECUREBOOT_BAD_SIGNATURE', 'append attributes');
    assert.equal(code(auth, target, [certs.PK as Certificate]), 'SECUREBOOT_UNTRUSTED_SIGNER');
    assert.equal(code(flip(auth, 7)), 'RESERVED_NOT_ZERO', 'EFI_TIME pad');
    assert.equal(code(flip(auth, 20)), 'SECUREBOOT_BAD_AUTH', 'WIN_CERTIFICATE revision');
  });
});

describe('keygen', () => {
  test('PK, KEK and db: RSA, self-signed, SHA-256; efitools and openssl accept them; .auth files verify', () => {
    const set = generateSecureBootKeys({ at: AT, owner: OWNER.toUpperCase(), subjectPrefix: 'Test Owner' });
    assert.equal(set.owner, OWNER);
    const kdir = tempDir('keys');
    const files = keySetFiles(set, AT);
    for (const f of files) writeFileSync(join(kdir, f.name), f.data);
    assert.deepEqual(files.filter((f) => f.secret).map((f) => f.name), ['PK.key', 'KEK.key', 'db.key']);
    assert.equal(readFileSync(join(kdir, 'GUID.txt'), 'utf8'), `${OWNER}\n`);
    for (const v of ['PK', 'KEK', 'db'] as const) {
      const c = set[v].certificate;
      assert.equal(c.subjectCn, `Test Owner ${v}`);
      assert.equal(c.subject, c.issuer);
      assert.equal(c.notBefore.toISOString(), AT.toISOString());
      assert.equal(set[v].privateKey.asymmetricKeyDetails?.modulusLength, 2048);
      const text = tool('openssl', ['x509', '-in', join(kdir, `${v}.crt`), '-noout', '-text']).stdout;
      assert.match(text, /Signature Algorithm: sha256WithRSAEncryption/);
      assert.match(text, /Public-Key: \(2048 bit\)/);
      assert.match(tool('openssl', ['verify', '-CAfile', join(kdir, `${v}.crt`), join(kdir, `${v}.crt`)]).stdout, /: OK/);
      const esl = join(kdir, `${v}.ref.esl`);
      tool('cert-to-efi-sig-list', ['-g', OWNER, join(kdir, `${v}.crt`), esl]);
      assert.deepEqual(readFileSync(join(kdir, `${v}.esl`)), readFileSync(esl));
      // efitools signs with Coffer's key the same bytes Coffer does.
      const by = v === 'PK' ? 'PK' : v === 'KEK' ? 'PK' : 'KEK';
      const ref = join(kdir, `${v}.ref.auth`);
      tool('sign-efi-sig-list', ['-g', OWNER, '-t', STAMP, '-k', join(kdir, `${by}.key`), '-c', join(kdir, `${by}.crt`), v, esl, ref]);
      assert.deepEqual(readFileSync(join(kdir, `${v}.auth`)), readFileSync(ref));
      verifyAuthVariable(readFileSync(join(kdir, `${v}.auth`)), { name: v }, [set[by].certificate]);
    }
    assert.throws(() => generateSecureBootKeys({ at: AT, bits: 1024 }), (e: unknown) => e instanceof CofferError && e.code === 'USAGE');
  });
});
