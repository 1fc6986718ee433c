// The DCAP parsers against arbitrary input: a value or a CofferError, never another exception,
// never a hang. Quote framing, collateral JSON (whole documents and the dcap-qvl parts form), and
// the full verifier on mutated real quotes (which also drives the PCK extension reader).
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { valueOrCoffer } from '../../helpers/property.js';
import { CofferError } from '../../../src/errors.js';
import { parseDcapQuote, parseEnclaveReport, parseQeIdentity, parseTcbInfo, qeIdentityFromParts, readPckExtensions, tcbInfoFromParts, verifyDcapQuote } from '../../../src/evidence/dcap/index.js';
import { parseCertificates } from '../../../src/pki/certificate.js';
import { AT_2025, Q, vec } from './dcap-vectors.js';

const QUOTES = [Q.spr, Q.v5, Q.cos, Q.trustee, Q.sgx, Q.nonprod].map((q) => vec(q));
const JSONS = ['teekit/tcbInfo-tdx-00806f050000.json', 'go-tdx-guest/collateral/tcbInfo_fmspc50806f000000_2023-06-18.json', 'trustee/qeIdentity_TD_QE_2025-10-28.json'].map((p) => vec(p));

/** A real quote with up to 4 bytes set to arbitrary values, or truncated/extended. */
const mutatedQuote = fc
  .tuple(fc.constantFrom(...QUOTES), fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 4 }), fc.integer({ min: -64, max: 16 }))
  .map(([q, edits, cut]) => {
    const b = Buffer.from(q.subarray(0, Math.min(q.length, 5200)));
    for (const [at, v] of edits) b[at % b.length] = v;
    return cut < 0 ? b.subarray(0, b.length + cut) : Buffer.concat([b, Buffer.alloc(cut, 7)]);
  });

describe('DCAP parsers never throw anything but a CofferError', () => {
  test('parseDcapQuote and parseEnclaveReport on arbitrary bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 6000 }), (b) => {
        valueOrCoffer('parseDcapQuote', () => parseDcapQuote(b));
        valueOrCoffer('parseEnclaveReport', () => parseEnclaveReport(b));
      }),
      { numRuns: 300 },
    );
  });

  test('parseDcapQuote on arbitrary bytes behind a valid v4/v5 header', () => {
    const head = fc.constantFrom(QUOTES[3]?.subarray(0, 48) as Buffer, QUOTES[1]?.subarray(0, 54) as Buffer);
    fc.assert(fc.property(head, fc.uint8Array({ maxLength: 6000 }), (h, b) => valueOrCoffer('parseDcapQuote', () => parseDcapQuote(Buffer.concat([h, b])))), { numRuns: 300 });
  });

  test('verifyDcapQuote (parse, signatures, PCK chain and extensions) on mutated real quotes', () => {
    fc.assert(fc.property(mutatedQuote, (b) => valueOrCoffer('verifyDcapQuote', () => verifyDcapQuote(b, { at: AT_2025, allowTrailingBytes: true }))), { numRuns: 250 });
  });

  test('parseTcbInfo / parseQeIdentity on arbitrary strings and on mutated real documents', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 400 }), (s) => {
        valueOrCoffer('parseTcbInfo', () => parseTcbInfo(Buffer.from(s)));
        valueOrCoffer('parseQeIdentity', () => parseQeIdentity(Buffer.from(s)));
        valueOrCoffer('tcbInfoFromParts', () => tcbInfoFromParts(s, '00'.repeat(64)));
        valueOrCoffer('qeIdentityFromParts', () => qeIdentityFromParts(s, '00'.repeat(64)));
      }),
      { numRuns: 400 },
    );
    const printable = fc.integer({ min: 0x20, max: 0x7e });
    fc.assert(
      fc.property(fc.constantFrom(...JSONS), fc.array(fc.tuple(fc.nat(), printable), { minLength: 1, maxLength: 3 }), (doc, edits) => {
        const b = Buffer.from(doc);
        for (const [at, v] of edits) b[at % b.length] = v;
        valueOrCoffer('parseTcbInfo', () => parseTcbInfo(b));
        valueOrCoffer('parseQeIdentity', () => parseQeIdentity(b));
      }),
      { numRuns: 400 },
    );
  });

  test('deep nesting is refused, not a stack overflow', () => {
    const deep = `{"tcbInfo":${'['.repeat(5000)}${']'.repeat(5000)},"signature":"${'0'.repeat(128)}"}`;
    assert.throws(() => parseTcbInfo(Buffer.from(deep)), (e: unknown) => e instanceof CofferError && e.code === 'DCAP_BAD_COLLATERAL');
  });

  test('readPckExtensions on every real PCK certificate, and refusal on a certificate without them', () => {
    for (const q of QUOTES) {
      const certs = parseCertificates(parseDcapQuote(q, { allowTrailingBytes: true }).signatureData.certification.data.toString('latin1'));
      const leaf = certs.find((c) => !c.isCa);
      assert.ok(leaf);
      const ext = readPckExtensions(leaf);
      assert.equal(ext.tcb.components.length, 16);
      assert.equal(ext.fmspc.length, 6);
      const root = certs.find((c) => c.isSelfIssued);
      assert.ok(root);
      assert.throws(() => readPckExtensions(root), (e: unknown) => e instanceof CofferError && e.code === 'DCAP_BAD_PCK_EXTENSION');
    }
  });
});
