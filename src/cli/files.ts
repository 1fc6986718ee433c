import { readFileSync, statSync } from 'node:fs';
import { inputError } from '../errors.js';
import { fromHex } from '../bytes/hex.js';

/** Reads a file (or standard input for "-"), turning every I/O error into one clear line. */
export function readInput(path: string, what = 'file'): Buffer {
  try {
    return readFileSync(path === '-' ? 0 : path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'does not exist' : code === 'EISDIR' ? 'is a directory' : code === 'EACCES' ? 'is not readable' : 'cannot be read';
    throw inputError('FILE_UNREADABLE', `${what} ${path} ${why}`);
  }
}

export function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

const ISO_TIME = /^(\d{4})-(\d{2})-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(?:\.\d{1,9})?)?(Z|[+-]\d{2}:\d{2})?)?$/;

/** Strict ISO 8601 (date, or date-time with an optional offset; UTC when none): no rollover, no junk. */
export function parseTime(s: string | undefined): Date {
  if (s === undefined) return new Date();
  const bad = () => inputError('BAD_TIME', `--at "${s}" is not an ISO 8601 time (e.g. 2025-06-01 or 2025-06-01T12:00:00Z)`);
  const m = ISO_TIME.exec(s);
  if (!m) throw bad();
  const [y, mo, d, h = '0', mi = '0', sec = '0'] = m.slice(1).map((x) => x ?? undefined) as string[];
  const check = new Date(Date.UTC(Number(y), Number(mo) - 1, Number(d), Number(h), Number(mi), Number(sec)));
  if (check.getUTCFullYear() !== Number(y) || check.getUTCMonth() !== Number(mo) - 1 || check.getUTCDate() !== Number(d) || check.getUTCHours() !== Number(h) || check.getUTCMinutes() !== Number(mi) || check.getUTCSeconds() !== Number(sec)) {
    throw bad();
  }
  const date = new Date(m[4] === undefined ? `${s}T00:00:00Z` : m[7] === undefined ? `${s}Z` : s);
  if (Number.isNaN(date.getTime())) throw bad();
  return date;
}

/** Hex of an exact length, or at most `max` bytes when `exact` is false. */
export function hexArg(s: string, flag: string, bytes: number, exact: boolean): Buffer {
  const b = fromHex(s, flag);
  if (exact ? b.length !== bytes : b.length > bytes || b.length === 0) {
    throw inputError('BAD_HEX', `${flag} must be ${exact ? 'exactly' : 'at most'} ${bytes} bytes (${bytes * 2} hex digits), got ${b.length}`);
  }
  return b;
}

export function intArg(s: string, flag: string, max: number): number {
  if (!/^\d+$/.test(s) || Number(s) > max) throw inputError('BAD_NUMBER', `${flag} must be an integer from 0 to ${max}, got "${s}"`);
  return Number(s);
}

export function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}
