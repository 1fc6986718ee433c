// Running the CLI from tests: in-process through src/cli/main.ts run() with its output captured,
// or as a user runs it, by spawning the real bin/coffer (compiled dist/; see ensureBuilt).
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { run } from '../../src/cli/main.js';
import { REPO } from './build.js';

export const BIN = join(REPO, 'bin/coffer');

export interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** The CLI in-process: run() with stdout and stderr captured as processIo would write them. */
export async function runCli(args: string[]): Promise<Run> {
  let stdout = '';
  let stderr = '';
  const nl = (t: string): string => (t.endsWith('\n') ? t : `${t}\n`);
  const code = await run(args, { out: (t) => void (stdout += nl(t)), err: (t) => void (stderr += nl(t)) });
  return { code, stdout, stderr };
}

export interface BinOptions {
  /** Working directory of the child (default: this process's). */
  cwd?: string;
  /** Extra environment on top of process.env (NO_COLOR=1 is always set). */
  env?: Record<string, string>;
  /** Written to the child's stdin, which is then closed. */
  stdin?: Buffer;
}

/** Spawns the real bin/coffer and collects its exit status and output. */
export function runBin(args: string[], opts: BinOptions = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], { cwd: opts.cwd, env: { ...process.env, ...opts.env, NO_COLOR: '1' } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString('utf8')));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString('utf8')));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(opts.stdin ?? Buffer.alloc(0));
  });
}
