// The security review's findings on TPM quote verification, reproduced: empty and short PCR
// selections (exp5), a pcrDigest of the wrong size, AK forms holding different keys when the
// AttestationKey is assembled by hand, weak AK keys, and checks not performed reported as passes.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { join } from 'node:path';
import { assembleAttestationKey, parseAkPart, verifyTpmQuote, type AttestationKey } from '../../../src/evidence/tpm/index.js';
import { parseEventLog, replayEventLog } from '../../../src/evidence/eventlog/index.js';
import { GCE, GCE_AT, KINVOLK, anchor, cert, expectCoffer, gceQuote, synthQuote, vector } from './vectors.js';

const DIR = 'gce-cos-85-nonce9009';
const p256 = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const akOf = (key: KeyObject): AttestationKey => ({ key, forms: ['PEM public key'] });
const opts = (key: KeyObject) => ({ at: GCE_AT, ak: akOf(key), skipNonceCheck: true });
const sha256 = (b: Buffer) => createHash('sha256').update(b).digest();
const replayed = replayEventLog(parseEventLog(vector(join(GCE, DIR, 'event_log.bin')))).pcrs.sha256 as Record<number, Buffer>;

describe('exp5 / H3 / L2: PCR selections', () => {
  test('a quote selecting only sha256 PCR 0 verifies against the log-replayed value (the CLI must then refuse it as not covering the log)', () => {
    const q = synthQuote(Buffer.from('00000001000b03010000', 'hex'), sha256(replayed[0] as Buffer), p256.privateKey);
    const v = verifyTpmQuote(q.attest, q.signature, { ...opts(p256.publicKey), pcrs: new Map([['sha256', new Map([[0, replayed[0] as Buffer]])]]) });
    assert.deepEqual(v.quote.pcrSelection.map((s) => [s.hashName, s.pcrs]), [['sha256', [0]]]);
  });

  test('an empty selection (no bank, or a bank with no bit set) → TPM_EMPTY_SELECTION', () => {
    for (const sel of ['00000000', '00000001000b03000000']) {
      const q = synthQuote(Buffer.from(sel, 'hex'), sha256(Buffer.alloc(0)), p256.privateKey);
      expectCoffer(() => verifyTpmQuote(q.attest, q.signature, { ...opts(p256.publicKey), pcrs: new Map() }), 'TPM_EMPTY_SELECTION', { kind: 'verify' });
      expectCoffer(() => verifyTpmQuote(q.attest, q.signature, opts(p256.publicKey)), 'TPM_EMPTY_SELECTION', { kind: 'verify' });
    }
  });

  test('sizeofSelect 0 (exp5 c) → TPM_BAD_PCR_SELECTION', () => {
    const q = synthQuote(Buffer.from('00000001000b00', 'hex'), sha256(Buffer.alloc(0)), p256.privateKey);
    expectCoffer(() => verifyTpmQuote(q.attest, q.signature, opts(p256.publicKey)), 'TPM_BAD_PCR_SELECTION', { message: /less than PCR_SELECT_MIN/ });
  });

  test('a pcrDigest whose size is not the signature hash’s → TPM_BAD_SIZE', () => {
    const q = synthQuote(Buffer.from('00000001000b03010000', 'hex'), createHash('sha1').update(replayed[0] as Buffer).digest(), p256.privateKey);
    expectCoffer(() => verifyTpmQuote(q.attest, q.signature, opts(p256.publicKey)), 'TPM_BAD_SIZE', { message: /pcrDigest is 20 bytes.*SHA256 \(32 bytes\)/ });
  });
});

