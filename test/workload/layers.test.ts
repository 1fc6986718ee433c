// Secret files in image layers, found while the layers stream through the digest check. GNU tar
// is the oracle for long names (its own GNU and pax long-name records).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { LayerScanner, OciLayout, checkLayerSecrets, verifyImage } from '../../src/workload/index.js';
import { makeImage, tarOf, writeLayout } from './oci-helpers.js';

const dirs: string[] = [];
after(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));
const tmp = () => {
  const d = mkdtempSync(join(tmpdir(), 'coffer-layers-'));
  dirs.push(d);
  return d;
};
const PEM = '-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIB\n-----END EC PRIVATE KEY-----\n';

async function scan(bytes: Buffer, mediaType = 'application/vnd.oci.image.layer.v1.tar+gzip') {
  const s = new LayerScanner(0, mediaType);
  // Odd chunk sizes: headers and bodies split across chunks.
  for (let i = 0; i < bytes.length; i += 333) await s.push(bytes.subarray(i, i + 333));
  return s.end();
}

test('secret files and PEM private keys are found in a verified image; a clean image has none', async () => {
  const img = makeImage({
    files: [
      [{ name: 'etc/os-release', content: 'ID=x\n' }, { name: 'root/.ssh/id_ed25519', content: 'key' }],
      [{ name: 'app/config/tls.pem', content: `cert\n${PEM}` }, { name: 'app/.wh..ssh', content: '' }, { name: 'home/u/.docker/config.json', content: '{}' }],
    ],
  });
  const d = tmp();
  writeLayout(d, [...img.blobs, img.manifest], [{ blob: img.manifest }]);
  const l = await OciLayout.open(d);
  const v = await verifyImage(l, l.root(), undefined, { scanLayers: true });
  assert.deepEqual(v.layerSecrets, [
    { layer: 0, path: 'root/.ssh/id_ed25519', why: 'SSH private key' },
    { layer: 1, path: 'app/config/tls.pem', why: 'PEM private key' },
    { layer: 1, path: 'home/u/.docker/config.json', why: 'registry credentials (docker config.json)' },
  ]);
  assert.deepEqual(v.layersNotScanned, []);
  assert.deepEqual(checkLayerSecrets(v.layerSecrets ?? [], 'img').map((f) => [f.ruleId, f.section]), [['CW043', '4.1.4'], ['CW043', '4.1.4'], ['CW043', '4.1.4']]);

  const clean = makeImage({ files: [[{ name: 'app/run', content: 'ok' }, { name: 'app/public.pem', content: '-----BEGIN PUBLIC KEY-----\nAA\n-----END PUBLIC KEY-----\n' }]] });
  const d2 = tmp();
  writeLayout(d2, [...clean.blobs, clean.manifest], [{ blob: clean.manifest }]);
  const l2 = await OciLayout.open(d2);
  assert.deepEqual((await verifyImage(l2, l2.root(), undefined, { scanLayers: true })).layerSecrets, []);

  // A layer whose digest fails yields no findings, only the refusal.
  const p = join(d, 'blobs', 'sha256', img.layers[0]?.digest.slice(7) ?? '');
  const b = readFileSync(p);
  b[b.length - 3] = (b[b.length - 3] as number) ^ 1;
  writeFileSync(p, b);
  await assert.rejects(verifyImage(l, l.root(), undefined, { scanLayers: true }), (e: unknown) => (e as { code?: string }).code === 'OCI_DIGEST_MISMATCH');
});

test('long names: GNU tar (gnu and pax formats) as the oracle', async () => {
  const d = tmp();
  const deep = `${'very-long-directory-name/'.repeat(6)}home/user`;
  mkdirSync(join(d, 'root', deep, '.aws'), { recursive: true });
  writeFileSync(join(d, 'root', deep, '.aws', 'credentials'), '[default]\n');
  writeFileSync(join(d, 'root', 'plain.txt'), 'nothing');
  for (const format of ['gnu', 'pax']) {
    const out = join(d, `${format}.tar`);
    const r = spawnSync('tar', [`--format=${format}`, '-cf', out, '-C', join(d, 'root'), '.'], { encoding: 'utf8' });
    assert.equal(r.status, 0, `GNU tar is needed (apt-get install tar): ${r.stderr}`);
    const res = await scan(gzipSync(readFileSync(out)));
    assert.deepEqual(res.secrets.map((s) => s.path), [`${deep}/.aws/credentials`], format);
    const raw = await scan(readFileSync(out), 'application/vnd.oci.image.layer.v1.tar');
    assert.equal(raw.secrets.length, 1, `${format} uncompressed`);
  }
});

