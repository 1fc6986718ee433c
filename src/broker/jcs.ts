import { inputError } from '../errors.js';

/**
 * JSON Canonicalization Scheme (RFC 8785): the one byte string a JSON value hashes to, so that an
 * attester and the broker agree on what REPORT_DATA binds. Numbers are written as ECMAScript's
 * Number-to-string (which JSON.stringify already does for finite numbers), strings with the
 * minimal JSON escapes, object members sorted by the UTF-16 code units of their names. Values
 * that I-JSON forbids (non-finite numbers, lone surrogates) are refused rather than guessed at.
 */
export function canonicalize(value: unknown): string {
  return write(value, 0);
}

/** The canonical form as UTF-8 bytes. */
export function canonicalBytes(value: unknown): Buffer {
  return Buffer.from(canonicalize(value), 'utf8');
}

const MAX_DEPTH = 64;
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

function str(s: string): string {
  if (LONE_SURROGATE.test(s)) throw inputError('JCS_BAD_STRING', 'a string holds a lone UTF-16 surrogate, which RFC 8785 cannot canonicalise');
  // JSON.stringify escapes exactly ", \, and U+0000..U+001F (\b \t \n \f \r, else \u00xx lowercase).
  return JSON.stringify(s);
}

function write(v: unknown, depth: number): string {
  if (depth > MAX_DEPTH) throw inputError('JCS_TOO_DEEP', `JSON nested deeper than ${MAX_DEPTH} levels`);
  if (v === null) return 'null';
  switch (typeof v) {
    case 'boolean':
      return v ? 'true' : 'false';
    case 'number':
      if (!Number.isFinite(v)) throw inputError('JCS_BAD_NUMBER', 'NaN and Infinity have no JSON form');
      return JSON.stringify(v);
    case 'string':
      return str(v);
    case 'object': {
      if (Array.isArray(v)) return `[${v.map((x) => write(x, depth + 1)).join(',')}]`;
      const o = v as Record<string, unknown>;
      // Default sort compares UTF-16 code units, which is what RFC 8785 section 3.2.3 requires.
      const keys = Object.keys(o).filter((k) => o[k] !== undefined).sort();
      return `{${keys.map((k) => `${str(k)}:${write(o[k], depth + 1)}`).join(',')}}`;
    }
    default:
      throw inputError('JCS_BAD_VALUE', `a ${typeof v} has no JSON form`);
  }
}
