// AWS Nitro attestation documents: the real evervault and veracruz documents verify (or fail) as
// the manifest says, at their own timestamps, to the pinned AWS Nitro Enclaves Root-G1; the
// debug-mode documents are refused by validation; single-byte flips fail; the NitroTPM fixture.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, generateKeyPairSync, sign } from 'node:crypto';
import { encode as cborEncode, decode as cborDecode } from 'cbor2';
import {
  parseCoseSign1,
  parseNitroDocument,
  parseNitroTpmBundle,
  sigStructure,
  validateNitroDocument,
  verifyNitroDocument,
  verifyNitroTpm,
  nitroClaims,
  decodeNitroInput,
  type NitroDocument,
} from '../../../src/evidence/nitro/index.js';
import { PINNED_ROOTS, loadPinnedRoot } from '../../../src/pki/roots.js';
import { claimsFromNitro } from '../../../src/appraisal/from-nitro.js';
import { coffer, expected, vec } from './vectors.js';

const N = 'aws-nitro/';
const VALID = `${N}evervault/valid-attestation-doc-bytes.cbor`;
const DEBUG = `${N}evervault/debug-mode-attestation-doc-bytes.cbor`;
const B64 = `${N}evervault/valid-attestation-doc.b64`;
const BAD = `${N}veracruz/aws_nitro_document_bad_sig.cbor`;
const TPM_DOC = `${N}nitrotpm-vaportpm/derived/nitrotpm_attestation_doc.cbor`;
const TPM_FIXTURE = `${N}nitrotpm-vaportpm/test-nitro-fixture.json`;
const NOW = new Date('2026-06-01T00:00:00Z');
/** Verifies a document a minute after its own timestamp: inside its certificate's three hours. */
const verifyFresh = (doc: NitroDocument) => verifyNitroDocument(doc, { at: new Date(doc.timestamp + 60_000) });

describe('AWS Nitro Enclaves Root-G1 pin', () => {
  test('is pinned by the SHA-256 the manifest gives and is the vectors\' root', () => {
    const pin = PINNED_ROOTS.find((r) => r.id === 'aws-nitro-root-g1');
    assert.equal(pin?.sha256, expected(`${N}root/aws_nitro_enclaves_root_g1.pem`).sha256_der);
    const a = loadPinnedRoot('aws-nitro-root-g1');
    assert.equal(a.cert.subjectCn, 'aws.nitro-enclaves');
    assert.equal(a.label, 'aws.nitro-enclaves (pinned)');
  });
});

