// Shared property-test helpers: arbitrary input must produce a value or a CofferError, never
// another exception, never a hang.
import fc from 'fast-check';

export { valueOrCoffer } from '../../helpers/property.js';

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
