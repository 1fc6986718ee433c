// EAR attestation results: the claims-set (profile, iat, verifier id, submods with status,
// AR4SI vector, policy id, appraised claims, nonce), ES384 signature verified with the JWKS and,
// independently, by openssl over the JWS signing input; another key or one altered character fails.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { generateKeyPairSync, createPublicKey } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CofferError } from '../../src/errors.js';
import { EAR_CLAIMS_KEY, EAR_PROFILE, EAR_VERDICT_KEY, ReferenceStore, earJwks, evaluate, generateEarSigningKey, issueEar, loadEarSigningKey, parseJwks, verifyEar, type EarToken } from '../../src/appraisal/index.js';
import { AT, MEASUREMENT_MILAN, caseClaims, examplePolicy } from './helpers.js';

const work = mkdtempSync(join(tmpdir(), 'coffer-ear-'));
after(() => rmSync(work, { recursive: true, force: true }));

const verifierId = { developer: 'coffer', build: 'coffer test' };
const { privateKey } = generateEarSigningKey();
const otherKey = generateKeyPairSync('ec', { namedCurve: 'P-384' }).privateKey;

function appraise(name: string, nonce?: string) {
  const g = caseClaims(name);
  return evaluate(g.claims, examplePolicy(), new ReferenceStore(), { at: AT, ...(nonce !== undefined ? { nonce } : {}) });
}

async function expectCode(p: Promise<unknown>, code: string): Promise<void> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof CofferError, String(e));
    assert.equal(e.code, code, e.message);
    return;
  }
  assert.fail(`expected ${code}`);
}

/** An ECDSA signature as DER, from the JWS form (r || s, 48 bytes each for P-384): written here, not by jose. */
function derSignature(rs: Buffer): Buffer {
  const int = (b: Buffer) => {
    let i = 0;
    while (i < b.length - 1 && b[i] === 0) i++;
    let v = b.subarray(i);
    if ((v[0] as number) & 0x80) v = Buffer.concat([Buffer.from([0]), v]);
    return Buffer.concat([Buffer.from([0x02, v.length]), v]);
  };
  const body = Buffer.concat([int(rs.subarray(0, 48)), int(rs.subarray(48))]);
  return Buffer.concat([Buffer.from([0x30, body.length]), body]);
}

test('an affirming appraisal as an EAR JWT: claims-set and JWKS verification', async () => {
  const result = appraise('snp-trustee-milan');
  const token = await issueEar(result, privateKey, { verifierId, submod: 'trustee-milan' });
  const jwks = await earJwks([privateKey]);
  assert.equal(jwks.keys.length, 1);
  assert.equal(jwks.keys[0]?.alg, 'ES384');
  assert.equal(jwks.keys[0]?.crv, 'P-384');
  assert.equal(jwks.keys[0]?.d, undefined);
  const header = JSON.parse(Buffer.from(token.split('.')[0] as string, 'base64url').toString()) as { alg: string; kid: string; typ: string };
  assert.deepEqual(header, { alg: 'ES384', typ: 'JWT', kid: jwks.keys[0]?.kid });

  const ear: EarToken = await verifyEar(token, parseJwks(JSON.stringify(jwks)));
  assert.equal(ear.eat_profile, EAR_PROFILE);
  assert.equal(ear.eat_profile, 'tag:github.com,2023:veraison/ear');
  assert.equal(ear.iat, Math.floor(AT.getTime() / 1000));
  assert.deepEqual(ear['ear.verifier-id'], verifierId);
  assert.equal(ear.eat_nonce, undefined);
  const sub = ear.submods['trustee-milan'];
  assert.ok(sub);
  assert.equal(sub['ear.status'], 'affirming');
  assert.deepEqual(sub['ear.trustworthiness-vector'], { 'instance-identity': 2, executables: 2, hardware: 2, 'runtime-opaque': 2 });
  assert.equal(sub['ear.appraisal-policy-id'], 'coffer-example-cvm@1');
  assert.equal(sub[EAR_CLAIMS_KEY]?.launch.snp, MEASUREMENT_MILAN);
  assert.equal(sub[EAR_CLAIMS_KEY]?.platforms[0]?.product, 'Milan');
  assert.equal((sub[EAR_CLAIMS_KEY] as Record<string, unknown>).verification, undefined);
  assert.equal(sub[EAR_VERDICT_KEY]?.verdict, 'pass');
  assert.ok(sub[EAR_VERDICT_KEY]?.rules.some((r) => r.id === 'measurement' && r.status === 'pass'));
});