describe('Nitro Enclave documents', () => {
  test('the valid evervault document verifies with the manifest values (module, timestamp, PCR0/1/2/8, nonce)', () => {
    const e = expected(VALID);
    const doc = parseNitroDocument(vec(VALID));
    assert.equal(doc.cose.tagged, false);
    assert.equal(doc.cose.alg, -35);
    const v = verifyFresh(doc);
    assert.equal(v.chain.length, 5);
    assert.equal(v.chain[4]?.sha256, expected(`${N}root/aws_nitro_enclaves_root_g1.pem`).sha256_der);
    const c = nitroClaims(doc, v.leaf);
    assert.equal(c.moduleId, e.module_id);
    assert.equal(c.timestampMs, Number(e.timestamp_ms));
    assert.equal(c.digest, e.digest);
    for (const i of [0, 1, 2, 8]) assert.equal(c.pcrs[String(i)], e[`pcr${i}`]);
    assert.ok(c.nonce?.startsWith(e.nonce?.slice(0, 8) ?? 'x'));
    assert.equal(c.nonce?.length, 512);
    assert.equal(c.debug, false);
    assert.equal(c.certificate?.notBefore, '2022-10-13T08:57:59.000Z');
    assert.deepEqual(validateNitroDocument(doc).filter((x) => !x.ok), []);
    // Reference PCRs: the manifest's pass; a wrong one fails with NITRO_PCR_MISMATCH.
    const pcrs = new Map([0, 1, 2, 8].map((i) => [i, Buffer.from(e[`pcr${i}`] ?? '', 'hex')]));
    assert.ok(validateNitroDocument(doc, { pcrs }).every((x) => x.ok));
    pcrs.set(0, Buffer.alloc(48, 1));
    assert.equal(validateNitroDocument(doc, { pcrs }).find((x) => !x.ok)?.code, 'NITRO_PCR_MISMATCH');
    const claims = claimsFromNitro(v, validateNitroDocument(doc));
    assert.equal(claims.platforms[0]?.tee, 'nitro');
    assert.equal(claims.runtime.pcrs?.nitro?.['0'], e.pcr0);
    assert.equal(claims.freshness.collectedAt, '2022-10-13T08:58:02.136Z');
  });

  test('the chain is checked at the document timestamp: a doctored clock far before it fails (NITRO_TIMESTAMP_IN_FUTURE)', () => {
    const doc = parseNitroDocument(vec(VALID));
    assert.equal(coffer(() => verifyNitroDocument(doc, { at: new Date('2022-10-13T08:00:00Z') })).code, 'NITRO_TIMESTAMP_IN_FUTURE');
    assert.ok(verifyNitroDocument(doc, { at: new Date('2022-10-13T09:00:00Z') }));
  });

  test('the debug-mode document has a valid AWS signature and chain, and validation refuses it (NITRO_DEBUG_MODE)', () => {
    const e = expected(DEBUG);
    const doc = parseNitroDocument(vec(DEBUG));
    verifyFresh(doc);
    const c = nitroClaims(doc);
    assert.equal(c.moduleId, e.module_id);
    assert.equal(c.pcrs['3'], e.pcr3);
    assert.equal(Buffer.from(c.publicKey ?? '', 'hex').toString(), 'my super secret key');
    assert.equal(Buffer.from(c.userData ?? '', 'hex').toString(), 'hello, world!');
    assert.equal(c.nonce, null);
    assert.equal(c.debug, true);
    const checks = validateNitroDocument(doc);
    assert.equal(checks.find((x) => !x.ok)?.code, 'NITRO_DEBUG_MODE');
    assert.ok(validateNitroDocument(doc, { allowDebug: true }).every((x) => x.ok));
    assert.equal(validateNitroDocument(doc, { userData: Buffer.from('hello, world?') }).find((x) => !x.ok && x.name === 'nitro.user-data')?.code, 'NITRO_USER_DATA_MISMATCH');
    assert.equal(validateNitroDocument(doc, { nonce: Buffer.from('n') }).find((x) => x.name === 'nitro.nonce')?.code, 'NITRO_NONCE_MISMATCH');
    assert.equal(validateNitroDocument(doc, { publicKey: Buffer.from('my super secret key'), allowDebug: true }).every((x) => x.ok), true);
  });

  test('the base64 evervault document (2023, debug) decodes, verifies and carries the manifest values', () => {
    const e = expected(B64);
    const raw = decodeNitroInput(vec(B64));
    assert.equal(raw[0], 0x84);
    const doc = parseNitroDocument(vec(B64));
    const v = verifyFresh(doc);
    const c = nitroClaims(doc, v.leaf);
    assert.equal(c.moduleId, e.module_id);
    assert.equal(c.timestampMs, Number(e.timestamp_ms));
    assert.equal(c.pcrs['4'], e.pcr4);
    assert.ok(c.userData?.startsWith('3059301306072a8648ce3d020106082a8648ce3d030107034200042afc52fe'));
    assert.equal(validateNitroDocument(doc).find((x) => !x.ok)?.code, 'NITRO_DEBUG_MODE');
  });

  test('the deliberately bad veracruz document fails its COSE signature (NITRO_BAD_SIGNATURE); its chain alone is valid', () => {
    const doc = parseNitroDocument(vec(BAD));
    const err = coffer(() => verifyFresh(doc));
    assert.equal(err.code, 'NITRO_BAD_SIGNATURE');
    assert.equal(err.kind, 'verify');
  });

  test('single-byte flips: every flip of the signature fails NITRO_BAD_SIGNATURE; flips elsewhere never verify', () => {
    const raw = vec(VALID);
    const cose = parseCoseSign1(raw);
    const sigAt = raw.length - 96;
    assert.ok(raw.subarray(sigAt).equals(cose.signature));
    for (let i = sigAt; i < raw.length; i += 7) {
      const b = Buffer.from(raw);
      b[i] = (b[i] as number) ^ 0x01;
      assert.equal(coffer(() => verifyFresh(parseNitroDocument(b))).code, 'NITRO_BAD_SIGNATURE', `signature byte ${i}`);
    }
    const allowed = new Set(['NITRO_BAD_SIGNATURE', 'NITRO_BAD_DOCUMENT', 'COSE_BAD_STRUCTURE', 'NITRO_BAD_ALGORITHM', 'PKI_BAD_CERTIFICATE', 'PKI_BAD_SIGNATURE', 'PKI_CHAIN_INCOMPLETE', 'PKI_UNTRUSTED_ROOT', 'PKI_BAD_DER', 'PKI_BAD_ALGORITHM', 'NITRO_TIMESTAMP_IN_FUTURE']);
    const seen = new Set<string>();
    for (let i = 0; i < sigAt; i += 13) {
      const b = Buffer.from(raw);
      b[i] = (b[i] as number) ^ 0x01;
      const e = coffer(() => verifyFresh(parseNitroDocument(b)));
      assert.ok(allowed.has(e.code), `byte ${i}: ${e.code}`);
      seen.add(e.code);
    }
    assert.ok(seen.has('NITRO_BAD_SIGNATURE') && seen.has('NITRO_BAD_DOCUMENT'));
  });

  test('Sig_structure is the RFC 9052 encoding cbor2 produces; a document re-signed by a key that does not chain fails PKI, not signature', () => {
    const u8 = (b: Uint8Array): Uint8Array => new Uint8Array(b);
    const p = u8(Buffer.from('a1013822', 'hex'));
    const payload = u8(Buffer.from('a0', 'hex'));
    assert.ok(sigStructure(p, payload).equals(Buffer.from(cborEncode(['Signature1', p, new Uint8Array(0), payload]))));
    // Same payload, own P-384 key as the "certificate": signature fine, but the certificate is not ours to trust.
    const raw = vec(VALID);
    const arr = cborDecode(raw) as [Uint8Array, unknown, Uint8Array, Uint8Array];
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'secp384r1' });
    const sig = sign('sha384', sigStructure(arr[0], arr[2]), { key: privateKey, dsaEncoding: 'ieee-p1363' });
    const forged = Buffer.from(cborEncode([u8(arr[0]), new Map(), u8(arr[2]), u8(sig)]));
    assert.equal(coffer(() => verifyFresh(parseNitroDocument(forged))).code, 'NITRO_BAD_SIGNATURE');
    assert.equal(createHash('sha256').update(raw).digest('hex').length, 64);
  });

  test('structure: tag 18 is accepted, other tags, wrong arrays, non-ES384 algorithms and missing fields are refused', () => {
    const raw = vec(VALID);
    const tagged = Buffer.concat([Buffer.from([0xd2]), raw]);
    assert.equal(parseNitroDocument(tagged).cose.tagged, true);
    verifyFresh(parseNitroDocument(tagged));
    assert.equal(coffer(() => parseCoseSign1(Buffer.concat([Buffer.from([0xd1]), raw]))).code, 'COSE_BAD_STRUCTURE');
    assert.equal(coffer(() => parseCoseSign1(Buffer.from(cborEncode([1, 2, 3])))).code, 'COSE_BAD_STRUCTURE');
    const arr = cborDecode(raw) as [Uint8Array, unknown, Uint8Array, Uint8Array];
    const u8 = (b: Uint8Array): Uint8Array => new Uint8Array(b);
    const es256 = Buffer.from(cborEncode([u8(Buffer.from('a10126', 'hex')), new Map(), u8(arr[2]), u8(arr[3])]));
    assert.equal(coffer(() => verifyFresh(parseNitroDocument(es256))).code, 'NITRO_BAD_ALGORITHM');
    const payload = cborDecode(arr[2], { preferMap: true }) as Map<string, unknown>;
    payload.delete('cabundle');
    const noBundle = Buffer.from(cborEncode([u8(arr[0]), new Map(), cborEncode(payload), u8(arr[3])]));
    assert.equal(coffer(() => parseNitroDocument(noBundle)).code, 'NITRO_BAD_DOCUMENT');
  });
});

