// Tampering with real reports: any changed byte of the signed region [0, 0x2A0) or of the
// signature's r and s [0x2A0, 0x330) must fail as a signature error, with the real certificates.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { decode as cborDecode } from 'cbor2';
import { CofferError } from '../../../src/errors.js';
import type { Check } from '../../../src/check.js';
import type { Certificate } from '../../../src/pki/certificate.js';
import { verifySnpReport } from '../../../src/evidence/snp/verify.js';
import { fromTsm } from '../../../src/evidence/snp/input.js';
import { GENOA_CHAIN, MILAN_CHAIN, MILAN_VLEK_CHAIN, REAL_AT, certs, expectCoffer, vector } from './real-vectors.js';

const SIGNED_END = 0x2a0;
const RS_END = 0x330;
const REPORT_END = 0x4a0;

interface Sample {
  name: string;
  raw: Buffer;
  certificates: Certificate[];
  /** Test every `step`-th offset (1 = every byte). */
  step: number;
}

function tsmSample(): Sample {
  const m = cborDecode(vector('amd-snp/veraison/sevsnp-tsm-report.cbor')) as { outblob: Uint8Array; auxblob: Uint8Array };
  const ev = fromTsm(m.outblob, m.auxblob);
  return { name: 'veraison TSM outblob (Genoa, certificates from the auxblob)', raw: ev.report, certificates: ev.certificates, step: 7 };
}

const samples: Sample[] = [
  { name: 'go-sev-guest attestation.bin (Milan VCEK)', raw: vector('amd-snp/go-sev-guest/attestation.bin'), certificates: certs('amd-snp/go-sev-guest/vcek.der', MILAN_CHAIN), step: 1 },
  { name: 'trustee test-vlek-report.bin (Milan VLEK)', raw: vector('amd-snp/trustee/test-vlek-report.bin'), certificates: certs('amd-snp/trustee/test-vlek.der', MILAN_VLEK_CHAIN), step: 7 },
  tsmSample(),
  { name: 'trustee test-report.bin (Milan VCEK, ID block)', raw: vector('amd-snp/trustee/test-report.bin'), certificates: certs('amd-snp/trustee/test-vcek.der', MILAN_CHAIN), step: 11 },
  { name: 'trustee e2e-report.bin (Genoa VCEK)', raw: vector('amd-snp/trustee/e2e-report.bin'), certificates: certs('amd-snp/trustee/e2e-vcek.der', GENOA_CHAIN), step: 11 },
  { name: 'Azure az-milan-hcl-report.snp.bin (Milan VCEK)', raw: vector('amd-snp/azure-derived/az-milan-hcl-report.snp.bin'), certificates: certs('azure-cvm/trustee-az-snp-vtpm/vcek.pem'), step: 11 },
];

/** What verifying `raw` does: 'ok', or the error code, or a description of a foreign exception. */
function outcome(raw: Buffer, s: Sample): { code: string; lastCheck?: Check; kind?: string } {
  try {
    verifySnpReport(raw, { at: REAL_AT, certificates: s.certificates });
    return { code: 'ok' };
  } catch (e) {
    if (!(e instanceof CofferError)) return { code: `not a CofferError: ${String(e)}` };
    const checks = e.details?.checks as Check[] | undefined;
    return { code: e.code, kind: e.kind, ...(checks?.length ? { lastCheck: checks[checks.length - 1] } : {}) };
  }
}

/** Flips (XOR) one byte at every `step`-th offset of [from, to) and collects every offset whose outcome is not a signature failure. */
function sweep(s: Sample, from: number, to: number, mask: number): string[] {
  const wrong: string[] = [];
  const copy = Buffer.from(s.raw);
  for (let off = from; off < to; off += s.step) {
    const orig = copy[off] as number;
    copy[off] = orig ^ mask;
    const o = outcome(copy, s);
    copy[off] = orig;
    const good = o.code === 'SNP_BAD_SIGNATURE' && o.kind === 'verify' && o.lastCheck?.name === 'snp.signature' && o.lastCheck.ok === false;
    if (!good) wrong.push(`0x${off.toString(16)}^0x${mask.toString(16)} → ${o.code} (last check ${o.lastCheck?.name ?? 'none'})`);
  }
  assert.ok(s.raw.equals(copy), 'the sample was restored');
  return wrong;
}

