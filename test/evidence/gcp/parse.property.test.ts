// The go-tpm-tools Attestation protobuf reader and the GCE verifier on arbitrary and mutated input:
// a value or a CofferError, never another exception, never a hang.
import { test } from 'node:test';
import fc from 'fast-check';
import { parseGceAttestation, verifyGceAttestation } from '../../../src/evidence/gcp/index.js';
import { mutated, valueOrCoffer } from '../nitro/property.js';
import { vec } from '../nitro/vectors.js';

const PB = [vec('tpm-quote/gce-shielded-vm-cos85/gce-cos-85-nonce9009.pb')];
const AT = new Date('2025-06-01T00:00:00Z');

test('parseGceAttestation: arbitrary bytes', () => {
  fc.assert(fc.property(fc.uint8Array({ maxLength: 600 }), (b) => valueOrCoffer('pb', () => parseGceAttestation(b))), { numRuns: 500 });
});

test('parseGceAttestation + verifyGceAttestation: mutated real attestation', () => {
  fc.assert(
    fc.property(mutated(PB), (b) => valueOrCoffer('verify', () => verifyGceAttestation(parseGceAttestation(b), { at: AT, nonce: Buffer.from('9009', 'hex') }))),
    { numRuns: 60 },
  );
});
