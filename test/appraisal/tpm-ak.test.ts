// Rule tpm.ak: a policy that names a TPM attestation key accepts only quotes signed by it. The
// fingerprint is computed here independently (node's X509Certificate over the real GCE AK
// certificate; the TPM name as 000b || SHA-256 of the TPMT_PUBLIC file), not by the code under test.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate, createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ReferenceStore, emptyClaims, evaluate, parsePolicy, type AppraisalResult, type Policy } from '../../src/appraisal/index.js';
import { AT, VECTORS, caseClaims, examplePolicy } from './helpers.js';

const DIR = join(VECTORS, 'tpm-quote/gce-shielded-vm-cos85/gce-cos-85-nonce9009');
const SPKI_SHA256 = createHash('sha256').update(new X509Certificate(readFileSync(join(DIR, 'ak_cert.der'))).publicKey.export({ type: 'spki', format: 'der' })).digest('hex');
const TPM_NAME = `000b${createHash('sha256').update(readFileSync(join(DIR, 'ak_pub.tpmt'))).digest('hex')}`;

const run = (policy: Policy, claims = caseClaims('tpm-gce-cos85')): AppraisalResult => evaluate(claims.claims, policy, new ReferenceStore(), { at: AT, ...(claims.nonce !== undefined ? { nonce: claims.nonce } : {}) });
const akRule = (r: AppraisalResult) => {
  const x = r.rules.find((y) => y.id === 'tpm.ak');
  assert.ok(x, 'no tpm.ak rule');
  return x;
};

test('the claims carry the AK fingerprint (SPKI SHA-256) and TPM name', () => {
  const k = caseClaims('tpm-gce-cos85').claims.signingKeys.find((s) => s.kind === 'tpm-ak');
  assert.equal(k?.keySha256, SPKI_SHA256);
  assert.equal(k?.tpmName, TPM_NAME);
});

test('tpm.ak: the named AK passes, by fingerprint (any case) or TPM name', () => {
  for (const id of [SPKI_SHA256, SPKI_SHA256.toUpperCase(), TPM_NAME]) {
    const r = run({ ...examplePolicy(), tpm: { ak: ['00'.repeat(32), id.toLowerCase()] } });
    assert.equal(akRule(r).status, 'pass', id);
    assert.equal(r.verdict, 'pass', r.denial);
    assert.equal(r.trustworthiness['instance-identity'], 2);
  }
  // Through the policy parser: mixed case is normalised.
  const p = parsePolicy(`id: t\nversion: 1\ntpm:\n  ak: ["${SPKI_SHA256.toUpperCase()}"]\n`);
  assert.deepEqual(p.tpm?.ak, [SPKI_SHA256]);
  assert.equal(akRule(run(p)).status, 'pass');
});

test('tpm.ak: another AK (one flipped bit), or evidence without a TPM quote, fails', () => {
  const flipped = (h: string) => `${h.slice(0, -1)}${(parseInt(h.slice(-1), 16) ^ 1).toString(16)}`;
  for (const id of [flipped(SPKI_SHA256), flipped(TPM_NAME)]) {
    const r = run({ ...examplePolicy(), tpm: { ak: [id] } });
    assert.equal(akRule(r).status, 'fail');
    assert.equal(r.verdict, 'fail');
    assert.match(r.denial ?? '', /^denied by rule tpm\.ak: /);
    assert.match(akRule(r).found ?? '', new RegExp(SPKI_SHA256));
  }
  const snp = run({ ...examplePolicy(), tpm: { ak: [SPKI_SHA256] } }, caseClaims('snp-trustee-milan'));
  assert.equal(akRule(snp).status, 'fail');
  assert.equal(akRule(snp).found, 'no TPM attestation key');
  const nothing = evaluate(emptyClaims(), { ...examplePolicy(), tpm: { ak: [SPKI_SHA256] } }, new ReferenceStore(), { at: AT });
  assert.equal(akRule(nothing).status, 'fail');
  // A TPM AK claim without a fingerprint (not produced by claimsFromTpm) matches nothing.
  const bare = caseClaims('tpm-gce-cos85');
  bare.claims.signingKeys = bare.claims.signingKeys.map((k) => ({ evidence: k.evidence, kind: k.kind, subject: k.subject, issuer: k.issuer }));
  assert.equal(akRule(run({ ...examplePolicy(), tpm: { ak: [SPKI_SHA256] } }, bare)).status, 'fail');
});

test('tpm.ak in a policy: fingerprints and names only', () => {
  for (const bad of ['ab'.repeat(31), `000b${'ab'.repeat(31)}`, `0004${'ab'.repeat(20)}`, 'zz'.repeat(32)]) {
    assert.throws(() => parsePolicy(`id: t\nversion: 1\ntpm:\n  ak: ["${bad}"]\n`), (e: Error & { code?: string }) => e.code === 'POLICY_INVALID' && /tpm\.ak\.0/.test(e.message), bad);
  }
  assert.throws(() => parsePolicy('id: t\nversion: 1\ntpm:\n  ak: []\n'), /tpm\.ak/);
  assert.throws(() => parsePolicy(`id: t\nversion: 1\ntpm:\n  ak: ["${SPKI_SHA256}"]\n  pcrs: {}\n`), /unknown field/);
});

test('tpm.ak: evidence with several TPM AKs passes only when every one of them is named', () => {
  const two = caseClaims('tpm-gce-cos85');
  const first = two.claims.signingKeys.find((k) => k.kind === 'tpm-ak');
  assert.ok(first);
  const OTHER = 'ab'.repeat(32);
  two.claims.signingKeys = [...two.claims.signingKeys, { ...first, keySha256: OTHER, tpmName: `000b${'cd'.repeat(32)}` }];
  assert.equal(akRule(run({ ...examplePolicy(), tpm: { ak: [SPKI_SHA256] } }, two)).status, 'fail', 'one named, one not');
  assert.equal(akRule(run({ ...examplePolicy(), tpm: { ak: [OTHER] } }, two)).status, 'fail', 'the other named, the first not');
  assert.equal(akRule(run({ ...examplePolicy(), tpm: { ak: [SPKI_SHA256, OTHER] } }, two)).status, 'pass', 'both named');
  // A name is compared whole: a fingerprint is not a prefix or suffix of a TPM name.
  assert.equal(akRule(run({ ...examplePolicy(), tpm: { ak: [TPM_NAME.slice(4)] } })).status, 'fail');
});
