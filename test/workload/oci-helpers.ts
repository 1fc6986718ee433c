// Small OCI images made in-process (ustar layers, gzip, config, manifest, index), an OCI layout
// writer, and Debian's docker-registry started on 127.0.0.1:0 with a temp storage dir, optionally
// behind token auth served by a test token server whose certificate the registry trusts.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { SignJWT, importPKCS8 } from 'jose';
import { MEDIA, type Descriptor } from '../../src/workload/index.js';

export const REGISTRY_BIN = '/usr/bin/docker-registry';

function octal(n: number, width: number): string {
  return n.toString(8).padStart(width - 1, '0') + '\0';
}

/** A POSIX ustar archive of regular files. */
export function tarOf(files: readonly { name: string; content: Buffer | string; type?: string }[]): Buffer {
  const blocks: Buffer[] = [];
  for (const f of files) {
    const body = Buffer.isBuffer(f.content) ? f.content : Buffer.from(f.content);
    const h = Buffer.alloc(512);
    h.write(f.name, 0, 100, 'utf8');
    h.write(octal(0o644, 8), 100);
    h.write(octal(0, 8), 108);
    h.write(octal(0, 8), 116);
    h.write(octal(body.length, 12), 124);
    h.write(octal(1_700_000_000, 12), 136);
    h.write('        ', 148);
    h.write(f.type ?? '0', 156);
    h.write('ustar\0', 257);
    h.write('00', 263);
    let sum = 0;
    for (const b of h) sum += b;
    h.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148);
    blocks.push(h, body, Buffer.alloc((512 - (body.length % 512)) % 512));
  }
  blocks.push(Buffer.alloc(1024));
  return Buffer.concat(blocks);
}

const sha256 = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

export interface Blob {
  digest: string;
  bytes: Buffer;
  mediaType: string;
}

export interface TestImage {
  layers: Blob[];
  config: Blob;
  manifest: Blob;
  /** Every blob (layers and config), for pushing or writing a layout. */
  blobs: Blob[];
  descriptor: Descriptor;
}

export function blob(bytes: Buffer, mediaType: string): Blob {
  return { digest: sha256(bytes), bytes, mediaType };
}

const desc = (b: Blob, extra: Partial<Descriptor> = {}): Descriptor => ({ mediaType: b.mediaType, digest: b.digest, size: b.bytes.length, ...extra });

/** A small image: one layer per file set, a config naming their diff_ids. */
export function makeImage(opts: { files: { name: string; content: string }[][]; os?: string; architecture?: string; env?: string[]; docker?: boolean }): TestImage {
  const docker = opts.docker === true;
  const layerType = docker ? 'application/vnd.docker.image.rootfs.diff.tar.gzip' : 'application/vnd.oci.image.layer.v1.tar+gzip';
  const tars = opts.files.map((fs) => tarOf(fs));
  const layers = tars.map((t) => blob(gzipSync(t), layerType));
  const cfg = {
    architecture: opts.architecture ?? 'amd64',
    os: opts.os ?? 'linux',
    config: { Env: opts.env ?? ['PATH=/usr/bin'], User: '10001' },
    rootfs: { type: 'layers', diff_ids: tars.map(sha256) },
  };
  const config = blob(Buffer.from(JSON.stringify(cfg)), docker ? MEDIA.dockerConfig : MEDIA.ociConfig);
  const mediaType = docker ? MEDIA.dockerManifest : MEDIA.ociManifest;
  const manifest = blob(Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType, config: desc(config), layers: layers.map((l) => desc(l)) })), mediaType);
  return { layers, config, manifest, blobs: [...layers, config], descriptor: desc(manifest) };
}

/** An image index over several platform images. */
export function makeIndex(images: { image: TestImage; os: string; architecture: string; variant?: string }[]): Blob {
  return blob(
    Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: MEDIA.ociIndex,
        manifests: images.map((i) => desc(i.image.manifest, { platform: { os: i.os, architecture: i.architecture, ...(i.variant ? { variant: i.variant } : {}) } })),
      }),
    ),
    MEDIA.ociIndex,
  );
}

/** Writes an OCI image layout: oci-layout, index.json, blobs/sha256/... */
export function writeLayout(dir: string, blobs: readonly Blob[], roots: readonly { blob: Blob; ref?: string }[]): void {
  mkdirSync(join(dir, 'blobs', 'sha256'), { recursive: true });
  writeFileSync(join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  for (const b of blobs) writeFileSync(join(dir, 'blobs', 'sha256', b.digest.slice(7)), b.bytes);
  writeFileSync(
    join(dir, 'index.json'),
    JSON.stringify({ schemaVersion: 2, mediaType: MEDIA.ociIndex, manifests: roots.map((r) => desc(r.blob, r.ref ? { annotations: { 'org.opencontainers.image.ref.name': r.ref } } : {})) }),
  );
}

export interface TestRegistry {
  host: string;
  dir: string;
  /** Path of a blob's data file in the registry's filesystem storage. */
  blobPath(digest: string): string;
  /** Basic credentials the token server accepts. */
  credentials?: { username: string; password: string };
  tokenRequests: number;
  stop(): Promise<void>;
}

function listen(server: Server): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const a = server.address();
      resolve(typeof a === 'object' && a ? a.port : 0);
    });
  });
}

