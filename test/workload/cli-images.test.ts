// The image commands as a user runs them: pull (registry with token auth, and an OCI layout),
// verify-signature (cosign key, Sigstore bundle) and runtime-config.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync, sign } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { COSIGN_SIGNATURE_ANNOTATION, COSIGN_SIMPLE_SIGNING, MEDIA, RegistryClient, cosignSignatureTag, runtimeConfigSchema, simpleSigningPayload } from '../../src/workload/index.js';
import { runCli } from '../helpers/cli.js';
import { blob, makeImage, startRegistry, writeLayout, type TestRegistry } from './oci-helpers.js';

const image = makeImage({ files: [[{ name: 'bin/app', content: 'app' }]] });
const leaky = makeImage({ files: [[{ name: 'bin/app', content: 'leaky' }]], env: ['PATH=/bin', 'API_TOKEN=ghp_0123456789abcdefghijABCDEFGHIJ0123456789'] });
const key = generateKeyPairSync('ec', { namedCurve: 'P-256' });
let reg: TestRegistry;
let dir: string;

before(async () => {
  reg = await startRegistry({ tokenAuth: true });
  dir = mkdtempSync(join(tmpdir(), 'coffer-wl-cli-'));
  writeFileSync(join(dir, 'password'), `${reg.credentials?.password ?? ''}\n`);
  writeFileSync(join(dir, 'key.pem'), key.publicKey.export({ type: 'spki', format: 'pem' }));
  const c = new RegistryClient(reg.host, 'team/app', { plainHttp: true, ...(reg.credentials ? { credentials: reg.credentials } : {}) });
  for (const img of [image, leaky]) {
    for (const b of img.blobs) await c.pushBlob(b.bytes, b.digest);
  }
  await c.pushManifest('v1', image.manifest.bytes, image.manifest.mediaType);
  await c.pushManifest('leaky', leaky.manifest.bytes, leaky.manifest.mediaType);
  const payload = blob(simpleSigningPayload(`${reg.host}/team/app`, image.manifest.digest), COSIGN_SIMPLE_SIGNING);
  const config = blob(Buffer.from('{}'), MEDIA.ociConfig);
  await c.pushBlob(payload.bytes, payload.digest);
  await c.pushBlob(config.bytes, config.digest);
  const sigManifest = {
    schemaVersion: 2,
    mediaType: MEDIA.ociManifest,
    config: { mediaType: config.mediaType, digest: config.digest, size: config.bytes.length },
    layers: [{ mediaType: COSIGN_SIMPLE_SIGNING, digest: payload.digest, size: payload.bytes.length, annotations: { [COSIGN_SIGNATURE_ANNOTATION]: sign('sha256', payload.bytes, key.privateKey).toString('base64') } }],
  };
  await c.pushManifest(cosignSignatureTag(image.manifest.digest), Buffer.from(JSON.stringify(sigManifest)), MEDIA.ociManifest);
});
after(async () => {
  await reg?.stop();
  rmSync(dir, { recursive: true, force: true });
});

const auth = () => ['--plain-http', '--username', 'ci', '--password-file', join(dir, 'password')];

test('workload pull: verified over token auth; a secret in the image config fails the pull; no credentials is exit 1', async () => {
  const ok = await runCli(['workload', 'pull', `${reg.host}/team/app:v1`, ...auth()]);
  assert.equal(ok.code, 0, ok.stderr);
  assert.match(ok.stdout, new RegExp(`^VERIFIED  .*1 layer, \\d+ bytes, every digest checked\\n  root      ${image.manifest.digest}`));
  const j = JSON.parse((await runCli(['workload', 'pull', `${reg.host}/team/app@${image.manifest.digest}`, ...auth(), '--json'])).stdout) as { config: string };
  assert.equal(j.config, image.config.digest);
  const bad = await runCli(['workload', 'pull', `${reg.host}/team/app:leaky`, ...auth()]);
  assert.equal(bad.code, 1);
  assert.match(bad.stdout, /high CW042 \[SP 800-190 4\.1\.4\] image configuration sets API_TOKEN/);
  const noauth = await runCli(['workload', 'pull', `${reg.host}/team/app:v1`, '--plain-http']);
  assert.equal(noauth.code, 1);
  assert.match(noauth.stderr, /^coffer: REGISTRY_AUTH: /);
  const remote = await runCli(['workload', 'pull', 'registry.example.com/team/app:v1', '--plain-http']);
  assert.equal(remote.code, 2);
  assert.match(remote.stderr, /REGISTRY_PLAIN_HTTP/);
});