test('layers that cannot be scanned say so instead of passing as clean', async () => {
  assert.equal((await scan(gzipSync(Buffer.from('not a tar at all, just text'.repeat(40))))).notScanned, 'not a tar archive');
  assert.match((await scan(Buffer.from('plain bytes, not gzip'))).notScanned ?? '', /^not gzip/);
  assert.match((await scan(Buffer.from('x'), 'application/vnd.oci.image.layer.v1.tar+zstd')).notScanned ?? '', /zstd/);
  assert.equal((await scan(gzipSync(tarOf([{ name: 'a', content: 'b' }])))).notScanned, undefined);
  // A pax record naming the path of the next entry.
  const pax = '27 path=x/.git-credentials\n';
  assert.equal(Buffer.byteLength(pax), 27, 'a pax record starts with its own length');
  const withPax = tarOf([{ name: 'PaxHeaders/0', content: pax, type: 'x' }, { name: 'short', content: 'token' }]);
  assert.deepEqual((await scan(gzipSync(withPax))).secrets.map((s) => s.path), ['x/.git-credentials']);
});

test('review: names are cleaned as the runtime creates them; the last pax path wins; oversized pax records are not buffered', async () => {
  const tricks = tarOf([
    { name: 'root/.ssh//id_rsa', content: 'k' },
    { name: './home/u/./.aws/credentials', content: 'k' },
    { name: 'x/y/../.git-credentials', content: 'k' },
  ]);
  assert.deepEqual((await scan(gzipSync(tricks))).secrets.map((s) => s.path), ['root/.ssh/id_rsa', 'home/u/.aws/credentials', 'x/.git-credentials']);
  // A hard link gives a harmless file a credential's name; a symlink to a mounted secret is fine.
  const links = tarOf([{ name: 'tmp/blob', content: '[default]\nkey=x\n' }, { name: 'root/.aws/credentials', content: '', type: '1' }, { name: 'app/.npmrc', content: '', type: '2' }]);
  assert.deepEqual((await scan(gzipSync(links))).secrets.map((s) => s.path), ['root/.aws/credentials']);
  // Two path records: Go's archive/tar (and so containerd) takes the last one.
  const rec = (k: string, v: string) => {
    const body = ` ${k}=${v}\n`;
    let n = body.length + 1;
    while (`${n}${body}`.length !== n) n = `${n}${body}`.length;
    return `${n}${body}`;
  };
  const twoPaths = rec('path', 'innocent') + rec('path', 'app/.npmrc');
  assert.deepEqual((await scan(gzipSync(tarOf([{ name: 'PaxHeaders/0', content: twoPaths, type: 'x' }, { name: 'short', content: 't' }])))).secrets.map((s) => s.path), ['app/.npmrc']);
  // A record whose value merely contains "NN path=..." after a newline names nothing.
  const smuggled = rec('comment', `x\n${rec('path', 'app/.npmrc').trimEnd()}`);
  assert.deepEqual((await scan(gzipSync(tarOf([{ name: 'PaxHeaders/0', content: smuggled, type: 'x' }, { name: 'plain', content: 't' }])))).secrets.map((s) => s.path), []);
  // A 64 MiB pax header (compresses to almost nothing): refused as not scanned, not held in memory.
  const huge = tarOf([{ name: 'PaxHeaders/0', content: Buffer.alloc(64 * 1024 * 1024, 0x41), type: 'x' }]);
  const before = process.memoryUsage().rss;
  const r = await scan(gzipSync(huge));
  assert.equal(r.notScanned, 'not a tar archive');
  assert.ok(process.memoryUsage().rss - before < 48 * 1024 * 1024, 'the pax body was not buffered');
});