describe('NitroTPM (lockboot/vaportpm fixture)', () => {
  const e = expected(TPM_FIXTURE);
  // verify_time 1770116400 (2026-02-03T11:00:00Z), as vaportpm's test uses.
  const at = new Date(Number(String(e.verify_time).split(' ')[0]) * 1000);

  test('the NSM document vouches for the AK, the TPM quote verifies over the signed SHA-384 PCRs with the nonce', () => {
    const b = parseNitroTpmBundle(vec(TPM_FIXTURE).toString('utf8'));
    assert.ok(b.documentRaw.equals(vec(TPM_DOC)));
    const v = verifyNitroTpm(b, { at, nonce: Buffer.from(e.nonce ?? '', 'hex') });
    assert.equal(v.nitro.document.moduleId, e.module_id);
    assert.equal(new Date(v.nitro.document.timestamp).toISOString(), e.nitro_doc_timestamp);
    assert.equal(v.tpm.quote.extraData.toString('hex'), e.nonce);
    assert.equal(v.nitro.document.publicKey?.toString('hex'), `04${e.ak_x}${e.ak_y}`);
    assert.equal(v.nitro.document.pcrs.size, 24);
    assert.ok(v.checks.every((c) => c.ok));
  });

  test('tampering: nonce, AK, PCRs and the quote signature are each refused with their own code', () => {
    const text = vec(TPM_FIXTURE).toString('utf8');
    const j = JSON.parse(text) as Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
    const withEdit = (fn: (o: Record<string, any>) => void) => { // eslint-disable-line @typescript-eslint/no-explicit-any
      const o = JSON.parse(text) as Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
      fn(o);
      return parseNitroTpmBundle(JSON.stringify(o));
    };
    assert.equal(coffer(() => verifyNitroTpm(parseNitroTpmBundle(text), { at, nonce: Buffer.alloc(32) })).code, 'NITRO_NONCE_MISMATCH');
    assert.equal(coffer(() => verifyNitroTpm(withEdit((o) => (o.ak_pubkeys.ecc_p256.x = j.ak_pubkeys.ecc_p256.y)), { at })).code, 'NITROTPM_BAD_AK');
    assert.equal(coffer(() => verifyNitroTpm(withEdit((o) => (o.pcrs.sha384['0'] = '00'.repeat(48))), { at })).code, 'NITROTPM_PCR_MISMATCH');
    assert.equal(coffer(() => verifyNitroTpm(withEdit((o) => (o.attestation.tpm.ecc_p256.signature = (o.attestation.tpm.ecc_p256.signature as string).replace(/..$/, '00'))), { at })).code, 'TPM_BAD_SIGNATURE');
    assert.equal(coffer(() => verifyNitroTpm(withEdit((o) => (o.nonce = '00'.repeat(32))), { at })).code, 'NITRO_NONCE_MISMATCH');
  });

  test('the NitroTPM document alone verifies to the AWS root and is not an enclave (no debug notion)', () => {
    const doc = parseNitroDocument(vec(TPM_DOC));
    assert.equal(doc.flavour, 'nitrotpm');
    verifyNitroDocument(doc, { at });
    assert.ok(validateNitroDocument(doc).every((c) => c.ok));
  });
});