test('workload pull --layout: an OCI layout, and a tampered one refused', async () => {
  const l = join(dir, 'layout');
  writeLayout(l, [...image.blobs, image.manifest], [{ blob: image.manifest, ref: 'v1' }]);
  assert.equal((await runCli(['workload', 'pull', 'v1', '--layout', l])).code, 0);
  const p = join(l, 'blobs', 'sha256', image.layers[0]?.digest.slice(7) ?? '');
  const b = readFileSync(p);
  b[5] = (b[5] as number) ^ 1;
  writeFileSync(p, b);
  const r = await runCli(['workload', 'pull', '-', '--layout', l]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /^coffer: OCI_DIGEST_MISMATCH: layer 0: /);
});

test('workload verify-signature: cosign key and Sigstore bundle; wrong key and unpinned refs refused', async () => {
  const ref = `${reg.host}/team/app@${image.manifest.digest}`;
  const ok = await runCli(['workload', 'verify-signature', ref, '--key', join(dir, 'key.pem'), ...auth()]);
  assert.equal(ok.code, 0, ok.stderr);
  const other = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  writeFileSync(join(dir, 'other.pem'), other.publicKey.export({ type: 'spki', format: 'pem' }));
  const wrong = await runCli(['workload', 'verify-signature', ref, '--key', join(dir, 'other.pem'), ...auth()]);
  assert.equal(wrong.code, 1);
  assert.match(wrong.stderr, /COSIGN_NOT_VERIFIED/);
  assert.equal((await runCli(['workload', 'verify-signature', `${reg.host}/team/app:v1`, '--key', join(dir, 'key.pem')])).code, 2);

  writeFileSync(join(dir, 'root.json'), JSON.stringify({ mediaType: 'application/vnd.dev.sigstore.trustedroot+json;version=0.1', tlogs: [], certificateAuthorities: [], ctlogs: [], timestampAuthorities: [] }));
  writeFileSync(join(dir, 'manifest.json'), image.manifest.bytes);
  writeFileSync(
    join(dir, 'bundle.json'),
    JSON.stringify({
      mediaType: 'application/vnd.dev.sigstore.bundle.v0.3+json',
      verificationMaterial: { publicKey: { hint: 'k1' }, tlogEntries: [], timestampVerificationData: { rfc3161Timestamps: [] } },
      messageSignature: { messageDigest: { algorithm: 'SHA2_256', digest: Buffer.from(image.manifest.digest.slice(7), 'hex').toString('base64') }, signature: sign('sha256', image.manifest.bytes, key.privateKey).toString('base64') },
    }),
  );
  const args = ['--bundle', join(dir, 'bundle.json'), '--trusted-root', join(dir, 'root.json'), '--artifact', join(dir, 'manifest.json')];
  const b = await runCli(['workload', 'verify-signature', ref, ...args, '--bundle-key', `k1=${join(dir, 'key.pem')}`]);
  assert.equal(b.code, 0, b.stderr);
  assert.match(b.stdout, /Sigstore bundle \(public-key\)/);
  const bw = await runCli(['workload', 'verify-signature', ref, ...args, '--bundle-key', `k1=${join(dir, 'other.pem')}`]);
  assert.equal(bw.code, 1);
  const bd = await runCli(['workload', 'verify-signature', `${reg.host}/team/app@${leaky.manifest.digest}`, ...args, '--bundle-key', `k1=${join(dir, 'key.pem')}`]);
  assert.equal(bd.code, 1);
  assert.match(bd.stderr, /SIGSTORE_WRONG_DIGEST/);
});

test('workload runtime-config writes a valid config.json and names the secrets the agent must provide', async () => {
  const out = join(dir, 'bundle-api');
  const r = await runCli(['workload', 'runtime-config', join(import.meta.dirname, 'fixtures', 'hardened.yaml'), '--container', 'api', '--out', out]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /1 secret file and 0 secret variables/);
  assert.ok(runtimeConfigSchema.safeParse(JSON.parse(readFileSync(join(out, 'config.json'), 'utf8'))).success);
  const missing = await runCli(['workload', 'runtime-config', join(import.meta.dirname, 'fixtures', 'hardened.yaml'), '--container', 'nope']);
  assert.equal(missing.code, 2);
});

