// OCI images verified down to every layer: from an OCI layout on disk and from Debian's real
// docker-registry on loopback (images pushed over the distribution API in the test), with and
// without token auth. Tampering with any blob, in the layout or in the registry's own storage,
// is refused.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import { MEDIA, OciLayout, RegistryClient, checkImageConfig, parseChallenge, verifyImage, type Descriptor } from '../../src/workload/index.js';
import { blob, makeImage, makeIndex, startRegistry, writeLayout, type TestImage, type TestRegistry } from './oci-helpers.js';

const amd64 = makeImage({ files: [[{ name: 'etc/os-release', content: 'ID=coffer\n' }], [{ name: 'app/run', content: '#!/bin/sh\necho hi\n' }]] });
const arm64 = makeImage({ files: [[{ name: 'app/run', content: 'arm\n' }]], architecture: 'arm64' });
const index = makeIndex([
  { image: amd64, os: 'linux', architecture: 'amd64' },
  { image: arm64, os: 'linux', architecture: 'arm64', variant: 'v8' },
]);
const dockerImage = makeImage({ files: [[{ name: 'x', content: 'docker schema 2' }]], docker: true, env: ['PATH=/bin', 'DB_PASSWORD=hunter2-in-the-image'] });

const code = (c: string) => (e: unknown) => (e as { code?: string }).code === c || assert.fail(`expected ${c}, got ${(e as { code?: string }).code}: ${(e as Error).message}`);

