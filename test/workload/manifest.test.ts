// The workload identity: SHA-384 of the JCS form of the normalized manifest. Formatting, key
// order, comments and defaults spelled out do not change it; any change of meaning does.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { canonicalManifest, parseImageReference, parseManifest, workloadIdentity } from '../../src/workload/index.js';
import { runCli } from '../helpers/cli.js';

const FIX = join(import.meta.dirname, 'fixtures');
const hardened = readFileSync(join(FIX, 'hardened.yaml'), 'utf8');
const id = (text: string) => workloadIdentity(parseManifest(text).manifest);

test('identity: sha384 and sha256 of the same canonical bytes; JSON and YAML spellings agree', () => {
  const a = id(hardened);
  assert.equal(a.sha384, createHash('sha384').update(a.canonical).digest('hex'));
  assert.equal(a.sha256, createHash('sha256').update(a.canonical).digest('hex'));
  assert.equal(a.snpHostData.length, 64);
  assert.equal(a.tdxMrConfigId, a.sha384);
  // The canonical form is JCS: sorted keys, no whitespace, defaults filled in.
  const canon = a.canonical.toString('utf8');
  assert.ok(canon.startsWith('{"containers":[{"args":'), canon.slice(0, 60));
  assert.ok(canon.includes('"seccomp":"runtime-default"'));
  assert.ok(!canon.includes('card payment API'), 'the description is not part of the identity');
  // The same manifest as JSON, keys reordered, comments gone, description changed: same identity.
  const json = JSON.parse(JSON.stringify(parseManifest(hardened).manifest)) as Record<string, unknown>;
  const reordered = Object.fromEntries(Object.entries(json).reverse());
  reordered.description = 'another description';
  assert.equal(id(JSON.stringify(reordered, null, 1)).sha384, a.sha384);
  // Defaults written out or left implicit: same identity.
  assert.equal(id(hardened.replace('      seccomp: runtime-default\n', '')).sha384, a.sha384);
  assert.equal(id(hardened.replace('host:\n  network: false\n  pid: false\n  ipc: false\n', '')).sha384, a.sha384);
});

test('identity: a one-byte change of meaning changes both digests', () => {
  const a = id(hardened);
  for (const [from, to] of [
    ['LOG_LEVEL: info', 'LOG_LEVEL: infO'],
    ['size: 10Gi', 'size: 11Gi'],
    ['"10001:10001"', '"10001:10002"'],
    ['- container: 8443', '- container: 8444'],
    ['payments/key/db', 'payments/key/dc'],
  ] as const) {
    assert.ok(hardened.includes(from), from);
    const b = id(hardened.replace(from, to));
    assert.notEqual(b.sha384, a.sha384, from);
    assert.notEqual(b.sha256, a.sha256, from);
  }
  const digest = parseImageReference(parseManifest(hardened).manifest.containers[0]?.image ?? '').digest ?? '';
  const flipped = digest.slice(0, -1) + (digest.endsWith('0') ? '1' : '0');
  assert.notEqual(id(hardened.replace(digest, flipped)).sha384, a.sha384);
});

test('canonical form refuses what JCS cannot represent rather than guessing', () => {
  const m = parseManifest(hardened).manifest;
  const broken = { ...m, name: 'x\uD800' } as typeof m;
  assert.throws(() => canonicalManifest(broken), /lone UTF-16 surrogate/);
});

test('image references: registry, repository, tag and digest as docker resolves them', () => {
  const d = 'sha256:' + 'ef'.repeat(32);
  assert.deepEqual(parseImageReference('nginx'), { raw: 'nginx', registry: 'docker.io', repository: 'library/nginx' });
  assert.deepEqual(parseImageReference(`localhost:5000/a/b:v1@${d}`), { raw: `localhost:5000/a/b:v1@${d}`, registry: 'localhost:5000', repository: 'a/b', tag: 'v1', digest: d });
  assert.equal(parseImageReference('ghcr.io/org/app:1.2').registry, 'ghcr.io');
  assert.equal(parseImageReference('org/app').repository, 'org/app');
  for (const bad of ['', 'UPPER/x', 'a//b', `x@sha256:${'ef'.repeat(31)}`, 'x:bad tag', `x@md5:${'ef'.repeat(16)}`, 'x:-lead']) {
    assert.throws(() => parseImageReference(bad), (e: unknown) => (e as { code?: string }).code === 'WORKLOAD_BAD_IMAGE_REF', bad);
  }
});

test('CLI: workload digest prints the identity and the policy snippet; JSON matches the library', async () => {
  const r = await runCli(['workload', 'digest', join(FIX, 'hardened.yaml'), '--json']);
  assert.equal(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout) as { sha384: string; sha256: string; policy: { workload: { digest: string[] } } };
  const a = id(hardened);
  assert.equal(out.sha384, a.sha384);
  assert.deepEqual(out.policy.workload.digest, [a.sha384, a.sha256]);
  const t = await runCli(['workload', 'digest', join(FIX, 'hardened.yaml')]);
  assert.match(t.stdout, new RegExp(`SNP HOST_DATA:\\s+${a.sha256}`));
  const bad = await runCli(['workload', 'digest', join(FIX, 'compose-hardened.yaml')]);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /^coffer: WORKLOAD_INVALID: .*compose-hardened\.yaml:\d+:\d+: /);
});