describe('flipping any byte of a real report fails as a signature error', () => {
  for (const s of samples) {
    test(`${s.name}: the untouched report verifies`, () => {
      assert.equal(outcome(s.raw, s).code, 'ok');
    });

    test(`${s.name}: every ${s.step === 1 ? '' : `${s.step}th `}byte of the signed region [0, 0x2A0) → SNP_BAD_SIGNATURE`, () => {
      const wrong = [...sweep(s, 0, SIGNED_END, 0xff), ...sweep(s, 0, SIGNED_END, 0x01)];
      assert.deepEqual(wrong, []);
    });

    test(`${s.name}: every ${s.step === 1 ? '' : `${s.step}th `}byte of r and s [0x2A0, 0x330) → SNP_BAD_SIGNATURE`, () => {
      const wrong = [...sweep(s, SIGNED_END, RS_END, 0xff), ...sweep(s, SIGNED_END, RS_END, 0x80)];
      assert.deepEqual(wrong, []);
    });
  }

  test('the last byte of the signed region and the first and last bytes of r and s are covered even with a step', () => {
    for (const s of samples) {
      for (const off of [0x29f, 0x2a0, 0x2cf, 0x2e7, 0x2e8, 0x317, 0x32f]) {
        const copy = Buffer.from(s.raw);
        copy[off] = (copy[off] as number) ^ 0x01;
        expectCoffer(() => verifySnpReport(copy, { at: REAL_AT, certificates: s.certificates }), 'SNP_BAD_SIGNATURE', { checkName: 'snp.signature', kind: 'verify' });
      }
    }
  });

  test('swapping r and s, zeroing the signature, and a report signed by nobody all fail as signature errors', () => {
    const s = samples[0] as Sample;
    const swapped = Buffer.from(s.raw);
    s.raw.copy(swapped, 0x2a0, 0x2e8, 0x330);
    s.raw.copy(swapped, 0x2e8, 0x2a0, 0x2e8);
    const zero = Buffer.from(s.raw);
    zero.fill(0, 0x2a0, 0x330);
    for (const bad of [swapped, zero]) {
      expectCoffer(() => verifySnpReport(bad, { at: REAL_AT, certificates: s.certificates }), 'SNP_BAD_SIGNATURE', { checkName: 'snp.signature' });
    }
  });
});

describe('the signature reserved tail [0x330, 0x4A0) is not signed but must be zero', () => {
  test('go-sev-guest attestation.bin: a non-zero byte anywhere in the tail is refused with RESERVED_NOT_ZERO naming the offset', () => {
    const s = samples[0] as Sample;
    const wrong: string[] = [];
    const copy = Buffer.from(s.raw);
    for (let off = RS_END; off < REPORT_END; off++) {
      copy[off] = 0x5a;
      try {
        verifySnpReport(copy, { at: REAL_AT, certificates: s.certificates });
        wrong.push(`0x${off.toString(16)} accepted`);
      } catch (e) {
        if (!(e instanceof CofferError) || e.code !== 'RESERVED_NOT_ZERO' || e.kind !== 'input' || !e.message.includes(`byte at 0x${off.toString(16)}`)) {
          wrong.push(`0x${off.toString(16)} → ${e instanceof CofferError ? `${e.code} ${e.message}` : String(e)}`);
        }
      }
      copy[off] = 0;
    }
    assert.deepEqual(wrong, []);
  });

  test('the other real reports refuse a non-zero tail byte too', () => {
    for (const s of samples.slice(1)) {
      for (const off of [0x330, 0x400, 0x49f]) {
        const copy = Buffer.from(s.raw);
        copy[off] = 1;
        expectCoffer(() => verifySnpReport(copy, { at: REAL_AT, certificates: s.certificates }), 'RESERVED_NOT_ZERO', { kind: 'input', message: new RegExp(`byte at 0x${off.toString(16)}`) });
      }
    }
  });

  test('a tail refusal carries details.checks ending in the failed snp.format check', () => {
    const s = samples[0] as Sample;
    const copy = Buffer.from(s.raw);
    copy[0x400] = 1;
    expectCoffer(() => verifySnpReport(copy, { at: REAL_AT, certificates: s.certificates }), 'RESERVED_NOT_ZERO', { checkName: 'snp.format' });
  });
});
