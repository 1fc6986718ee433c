// Shared by the guest agent tests: a simulated SEV-SNP VM (test/guest/tsm-sim.ts behind a temp
// configfs-tsm tree, reports signed by a fake AMD chain), a real broker that trusts that chain
// through its in-process test option, LUKS2 files made with the real cryptsetup, a failure-action
// test double that records its invocation, and searches for key material.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, readFileSync, readdirSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { request as httpRequest, createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { parseCertificates } from '../../src/pki/certificate.js';
import type { ProductAnchor } from '../../src/pki/roots.js';
import { defaultChipId, defaultTcb, makeFakeAmd } from '../helpers/amd-ca.js';
import { REPO } from '../helpers/build.js';
import type { SimControl } from './tsm-sim.js';

export const MEASUREMENT_GOOD = Buffer.alloc(48, 0xa1);
export const MEASUREMENT_OTHER = Buffer.alloc(48, 0xb2);
/** Guest policy with the debug bit (19) set on top of the default 0x30000. */
export const POLICY_DEBUG = (0x30000n | (1n << 19n)).toString();

export function requireTool(name: string, pkg: string): void {
  const r = spawnSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${name} is required by this test: install ${pkg} (apt-get install ${pkg})`);
}

export interface SnpWorld {
  roots: ProductAnchor[];
  control(over?: Partial<SimControl>): SimControl;
}

export function snpWorld(): SnpWorld {
  const amd = makeFakeAmd('Milan');
  const vcek = amd.issueVcek({ chipId: defaultChipId('Milan'), tcb: defaultTcb('Milan') });
  const ark = parseCertificates(amd.ark.der, 'fake ARK')[0];
  if (!ark) throw new Error('no fake ARK');
  return {
    roots: [{ cert: ark, label: 'ARK-Milan (test)', product: 'Milan' }],
    control: (over = {}) => ({
      measurement: MEASUREMENT_GOOD.toString('hex'),
      vcekKeyPem: vcek.key.export({ type: 'pkcs8', format: 'pem' }).toString(),
      vcekPem: vcek.pem,
      chainPem: amd.vcekChainPem,
      ...over,
    }),
  };
}

/** The simulated kernel, as a child process serving `<dir>/tsm/report`. */
export class TsmSim {
  readonly root: string;
  readonly controlFile: string;
  private child: ChildProcess | undefined;
  output = '';
  constructor(
    dir: string,
    private readonly world: SnpWorld,
  ) {
    this.root = join(dir, 'tsm', 'report');
    this.controlFile = join(dir, 'tsm-control.json');
    mkdirSync(this.root, { recursive: true });
    this.set();
  }

  /** What the next report will say (takes effect for the next entry created). */
  set(over: Partial<SimControl> = {}): void {
    writeFileSync(`${this.controlFile}.tmp`, JSON.stringify(this.world.control(over)));
    renameSync(`${this.controlFile}.tmp`, this.controlFile);
  }

  async start(): Promise<void> {
    const child = spawn(process.execPath, ['--import', 'tsx', join(REPO, 'test/guest/tsm-sim.ts'), this.root, this.controlFile], { cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`tsm-sim did not start: ${this.output}`)), 60_000);
      child.stdout?.on('data', (d: Buffer) => {
        this.output += d.toString('utf8');
        if (this.output.includes('ready\n')) {
          clearTimeout(timer);
          resolve();
        }
      });
      child.stderr?.on('data', (d: Buffer) => (this.output += d.toString('utf8')));
      child.on('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`tsm-sim exited ${code}: ${this.output}`));
      });
    });
  }

  async stop(): Promise<void> {
    const c = this.child;
    if (!c || c.exitCode !== null) return;
    await new Promise<void>((resolve) => {
      c.once('exit', () => resolve());
      c.kill('SIGTERM');
    });
  }
}

/** A script that records each invocation (its arguments, one line) instead of powering off. */
export function failureDouble(dir: string): { command: string[]; calls(): string[] } {
  const record = join(dir, 'failure-actions.log');
  const script = join(dir, 'fake-systemctl');
  writeFileSync(script, `#!/bin/sh\nprintf '%s\\n' "$*" >> '${record}'\n`);
  chmodSync(script, 0o755);
  return {
    command: [script, 'poweroff', '--force', '--force'],
    calls: () => {
      try {
        return readFileSync(record, 'utf8').split('\n').filter(Boolean);
      } catch {
        return [];
      }
    },
  };
}

export const VOLUME_BYTES = 32 * 1024 * 1024;

export function blankVolume(path: string): void {
  writeFileSync(path, Buffer.alloc(0));
  // Sparse: all zero, as a fresh cloud disk reads.
  spawnSync('truncate', ['-s', String(VOLUME_BYTES), path]);
}

export function luksVolume(path: string, key: Buffer): void {
  blankVolume(path);
  const r = spawnSync('cryptsetup', ['luksFormat', '--type', 'luks2', '--batch-mode', '--key-file=-', '--pbkdf', 'pbkdf2', '--pbkdf-force-iterations', '1000', path], { input: key });
  if (r.status !== 0) throw new Error(`cryptsetup luksFormat failed: ${r.stderr.toString()}`);
}