const dirs: string[] = [];
after(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

function layout(images: TestImage[], roots: { blob: ReturnType<typeof blob>; ref?: string }[], extra: ReturnType<typeof blob>[] = []): string {
  const dir = mkdtempSync(join(tmpdir(), 'coffer-oci-'));
  dirs.push(dir);
  writeLayout(dir, [...images.flatMap((i) => [...i.blobs, i.manifest]), ...extra], roots);
  return dir;
}

test('OCI layout: an index with two platforms verifies down to every layer; platform selection', async () => {
  const dir = layout([amd64, arm64], [{ blob: index, ref: 'v1' }], [index]);
  const l = await OciLayout.open(dir);
  const v = await verifyImage(l, l.root('v1'), { os: 'linux', architecture: 'amd64' });
  assert.equal(v.rootDigest, index.digest);
  assert.equal(v.manifestDigest, amd64.manifest.digest);
  assert.equal(v.configDigest, amd64.config.digest);
  assert.deepEqual(v.layers.map((x) => x.digest), amd64.layers.map((x) => x.digest));
  const a = await verifyImage(l, l.root(), { os: 'linux', architecture: 'arm64', variant: 'v8' });
  assert.equal(a.manifestDigest, arm64.manifest.digest);
  await assert.rejects(verifyImage(l, l.root(), { os: 'linux', architecture: 's390x' }), code('OCI_NO_PLATFORM'));
  await assert.rejects(verifyImage(l, l.root()), code('OCI_NO_PLATFORM'), 'an index of several images needs a platform');
  assert.throws(() => l.root('v2'), code('OCI_REF_NOT_FOUND'));
});

test('OCI layout: a flipped byte or a cut in any blob is refused, naming the blob', async () => {
  const targets: [string, ReturnType<typeof blob>, string][] = [
    ['layer 1', amd64.layers[1] as ReturnType<typeof blob>, 'OCI_DIGEST_MISMATCH'],
    ['config', amd64.config, 'OCI_DIGEST_MISMATCH'],
    ['manifest', amd64.manifest, 'OCI_DIGEST_MISMATCH'],
    ['index', index, 'OCI_DIGEST_MISMATCH'],
  ];
  for (const [what, b, c] of targets) {
    const dir = layout([amd64, arm64], [{ blob: index }], [index]);
    const p = join(dir, 'blobs', 'sha256', b.digest.slice(7));
    const bytes = readFileSync(p);
    bytes[bytes.length >> 1] = (bytes[bytes.length >> 1] as number) ^ 0x01;
    writeFileSync(p, bytes);
    const l = await OciLayout.open(dir);
    await assert.rejects(verifyImage(l, l.root(), { os: 'linux', architecture: 'amd64' }), code(c), what);
    writeFileSync(p, Buffer.concat([readFileSync(p), Buffer.from('x')]));
    await assert.rejects(verifyImage(l, l.root(), { os: 'linux', architecture: 'amd64' }), code('OCI_SIZE_MISMATCH'), `${what} + 1 byte`);
    writeFileSync(p, bytes.subarray(0, bytes.length - 1));
    await assert.rejects(verifyImage(l, l.root(), { os: 'linux', architecture: 'amd64' }), code('OCI_SIZE_MISMATCH'), `${what} - 1 byte`);
    rmSync(p);
    await assert.rejects(verifyImage(l, l.root(), { os: 'linux', architecture: 'amd64' }), code('OCI_BLOB_MISSING'), `${what} missing`);
  }
});

test('Docker schema 2 images verify; mismatched media types, external urls and bad diff_ids are refused', async () => {
  const dir = layout([dockerImage], [{ blob: dockerImage.manifest }]);
  const l = await OciLayout.open(dir);
  const v = await verifyImage(l, l.root());
  assert.equal(v.manifestMediaType, MEDIA.dockerManifest);
  // The secret baked into the image config is found.
  assert.deepEqual(checkImageConfig(v.config, 'image').map((f) => f.ruleId), ['CW042']);
  assert.deepEqual(checkImageConfig((await verifyImage(await OciLayout.open(layout([amd64], [{ blob: amd64.manifest }])), (await OciLayout.open(layout([amd64], [{ blob: amd64.manifest }]))).root())).config, 'image'), []);

  // A manifest whose descriptor claims another media type than the document does.
  const lying: Descriptor = { ...dockerImage.descriptor, mediaType: MEDIA.ociManifest };
  await assert.rejects(verifyImage(l, lying), code('OCI_MEDIA_TYPE_MISMATCH'));
  // A manifest whose layer lives elsewhere.
  const ext = blob(Buffer.from(JSON.stringify({ ...JSON.parse(amd64.manifest.bytes.toString()), layers: [{ ...JSON.parse(amd64.manifest.bytes.toString()).layers[0], urls: ['https://example.com/l'] }, JSON.parse(amd64.manifest.bytes.toString()).layers[1]] })), MEDIA.ociManifest);
  const d2 = layout([amd64], [{ blob: ext }], [ext]);
  const l2 = await OciLayout.open(d2);
  await assert.rejects(verifyImage(l2, l2.root()), code('OCI_EXTERNAL_BLOB'));
  // A manifest with one layer fewer than the config's diff_ids.
  const short = blob(Buffer.from(JSON.stringify({ ...JSON.parse(amd64.manifest.bytes.toString()), layers: [JSON.parse(amd64.manifest.bytes.toString()).layers[0]] })), MEDIA.ociManifest);
  const d3 = layout([amd64], [{ blob: short }], [short]);
  const l3 = await OciLayout.open(d3);
  await assert.rejects(verifyImage(l3, l3.root()), code('OCI_LAYER_COUNT'));
  // Not a layout.
  await assert.rejects(OciLayout.open(tmpdir()), code('OCI_NOT_A_LAYOUT'));
});

test('WWW-Authenticate challenges parse as docker sends them', () => {
  assert.deepEqual(parseChallenge('Bearer realm="https://auth.example.com/token",service="registry.example.com",scope="repository:a/b:pull,push"'), {
    scheme: 'bearer',
    params: { realm: 'https://auth.example.com/token', service: 'registry.example.com', scope: 'repository:a/b:pull,push' },
  });
  assert.deepEqual(parseChallenge('Basic realm="Registry Realm"'), { scheme: 'basic', params: { realm: 'Registry Realm' } });
  assert.throws(() => new RegistryClient('registry.example.com', 'a', { plainHttp: true }), code('REGISTRY_PLAIN_HTTP'));
});

let reg: TestRegistry;
let authReg: TestRegistry;
before(async () => {
  [reg, authReg] = await Promise.all([startRegistry(), startRegistry({ tokenAuth: true })]);
});
after(async () => {
  await Promise.all([reg?.stop(), authReg?.stop()]);
});

async function push(c: RegistryClient, tag: string): Promise<void> {
  for (const img of [amd64, arm64]) {
    for (const b of img.blobs) await c.pushBlob(b.bytes, b.digest);
    await c.pushManifest(img.manifest.digest, img.manifest.bytes, img.manifest.mediaType);
  }
  await c.pushManifest(tag, index.bytes, index.mediaType);
}

test('docker-registry: push over the distribution API, pull by tag and by digest, every digest checked', async () => {
  const c = new RegistryClient(reg.host, 'coffer/app', { plainHttp: true });
  await push(c, 'v1');
  const v = await c.pull('v1', { os: 'linux', architecture: 'amd64' });
  assert.equal(v.rootDigest, index.digest);
  assert.equal(v.manifestDigest, amd64.manifest.digest);
  assert.deepEqual(v.layers.map((l) => l.digest), amd64.layers.map((l) => l.digest));
  const byDigest = await RegistryClient.forReference(`${reg.host}/coffer/app@${arm64.manifest.digest}`, { plainHttp: true }).pull(arm64.manifest.digest);
  assert.equal(byDigest.configDigest, arm64.config.digest);
  await assert.rejects(c.pull('nope'), code('REGISTRY_NOT_FOUND'));
});

test('docker-registry: a layer tampered with in the registry storage is refused', async () => {
  const c = new RegistryClient(reg.host, 'coffer/tamper', { plainHttp: true });
  await push(c, 'v1');
  const target = amd64.layers[0] as ReturnType<typeof blob>;
  const p = reg.blobPath(target.digest);
  const orig = readFileSync(p);
  const bad = Buffer.from(orig);
  bad[20] = (bad[20] as number) ^ 0xff;
  writeFileSync(p, bad);
  try {
    await assert.rejects(c.pull('v1', { os: 'linux', architecture: 'amd64' }), code('OCI_DIGEST_MISMATCH'));
    // The other platform shares no blob with it and still verifies.
    await c.pull('v1', { os: 'linux', architecture: 'arm64' });
  } finally {
    writeFileSync(p, orig);
  }
  await c.pull('v1', { os: 'linux', architecture: 'amd64' });
});

test('docker-registry with token auth: the bearer challenge is answered with a JWT from the realm; no or wrong credentials are refused', async () => {
  const creds = authReg.credentials as { username: string; password: string };
  const c = new RegistryClient(authReg.host, 'coffer/private', { plainHttp: true, credentials: creds });
  await push(c, 'v1');
  const before = authReg.tokenRequests;
  const v = await new RegistryClient(authReg.host, 'coffer/private', { plainHttp: true, credentials: creds }).pull('v1', { os: 'linux', architecture: 'arm64' });
  assert.equal(v.manifestDigest, arm64.manifest.digest);
  assert.ok(authReg.tokenRequests > before, 'a token was fetched');
  await assert.rejects(new RegistryClient(authReg.host, 'coffer/private', { plainHttp: true }).pull('v1', { os: 'linux', architecture: 'arm64' }), code('REGISTRY_AUTH'));
  await assert.rejects(new RegistryClient(authReg.host, 'coffer/private', { plainHttp: true, credentials: { ...creds, password: 'wrong' } }).pull('v1'), code('REGISTRY_AUTH'));
});

test('review: a document that is both an index and a manifest is refused whichever media type its descriptor claims', async () => {
  const m = JSON.parse(amd64.manifest.bytes.toString()) as Record<string, unknown>;
  const i = JSON.parse(index.bytes.toString()) as Record<string, unknown>;
  // No mediaType of its own: which image it is would depend on who reads it.
  const poly = { schemaVersion: 2, config: m.config, layers: m.layers, manifests: i.manifests };
  for (const mediaType of [MEDIA.ociManifest, MEDIA.ociIndex]) {
    const b = blob(Buffer.from(JSON.stringify(poly)), mediaType);
    const l = await OciLayout.open(layout([amd64, arm64], [{ blob: b }], [b]));
    await assert.rejects(verifyImage(l, l.root(), { os: 'linux', architecture: 'amd64' }), code('OCI_MEDIA_TYPE_MISMATCH'), mediaType);
  }
  // The twin without `manifests` is an ordinary manifest and verifies.
  const plain = blob(Buffer.from(JSON.stringify({ schemaVersion: 2, config: m.config, layers: m.layers })), MEDIA.ociManifest);
  const l = await OciLayout.open(layout([amd64], [{ blob: plain }], [plain]));
  assert.equal((await verifyImage(l, l.root())).manifestDigest, plain.digest);
});

test('review: a registry handing out an upload Location on another origin does not get the credentials sent there', async () => {
  // Hostile behaviour the real registry cannot be made to show: a small server in its place.
  const seen: IncomingHttpHeaders[] = [];
  const listen = (srv: Server) => new Promise<number>((res) => srv.listen(0, '127.0.0.1', () => res((srv.address() as { port: number }).port)));
  const other = createServer((q, s) => {
    seen.push(q.headers);
    q.resume();
    q.on('end', () => s.writeHead(201).end());
  });
  const otherPort = await listen(other);
  const hostile = createServer((q, s) => {
    q.resume();
    if (!q.headers.authorization) return void s.writeHead(401, { 'www-authenticate': 'Basic realm="r"' }).end();
    if (q.method === 'HEAD') return void s.writeHead(404).end();
    if (q.method === 'POST') return void s.writeHead(202, { location: `http://127.0.0.1:${otherPort}/upload/1` }).end();
    s.writeHead(500).end();
  });
  const port = await listen(hostile);
  try {
    const c = new RegistryClient(`127.0.0.1:${port}`, 'x/y', { plainHttp: true, credentials: { username: 'u', password: 'secret-password' } });
    await c.pushBlob(Buffer.from('blob'));
    assert.equal(seen.length, 1, 'the upload went to the Location');
    assert.equal(seen[0]?.authorization, undefined, 'no credentials to another origin');
  } finally {
    hostile.closeAllConnections();
    other.closeAllConnections();
    hostile.close();
    other.close();
  }
});

test('review: a config whose diff_id is not the hash of its layer content is refused when layers are inflated (scanLayers)', async () => {
  const honest = makeImage({ files: [[{ name: 'app/run', content: 'mine\n' }]] });
  const foreignTar = makeImage({ files: [[{ name: 'app/run', content: 'someone else\n' }]] });
  const cfg = JSON.parse(honest.config.bytes.toString()) as { rootfs: { diff_ids: string[] } };
  // The diff_id of another image's layer: containerd would reuse that image's snapshot.
  cfg.rootfs.diff_ids = (JSON.parse(foreignTar.config.bytes.toString()) as { rootfs: { diff_ids: string[] } }).rootfs.diff_ids;
  const config = blob(Buffer.from(JSON.stringify(cfg)), MEDIA.ociConfig);
  const manifest = blob(Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MEDIA.ociManifest, config: { mediaType: config.mediaType, digest: config.digest, size: config.bytes.length }, layers: honest.layers.map((l) => ({ mediaType: l.mediaType, digest: l.digest, size: l.bytes.length })) })), MEDIA.ociManifest);
  const l = await OciLayout.open(layout([honest], [{ blob: manifest }], [config, manifest]));
  await assert.rejects(verifyImage(l, l.root(), undefined, { scanLayers: true }), code('OCI_DIFF_ID_MISMATCH'));
  // The honest twin passes, gzip and uncompressed alike.
  const ok = await OciLayout.open(layout([honest], [{ blob: honest.manifest }]));
  assert.equal((await verifyImage(ok, ok.root(), undefined, { scanLayers: true })).manifestDigest, honest.manifest.digest);
});

