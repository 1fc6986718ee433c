// Property-test helper: arbitrary input must produce a value or a CofferError, never another
// exception, never a hang.
import assert from 'node:assert/strict';
import { performance } from 'node:perf_hooks';
import { CofferError } from '../../src/errors.js';

/** Generous per-call budget: any parse of a few KiB that takes this long is a hang in the making. */
export const HANG_MS = 2000;

export interface ValueOrCofferOptions {
  /** Also require the CofferError's kind to be one of these (e.g. ['input', 'verify']). */
  kinds?: readonly string[];
}

/** Calls `fn`; returns normally if it gave a value or threw a CofferError, else fails the property. */
export function valueOrCoffer(what: string, fn: () => unknown, opts: ValueOrCofferOptions = {}): void {
  const t0 = performance.now();
  let thrown: unknown;
  try {
    fn();
  } catch (e) {
    thrown = e;
  }
  const ms = performance.now() - t0;
  if (ms > HANG_MS) throw new Error(`${what} took ${ms.toFixed(0)} ms`);
  if (thrown === undefined) return;
  if (!(thrown instanceof CofferError)) throw new Error(`${what} threw ${thrown instanceof Error ? `${thrown.name}: ${thrown.message}` : String(thrown)} instead of a CofferError`);
  assert.match(thrown.code, /^[A-Z0-9_]+$/, `odd code ${thrown.code}`);
  if (opts.kinds) assert.ok(opts.kinds.includes(thrown.kind), `odd kind ${thrown.kind}`);
}
