// Signed reference values: accepted only when signed (ES384 or EdDSA) by a trusted key; another
// key, an altered byte or no signature at all is refused. A policy can then say "one of the
// reference values of image X" for the launch measurement, PCRs, boot applications and verity hash.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync, createPublicKey } from 'node:crypto';
import { CofferError } from '../../src/errors.js';
import { ReferenceStore, evaluate, parseTrustedKeys, signReferenceValues, verifyReferenceValues, type ReferenceValues } from '../../src/appraisal/index.js';
import { AT, COS_VERITY_ROOT, MEASUREMENT_MILAN, caseClaims, examplePolicy } from './helpers.js';

const es384 = generateKeyPairSync('ec', { namedCurve: 'P-384' });
const ed25519 = generateKeyPairSync('ed25519');
const other = generateKeyPairSync('ec', { namedCurve: 'P-384' });

const values = (over: Partial<ReferenceValues['measurements']> = {}, version = '1.0.0'): ReferenceValues => ({
  image: { id: 'trustee-test', name: 'trustee test guest', version },
  issuedAt: '2025-05-01T00:00:00Z',
  measurements: { snp: [MEASUREMENT_MILAN], verityRootHash: COS_VERITY_ROOT, ...over },
});

async function rejects(p: Promise<unknown>, code: string): Promise<CofferError> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof CofferError, String(e));
    assert.equal(e.code, code, e.message);
    return e;
  }
  assert.fail(`expected ${code}`);
}

test('ES384 and EdDSA documents verify with the trusted key and keep their values', async () => {
  const jws = await signReferenceValues(values(), es384.privateKey, { kid: 'build-1' });
  const doc = await verifyReferenceValues(jws, [es384.publicKey], 'ref.jws');
  assert.equal(doc.alg, 'ES384');
  assert.equal(doc.kid, 'build-1');
  assert.deepEqual(doc.values.measurements.snp, [MEASUREMENT_MILAN]);
  assert.equal(doc.values.image.version, '1.0.0');
  const ed = await verifyReferenceValues(await signReferenceValues(values(), ed25519.privateKey), [other.publicKey, ed25519.publicKey]);
  assert.equal(ed.alg, 'EdDSA');
  assert.equal(ed.signer, 1);
});

test('another key, an altered character, or no signature: refused', async () => {
  const jws = await signReferenceValues(values(), other.privateKey);
  await rejects(verifyReferenceValues(jws, [es384.publicKey], 'ref.jws'), 'REFERENCE_BAD_SIGNATURE');
  const good = await signReferenceValues(values(), es384.privateKey);
  const [h, p, s] = good.split('.') as [string, string, string];
  // One character of the payload: the signed bytes change.
  const i = 20;
  const altered = `${h}.${p.slice(0, i)}${p[i] === 'A' ? 'B' : 'A'}${p.slice(i + 1)}.${s}`;
  await rejects(verifyReferenceValues(altered, [es384.publicKey]), 'REFERENCE_BAD_SIGNATURE');
  const unsignedHeader = Buffer.from(JSON.stringify({ alg: 'none' })).toString('base64url');
  await rejects(verifyReferenceValues(`${unsignedHeader}.${p}.`, [es384.publicKey]), 'REFERENCE_UNSIGNED');
  await rejects(verifyReferenceValues(`${h}.${p}.`, [es384.publicKey]), 'REFERENCE_UNSIGNED');
  const hs = Buffer.from(JSON.stringify({ alg: 'HS256' })).toString('base64url');
  await rejects(verifyReferenceValues(`${hs}.${p}.${s}`, [es384.publicKey]), 'REFERENCE_BAD_ALGORITHM');
  await rejects(verifyReferenceValues('not a jws', [es384.publicKey]), 'REFERENCE_BAD_FORMAT');
  await rejects(verifyReferenceValues(good, []), 'REFERENCE_NO_TRUSTED_KEY');
  await rejects(ReferenceStore.load([{ jws: good, source: 'a' }, { jws, source: 'b' }], [es384.publicKey]), 'REFERENCE_BAD_SIGNATURE');
});