test('review: the timeout bounds each silence of a layer transfer, not the whole transfer; a stalled body is a CofferError', async () => {
  const data = Buffer.alloc(30 * 1000, 7);
  const listen = (srv: Server) => new Promise<number>((res) => srv.listen(0, '127.0.0.1', () => res((srv.address() as { port: number }).port)));
  const timers = new Set<NodeJS.Timeout>();
  const srv = createServer((q, s) => {
    s.writeHead(200, { 'content-length': String(data.length) });
    let i = 0;
    const stall = q.url?.includes('stall') === true;
    const tick = () => {
      if (stall && i === 3) return; // then nothing, forever
      s.write(data.subarray(i * 1000, (i + 1) * 1000));
      if (++i === 30) return void s.end();
      const t = setTimeout(tick, 50);
      timers.add(t);
    };
    tick();
  });
  const port = await listen(srv);
  try {
    const c = new RegistryClient(`127.0.0.1:${port}`, 'x/y', { plainHttp: true, timeoutMs: 1000 });
    const desc = { mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: `sha256:${'0'.repeat(64)}`, size: data.length };
    const started = Date.now();
    const got: Buffer[] = [];
    for await (const ch of c.stream(desc)) got.push(Buffer.from(ch));
    assert.ok(Date.now() - started > 1000, 'the transfer outlasted the timeout');
    assert.deepEqual(Buffer.concat(got), data);
    const stalled = new RegistryClient(`127.0.0.1:${port}`, 'stall', { plainHttp: true, timeoutMs: 1000 });
    await assert.rejects(
      (async () => {
        for await (const ch of stalled.stream(desc)) void ch;
      })(),
      code('REGISTRY_UNREACHABLE'),
    );
  } finally {
    timers.forEach(clearTimeout);
    srv.closeAllConnections();
    srv.close();
  }
});

test('review: a registry answering a digest request with another manifest (and a lying Docker-Content-Digest) is refused', async () => {
  const listen = (srv: Server) => new Promise<number>((res) => srv.listen(0, '127.0.0.1', () => res((srv.address() as { port: number }).port)));
  const srv = createServer((q, s) => {
    q.resume();
    s.writeHead(200, { 'content-type': MEDIA.ociManifest, 'docker-content-digest': amd64.manifest.digest });
    s.end(arm64.manifest.bytes);
  });
  const port = await listen(srv);
  try {
    const c = new RegistryClient(`127.0.0.1:${port}`, 'x/y', { plainHttp: true });
    await assert.rejects(c.pull(amd64.manifest.digest), code('OCI_DIGEST_MISMATCH'));
    // By tag nothing pins the content, but the header is still not believed over the bytes.
    await assert.rejects(c.resolve('v1'), code('OCI_DIGEST_MISMATCH'));
  } finally {
    srv.closeAllConnections();
    srv.close();
  }
});
