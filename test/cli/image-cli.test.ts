// `coffer secureboot ...` and `coffer verity ...` in-process, on a commander program built
// the way main.ts builds it: exit codes (0 ok, 1 verification failed, 2 bad input), one-line
// errors, JSON values, and the files written, checked with the real tools.
import { test, describe, before } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { LINUX_STUB, SYSTEMD_BOOT, flip, packagedFile, tempDir, tool } from '../image/tools.js';
import { runCli as cli } from '../helpers/cli.js';



let dir: string;
let keys: string;
const SALT = '00112233445566778899aabbccddeeff';
const UUID = '0f0e0d0c-0b0a-4908-8706-050403020100';

before(async () => {
  dir = tempDir('cli');
  keys = join(dir, 'keys');
  const r = await cli(['secureboot', 'keygen', '--out', keys, '--owner-guid', '3cc24e96-22c7-41d8-8863-8e39dcdcc2cf', '--subject-prefix', 'CLI Test', '--json']);
  assert.equal(r.code, 0, r.stderr + r.stdout);
});

describe('coffer secureboot', () => {
  test('keygen writes keys 0600, certificates, ESLs, .auth files and GUID.txt; refuses to overwrite; refuses 1024 bits', async () => {
    for (const v of ['PK', 'KEK', 'db']) {
      assert.equal(statSync(join(keys, `${v}.key`)).mode & 0o777, 0o600);
      assert.match(tool('openssl', ['x509', '-in', join(keys, `${v}.crt`), '-noout', '-subject']).stdout, new RegExp(`CN ?= ?CLI Test ${v}`));
      assert.match(tool('openssl', ['rsa', '-in', join(keys, `${v}.key`), '-noout', '-text']).stdout, /Private-Key: \(2048 bit/);
    }
    assert.equal(readFileSync(join(keys, 'GUID.txt'), 'utf8').trim(), '3cc24e96-22c7-41d8-8863-8e39dcdcc2cf');
    const again = await cli(['secureboot', 'keygen', '--out', keys]);
    assert.equal(again.code, 2);
    assert.match(again.stderr, /^coffer: FILE_EXISTS: .*GUID\.txt already exists: keygen never overwrites keys/);
    const bits = await cli(['secureboot', 'keygen', '--out', join(dir, 'k2'), '--bits', '1024', '--json']);
    assert.equal(bits.code, 2);
    assert.equal(JSON.parse(bits.stdout).error.code, 'USAGE');
  });

  test('esl --cert equals cert-to-efi-sig-list; auth + verify-auth; show', async () => {
    const guid = readFileSync(join(keys, 'GUID.txt'), 'utf8').trim();
    const esl = join(dir, 'db2.esl');
    const r = await cli(['secureboot', 'esl', '--out', esl, '--owner-guid', guid, '--cert', join(keys, 'db.crt'), '--image', SYSTEMD_BOOT, '--json']);
    assert.equal(r.code, 0, r.stderr);
    const ref = join(dir, 'ref.esl');
    tool('cert-to-efi-sig-list', ['-g', guid, join(keys, 'db.crt'), ref]);
    assert.deepEqual(readFileSync(esl).subarray(0, readFileSync(ref).length), readFileSync(ref));
    assert.deepEqual(JSON.parse(r.stdout).entries.map((e: { kind: string }) => e.kind), ['x509', 'sha256']);
    assert.equal(JSON.parse(r.stdout).entries[1].sha256, '9bf2519c746ec66b569300e423127a9361b47af7f66783c7e1378fb055671ad4');

    const auth = join(dir, 'db2.auth');
    const a = await cli(['secureboot', 'auth', 'db', esl, '--key', join(keys, 'KEK.key'), '--cert', join(keys, 'KEK.crt'), '--out', auth, '--append', '--timestamp', '2025-01-01T00:00:00Z']);
    assert.equal(a.code, 0, a.stderr);
    const ok = await cli(['secureboot', 'verify-auth', 'db', auth, '--append', '--trust', join(keys, 'KEK.crt'), '--json']);
    assert.equal(ok.code, 0, ok.stdout + ok.stderr);
    assert.equal(JSON.parse(ok.stdout).timestamp, '2025-01-01T00:00:00.000Z');
    const untrusted = await cli(['secureboot', 'verify-auth', 'db', auth, '--append', '--trust', join(keys, 'PK.esl')]);
    assert.equal(untrusted.code, 1);
    assert.match(untrusted.stderr, /^coffer: SECUREBOOT_UNTRUSTED_SIGNER: /);
    writeFileSync(join(dir, 'bad.auth'), flip(readFileSync(auth), readFileSync(auth).length - 5));
    const bad = await cli(['secureboot', 'verify-auth', 'db', join(dir, 'bad.auth'), '--append']);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /^coffer: SECUREBOOT_BAD_SIGNATURE: /);
    const wrongKey = await cli(['secureboot', 'auth', 'db', esl, '--key', join(keys, 'PK.key'), '--cert', join(keys, 'KEK.crt'), '--out', auth]);
    assert.equal(wrongKey.code, 2);
    assert.match(wrongKey.stderr, /SIGNING_KEY_MISMATCH/);
    const show = await cli(['secureboot', 'show', auth, '--json']);
    assert.equal(JSON.parse(show.stdout).form, 'auth');
    assert.equal(JSON.parse(show.stdout).entries.length, 2);
  });

  test('sign, verify against db (ESL, .auth or certificate), list, hash; untrusted and tampered images exit 1', async () => {
    const signed = join(dir, 'signed.efi');
    const s = await cli(['secureboot', 'sign', packagedFile(LINUX_STUB, 'systemd-boot-efi'), '--key', join(keys, 'db.key'), '--cert', join(keys, 'db.crt'), '--out', signed, '--json']);
    assert.equal(s.code, 0, s.stderr);
    assert.equal(JSON.parse(s.stdout).sha256, '32cab00c99673e8b50d5d7f7602b2f8fdb5138aba67d1d2e422fdc8464310bc1');
    assert.match(tool('sbverify', ['--cert', join(keys, 'db.crt'), signed]).stdout, /Signature verification OK/);
    for (const db of ['db.esl', 'db.auth', 'db.crt', 'db.cer']) {
      const v = await cli(['secureboot', 'verify', signed, '--db', join(keys, db)]);
      assert.equal(v.code, 0, `${db}: ${v.stderr}`);
      assert.match(v.stdout, /^VERIFIED /);
    }
    const untrusted = await cli(['secureboot', 'verify', signed, '--db', join(keys, 'KEK.esl'), '--json']);
    assert.equal(untrusted.code, 1);
    assert.equal(JSON.parse(untrusted.stdout).error.code, 'AUTHENTICODE_UNTRUSTED');
    const forbidden = await cli(['secureboot', 'verify', signed, '--db', join(keys, 'db.esl'), '--dbx', join(keys, 'db.crt')]);
    assert.equal(forbidden.code, 1);
    assert.match(forbidden.stderr, /^coffer: AUTHENTICODE_FORBIDDEN: /);
    writeFileSync(join(dir, 'tampered.efi'), flip(readFileSync(signed), 0x500));
    const tampered = await cli(['secureboot', 'verify', join(dir, 'tampered.efi'), '--db', join(keys, 'db.esl')]);
    assert.equal(tampered.code, 1);
    assert.match(tampered.stderr, /^coffer: AUTHENTICODE_DIGEST_MISMATCH: /);
    const list = await cli(['secureboot', 'list', signed, '--json']);
    assert.deepEqual(JSON.parse(list.stdout).signatures.map((x: { signer: string; ok: boolean }) => [x.signer, x.ok]), [['CLI Test db', true]]);
    const hash = await cli(['secureboot', 'hash', SYSTEMD_BOOT]);
    assert.equal(hash.stdout.trim(), '9bf2519c746ec66b569300e423127a9361b47af7f66783c7e1378fb055671ad4');
    const missing = await cli(['secureboot', 'hash', join(dir, 'nope.efi')]);
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /^coffer: FILE_UNREADABLE: /);
    const notPe = await cli(['secureboot', 'hash', join(keys, 'GUID.txt')]);
    assert.equal(notPe.code, 2);
    assert.match(notPe.stderr, /^coffer: PE_BAD_IMAGE: /);
  });
});