describe('L1 / L3: the AK is re-checked by verifyTpmQuote itself', () => {
  test('a hand-assembled AttestationKey whose certificate (or TPM public area) holds another key → TPM_AK_MISMATCH, before the signature', () => {
    const q = gceQuote(DIR, 'sha256');
    const tpmt = parseAkPart(vector(join(GCE, DIR, 'ak_pub.tpmt')));
    const real = assembleAttestationKey([tpmt, parseAkPart(vector(join(GCE, DIR, 'ak_cert.der')))]);
    const other = parseAkPart(vector('gcp/gce-ek-ak-certs/pca_tpm_rsa_sign_cert.pem'));
    assert.ok(other.kind === 'certificate' && tpmt.kind === 'tpm-public');
    const base = { at: GCE_AT, nonce: Buffer.from('9009'), akRoots: [anchor('tpm_ek_root_1.cer')], akIntermediates: [cert('gcp/ca/tpm_ek_intermediate_2.crt')] };
    const e = expectCoffer(() => verifyTpmQuote(q.attest, q.signature, { ...base, ak: { ...real, certificate: other.certificate } }), 'TPM_AK_MISMATCH', { kind: 'verify', message: /AK certificate holds a different key/ });
    assert.equal((e.details?.checks as { name: string }[] | undefined)?.some((c) => c.name === 'tpm.signature'), false);
    const azure = parseAkPart(vector(join(KINVOLK, 'akpub.pem')));
    assert.ok(azure.kind === 'key');
    expectCoffer(() => verifyTpmQuote(q.attest, q.signature, { ...base, ak: { ...real, key: azure.key } }), 'TPM_AK_MISMATCH', { message: /TPM public area holds a different key/ });
  });

  test('RSA-1024 and P-521 AKs → TPM_BAD_AK; RSA-2048 and P-384 are accepted', () => {
    const sel = Buffer.from('00000001000b03010000', 'hex');
    const pcrs = new Map([['sha256' as const, new Map([[0, replayed[0] as Buffer]])]]);
    const rsa1024 = generateKeyPairSync('rsa', { modulusLength: 1024 });
    const q1 = synthQuote(sel, sha256(replayed[0] as Buffer), rsa1024.privateKey);
    expectCoffer(() => verifyTpmQuote(q1.attest, q1.signature, { ...opts(rsa1024.publicKey), pcrs }), 'TPM_BAD_AK', { kind: 'verify', message: /RSA-1024/ });
    const p521 = generateKeyPairSync('ec', { namedCurve: 'P-521' });
    const q2 = synthQuote(sel, createHash('sha512').update(replayed[0] as Buffer).digest(), p521.privateKey);
    expectCoffer(() => verifyTpmQuote(q2.attest, q2.signature, opts(p521.publicKey)), 'TPM_BAD_AK', { message: /secp521r1/ });
    const rsa2048 = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const q3 = synthQuote(sel, sha256(replayed[0] as Buffer), rsa2048.privateKey);
    assert.equal(verifyTpmQuote(q3.attest, q3.signature, { ...opts(rsa2048.publicKey), pcrs }).checks.find((c) => c.name === 'tpm.ak.key')?.ok, true);
    const p384 = generateKeyPairSync('ec', { namedCurve: 'P-384' });
    const q4 = synthQuote(sel, createHash('sha384').update(replayed[0] as Buffer).digest(), p384.privateKey);
    assert.ok(verifyTpmQuote(q4.attest, q4.signature, opts(p384.publicKey)));
  });
});

describe('M3: checks not performed are NOT CHECKED, not passes', () => {
  test('the GCE no-nonce quote with the AK certificate alone and no PCRs: nonce, AK attributes, qualified signer and PCR digest are notChecked', () => {
    const dir = 'gce-cos-85-no-nonce';
    const q = gceQuote(dir, 'sha256');
    const ak = assembleAttestationKey([parseAkPart(vector(join(GCE, dir, 'ak_cert.der')))]);
    const v = verifyTpmQuote(q.attest, q.signature, { at: GCE_AT, ak, skipNonceCheck: true, akRoots: [anchor('tpm_ek_root_1.cer')], akIntermediates: [cert('gcp/ca/tpm_ek_intermediate_2.crt')] });
    const unchecked = v.checks.filter((c) => c.notChecked).map((c) => c.name);
    assert.deepEqual(unchecked.sort(), ['tpm.ak.attributes', 'tpm.nonce', 'tpm.pcr-digest', 'tpm.qualified-signer']);
    for (const c of v.checks.filter((x) => x.notChecked)) assert.match(c.description, /^NOT CHECKED: /);
    assert.ok(v.checks.filter((c) => !c.notChecked).every((c) => !c.description.includes('NOT CHECKED')));
  });
});
