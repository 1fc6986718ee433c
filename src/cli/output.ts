import { CofferError } from '../errors.js';

/** Exit statuses shared by every command. */
export const EXIT_OK = 0;
export const EXIT_FAILED = 1;
export const EXIT_USAGE = 2;

export interface GlobalOptions {
  json?: boolean;
  debug?: boolean;
}

export interface Io {
  out(text: string): void;
  err(text: string): void;
}

export const processIo: Io = {
  out: (t) => process.stdout.write(t.endsWith('\n') ? t : `${t}\n`),
  err: (t) => process.stderr.write(t.endsWith('\n') ? t : `${t}\n`),
};

/** JSON with bigint as decimal strings and buffers as lowercase hex. */
export function toJson(value: unknown): string {
  return JSON.stringify(
    value,
    (_k, v: unknown) => {
      if (typeof v === 'bigint') return v.toString();
      if (v && typeof v === 'object' && (v as { type?: unknown }).type === 'Buffer' && Array.isArray((v as { data?: unknown }).data)) {
        return Buffer.from((v as { data: number[] }).data).toString('hex');
      }
      return v;
    },
    2,
  );
}

/** One line for a failure, never a stack trace unless --debug; returns the exit status. */
export function reportError(e: unknown, opts: GlobalOptions, io: Io): number {
  if (e instanceof CofferError) {
    if (opts.json) io.out(toJson({ ok: false, error: { code: e.code, message: e.message } }));
    else io.err(`coffer: ${e.code}: ${e.message}`);
    if (opts.debug && e.stack) io.err(e.stack);
    return e.kind === 'input' ? EXIT_USAGE : EXIT_FAILED;
  }
  const msg = e instanceof Error ? e.message : String(e);
  if (opts.json) io.out(toJson({ ok: false, error: { code: 'INTERNAL', message: msg } }));
  else io.err(`coffer: internal error: ${msg.split('\n')[0]} (run with --debug for details)`);
  if (opts.debug && e instanceof Error && e.stack) io.err(e.stack);
  return EXIT_FAILED;
}
