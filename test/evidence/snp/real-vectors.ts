// Shared by the SNP tests: where the real vectors are, how to load them, and one assertion
// helper for "this fails with that code, and the checks say so".
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CofferError } from '../../../src/errors.js';
import type { Check } from '../../../src/check.js';
import { Certificate, parseCertificates } from '../../../src/pki/certificate.js';
import type { ProductAnchor } from '../../../src/pki/roots.js';
import type { FakeAmd } from '../../helpers/amd-ca.js';

export const VECTORS = fileURLToPath(new URL('../../../../shared/vectors/', import.meta.url));

export const vector = (rel: string): Buffer => readFileSync(join(VECTORS, rel));
export const certs = (...rels: string[]): Certificate[] => rels.flatMap((r) => parseCertificates(vector(r), r));

interface ManifestEntry {
  file: string;
  expected: Record<string, string | number>;
}
let manifestCache: ManifestEntry[] | undefined;
/** The manifest's `expected` object for a vector (fails the test if the entry is missing). */
export function expectedFor(file: string): Record<string, string | number> {
  manifestCache ??= (JSON.parse(vector('manifest.json').toString('utf8')) as { files: ManifestEntry[] }).files;
  const e = manifestCache.find((f) => f.file === file);
  assert.ok(e, `manifest.json has no entry for ${file}`);
  return e.expected;
}

/** A time at which every real SNP certificate in the vectors is valid (the VLEK expires 2025-12-10). */
export const REAL_AT = new Date('2025-06-01T00:00:00Z');

export const MILAN_CHAIN = 'amd-snp/amd-certs/ask_ark_milan.pem';
export const MILAN_VLEK_CHAIN = 'amd-snp/amd-certs/ask_ark_milan_vlek.pem';
export const GENOA_CHAIN = 'amd-snp/amd-certs/ask_ark_genoa.pem';

/** The fake AMD's ARK as the only trusted root for its product. */
export function fakeRoots(...fakes: FakeAmd[]): ProductAnchor[] {
  return fakes.map((f) => ({ cert: Certificate.fromDer(f.ark.der), label: `fake ARK-${f.product}`, product: f.product }));
}

/**
 * Runs `fn`, which must throw a CofferError with `code` (and `kind` when given); when
 * `checkName` is given, `details.checks` must end with a failed check of that name and code.
 */
export function expectCoffer(fn: () => unknown, code: string, opts: { checkName?: string; kind?: 'input' | 'verify'; message?: RegExp } = {}): CofferError {
  let thrown: unknown;
  try {
    fn();
  } catch (e) {
    thrown = e;
  }
  assert.ok(thrown !== undefined, `expected ${code}, but nothing was thrown`);
  if (!(thrown instanceof CofferError)) {
    assert.fail(`expected a CofferError ${code}, got ${thrown instanceof Error ? `${thrown.name}: ${thrown.message}` : String(thrown)}`);
  }
  assert.equal(thrown.code, code, `expected ${code}, got ${thrown.code}: ${thrown.message}`);
  if (opts.kind) assert.equal(thrown.kind, opts.kind, `${code} should be of kind ${opts.kind}`);
  if (opts.message) assert.match(thrown.message, opts.message);
  if (opts.checkName) {
    const checks = thrown.details?.checks as Check[] | undefined;
    assert.ok(Array.isArray(checks) && checks.length > 0, `${code}: details.checks is missing or empty`);
    const last = checks[checks.length - 1] as Check;
    assert.equal(last.name, opts.checkName, `${code}: last check is ${last.name}, expected ${opts.checkName}`);
    assert.equal(last.ok, false, `${code}: last check ${last.name} should have failed`);
    assert.equal(last.code, code);
    // Everything before the failing check passed: the verifier stops at the first failure.
    assert.ok(checks.slice(0, -1).every((c) => c.ok), `${code}: a check before the last one failed`);
  }
  return thrown;
}
