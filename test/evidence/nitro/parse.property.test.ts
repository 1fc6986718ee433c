// The Nitro parsers (COSE_Sign1, attestation document, NitroTPM bundle) and the verifier on
// arbitrary and mutated input: a value or a CofferError, never another exception, never a hang.
import { test } from 'node:test';
import fc from 'fast-check';
import { parseCoseSign1, parseNitroDocument, parseNitroTpmBundle, verifyNitroDocument, tpmtSignatureFromDer } from '../../../src/evidence/nitro/index.js';
import { detectEvidenceKind } from '../../../src/evidence/detect.js';
import { mutated, valueOrCoffer } from './property.js';
import { vec } from './vectors.js';

const DOCS = ['aws-nitro/evervault/valid-attestation-doc-bytes.cbor', 'aws-nitro/nitrotpm-vaportpm/derived/nitrotpm_attestation_doc.cbor'].map(vec);
const AT = new Date('2026-06-01T00:00:00Z');

test('parseCoseSign1 / parseNitroDocument / detectEvidenceKind: arbitrary bytes', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 512 }), (b) => {
      valueOrCoffer('parseCoseSign1', () => parseCoseSign1(b));
      valueOrCoffer('parseNitroDocument', () => parseNitroDocument(b));
      valueOrCoffer('detectEvidenceKind', () => detectEvidenceKind(b));
    }),
    { numRuns: 400 },
  );
});

test('parseNitroDocument + verifyNitroDocument: mutated real documents', () => {
  fc.assert(
    fc.property(mutated(DOCS), (b) => {
      valueOrCoffer('verify', () => verifyNitroDocument(parseNitroDocument(b), { at: AT }));
    }),
    { numRuns: 150 },
  );
});

test('parseNitroTpmBundle and tpmtSignatureFromDer: arbitrary JSON and bytes', () => {
  fc.assert(
    fc.property(fc.json(), fc.uint8Array({ maxLength: 80 }), (j, b) => {
      valueOrCoffer('bundle', () => parseNitroTpmBundle(j));
      valueOrCoffer('der', () => tpmtSignatureFromDer(b, 'sha256'));
    }),
    { numRuns: 300 },
  );
});