describe('security review: freshness and PCR sizes', () => {
  test('a document of any age no longer verifies: at a later date it fails NITRO_DOCUMENT_EXPIRED (its leaf lives three hours)', () => {
    const doc = parseNitroDocument(vec(VALID));
    const e = coffer(() => verifyNitroDocument(doc, { at: NOW }));
    assert.equal(e.code, 'NITRO_DOCUMENT_EXPIRED');
    assert.equal(e.kind, 'verify');
    assert.equal((e.details?.checks as { name: string }[]).at(-1)?.name, 'nitro.freshness');
    // Three hours and a minute after its timestamp: expired; two hours after: fine.
    assert.equal(coffer(() => verifyNitroDocument(doc, { at: new Date(doc.timestamp + 3 * 3600_000 + 60_000) })).code, 'NITRO_DOCUMENT_EXPIRED');
    assert.ok(verifyNitroDocument(doc, { at: new Date(doc.timestamp + 2 * 3600_000) }).checks.some((c) => c.name === 'nitro.freshness' && c.ok && !c.notChecked));
  });

  test('a maximum age is enforced when given (NITRO_DOCUMENT_TOO_OLD)', () => {
    const doc = parseNitroDocument(vec(VALID));
    const at = new Date(doc.timestamp + 10 * 60_000);
    assert.equal(coffer(() => verifyNitroDocument(doc, { at, maxAgeMs: 5 * 60_000 })).code, 'NITRO_DOCUMENT_TOO_OLD');
    assert.ok(verifyNitroDocument(doc, { at, maxAgeMs: 15 * 60_000 }));
  });

  test('historical documents verify only when explicitly allowed, and freshness is then NOT CHECKED', () => {
    const doc = parseNitroDocument(vec(VALID));
    const v = verifyNitroDocument(doc, { at: NOW, historical: true });
    assert.ok(v.checks.find((c) => c.name === 'nitro.freshness')?.notChecked);
  });

  test('PCR values must be 48 bytes (digest SHA384): a 32-byte PCR in the payload is refused', () => {
    const arr = cborDecode(vec(VALID)) as Uint8Array[];
    const payload = cborDecode(arr[2] as Uint8Array, { preferMap: true }) as Map<string, unknown>;
    const pcrs = new Map(payload.get('pcrs') as Map<number, Uint8Array>);
    pcrs.set(0, new Uint8Array(32));
    payload.set('pcrs', pcrs);
    const u8 = (b: Uint8Array | undefined): Uint8Array => new Uint8Array(b ?? []);
    const doc = Buffer.from(cborEncode([u8(arr[0]), new Map(), cborEncode(payload), u8(arr[3])]));
    const e = coffer(() => parseNitroDocument(doc));
    assert.equal(e.code, 'NITRO_BAD_DOCUMENT');
    assert.match(e.message, /pcrs\[0\] is not a 48-byte \(SHA-384\) value/);
  });
});
