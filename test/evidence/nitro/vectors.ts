// Shared loaders for the cloud evidence tests: vectors by path, manifest expectations, CofferError assertions.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CofferError } from '../../../src/errors.js';

export const VECTORS = fileURLToPath(new URL('../../../../shared/vectors/', import.meta.url));

export function vec(path: string): Buffer {
  return readFileSync(join(VECTORS, path));
}

const manifest = JSON.parse(readFileSync(join(VECTORS, 'manifest.json'), 'utf8')) as { files: { file: string; expected?: Record<string, unknown> }[] };

export function expected(file: string): Record<string, string> {
  const e = manifest.files.find((f) => f.file === file);
  assert.ok(e, `${file} is in the manifest`);
  return (e.expected ?? {}) as Record<string, string>;
}

/** Runs fn, expects a CofferError and returns it. */
export function coffer(fn: () => unknown): CofferError {
  try {
    fn();
  } catch (e) {
    if (e instanceof CofferError) return e;
    throw e;
  }
  assert.fail('expected a CofferError, got a value');
}