/**
 * Rewrites the JSON metadata of both LUKS2 headers of `path` and recomputes their SHA-256
 * checksums, the way a malicious host would craft a header that cryptsetup still accepts.
 */
type LuksSlot = Record<string, unknown> & { area: Record<string, unknown> };
/** The parts of LUKS2 JSON metadata the tests edit (cryptsetup always has segment and key slot 0). */
export interface LuksMeta {
  segments: { '0': Record<string, unknown>; [id: string]: Record<string, unknown> };
  keyslots: { '0': LuksSlot; [id: string]: LuksSlot };
  config: Record<string, unknown>;
}

export function rewriteLuksJson(path: string, edit: (meta: LuksMeta) => void): void {
  const b = readFileSync(path);
  const hdrSize = Number(b.readBigUInt64BE(8));
  for (const at of [0, hdrSize]) {
    const area = b.subarray(at + 4096, at + hdrSize);
    const end = area.indexOf(0);
    const meta = JSON.parse(area.subarray(0, end).toString('utf8')) as LuksMeta;
    edit(meta);
    const json = Buffer.from(JSON.stringify(meta));
    if (json.length >= area.length) throw new Error('rewritten LUKS2 JSON does not fit');
    area.fill(0);
    json.copy(area);
    b.fill(0, at + 448, at + 448 + 64);
    createHash('sha256').update(b.subarray(at, at + hdrSize)).digest().copy(b, at + 448);
  }
  writeFileSync(path, b);
}

/** cryptsetup's own verdict on a key (the oracle). */
export function cryptsetupAccepts(path: string, key: Buffer): boolean {
  return spawnSync('cryptsetup', ['open', '--type', 'luks2', '--test-passphrase', '--key-file=-', path], { input: key }).status === 0;
}

export function sha256File(path: string): string {
  return createHash('sha256').update(readFileSync(path)).digest('hex');
}

function* files(dir: string): Generator<string> {
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    const st = statSync(p, { throwIfNoEntry: false });
    if (!st) continue;
    if (st.isDirectory()) yield* files(p);
    else if (st.isFile()) yield p;
  }
}

/** The forms a leaked key would take: raw bytes, hex, base64, base64url. */
export function keyForms(key: Buffer): Buffer[] {
  return [key, Buffer.from(key.toString('hex')), Buffer.from(key.toString('hex').toUpperCase()), Buffer.from(key.toString('base64').replace(/=+$/, '')), Buffer.from(key.toString('base64url'))];
}

/** Files under `dir` (and text blobs) that contain the key in any of its forms. */
export function findKey(key: Buffer, dir: string, texts: string[] = []): string[] {
  const hits: string[] = [];
  const forms = keyForms(key);
  for (const f of files(dir)) {
    const data = readFileSync(f);
    if (forms.some((k) => data.includes(k))) hits.push(f);
  }
  texts.forEach((t, i) => {
    if (forms.some((k) => Buffer.from(t).includes(k))) hits.push(`text #${i}`);
  });
  return hits;
}

export function randomKey(): Buffer {
  return randomBytes(32);
}

/** A proxy in front of the broker that flips one byte of the ciphertext of every released JWE. */
export async function tamperingProxy(target: string): Promise<{ url: string; close(): Promise<void> }> {
  const t = new URL(target);
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const up = httpRequest({ host: t.hostname, port: t.port, path: req.url, method: req.method, headers: { ...req.headers, host: t.host } }, (ur) => {
        const body: Buffer[] = [];
        ur.on('data', (c: Buffer) => body.push(c));
        ur.on('end', () => {
          let out = Buffer.concat(body);
          if (req.url?.startsWith('/kbs/v0/resource/') && ur.statusCode === 200) {
            const jwe = JSON.parse(out.toString('utf8')) as Record<string, string>;
            const ct = Buffer.from(jwe.ciphertext as string, 'base64url');
            ct[0] = (ct[0] as number) ^ 0x01;
            jwe.ciphertext = ct.toString('base64url');
            out = Buffer.from(JSON.stringify(jwe));
          }
          const headers = { ...ur.headers, 'content-length': String(out.length) };
          res.writeHead(ur.statusCode ?? 502, headers);
          res.end(out);
        });
      });
      up.on('error', () => {
        res.writeHead(502);
        res.end();
      });
      up.end(Buffer.concat(chunks));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, close: () => new Promise((r) => server.close(() => r())) };
}

/** A loopback URL where nothing listens. */
export async function deadUrl(): Promise<string> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return `http://127.0.0.1:${port}`;
}

/** The real bin/coffer with standard output kept as bytes (runBin decodes it as UTF-8). */
export function runBinRaw(bin: string, args: string[]): Promise<{ code: number | null; stdout: Buffer; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [bin, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NO_COLOR: '1' } });
    const out: Buffer[] = [];
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString('utf8')));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout: Buffer.concat(out), stderr }));
  });
}
