// The Debian tools the image tests use as oracles. A missing tool fails the test with the
// package to install (never a skip).
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const PACKAGES: Record<string, string> = {
  veritysetup: 'cryptsetup-bin',
  'cert-to-efi-sig-list': 'efitools',
  'sign-efi-sig-list': 'efitools',
  'hash-to-efi-sig-list': 'efitools',
  'sig-list-to-certs': 'efitools',
  sbsign: 'sbsigntool',
  sbverify: 'sbsigntool',
  openssl: 'openssl',
  'apt-get': 'apt',
  'dpkg-deb': 'dpkg',
};

export const SYSTEMD_BOOT = '/usr/lib/systemd/boot/efi/systemd-bootx64.efi';
export const LINUX_STUB = '/usr/lib/systemd/boot/efi/linuxx64.efi.stub';

function resolve(tool: string): string {
  for (const dir of ['/usr/sbin', '/usr/bin', '/sbin', '/bin']) if (existsSync(join(dir, tool))) return join(dir, tool);
  const pkg = PACKAGES[tool] ?? tool;
  throw new Error(`this test uses the real ${tool} as an oracle and it is not installed: apt-get install ${pkg} (or run scripts/setup.sh)`);
}

/** A file shipped by a Debian package, or a failure naming the package. */
export function packagedFile(path: string, pkg: string): string {
  if (!existsSync(path)) throw new Error(`${path} is missing: apt-get install ${pkg} (or run scripts/setup.sh)`);
  return path;
}

export interface ToolResult {
  status: number;
  stdout: string;
  stderr: string;
}

/** Runs a tool; throws with its output unless it succeeds or `allowFail` is set. */
export function tool(name: string, args: string[], opts: { cwd?: string; allowFail?: boolean; input?: Buffer } = {}): ToolResult {
  const r = spawnSync(resolve(name), args, { cwd: opts.cwd, encoding: 'utf8', ...(opts.input ? { input: opts.input } : {}) });
  if (r.error) throw r.error;
  const res = { status: r.status ?? -1, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
  if (res.status !== 0 && !opts.allowFail) throw new Error(`${name} ${args.join(' ')} failed (${res.status}):\n${res.stdout}\n${res.stderr}`);
  return res;
}

const made: string[] = [];
export function tempDir(prefix: string): string {
  const d = mkdtempSync(join(tmpdir(), `coffer-image-${prefix}-`));
  if (made.length === 0) process.once('exit', () => made.forEach((m) => rmSync(m, { recursive: true, force: true })));
  made.push(d);
  return d;
}

/** Flips one byte (xor 0x01) of a copy. */
export function flip(b: Uint8Array, at: number): Buffer {
  const c = Buffer.from(b);
  c[at] = (c[at] ?? 0) ^ 0x01;
  return c;
}

/** An RSA key and self-signed certificate made by openssl (independent of src/). */
export function opensslKey(dir: string, name: string, cn: string): { key: string; crt: string } {
  const key = join(dir, `${name}.key`);
  const crt = join(dir, `${name}.crt`);
  tool('openssl', ['req', '-new', '-x509', '-newkey', 'rsa:2048', '-subj', `/CN=${cn}/`, '-keyout', key, '-out', crt, '-days', '3650', '-nodes', '-sha256']);
  return { key, crt };
}
