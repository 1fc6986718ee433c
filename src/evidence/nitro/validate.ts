import { timingSafeEqual } from 'node:crypto';
import { fail, notChecked, pass, type Check } from '../../check.js';
import { isAllZero, toHex } from '../../bytes/hex.js';
import type { NitroDocument } from './document.js';

/** What a verified Nitro document is expected to say. */
export interface NitroExpectations {
  /** Reference PCR values by index: each must be present and equal. */
  pcrs?: ReadonlyMap<number, Uint8Array>;
  nonce?: Uint8Array;
  userData?: Uint8Array;
  publicKey?: Uint8Array;
  /** Accept a debug-mode enclave (PCR0, 1 and 2 all zero). Never in production. */
  allowDebug?: boolean;
}

function equal(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}

/**
 * An enclave launched with --debug-mode reports PCR0, PCR1 and PCR2 as zeros: its memory can be
 * read by the parent instance, so its measurements mean nothing.
 */
export function isDebugEnclave(doc: NitroDocument): boolean {
  if (doc.flavour !== 'enclave') return false;
  return [0, 1, 2].every((i) => {
    const v = doc.pcrs.get(i);
    return v !== undefined && isAllZero(v);
  });
}

function field(checks: Check[], name: string, what: string, code: string, want: Uint8Array | undefined, got: Buffer | undefined): void {
  if (want === undefined) return;
  if (!got) checks.push(fail(name, code, `the document carries no ${what}`, { expected: toHex(want), found: 'none' }));
  else if (!equal(Buffer.from(want), got)) checks.push(fail(name, code, `the document's ${what} differs from the expected value`, { expected: toHex(want), found: toHex(got) }));
  else checks.push(pass(name, `the document's ${what} equals the expected value`, { found: toHex(got) }));
}

/** Evaluates every expectation against a verified document; one check per rule, pure. */
export function validateNitroDocument(doc: NitroDocument, exp: NitroExpectations = {}): Check[] {
  const checks: Check[] = [];
  if (doc.flavour === 'enclave') {
    if (isDebugEnclave(doc)) {
      checks.push(
        exp.allowDebug
          ? pass('nitro.debug', 'WARNING: debug-mode enclave (PCR0, PCR1, PCR2 all zero) accepted because debug was explicitly allowed', { found: 'debug' })
          : fail('nitro.debug', 'NITRO_DEBUG_MODE', 'the enclave runs in debug mode (PCR0, PCR1 and PCR2 are all zero): the parent instance can read its memory and its measurements mean nothing', { expected: 'non-zero PCR0/1/2', found: 'all zero' }),
      );
    } else {
      checks.push(pass('nitro.debug', 'the enclave is not in debug mode (PCR0/1/2 are not zero)'));
    }
  }
  if (exp.pcrs) {
    for (const [i, want] of [...exp.pcrs].sort(([a], [b]) => a - b)) {
      const got = doc.pcrs.get(i);
      const name = `nitro.pcr.${i}`;
      if (!got) checks.push(fail(name, 'NITRO_PCR_MISSING', `PCR${i} has a reference value but is not in the document`, { expected: toHex(want) }));
      else if (!equal(Buffer.from(want), got)) checks.push(fail(name, 'NITRO_PCR_MISMATCH', `PCR${i} differs from its reference value`, { expected: toHex(want), found: toHex(got) }));
      else checks.push(pass(name, `PCR${i} equals its reference value`, { found: toHex(got) }));
    }
  } else {
    checks.push(notChecked('nitro.pcrs', 'no reference PCR values were given: the enclave image is not identified'));
  }
  field(checks, 'nitro.nonce', 'nonce', 'NITRO_NONCE_MISMATCH', exp.nonce, doc.nonce);
  if (exp.nonce === undefined) checks.push(notChecked('nitro.nonce', `no nonce was expected: freshness is unproven${doc.nonce ? ` (the document carries nonce ${toHex(doc.nonce).slice(0, 16)}…)` : ' (the document carries none)'}`));
  field(checks, 'nitro.user-data', 'user data', 'NITRO_USER_DATA_MISMATCH', exp.userData, doc.userData);
  field(checks, 'nitro.public-key', 'public key', 'NITRO_PUBLIC_KEY_MISMATCH', exp.publicKey, doc.publicKey);
  return checks;
}
