import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as asn1js from 'asn1js';
import { fromBerSafe } from '../../src/pki/ber.js';
import { splitSignedDer } from '../../src/pki/signature.js';
import { CofferError } from '../../src/errors.js';

// A GeneralizedTime (tag 0x18) whose content is not a time: asn1js throws from fromBER itself
// ("Wrong input string for conversion") instead of reporting offset -1.
const badTime = Buffer.from([0x30, 0x06, 0x18, 0x04, 0x28, 0x28, 0x28, 0x28]);

test('asn1js itself throws on a malformed GeneralizedTime (the reason fromBerSafe exists)', () => {
  assert.throws(() => asn1js.fromBER(badTime), /Wrong input string for conversion/);
});

test('fromBerSafe reports it as offset -1 with the reason, and parses good DER as asn1js does', () => {
  const r = fromBerSafe(badTime);
  assert.equal(r.offset, -1);
  assert.match(r.result.error, /Wrong input string/);
  const good = Buffer.from([0x30, 0x03, 0x02, 0x01, 0x05]);
  const g = fromBerSafe(good);
  assert.equal(g.offset, good.length);
  assert.ok(g.result instanceof asn1js.Sequence);
});

test('a signed structure carrying such a time fails as a CofferError (PKI_BAD_DER), not a library exception', () => {
  assert.throws(() => splitSignedDer(badTime, 'certificate'), (e: unknown) => e instanceof CofferError && e.code === 'PKI_BAD_DER');
});
