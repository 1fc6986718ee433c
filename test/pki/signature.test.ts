// Signature algorithms: RSA-PSS parameters are parsed and enforced (AMD uses SHA-384, MGF1-SHA-384,
// salt 48). AlgorithmIdentifiers are built with asn1js; PSS certificates with the real openssl.
import { test, describe, before } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { constants, generateKeyPairSync, sign as cryptoSign } from 'node:crypto';
import * as asn1js from 'asn1js';
import { parseSignatureAlgorithm, verifyWith, splitSignedDer } from '../../src/pki/signature.js';
import { parseCertificates, type Certificate } from '../../src/pki/certificate.js';
import { verifyChain } from '../../src/pki/chain.js';
import { CofferError } from '../../src/errors.js';
import { AMD, openssl, opensslVerify, tempDir } from './tools.js';

const OID = {
  pss: '1.2.840.113549.1.1.10',
  mgf1: '1.2.840.113549.1.1.8',
  sha1: '1.3.14.3.2.26',
  sha256: '2.16.840.1.101.3.4.2.1',
  sha384: '2.16.840.1.101.3.4.2.2',
  sha512: '2.16.840.1.101.3.4.2.3',
  md5: '1.2.840.113549.2.5',
  sha1WithRsa: '1.2.840.113549.1.1.5',
  sha256WithRsa: '1.2.840.113549.1.1.11',
  sha384WithRsa: '1.2.840.113549.1.1.12',
  ecdsaSha256: '1.2.840.10045.4.3.2',
  ecdsaSha384: '1.2.840.10045.4.3.3',
  ed25519: '1.3.101.112',
};

const oid = (o: string): asn1js.ObjectIdentifier => new asn1js.ObjectIdentifier({ value: o });
const hashAlg = (o: string, withNull = true): asn1js.Sequence => new asn1js.Sequence({ value: withNull ? [oid(o), new asn1js.Null()] : [oid(o)] });
const tagged = (n: number, inner: asn1js.AsnType): asn1js.Constructed =>
  new asn1js.Constructed({ idBlock: { tagClass: 3, tagNumber: n }, value: [inner] });
const int = (v: number): asn1js.Integer => new asn1js.Integer({ value: v });

interface PssParams {
  hash?: string;
  mgf?: string;
  mgfHash?: string | null;
  salt?: number;
  trailer?: number;
  saltBlock?: asn1js.AsnType;
}

/** RSASSA-PSS AlgorithmIdentifier, round-tripped through DER so it is what a parser would see. */
function pssAlgId(p: PssParams | 'absent'): asn1js.AsnType {
  const value: asn1js.AsnType[] = [oid(OID.pss)];
  if (p !== 'absent') {
    const params: asn1js.AsnType[] = [];
    if (p.hash) params.push(tagged(0, hashAlg(p.hash)));
    if (p.mgf || p.mgfHash !== undefined) {
      const mgfValue: asn1js.AsnType[] = [oid(p.mgf ?? OID.mgf1)];
      if (p.mgfHash) mgfValue.push(hashAlg(p.mgfHash));
      params.push(tagged(1, new asn1js.Sequence({ value: mgfValue })));
    }
    if (p.saltBlock) params.push(tagged(2, p.saltBlock));
    else if (p.salt !== undefined) params.push(tagged(2, int(p.salt)));
    if (p.trailer !== undefined) params.push(tagged(3, int(p.trailer)));
    value.push(new asn1js.Sequence({ value: params }));
  }
  return reparse(new asn1js.Sequence({ value }));
}

function simpleAlgId(o: string, params: 'null' | 'none' = 'none'): asn1js.AsnType {
  return reparse(new asn1js.Sequence({ value: params === 'null' ? [oid(o), new asn1js.Null()] : [oid(o)] }));
}

function reparse(a: asn1js.AsnType): asn1js.AsnType {
  const der = a.toBER(false);
  const r = asn1js.fromBER(der);
  assert.notEqual(r.offset, -1);
  return r.result;
}

function badAlgorithm(fn: () => unknown, message?: RegExp): void {
  let caught: unknown;
  try {
    fn();
  } catch (e) {
    caught = e;
  }
  assert.ok(caught instanceof CofferError, `expected PKI_BAD_ALGORITHM, got ${String(caught)}`);
  assert.equal(caught.code, 'PKI_BAD_ALGORITHM', caught.message);
  if (message) assert.match(caught.message, message);
}