test('a denial is contraindicated and carries the denial; the nonce is echoed', async () => {
  const token = await issueEar(appraise('snp-go-sev-guest-debug', '0102030405'), privateKey, { verifierId });
  const ear = await verifyEar(token, await earJwks([privateKey]));
  const sub = ear.submods.cvm;
  assert.equal(sub?.['ear.status'], 'contraindicated');
  assert.equal(sub?.['ear.trustworthiness-vector']?.['runtime-opaque'], 96);
  assert.match(sub?.[EAR_VERDICT_KEY]?.denial ?? '', /^denied by rule debug/);
  assert.equal(ear.eat_nonce, '0102030405');
});

test('openssl verifies the ES384 signature over the JWS signing input (independent of jose)', async () => {
  const token = await issueEar(appraise('tpm-gce-cos85', '9009'), privateKey, { verifierId });
  const [h, p, s] = token.split('.') as [string, string, string];
  const rs = Buffer.from(s, 'base64url');
  assert.equal(rs.length, 96);
  writeFileSync(join(work, 'input'), `${h}.${p}`);
  writeFileSync(join(work, 'sig.der'), derSignature(rs));
  writeFileSync(join(work, 'pub.pem'), createPublicKey(privateKey).export({ format: 'pem', type: 'spki' }));
  writeFileSync(join(work, 'other.pem'), createPublicKey(otherKey).export({ format: 'pem', type: 'spki' }));
  const openssl = (pub: string) => spawnSync('openssl', ['dgst', '-sha384', '-verify', join(work, pub), '-signature', join(work, 'sig.der'), join(work, 'input')], { encoding: 'utf8' });
  const ok = openssl('pub.pem');
  assert.equal(ok.error, undefined, 'openssl is required (apt-get install openssl)');
  assert.equal(ok.status, 0, ok.stderr);
  assert.match(ok.stdout, /Verified OK/);
  assert.notEqual(openssl('other.pem').status, 0);
  // The payload openssl saw is the claims-set: decode it without jose.
  const claims = JSON.parse(Buffer.from(p, 'base64url').toString('utf8')) as Record<string, unknown>;
  assert.equal(claims.eat_profile, EAR_PROFILE);
  assert.equal(claims.eat_nonce, '9009');
  assert.equal((claims.submods as Record<string, Record<string, unknown>>).cvm?.['ear.status'], 'affirming');
});

test('signed by another key, or altered in one character: refused', async () => {
  const result = appraise('snp-trustee-milan');
  const jwks = await earJwks([privateKey]);
  const trustedKid = jwks.keys[0]?.kid as string;
  // Another key under its own kid: no key of the JWKS matches.
  await expectCode(verifyEar(await issueEar(result, otherKey, { verifierId }), jwks), 'EAR_NO_KEY');
  // Another key claiming the trusted kid: the signature fails.
  await expectCode(verifyEar(await issueEar(result, otherKey, { verifierId, kid: trustedKid }), jwks), 'EAR_BAD_SIGNATURE');
  const token = await issueEar(result, privateKey, { verifierId });
  const flip = (t: string, i: number) => `${t.slice(0, i)}${t[i] === 'A' ? 'B' : 'A'}${t.slice(i + 1)}`;
  const [h, p] = token.split('.') as [string, string, string];
  await expectCode(verifyEar(flip(token, h.length + 1 + Math.floor(p.length / 2)), jwks), 'EAR_BAD_SIGNATURE');
  await expectCode(verifyEar(flip(token, h.length + p.length + 2 + 10), jwks), 'EAR_BAD_SIGNATURE');
  await expectCode(verifyEar('nonsense', jwks), 'EAR_BAD_FORMAT');
  assert.ok((await verifyEar(token, jwks)).submods.cvm);
});

test('signing keys: PEM and JWK load, other curves are refused; JWKS parsing', () => {
  const { pem } = generateEarSigningKey();
  assert.equal(loadEarSigningKey(pem).asymmetricKeyDetails?.namedCurve, 'secp384r1');
  assert.equal(loadEarSigningKey(JSON.stringify(privateKey.export({ format: 'jwk' }))).type, 'private');
  const p256 = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'pem', type: 'pkcs8' }).toString();
  assert.throws(() => loadEarSigningKey(p256), (e: unknown) => e instanceof CofferError && e.code === 'EAR_BAD_KEY');
  assert.throws(() => loadEarSigningKey('junk'), (e: unknown) => e instanceof CofferError && e.code === 'EAR_BAD_KEY');
  assert.equal(parseJwks(JSON.stringify(createPublicKey(privateKey).export({ format: 'jwk' }))).keys.length, 1);
  assert.throws(() => parseJwks('{"a": 1}'), (e: unknown) => e instanceof CofferError && e.code === 'EAR_BAD_JWKS');
});
