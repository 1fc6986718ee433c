// Oracles for the UKI and measurement tests: objdump (binutils), systemd-measure (systemd),
// Debian's OVMF (ovmf). A missing one fails the test naming the package (never a skip).
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';

export const SYSTEMD_MEASURE = '/lib/systemd/systemd-measure';
export const OVMF_FD = '/usr/share/ovmf/OVMF.fd';

function need(path: string, pkg: string): string {
  if (!existsSync(path)) throw new Error(`${path} is missing: this test uses it as an oracle; apt-get install ${pkg} (or run scripts/setup.sh)`);
  return path;
}

export function ovmfPath(): string {
  return need(OVMF_FD, 'ovmf');
}

function run(path: string, pkg: string, args: string[]): string {
  const r = spawnSync(need(path, pkg), args, { encoding: 'utf8' });
  if (r.error) throw r.error;
  if (r.status !== 0) throw new Error(`${path} ${args.join(' ')} failed (${r.status}):\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

export function objdump(args: string[]): string {
  return run('/usr/bin/objdump', 'binutils', args);
}

/** `objdump -h`: section name → size and VMA. */
export function objdumpSections(path: string): Map<string, { size: number; vma: number; fileOffset: number }> {
  const out = new Map<string, { size: number; vma: number; fileOffset: number }>();
  for (const m of objdump(['-h', path]).matchAll(/^\s*\d+\s+(\S+)\s+([0-9a-f]+)\s+([0-9a-f]+)\s+[0-9a-f]+\s+([0-9a-f]+)/gm)) {
    out.set(m[1] as string, { size: parseInt(m[2] as string, 16), vma: parseInt(m[3] as string, 16), fileOffset: parseInt(m[4] as string, 16) });
  }
  return out;
}

/** systemd-measure calculate --json=short: phase → hash for one bank. */
export function systemdMeasure(files: Record<string, string>, bank: string, phases: string[] = []): Map<string, string> {
  const args = ['calculate', ...Object.entries(files).map(([k, v]) => `--${k}=${v}`), `--bank=${bank}`, '--json=short', ...phases.map((p) => `--phase=${p}`)];
  const doc = JSON.parse(run(SYSTEMD_MEASURE, 'systemd', args)) as Record<string, { phase: string; pcr: number; hash: string }[]>;
  return new Map((doc[bank] ?? []).map((e) => [e.phase, e.hash]));
}
