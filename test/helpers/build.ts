// Builds dist/ once if it is missing or older than src/ (CI's `npm ci` builds it through
// prepare), for the tests that spawn the real bin/coffer.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO = fileURLToPath(new URL('../../', import.meta.url));

/** The newest modification time of any file under `dir`. */
function newest(dir: string): number {
  let t = 0;
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    const s = statSync(p);
    t = Math.max(t, s.isDirectory() ? newest(p) : s.mtimeMs);
  }
  return t;
}

/** Builds dist/ when it is missing or stale; use as `before(ensureBuilt)`. */
export function ensureBuilt(): void {
  const main = join(REPO, 'dist/cli/main.js');
  if (existsSync(main) && statSync(main).mtimeMs >= newest(join(REPO, 'src'))) return;
  const r = spawnSync('npm', ['run', 'build'], { cwd: REPO, encoding: 'utf8' });
  assert.equal(r.status, 0, `npm run build failed:\n${r.stdout}\n${r.stderr}`);
}
