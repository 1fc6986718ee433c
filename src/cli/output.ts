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

// Control characters (C0 but tab and newline, DEL, C1) and bidirectional overrides, which a
// certificate subject, a variable name or a file in evidence can carry to rewrite the terminal.
// eslint-disable-next-line no-control-regex -- matching control characters is the point
const UNPRINTABLE = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;

/**
 * Text as a terminal should show it: every character in UNPRINTABLE written as a visible `\uXXXX`.
 * The same escape is valid inside a JSON string and means the same character there, so `--json`
 * output stays valid and unchanged in meaning (JSON.stringify leaves C1 and bidi characters raw).
 */
export function printable(text: string): string {
  return text.replace(UNPRINTABLE, (c) => `\\u${(c.codePointAt(0) as number).toString(16).padStart(4, '0')}`);
}

export const processIo: Io = {
  out: (t) => process.stdout.write(printable(t.endsWith('\n') ? t : `${t}\n`)),
  err: (t) => process.stderr.write(printable(t.endsWith('\n') ? t : `${t}\n`)),
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