const AMD_PSS = { hash: OID.sha384, mgfHash: OID.sha384, salt: 48 };

describe('parseSignatureAlgorithm', () => {
  test("AMD's parameters: SHA-384, MGF1-SHA-384, salt 48, with or without the explicit trailer field", () => {
    assert.deepEqual(parseSignatureAlgorithm(pssAlgId(AMD_PSS), 'x'), { kind: 'rsa-pss', hash: 'sha384', saltLength: 48, oid: OID.pss });
    assert.deepEqual(parseSignatureAlgorithm(pssAlgId({ ...AMD_PSS, trailer: 1 }), 'x'), { kind: 'rsa-pss', hash: 'sha384', saltLength: 48, oid: OID.pss });
    assert.deepEqual(parseSignatureAlgorithm(pssAlgId({ hash: OID.sha256, mgfHash: OID.sha256, salt: 32 }), 'x'), { kind: 'rsa-pss', hash: 'sha256', saltLength: 32, oid: OID.pss });
    assert.deepEqual(parseSignatureAlgorithm(pssAlgId({ hash: OID.sha512, mgfHash: OID.sha512, salt: 64 }), 'x'), { kind: 'rsa-pss', hash: 'sha512', saltLength: 64, oid: OID.pss });
  });

  test('the real ARK and ASK algorithm identifiers parse to exactly that', () => {
    const [ask, ark] = parseCertificates(readFileSync(join(AMD, 'amd-certs/ask_ark_genoa.pem')));
    for (const c of [ask, ark]) {
      const der = (c as Certificate).der;
      const cert = asn1js.fromBER(der).result as asn1js.Sequence;
      const outerAlg = cert.valueBlock.value[1];
      assert.deepEqual(parseSignatureAlgorithm(outerAlg, 'cert'), { kind: 'rsa-pss', hash: 'sha384', saltLength: 48, oid: OID.pss });
      assert.deepEqual(splitSignedDer(der, 'cert').algorithm, parseSignatureAlgorithm(outerAlg, 'cert'));
    }
  });

  test('MGF1 hash different from the message hash → PKI_BAD_ALGORITHM', () => {
    badAlgorithm(() => parseSignatureAlgorithm(pssAlgId({ hash: OID.sha384, mgfHash: OID.sha256, salt: 48 }), 'ASK'), /MGF1 hash sha256 differs from sha384/);
    badAlgorithm(() => parseSignatureAlgorithm(pssAlgId({ hash: OID.sha256, mgfHash: OID.sha384, salt: 32 }), 'ASK'), /MGF1/);
  });

  test('SHA-384 with the MGF left at its SHA-1 default → PKI_BAD_ALGORITHM', () => {
    badAlgorithm(() => parseSignatureAlgorithm(pssAlgId({ hash: OID.sha384, salt: 48 }), 'x'), /MGF1 hash sha1 differs from sha384/);
  });

  test('a mask generation function other than MGF1, or MGF1 without a hash → PKI_BAD_ALGORITHM', () => {
    badAlgorithm(() => parseSignatureAlgorithm(pssAlgId({ hash: OID.sha384, mgf: '1.2.3.4', mgfHash: OID.sha384, salt: 48 }), 'x'), /not MGF1/);
    badAlgorithm(() => parseSignatureAlgorithm(pssAlgId({ hash: OID.sha384, mgfHash: null, salt: 48 }), 'x'), /malformed hash/);
  });

  test('trailer field other than 1 → PKI_BAD_ALGORITHM', () => {
    badAlgorithm(() => parseSignatureAlgorithm(pssAlgId({ ...AMD_PSS, trailer: 2 }), 'x'), /trailer/);
    badAlgorithm(() => parseSignatureAlgorithm(pssAlgId({ ...AMD_PSS, trailer: 0 }), 'x'), /trailer/);
  });

  test('RSA-PSS without parameters, unknown hash (MD5), unknown algorithms → PKI_BAD_ALGORITHM', () => {
    badAlgorithm(() => parseSignatureAlgorithm(pssAlgId('absent'), 'x'), /without parameters/);
    badAlgorithm(() => parseSignatureAlgorithm(pssAlgId({ hash: OID.md5, mgfHash: OID.md5, salt: 16 }), 'x'), /unsupported hash/);
    badAlgorithm(() => parseSignatureAlgorithm(simpleAlgId(OID.sha1WithRsa, 'null'), 'x'), /unsupported signature algorithm 1\.2\.840\.113549\.1\.1\.5/);
    badAlgorithm(() => parseSignatureAlgorithm(simpleAlgId(OID.ed25519), 'x'), /unsupported/);
    badAlgorithm(() => parseSignatureAlgorithm(simpleAlgId('1.2.3'), 'x'), /unsupported/);
  });

  test('not an AlgorithmIdentifier at all → PKI_BAD_ALGORITHM', () => {
    badAlgorithm(() => parseSignatureAlgorithm(undefined, 'x'), /malformed/);
    badAlgorithm(() => parseSignatureAlgorithm(int(5), 'x'), /malformed/);
    badAlgorithm(() => parseSignatureAlgorithm(reparse(new asn1js.Sequence({ value: [int(1)] })), 'x'), /missing signature algorithm OID/);
    badAlgorithm(() => parseSignatureAlgorithm(reparse(new asn1js.Sequence({ value: [oid(OID.pss), int(1)] })), 'x'), /without parameters/);
  });

  test('PKCS#1 v1.5 and ECDSA with SHA-2', () => {
    assert.deepEqual(parseSignatureAlgorithm(simpleAlgId(OID.sha256WithRsa, 'null'), 'x'), { kind: 'rsa-pkcs1', hash: 'sha256', oid: OID.sha256WithRsa });
    assert.deepEqual(parseSignatureAlgorithm(simpleAlgId(OID.sha384WithRsa, 'null'), 'x'), { kind: 'rsa-pkcs1', hash: 'sha384', oid: OID.sha384WithRsa });
    assert.deepEqual(parseSignatureAlgorithm(simpleAlgId(OID.ecdsaSha384), 'x'), { kind: 'ecdsa', hash: 'sha384', oid: OID.ecdsaSha384 });
    assert.deepEqual(parseSignatureAlgorithm(simpleAlgId(OID.ecdsaSha256), 'x'), { kind: 'ecdsa', hash: 'sha256', oid: OID.ecdsaSha256 });
  });

  test(
    'RSA-PSS over SHA-1 (the all-default parameters) is refused like sha1WithRSAEncryption is',
    () => {
      badAlgorithm(() => parseSignatureAlgorithm(pssAlgId({}), 'x'));
      badAlgorithm(() => parseSignatureAlgorithm(pssAlgId({ hash: OID.sha1, mgfHash: OID.sha1, salt: 20 }), 'x'));
    },
  );
});

