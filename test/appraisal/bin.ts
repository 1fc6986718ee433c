// The real `bin/coffer` for the appraisal commands' end-to-end tests (test/cli/policy-cli and
// explain-cli): build dist/ once if it is missing or older than src/ (the pattern of
// test/cli/snp-cli.test.ts), then spawn it as a user runs it.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { REPO } from './helpers.js';

export interface BinRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

function newest(dir: string): number {
  let t = 0;
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    const s = statSync(p);
    t = Math.max(t, s.isDirectory() ? newest(p) : s.mtimeMs);
  }
  return t;
}

/** Builds dist/ when it is missing or stale (CI's `npm ci` builds it through prepare). */
export function ensureBuilt(): void {
  const main = join(REPO, 'dist/cli/main.js');
  if (existsSync(main) && statSync(main).mtimeMs >= newest(join(REPO, 'src'))) return;
  const r = spawnSync('npm', ['run', 'build'], { cwd: REPO, encoding: 'utf8' });
  assert.equal(r.status, 0, `npm run build failed:\n${r.stdout}\n${r.stderr}`);
}

/** Spawns bin/coffer in `cwd`. */
export function bin(args: string[], cwd: string): Promise<BinRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [join(REPO, 'bin/coffer'), ...args], { cwd, env: { ...process.env, COFFER_CACHE_DIR: join(cwd, 'cache'), NO_COLOR: '1' } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString('utf8')));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString('utf8')));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
    child.stdin.end();
  });
}
