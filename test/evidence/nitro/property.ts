// Shared property-test helpers: arbitrary input must produce a value or a CofferError, never
// another exception, never a hang.
import assert from 'node:assert/strict';
import { performance } from 'node:perf_hooks';
import fc from 'fast-check';
import { CofferError } from '../../../src/errors.js';

const HANG_MS = 2000;

export function valueOrCoffer(what: string, fn: () => unknown): void {
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
  assert.match(thrown.code, /^[A-Z0-9_]+$/);
}

/** A real sample with up to 4 bytes set to arbitrary values, then truncated or extended. */
export function mutated(samples: readonly Buffer[]): fc.Arbitrary<Buffer> {
  return fc
    .tuple(fc.constantFrom(...samples), fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 4 }), fc.integer({ min: -64, max: 16 }))
    .map(([s, edits, cut]) => {
      const b = Buffer.from(s);
      for (const [at, v] of edits) b[at % b.length] = v;
      return cut < 0 ? b.subarray(0, Math.max(0, b.length + cut)) : Buffer.concat([b, Buffer.alloc(cut, 7)]);
    });
}