describe('verifyWith enforces the parameters on the real ASK signature', () => {
  test('the real ASK verifies under the real ARK only with SHA-384 and salt 48; the ARK verifies itself', () => {
    for (const bundle of ['ask_ark_milan.pem', 'ask_ark_genoa.pem', 'ask_ark_turin_vcek.pem', 'ask_ark_milan_vlek.pem']) {
      const [ask, ark] = parseCertificates(readFileSync(join(AMD, 'amd-certs', bundle))) as [Certificate, Certificate];
      const { tbs, signature, algorithm } = ask.signed;
      assert.equal(verifyWith(algorithm, tbs, signature, ark.publicKey), true, bundle);
      assert.equal(verifyWith(ark.signed.algorithm, ark.signed.tbs, ark.signed.signature, ark.publicKey), true, `${bundle}: ARK self-signature`);
      // Same bytes, other parameters: each must fail.
      assert.equal(verifyWith({ ...algorithm, saltLength: 32 }, tbs, signature, ark.publicKey), false, 'salt 32');
      assert.equal(verifyWith({ ...algorithm, saltLength: 20 }, tbs, signature, ark.publicKey), false, 'salt 20');
      assert.equal(verifyWith({ ...algorithm, hash: 'sha256' }, tbs, signature, ark.publicKey), false, 'sha256');
      assert.equal(verifyWith({ ...algorithm, kind: 'rsa-pkcs1' }, tbs, signature, ark.publicKey), false, 'pkcs1');
      assert.equal(verifyWith({ ...algorithm, kind: 'ecdsa' }, tbs, signature, ark.publicKey), false, 'ecdsa with an RSA key');
      // Wrong key: the ASK's own.
      assert.equal(verifyWith(algorithm, tbs, signature, ask.publicKey), false, 'ASK key');
    }
  });

  test('a PSS signature made with salt 32 does not pass as salt 48 (no auto-detected salt)', () => {
    const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const data = Buffer.from('to be signed');
    const sig32 = cryptoSign('sha384', data, { key: privateKey, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 });
    const alg = { kind: 'rsa-pss' as const, hash: 'sha384', oid: OID.pss };
    assert.equal(verifyWith({ ...alg, saltLength: 32 }, data, sig32, publicKey), true);
    assert.equal(verifyWith({ ...alg, saltLength: 48 }, data, sig32, publicKey), false);
  });

  test('verifyWith never throws: garbage signatures and absurd salts are just false', () => {
    const [ask, ark] = parseCertificates(readFileSync(join(AMD, 'amd-certs/ask_ark_milan.pem'))) as [Certificate, Certificate];
    assert.equal(verifyWith(ask.signed.algorithm, ask.signed.tbs, Buffer.alloc(0), ark.publicKey), false);
    assert.equal(verifyWith(ask.signed.algorithm, ask.signed.tbs, Buffer.alloc(5000, 1), ark.publicKey), false);
    assert.equal(verifyWith({ ...ask.signed.algorithm, saltLength: 100000 }, ask.signed.tbs, ask.signed.signature, ark.publicKey), false);
    assert.equal(verifyWith({ ...ask.signed.algorithm, hash: 'no-such-hash' }, ask.signed.tbs, ask.signed.signature, ark.publicKey), false);
  });
});

