// The real `bin/coffer` for the appraisal commands' end-to-end tests (test/cli/policy-cli and
// explain-cli): build dist/ once if it is missing or older than src/ (test/helpers/build.ts), then
// spawn it as a user runs it (test/helpers/cli.ts).
import { join } from 'node:path';
import { runBin, type Run } from '../helpers/cli.js';

export { ensureBuilt } from '../helpers/build.js';

export type BinRun = Run;

/** Spawns bin/coffer in `cwd`, with its cache in `cwd`/cache. */
export function bin(args: string[], cwd: string): Promise<BinRun> {
  return runBin(args, { cwd, env: { COFFER_CACHE_DIR: join(cwd, 'cache') } });
}