describe('coffer verity', () => {
  test('format equals veritysetup; verify ok; a flipped data byte exits 1 naming the block; bad input exits 2', async () => {
    const data = join(dir, 'vdata');
    const buf = Buffer.alloc(200 * 4096);
    for (let i = 0; i < 200; i++) createHash('sha256').update(String(i)).digest().copy(buf, i * 4096);
    writeFileSync(data, buf);
    const f = await cli(['verity', 'format', data, join(dir, 'vhash'), '--salt', SALT, '--uuid', UUID, '--json']);
    assert.equal(f.code, 0, f.stderr);
    const out = JSON.parse(f.stdout);
    const ref = tool('veritysetup', ['format', data, join(dir, 'vref'), `--salt=${SALT}`, `--uuid=${UUID}`]).stdout;
    assert.equal(out.rootHash, /Root hash:\s+([0-9a-f]{64})/.exec(ref)?.[1]);
    assert.deepEqual([out.dataBlocks, out.hashBlocks, out.uuid, out.salt], [200, 3, UUID, SALT]);
    assert.deepEqual(readFileSync(join(dir, 'vhash')), readFileSync(join(dir, 'vref')));
    assert.equal(f.stderr, '', 'no progress for a small image, none with --json');

    const text = await cli(['verity', 'format', data, join(dir, 'vhash-ns'), '--salt', SALT, '--no-superblock']);
    assert.match(text.stdout, new RegExp(`Root hash:\\s+${out.rootHash}`));
    const v = await cli(['verity', 'verify', data, join(dir, 'vhash'), out.rootHash]);
    assert.equal(v.code, 0, v.stderr);
    assert.match(v.stdout, /^VERIFIED .*200 data blocks/);
    const ns = await cli(['verity', 'verify', data, join(dir, 'vhash-ns'), out.rootHash, '--no-superblock', '--salt', SALT, '--json']);
    assert.equal(JSON.parse(ns.stdout).ok, true);

    writeFileSync(join(dir, 'vdata-bad'), flip(buf, 150 * 4096 + 7));
    const bad = await cli(['verity', 'verify', join(dir, 'vdata-bad'), join(dir, 'vhash'), out.rootHash]);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /^coffer: VERITY_DATA_CORRUPT: data block 150 /);
    writeFileSync(join(dir, 'vhash-bad'), flip(readFileSync(join(dir, 'vhash')), 2 * 4096 + 1));
    const badHash = await cli(['verity', 'verify', data, join(dir, 'vhash-bad'), out.rootHash, '--json']);
    assert.equal(badHash.code, 1);
    assert.equal(JSON.parse(badHash.stdout).error.code, 'VERITY_HASH_CORRUPT');

    const badRoot = await cli(['verity', 'verify', data, join(dir, 'vhash'), 'abcd']);
    assert.equal(badRoot.code, 2);
    assert.match(badRoot.stderr, /^coffer: BAD_HEX: /);
    const badSalt = await cli(['verity', 'format', data, join(dir, 'x'), '--salt', 'xyz']);
    assert.equal(badSalt.code, 2);
    const usage = await cli(['verity', 'format', data]);
    assert.equal(usage.code, 2);
    assert.match(usage.stderr, /^coffer: usage: missing required argument/);
    const noSb = await cli(['verity', 'verify', data, join(dir, 'vhash-ns'), out.rootHash]);
    assert.equal(noSb.code, 2);
    assert.match(noSb.stderr, /VERITY_BAD_SUPERBLOCK/);
  });
});