/**
 * Starts docker-registry on 127.0.0.1:0 (the port is read from its "listening on" log line).
 * With `tokenAuth`, a token server on another loopback port issues ES256 JWTs whose x5c
 * certificate is the one in the registry's rootcertbundle, to clients with the right password.
 */
export async function startRegistry(opts: { tokenAuth?: boolean } = {}): Promise<TestRegistry> {
  if (!existsSync(REGISTRY_BIN)) throw new Error(`${REGISTRY_BIN} is missing: install the Debian package docker-registry (apt-get install docker-registry)`);
  const dir = mkdtempSync(join(tmpdir(), 'coffer-registry-'));
  const storage = join(dir, 'data');
  mkdirSync(storage);
  let tokenServer: Server | undefined;
  const state = { tokenRequests: 0 };
  const credentials = { username: 'ci', password: `pw-${createHash('sha256').update(dir).digest('hex').slice(0, 16)}` };
  let auth = '';
  if (opts.tokenAuth) {
    const key = join(dir, 'token.key');
    const cert = join(dir, 'token.crt');
    const r = spawnSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', key, '-out', cert, '-subj', '/CN=coffer test token issuer', '-days', '2'], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`openssl req failed (install openssl): ${r.stderr}`);
    const pk = await importPKCS8(readFileSync(key, 'utf8'), 'ES256');
    const x5c = readFileSync(cert, 'utf8').replace(/-----[^-]+-----|\s/g, '');
    tokenServer = createServer((req, res) => {
      state.tokenRequests++;
      const url = new URL(req.url ?? '/', 'http://x');
      const basic = /^Basic (.+)$/.exec(req.headers.authorization ?? '');
      const [u, p] = basic ? Buffer.from(basic[1] as string, 'base64').toString().split(':') : [];
      if (u !== credentials.username || p !== credentials.password) {
        res.writeHead(401, { 'content-type': 'application/json' }).end('{"errors":[{"code":"UNAUTHORIZED"}]}');
        return;
      }
      const access = url.searchParams.getAll('scope').map((s) => {
        const [type, name, actions] = s.split(':');
        return { type, name, actions: (actions ?? '').split(',').filter((a) => a === 'pull' || a === 'push') };
      });
      const now = Math.floor(Date.now() / 1000);
      void new SignJWT({ access })
        .setProtectedHeader({ alg: 'ES256', typ: 'JWT', x5c: [x5c] })
        .setIssuer('coffer-test-issuer')
        .setAudience(url.searchParams.get('service') ?? '')
        .setSubject(credentials.username)
        .setIssuedAt(now - 5)
        .setNotBefore(now - 5)
        .setExpirationTime(now + 300)
        .setJti(createHash('sha256').update(`${now}${Math.random()}`).digest('hex'))
        .sign(pk)
        .then((token) => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ token, expires_in: 300 })));
    });
    const port = await listen(tokenServer);
    auth = ['auth:', '  token:', `    realm: http://127.0.0.1:${port}/token`, '    service: coffer-test-registry', '    issuer: coffer-test-issuer', `    rootcertbundle: ${cert}`].join('\n');
  }
  const config = join(dir, 'config.yml');
  writeFileSync(config, ['version: 0.1', 'log:', '  level: info', '  formatter: json', 'storage:', '  filesystem:', `    rootdirectory: ${storage}`, '  delete:', '    enabled: true', 'http:', '  addr: 127.0.0.1:0', auth, ''].join('\n'));
  const child: ChildProcess = spawn(REGISTRY_BIN, ['serve', config], { stdio: ['ignore', 'pipe', 'pipe'] });
  const host = await new Promise<string>((resolve, reject) => {
    let log = '';
    const timer = setTimeout(() => reject(new Error(`docker-registry did not start in 30 s: ${log.slice(-2000)}`)), 30_000);
    const onData = (d: Buffer) => {
      log += d.toString();
      const m = /listening on (127\.0\.0\.1:\d+)/.exec(log);
      if (m) {
        clearTimeout(timer);
        resolve(m[1] as string);
      }
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`docker-registry exited with ${code}: ${log.slice(-2000)}`));
    });
  });
  return {
    host,
    dir,
    blobPath: (digest) => {
      const hex = digest.slice(7);
      return join(storage, 'docker', 'registry', 'v2', 'blobs', 'sha256', hex.slice(0, 2), hex, 'data');
    },
    ...(opts.tokenAuth ? { credentials } : {}),
    get tokenRequests() {
      return state.tokenRequests;
    },
    stop: async () => {
      if (child.exitCode === null) {
        const exited = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        await exited;
      }
      if (tokenServer) await new Promise((r) => tokenServer?.close(r));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