describe('RSA-PSS certificates made by openssl', () => {
  let dir = '';
  let goodPath = '';
  let mismatchPath = '';
  let sha256Path = '';
  before(() => {
    dir = tempDir('pss');
    const cnf = join(dir, 'x.cnf');
    writeFileSync(cnf, '[req]\ndistinguished_name=dn\nprompt=no\n[dn]\nCN=x\n[ca]\nbasicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n');
    openssl(['genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048', '-out', 'rsa.key'], { cwd: dir });
    const mk = (out: string, cn: string, md: string, mgf: string, salt: string): string => {
      openssl(['req', '-new', '-x509', '-config', cnf, '-key', 'rsa.key', '-subj', `/CN=${cn}`, '-days', '30', '-extensions', 'ca', `-${md}`, '-sigopt', 'rsa_padding_mode:pss', '-sigopt', `rsa_mgf1_md:${mgf}`, '-sigopt', `rsa_pss_saltlen:${salt}`, '-out', out], { cwd: dir });
      return join(dir, out);
    };
    goodPath = mk('good.pem', 'PSS SHA-384 salt 48', 'sha384', 'sha384', '48');
    mismatchPath = mk('mismatch.pem', 'PSS SHA-384 MGF1-SHA-256', 'sha384', 'sha256', '48');
    sha256Path = mk('sha256.pem', 'PSS SHA-256 salt 32', 'sha256', 'sha256', '32');
  });

  test('SHA-384/MGF1-SHA-384/salt 48 (AMD style): parses, and its self-signature verifies like openssl says', () => {
    const [c] = parseCertificates(readFileSync(goodPath));
    assert.ok(c);
    assert.deepEqual(c.signed.algorithm, { kind: 'rsa-pss', hash: 'sha384', saltLength: 48, oid: OID.pss });
    assert.ok(opensslVerify({ ca: goodPath, cert: goodPath }).ok);
    const r = verifyChain(c, [], [{ cert: c, label: 'pss root' }], { at: new Date() });
    assert.equal(r.path.length, 1);
    assert.equal(verifyWith(c.signed.algorithm, c.signed.tbs, c.signed.signature, c.publicKey), true);
  });

  test('SHA-256/salt 32 parses with those parameters and verifies', () => {
    const [c] = parseCertificates(readFileSync(sha256Path));
    assert.ok(c);
    assert.deepEqual(c.signed.algorithm, { kind: 'rsa-pss', hash: 'sha256', saltLength: 32, oid: OID.pss });
    assert.equal(verifyWith(c.signed.algorithm, c.signed.tbs, c.signed.signature, c.publicKey), true);
  });

  test('MGF1 hash ≠ message hash: openssl signs and accepts it, Coffer refuses it at parse time with PKI_BAD_ALGORITHM', () => {
    const text = openssl(['x509', '-in', mismatchPath, '-noout', '-text']).out;
    assert.match(text, /Hash Algorithm: sha384/);
    assert.match(text, /Mask Algorithm: mgf1 with sha256/);
    assert.ok(opensslVerify({ ca: mismatchPath, cert: mismatchPath }).ok, 'openssl itself accepts the mismatched parameters');
    badAlgorithm(() => parseCertificates(readFileSync(mismatchPath)), /MGF1 hash sha256 differs from sha384/);
  });
});
