// Cloud exports: GCP DER files and command line, Azure uefiSettings JSON, AWS --uefi-data
// blob framing (magic, CRC-32C, version, zlib with preset dictionary) and its decoder.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { deflateSync } from 'node:zlib';
import { CofferError } from '../../src/errors.js';
import {
  generateSecureBootKeys,
  x509SignatureList,
  gcpFiles,
  gcpCommand,
  azureUefiSettings,
  awsSecureBootVariables,
  encodeAwsVarStore,
  decodeAwsUefiData,
  encodeAwsUefiData,
  checkAwsDictionary,
  crc32c,
  AWS_MAGIC,
  AWS_V0_DICT_ADLER32,
} from '../../src/image/index.js';

const OWNER = '3cc24e96-22c7-41d8-8863-8e39dcdcc2cf';
const AT = new Date(Date.UTC(2024, 2, 5, 6, 7, 8));
const set = generateSecureBootKeys({ owner: OWNER, at: AT });
const HASH = Buffer.alloc(32, 0xab);
const inputs = { PK: set.PK.certificate, KEK: [set.KEK.certificate], db: [set.db.certificate], dbx: { certificates: [], hashes: [HASH] } };

/** Frames a variable store as aws.py does, with any dictionary (the real one is not embedded). */
function frame(store: Buffer, dictionary: Buffer): Buffer {
  const z = deflateSync(store, { level: 9, dictionary });
  const rest = Buffer.concat([Buffer.alloc(4), z]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32LE(crc32c(rest));
  return Buffer.concat([AWS_MAGIC, crc, rest]);
}

describe('cloud exports', () => {
  test('GCP: DER certificates per flag, dbx hashes as a binary ESL, and the gcloud command line', () => {
    const files = gcpFiles(inputs, OWNER);
    assert.deepEqual(files.map((f) => [f.name, f.flag]), [
      ['PK.cer', '--platform-key-file'],
      ['KEK.cer', '--key-exchange-key-file'],
      ['db.cer', '--signature-database-file'],
      ['dbx-hashes.bin', '--forbidden-database-file'],
    ]);
    assert.ok(files[0]?.data.equals(set.PK.certificate.der));
    const esl = files[3]?.data as Buffer;
    assert.equal(esl.length, 28 + 48);
    assert.ok(esl.subarray(esl.length - 32).equals(HASH));
    const cmd = gcpCommand(files, 'out/');
    assert.match(cmd, /^gcloud compute images create IMAGE_NAME/);
    assert.match(cmd, /--platform-key-file=out\/PK\.cer/);
    assert.match(cmd, /--forbidden-database-file=out\/dbx-hashes\.bin/);
  });

  test('Azure: uefiSettings with x509 keys as base64 DER and sha256 dbx; templates checked', () => {
    const s = azureUefiSettings(inputs);
    assert.deepEqual(s.signatureTemplateNames, ['NoSignatureTemplate']);
    assert.deepEqual(s.additionalSignatures.pk, { type: 'x509', value: [set.PK.certificate.der.toString('base64')] });
    assert.equal(s.additionalSignatures.kek[0]?.value[0], set.KEK.certificate.der.toString('base64'));
    assert.deepEqual(s.additionalSignatures.dbx, [{ type: 'sha256', value: [HASH.toString('base64')] }]);
    assert.deepEqual(azureUefiSettings(inputs, ['MicrosoftUefiCertificateAuthorityTemplate']).signatureTemplateNames, ['MicrosoftUefiCertificateAuthorityTemplate']);
    assert.throws(() => azureUefiSettings(inputs, ['Bogus']), CofferError);
    assert.throws(() => azureUefiSettings(inputs, ['NoSignatureTemplate', 'MicrosoftWindowsTemplate']), CofferError);
  });

  test('CRC-32C check value', () => {
    assert.equal(crc32c(Buffer.from('123456789')), 0xe3069283);
  });

  test('AWS: variable store round trip through the blob framing and the decoder', () => {
    const vars = awsSecureBootVariables(
      { PK: x509SignatureList(set.PK.certificate, OWNER), KEK: x509SignatureList(set.KEK.certificate, OWNER), db: x509SignatureList(set.db.certificate, OWNER) },
      AT,
    );
    assert.deepEqual(vars.map((v) => [v.name, v.guid, v.attributes]), [
      ['PK', '8be4df61-93ca-11d2-aa0d-00e098032b8c', 0x27],
      ['KEK', '8be4df61-93ca-11d2-aa0d-00e098032b8c', 0x27],
      ['db', 'd719b2cb-3d3a-4596-a3bc-dad00e67656f', 0x27],
    ]);
    const store = encodeAwsVarStore(vars);
    assert.equal(store.readBigUInt64LE(0), 3n);
    assert.equal(store.readBigUInt64LE(8), 2n);
    assert.equal(store.subarray(16, 18).toString(), 'PK');
    const dict = Buffer.from('test dictionary: not the real v0 dictionary');
    const blob = frame(store, dict);
    for (const input of [blob, Buffer.from(blob.toString('base64'))]) {
      const back = decodeAwsUefiData(input, dict);
      assert.deepEqual(back.map((v) => [v.name, v.guid, v.attributes, v.data.toString('hex'), v.timestamp?.toString('hex'), v.digest?.length]), vars.map((v) => [v.name, v.guid, v.attributes, v.data.toString('hex'), v.timestamp?.toString('hex'), 0]));
    }
    assert.equal(vars[0]?.timestamp?.toString('hex'), 'e807030506070800000000000000' + '0000');
    const corrupt = Buffer.from(blob);
    corrupt[corrupt.length - 1] = (corrupt[corrupt.length - 1] ?? 0) ^ 1;
    assert.throws(() => decodeAwsUefiData(corrupt, dict), /CRC-32C mismatch/);
    assert.throws(() => decodeAwsUefiData(blob), /preset dictionary/);
    assert.throws(() => decodeAwsUefiData(blob, Buffer.from('other')), /wants dictionary/);
  });

  test('AWS: the published example blob (python-uefivars testdata/t02.aws) names dictionary 0x6bb7d9f7; a wrong dictionary is refused', () => {
    const head = Buffer.from('QU1aTlVFRkmz9HKtAAAAAHj5a7fZ9+1c', 'base64');
    assert.ok(head.subarray(0, 8).equals(AWS_MAGIC));
    assert.equal(head.readUInt32LE(12), 0);
    assert.equal(head[16], 0x78);
    assert.equal((head[17] as number) & 0x20, 0x20);
    assert.equal(head.readUInt32BE(18), AWS_V0_DICT_ADLER32);
    assert.throws(() => checkAwsDictionary(Buffer.from('nope')), /AWS_BAD_DICTIONARY|not python-uefivars/);
    assert.throws(() => encodeAwsUefiData([], Buffer.from('nope')), CofferError);
  });
});
