// `coffer secureboot export --cloud gcp|aws` and `coffer secureboot show` on AWS blobs, in-process
// on a commander program built as main.ts builds it: files written, JSON, printed commands, exit
// codes and one-line errors.
import { test, describe, before } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { decodeAwsUefiData, parseSignatureDatabase } from '../../src/image/index.js';
import { tempDir, tool } from './tools.js';
import { runCli as cli } from '../helpers/cli.js';



const OWNER = '3cc24e96-22c7-41d8-8863-8e39dcdcc2cf';
const T02 = fileURLToPath(new URL('fixtures/python-uefivars-t02.aws', import.meta.url));
let dir: string;
let keys: string;

before(async () => {
  dir = tempDir('export-cli');
  keys = join(dir, 'keys');
  const r = await cli(['secureboot', 'keygen', '--out', keys, '--owner-guid', OWNER, '--subject-prefix', 'Export Test', '--at', '2025-01-01T00:00:00Z']);
  assert.equal(r.code, 0, r.stderr);
});

describe('coffer secureboot export', () => {
  test('--cloud aws writes the base64 blob of PK, KEK, db as keygen made them, and the register-image command', async () => {
    const out = join(dir, 'aws');
    const r = await cli(['secureboot', 'export', '--cloud', 'aws', '--keys', keys, '--out', out, '--json']);
    assert.equal(r.code, 0, r.stderr);
    const j = JSON.parse(r.stdout) as { ok: boolean; cloud: string; out: string; size: number; variables: { name: string; guid: string; attributes: number; timestamp: string; digest: string }[]; command: string };
    assert.equal(j.cloud, 'aws');
    const file = readFileSync(join(out, 'uefi-data.b64'));
    assert.match(file.toString('latin1'), /^QU1aTlVFRk[A-Za-z0-9+/]+={0,2}$/, 'base64 of "AMZNUEFI...", no newline');
    assert.equal(j.size, Buffer.from(file.toString('latin1'), 'base64').length);
    const vars = decodeAwsUefiData(file);
    assert.deepEqual(vars.map((v) => [v.name, v.attributes]), [['PK', 0x27], ['KEK', 0x27], ['db', 0x27]]);
    for (const v of vars) assert.ok(v.data.equals(readFileSync(join(keys, `${v.name}.esl`))), `${v.name} is keygen's ${v.name}.esl`);
    assert.deepEqual(j.variables.map((v) => [v.name, v.guid, v.timestamp, v.digest]), [
      ['PK', '8be4df61-93ca-11d2-aa0d-00e098032b8c', '00'.repeat(16), '00'.repeat(32)],
      ['KEK', '8be4df61-93ca-11d2-aa0d-00e098032b8c', '00'.repeat(16), '00'.repeat(32)],
      ['db', 'd719b2cb-3d3a-4596-a3bc-dad00e67656f', '00'.repeat(16), '00'.repeat(32)],
    ]);
    assert.match(j.command, /^aws ec2 register-image --name IMAGE_NAME/);
    assert.match(j.command, /--architecture x86_64 --boot-mode uefi --tpm-support v2\.0/);
    assert.ok(j.command.includes(`--uefi-data file://${join(out, 'uefi-data.b64')}`));
    assert.equal(readFileSync(join(out, 'aws.sh'), 'utf8'), `${j.command}\n`);
    const text = await cli(['secureboot', 'export', '--cloud', 'aws', '--keys', keys, '--out', out]);
    assert.equal(text.code, 0);
    assert.match(text.stdout, /^AWS: wrote .*uefi-data\.b64 \(\d+ bytes, \d+ as base64; PK, KEK, db\)\naws ec2 register-image/);
  });

  test('--cloud aws options: arm64, no TPM, --at timestamp, --dbx from certificates; bad input exits 2 on one line', async () => {
    const out = join(dir, 'aws2');
    tool('openssl', ['req', '-new', '-x509', '-newkey', 'rsa:2048', '-subj', '/CN=Revoked/', '-keyout', join(dir, 'revoked.key'), '-out', join(dir, 'revoked.crt'), '-days', '30', '-nodes']);
    const r = await cli(['secureboot', 'export', '--cloud', 'aws', '--keys', keys, '--out', out, '--aws-architecture', 'arm64', '--no-aws-tpm', '--at', '2025-02-03T04:05:06Z', '--dbx', join(dir, 'revoked.crt'), '--json']);
    assert.equal(r.code, 0, r.stderr);
    const j = JSON.parse(r.stdout) as { command: string };
    assert.match(j.command, /--architecture arm64 --boot-mode uefi --ena-support/);
    assert.doesNotMatch(j.command, /tpm-support/);
    const vars = decodeAwsUefiData(readFileSync(join(out, 'uefi-data.b64')));
    assert.deepEqual(vars.map((v) => v.name), ['PK', 'KEK', 'db', 'dbx']);
    assert.equal(vars[0]?.timestamp?.toString('hex'), 'e9070203040506000000000000000000');
    const dbx = parseSignatureDatabase(vars[3]?.data as Buffer);
    assert.deepEqual(dbx.map((e) => [e.kind, e.owner, e.subject]), [['x509', OWNER, 'Revoked']]);
    const bad = await cli(['secureboot', 'export', '--cloud', 'aws', '--keys', keys, '--out', out, '--aws-architecture', 'sparc']);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /^coffer: USAGE: --aws-architecture must be x86_64 or arm64, got "sparc"\n$/);
    writeFileSync(join(dir, 'junk.esl'), 'not an esl at all, not a certificate either');
    const junk = await cli(['secureboot', 'export', '--cloud', 'aws', '--keys', keys, '--out', out, '--dbx', join(dir, 'junk.esl')]);
    assert.equal(junk.code, 2);
    assert.equal(junk.stderr.split('\n').length, 2, 'one line');
  });

  test('--cloud gcp writes DER files gcloud sends as X509 and the gcloud command', async () => {
    const out = join(dir, 'gcp');
    const r = await cli(['secureboot', 'export', '--cloud', 'gcp', '--keys', keys, '--out', out, '--json']);
    assert.equal(r.code, 0, r.stderr);
    const j = JSON.parse(r.stdout) as { files: { name: string; flag: string }[]; command: string };
    assert.deepEqual(j.files.map((f) => f.name), ['PK.cer', 'KEK.cer', 'db.cer']);
    for (const f of j.files) assert.ok(readFileSync(join(out, f.name)).equals(readFileSync(join(keys, f.name))));
    // openssl reads each as DER X.509 (what gcloud's X509 type means).
    for (const f of j.files) assert.match(tool('openssl', ['x509', '-inform', 'DER', '-in', join(out, f.name), '-noout', '-subject']).stdout, /Export Test/);
    assert.match(j.command, /--platform-key-file=.*PK\.cer/);
  });
});

