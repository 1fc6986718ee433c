import { timingSafeEqual } from 'node:crypto';
import { fail, pass, type Check } from '../../check.js';
import { toHex } from '../../bytes/hex.js';
import type { TpmQuote } from './structures.js';
import type { PcrBanks } from './pcrs.js';

/** What a verified quote is expected to say. */
export interface TpmExpectations {
  /** Reference PCR values: each must be quoted and equal the verified value. */
  pcrs?: PcrBanks;
  /** Require clockInfo.safe (the TPM's clock never went backwards since it was last reported). */
  requireSafeClock?: boolean;
}

function equal(a: Buffer, b: Buffer): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}

/**
 * Evaluates every expectation against a verified quote and the PCR values its digest was
 * checked against (`verifiedPcrs`, from verifyTpmQuote). One check per rule; pure.
 */
export function validateTpmQuote(quote: TpmQuote, verifiedPcrs: PcrBanks | undefined, exp: TpmExpectations): Check[] {
  const checks: Check[] = [];
  if (exp.pcrs) {
    for (const [bank, refs] of exp.pcrs) {
      for (const [index, want] of [...refs].sort(([a], [b]) => a - b)) {
        const name = `tpm.pcr.${bank}.${index}`;
        const got = verifiedPcrs?.get(bank)?.get(index);
        if (!got) {
          checks.push(fail(name, 'TPM_PCR_NOT_QUOTED', `PCR ${bank}:${index} has a reference value but is not among the verified, quoted PCRs`, { expected: toHex(want) }));
        } else if (!equal(got, want)) {
          checks.push(fail(name, 'TPM_PCR_VALUE_MISMATCH', `PCR ${bank}:${index} differs from its reference value`, { expected: toHex(want), found: toHex(got) }));
        } else {
          checks.push(pass(name, `PCR ${bank}:${index} equals its reference value`, { found: toHex(got) }));
        }
      }
    }
  }
  if (exp.requireSafeClock) {
    checks.push(
      quote.clockInfo.safe
        ? pass('tpm.clock.safe', 'the TPM clock is safe (never reported a value it later went back from)')
        : fail('tpm.clock.safe', 'TPM_CLOCK_NOT_SAFE', 'the TPM clock is not safe: it may have reported a time it later went back from', { expected: 'safe = 1', found: 'safe = 0' }),
    );
  }
  return checks;
}