test('workload verify: every image of a manifest pinned, pulled, signed by the manifest signer', async () => {
  const manifest = (img: string, keyFile: string) =>
    [
      'version: 1',
      'name: app',
      `registries: ["${reg.host}"]`,
      'containers:',
      '  - name: app',
      `    image: ${img}`,
      `    signer: {publicKey: ${JSON.stringify(readFileSync(keyFile, 'utf8'))}}`,
      '    command: [/bin/app]',
      '    securityContext: {user: "1000"}',
      '',
    ].join('\n');
  writeFileSync(join(dir, 'wl.yaml'), manifest(`${reg.host}/team/app@${image.manifest.digest}`, join(dir, 'key.pem')));
  const ok = await runCli(['workload', 'verify', join(dir, 'wl.yaml'), ...auth()]);
  assert.equal(ok.code, 0, ok.stderr);
  assert.match(ok.stdout, /^VERIFIED {2}app: .*\(1 layers, cosign signature\)/);
  const other = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  writeFileSync(join(dir, 'other2.pem'), other.publicKey.export({ type: 'spki', format: 'pem' }));
  writeFileSync(join(dir, 'wl-other.yaml'), manifest(`${reg.host}/team/app@${image.manifest.digest}`, join(dir, 'other2.pem')));
  const wrong = await runCli(['workload', 'verify', join(dir, 'wl-other.yaml'), ...auth()]);
  assert.equal(wrong.code, 1);
  assert.match(wrong.stderr, /COSIGN_NOT_VERIFIED/);
  writeFileSync(join(dir, 'wl-unsigned.yaml'), manifest(`${reg.host}/team/app@${leaky.manifest.digest}`, join(dir, 'key.pem')));
  const unsigned = await runCli(['workload', 'verify', join(dir, 'wl-unsigned.yaml'), ...auth()]);
  assert.equal(unsigned.code, 1);
  assert.match(unsigned.stderr, /COSIGN_NO_SIGNATURE/);
  writeFileSync(join(dir, 'wl-tag.yaml'), manifest(`${reg.host}/team/app:v1`, join(dir, 'key.pem')));
  const tag = await runCli(['workload', 'verify', join(dir, 'wl-tag.yaml'), ...auth()]);
  assert.equal(tag.code, 1);
  assert.match(tag.stderr, /WORKLOAD_NOT_PINNED/);
  // review: an image from a registry outside the manifest's list is refused before anything is fetched.
  const token = reg.tokenRequests;
  writeFileSync(join(dir, 'wl-foreign.yaml'), manifest(`${reg.host}/team/app@${image.manifest.digest}`, join(dir, 'key.pem')).replace(`registries: ["${reg.host}"]`, 'registries: ["registry.example.com"]'));
  const foreign = await runCli(['workload', 'verify', join(dir, 'wl-foreign.yaml'), ...auth()]);
  assert.equal(foreign.code, 1);
  assert.match(foreign.stderr, /WORKLOAD_REGISTRY_NOT_ALLOWED/);
  assert.equal(reg.tokenRequests, token, 'no credentials were sent');
  // One registry's credentials are not sent to every registry the manifest names.
  const two = manifest(`${reg.host}/team/app@${image.manifest.digest}`, join(dir, 'key.pem'))
    .replace(`registries: ["${reg.host}"]`, `registries: ["${reg.host}", "registry.example.com"]`)
    .concat(`  - name: other\n    image: registry.example.com/x/y@${image.manifest.digest}\n    signer: {publicKey: ${JSON.stringify(readFileSync(join(dir, 'key.pem'), 'utf8'))}}\n`);
  writeFileSync(join(dir, 'wl-two.yaml'), two);
  const shared = await runCli(['workload', 'verify', join(dir, 'wl-two.yaml'), ...auth()]);
  assert.equal(shared.code, 2, shared.stderr);
  assert.match(shared.stderr, /USAGE: .*credentials/);
  assert.equal(reg.tokenRequests, token, 'still no credentials were sent');
});