describe('coffer secureboot show on AWS blobs', () => {
  test('our export: variables and their signature lists', async () => {
    const r = await cli(['secureboot', 'show', join(dir, 'aws', 'uefi-data.b64'), '--json']);
    assert.equal(r.code, 0, r.stderr);
    const j = JSON.parse(r.stdout) as { form: string; verified: boolean; variables: { name: string; entries?: { subject: string; owner: string }[] }[] };
    assert.equal(j.form, 'aws-uefi-data');
    assert.equal(j.verified, false);
    assert.deepEqual(j.variables.map((v) => [v.name, v.entries?.map((e) => [e.owner, e.subject])]), [
      ['PK', [[OWNER, 'CN=Export Test PK']]],
      ['KEK', [[OWNER, 'CN=Export Test KEK']]],
      ['db', [[OWNER, 'CN=Export Test db']]],
    ]);
  });

  test('python-uefivars t02.aws: 23 variables; values that are not ESLs are said to be so', async () => {
    const r = await cli(['secureboot', 'show', T02]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^AWS UEFI variable store \(version 0, CRC-32C ok; NOT verified\): 23 variables\n/);
    assert.match(r.stdout, /\nKEK 8be4df61-93ca-11d2-aa0d-00e098032b8c attributes 0x27 1562 bytes \(not an EFI_SIGNATURE_LIST: /);
    assert.match(r.stdout, /\nBootOrder 8be4df61-93ca-11d2-aa0d-00e098032b8c attributes 0x7 16 bytes\n/);
  });

  test('a damaged blob: exit 2, one line, AWS_BAD_UEFI_DATA', async () => {
    const text = readFileSync(T02, 'latin1');
    const damaged = join(dir, 'damaged.aws');
    writeFileSync(damaged, `${text.slice(0, 100)}${text[100] === 'A' ? 'B' : 'A'}${text.slice(101)}`);
    const r = await cli(['secureboot', 'show', damaged, '--json']);
    assert.equal(r.code, 2);
    const j = JSON.parse(r.stdout) as { ok: boolean; error: { code: string; message: string } };
    assert.deepEqual([j.ok, j.error.code], [false, 'AWS_BAD_UEFI_DATA']);
    assert.match(j.error.message, /CRC-32C mismatch/);
  });
});