test('trusted keys from PEM, JWK and JWKS', async () => {
  const pem = es384.publicKey.export({ format: 'pem', type: 'spki' }).toString();
  const jwk = es384.publicKey.export({ format: 'jwk' });
  const jws = await signReferenceValues(values(), es384.privateKey);
  for (const text of [pem, JSON.stringify(jwk), JSON.stringify({ keys: [other.publicKey.export({ format: 'jwk' }), jwk] })]) {
    const keys = parseTrustedKeys(text);
    assert.ok((await verifyReferenceValues(jws, keys)).values.image.id === 'trustee-test');
  }
  // A private JWK given by mistake is used as its public half.
  const priv = parseTrustedKeys(JSON.stringify(es384.privateKey.export({ format: 'jwk' })));
  assert.equal(priv[0]?.type, 'public');
  assert.deepEqual(createPublicKey(es384.privateKey).export({ format: 'jwk' }), priv[0]?.export({ format: 'jwk' }));
  assert.throws(() => parseTrustedKeys('hello'), (e: unknown) => e instanceof CofferError && e.code === 'REFERENCE_BAD_KEY');
});

test('a payload outside the schema is refused after its signature verifies', async () => {
  const bad = { ...values(), extra: 1 } as unknown as ReferenceValues;
  await assert.rejects(signReferenceValues(bad, es384.privateKey));
});

test('policies use reference values: launch measurement, verity root hash, boot applications and PCRs of image X', async () => {
  const snpOnly = { ...examplePolicy(), measurements: { reference: 'trustee-test' } };
  const empty = new ReferenceStore();
  const snp = caseClaims('snp-trustee-milan').claims;
  const without = evaluate(snp, snpOnly, empty, { at: AT });
  assert.equal(without.verdict, 'fail');
  assert.match(without.rules.find((r) => r.id === 'measurement')?.description ?? '', /no reference values are loaded for image trustee-test/);

  const tpm = caseClaims('tpm-gce-cos85').claims;
  const pcrs = tpm.runtime.pcrs?.sha256 ?? {};
  const store = await ReferenceStore.load(
    [
      { jws: await signReferenceValues(values({ ukiAuthenticode: ['00'.repeat(32)] }, '0.9.0'), es384.privateKey), source: 'old.jws' },
      {
        jws: await signReferenceValues(values({ pcrs: { sha256: { '0': pcrs['0'] as string, '7': pcrs['7'] as string } }, ukiAuthenticode: tpm.boot?.bootApplications.map((a) => a.authenticode.sha256 as string) }), es384.privateKey),
        source: 'new.jws',
      },
    ],
    [es384.publicKey],
  );
  const withRefs = evaluate(snp, snpOnly, store, { at: AT });
  assert.equal(withRefs.verdict, 'pass');
  const m = withRefs.rules.find((r) => r.id === 'measurement');
  assert.equal(m?.description, 'launch measurement is accepted (signed reference values)');
  assert.equal(withRefs.trustworthiness['sourced-data'], 2);
  assert.deepEqual(withRefs.references.map((r) => r.source), ['old.jws', 'new.jws']);

  const bootPolicy = { ...examplePolicy(), kernel: { reference: 'trustee-test' }, bootApplications: { reference: 'trustee-test' }, pcrs: { reference: 'trustee-test' } };
  const r = evaluate(tpm, bootPolicy, store, { at: AT });
  assert.equal(r.verdict, 'pass', r.denial);
  assert.equal(r.rules.find((x) => x.id === 'kernel.verity')?.found, COS_VERITY_ROOT);
  assert.equal(r.rules.find((x) => x.id === 'pcr.reference')?.description, 'the PCRs equal the reference values of trustee-test 1.0.0');
  assert.equal(r.rules.find((x) => x.id === 'boot.applications')?.status, 'pass');

  const wrong = await ReferenceStore.load([{ jws: await signReferenceValues(values({ pcrs: { sha256: { '7': '22'.repeat(32) } } }), es384.privateKey), source: 'w.jws' }], [es384.publicKey]);
  const rw = evaluate(tpm, bootPolicy, wrong, { at: AT });
  const pr = rw.rules.find((x) => x.id === 'pcr.reference');
  assert.equal(pr?.status, 'fail');
  assert.equal(pr?.expected, `sha256:7=${'22'.repeat(32)}`);
  assert.equal(pr?.found, `sha256:7=${pcrs['7']}`);
  assert.equal(rw.rules.find((x) => x.id === 'boot.applications')?.status, 'fail');
});
