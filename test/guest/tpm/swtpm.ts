// A private swtpm for one test file: state in a temporary directory, random 127.0.0.1 ports (or
// Unix sockets), run as a direct child so that the test owns, kills and reaps it. tpm2-tools talk
// to it through TPM2TOOLS_TCTI; swtpm serves one client at a time, so a Coffer client must be
// closed before a tpm2-tools command runs (and vice versa: tools run synchronously).
import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const INSTALL = 'apt-get install swtpm swtpm-tools tpm2-tools openssl';

export function which(tool: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${tool}`], { encoding: 'utf8' }).status === 0;
}

export function requireTools(tools: readonly string[]): void {
  const missing = tools.filter((t) => !which(t));
  if (missing.length > 0) assert.fail(`this test needs ${missing.join(', ')}: run \`${INSTALL}\``);
}

export interface Swtpm {
  dir: string;
  /** TCP: data port and control port; unix: socket paths. */
  port?: number;
  ctrlPort?: number;
  socketPath?: string;
  ctrlPath?: string;
  tcti: string;
  child: ChildProcess;
  /** Runs a tpm2-tools command against this swtpm (synchronously); returns stdout. */
  tool(args: string[], opts?: { allowFail?: boolean; input?: Buffer }): { status: number; stdout: string; stderr: string };
  stop(): Promise<void>;
}

export interface SwtpmOptions {
  banks?: string;
  /** Send TPM2_Startup(CLEAR) at start (swtpm --flags startup-clear). Default true. */
  startupClear?: boolean;
  unix?: boolean;
}

async function waitFor(child: ChildProcess, file: string): Promise<boolean> {
  // swtpm writes its pid file once its sockets are bound; a probe connection would not do
  // (swtpm serves one client at a time and a probe can leave the next client waiting).
  // Generous on a loaded machine: swtpm normally binds within milliseconds.
  const deadline = Date.now() + 20_000;
  while (Date.now() < deadline && child.exitCode === null) {
    if (existsSync(file)) return true;
    await new Promise((r) => setTimeout(r, 10));
  }
  return false;
}

export async function startSwtpm(opts: SwtpmOptions = {}): Promise<Swtpm> {
  const dir = mkdtempSync(join(tmpdir(), 'coffer-guest-tpm-'));
  const state = join(dir, 'state');
  mkdirSync(state);
  execFileSync('swtpm_setup', ['--tpm2', '--tpmstate', state, '--pcr-banks', opts.banks ?? 'sha256,sha384', '--overwrite'], { stdio: 'pipe' });
  const flags = opts.startupClear === false ? 'not-need-init' : 'not-need-init,startup-clear';
  for (let attempt = 0; attempt < 8; attempt++) {
    const pidFile = join(dir, `swtpm-${attempt}.pid`);
    let server: string;
    let ctrl: string;
    let port: number | undefined;
    let socketPath: string | undefined;
    let ctrlPath: string | undefined;
    if (opts.unix) {
      socketPath = join(dir, `tpm-${attempt}.sock`);
      ctrlPath = join(dir, `ctrl-${attempt}.sock`);
      server = `type=unixio,path=${socketPath}`;
      ctrl = `type=unixio,path=${ctrlPath}`;
    } else {
      port = 20000 + Math.floor(Math.random() * 40000);
      server = `type=tcp,port=${port},bindaddr=127.0.0.1`;
      ctrl = `type=tcp,port=${port + 1},bindaddr=127.0.0.1`;
    }
    const child = spawn('swtpm', ['socket', '--tpm2', '--tpmstate', `dir=${state}`, '--server', server, '--ctrl', ctrl, '--flags', flags, '--pid', `file=${pidFile}`], { stdio: 'ignore' });
    if (await waitFor(child, pidFile)) {
      const tcti = port !== undefined ? `swtpm:host=127.0.0.1,port=${port}` : `swtpm:path=${socketPath}`;
      const tool = (args: string[], o: { allowFail?: boolean; input?: Buffer } = {}) => {
        const [cmd, ...rest] = args;
        const r = spawnSync(cmd as string, rest, { cwd: dir, encoding: 'utf8', env: { ...process.env, TPM2TOOLS_TCTI: tcti }, timeout: 30_000, ...(o.input ? { input: o.input } : {}) });
        if (!o.allowFail) assert.equal(r.status, 0, `${args.join(' ')} failed:\n${r.stderr}`);
        return { status: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
      };
      const stop = async () => {
        if (child.exitCode === null && child.signalCode === null) {
          const exited = new Promise((r) => child.once('exit', r));
          child.kill();
          await exited;
        }
        rmSync(dir, { recursive: true, force: true });
      };
      return {
        dir,
        ...(port !== undefined ? { port, ctrlPort: port + 1 } : {}),
        ...(socketPath ? { socketPath, ctrlPath } : {}),
        tcti,
        child,
        tool,
        stop,
      } as Swtpm;
    }
    if (child.exitCode === null) {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill();
      await exited;
    }
  }
  rmSync(dir, { recursive: true, force: true });
  return assert.fail('swtpm did not start on any of 8 random ports');
}
