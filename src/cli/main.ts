import { Command, CommanderError } from 'commander';
import { reportError, toJson, processIo, EXIT_OK, EXIT_USAGE, type Io, type GlobalOptions } from './output.js';
import { registerSnp } from './snp.js';
import { registerStatus } from './status.js';
import { registerTpm } from './tpm.js';
import { registerEventlog } from './eventlog.js';
import { registerTdx, registerSgx } from './tdx.js';
import { registerPolicy } from './policy.js';
import { registerResult } from './result.js';
import { registerSecureboot } from './secureboot.js';
import { registerVerity } from './verity.js';
import { registerUki } from './uki.js';
import { registerImage } from './image.js';
import { registerExplain } from './explain.js';
import { registerEvidence } from './evidence.js';
import { registerBroker } from './broker.js';
import { registerFetch } from './fetch.js';
import { registerAgent } from './agent.js';
import { registerWorkload } from './workload.js';

export const VERSION = '0.1.0';

/** What a command action receives: its io and a way to set the process exit status. */
export interface CliContext {
  io: Io;
  setExit(code: number): void;
}

/** Adds the options every command takes. */
export function common(cmd: Command): Command {
  return cmd.option('--json', 'machine-readable JSON output').option('--debug', 'show stack traces on failure');
}

/**
 * Wraps an action so that any error becomes one line (or one JSON object) and an exit status.
 * The action returns its own exit status.
 */
export function action<A extends unknown[]>(
  ctx: CliContext,
  fn: (...args: A) => Promise<number> | number,
): (...args: A) => Promise<void> {
  return async (...args: A) => {
    const cmd = args[args.length - 1] as Command;
    const opts = cmd.opts<GlobalOptions>();
    try {
      ctx.setExit(await fn(...args));
    } catch (e) {
      ctx.setExit(reportError(e, opts, ctx.io));
    }
  };
}

export function buildProgram(ctx: CliContext): Command {
  const program = new Command('coffer')
    .description('Coffer: verify confidential-VM evidence down to the vendor roots')
    .version(VERSION)
    .configureOutput({
      writeOut: (s) => ctx.io.out(s),
      writeErr: (s) => ctx.io.err(s),
      // One line for a usage error, never a help dump.
      outputError: (s, write) => write(`coffer: ${s.trim().replace(/^error: /, 'usage: ')} (see --help)\n`),
    })
    .exitOverride();
  registerStatus(program, ctx);
  registerSnp(program, ctx);
  registerTpm(program, ctx);
  registerEventlog(program, ctx);
  registerTdx(program, ctx);
  registerSgx(program, ctx);
  registerPolicy(program, ctx);
  registerResult(program, ctx);
  registerExplain(program, ctx);
  registerEvidence(program, ctx);
  registerBroker(program, ctx);
  registerFetch(program, ctx);
  registerAgent(program, ctx);
  registerSecureboot(program, ctx);
  registerVerity(program, ctx);
  registerUki(program, ctx);
  registerImage(program, ctx);
  registerWorkload(program, ctx);
  return program;
}

/** Runs the CLI on argv (without node and script) and returns the exit status. */
export async function run(argv: string[], io: Io = processIo): Promise<number> {
  let exit = EXIT_OK;
  const ctx: CliContext = { io, setExit: (c) => (exit = c) };
  const program = buildProgram(ctx);
  if (argv.length === 0) {
    program.outputHelp();
    return EXIT_OK;
  }
  try {
    await program.parseAsync(argv, { from: 'user' });
  } catch (e) {
    if (e instanceof CommanderError) {
      if (e.code === 'commander.helpDisplayed' || e.code === 'commander.version') return EXIT_OK;
      // Help shown because a sub-command was missing is a usage error; asked-for help is not.
      if (e.code === 'commander.help') return e.exitCode === 0 ? EXIT_OK : EXIT_USAGE;
      if (argv.includes('--json')) io.out(toJson({ ok: false, error: { code: 'USAGE', message: e.message.replace(/^error: /, '') } }));
      return EXIT_USAGE;
    }
    return reportError(e, { debug: argv.includes('--debug'), json: argv.includes('--json') }, io);
  }
  return exit;
}
