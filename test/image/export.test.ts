// Cloud exports: GCP DER files and command line, Azure uefiSettings JSON, and the AWS --uefi-data
// blob: the embedded python-uefivars dictionary, the published python-uefivars vector t02.aws
// decoded and re-encoded, the strict decoder's refusals, and its behaviour on arbitrary bytes.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { deflateSync, inflateSync } from 'node:zlib';
import fc from 'fast-check';
import { CofferError } from '../../src/errors.js';
import { valueOrCoffer } from '../helpers/property.js';
import { join } from 'node:path';
import { parseCertificates, type Certificate } from '../../src/pki/certificate.js';
import { tempDir, tool } from './tools.js';
import {
  generateSecureBootKeys,
  x509SignatureList,
  sha256SignatureList,
  encodeSignatureDatabase,
  parseSignatureDatabase,
  gcpFiles,
  gcpCommand,
  azureUefiSettings,
  awsSecureBootVariables,
  encodeAwsVarStore,
  parseAwsVarStore,
  decodeAwsUefiData,
  encodeAwsUefiData,
  encodeAwsUefiDataBase64,
  frameAwsUefiData,
  awsV0Dictionary,
  adler32,
  crc32c,
  AWS_MAGIC,
  AWS_V0_DICT_ADLER32,
  AWS_EMPTY_DIGEST,
  type AwsVariable,
} from '../../src/image/index.js';

const OWNER = '3cc24e96-22c7-41d8-8863-8e39dcdcc2cf';
const AT = new Date(Date.UTC(2024, 2, 5, 6, 7, 8));
const set = generateSecureBootKeys({ owner: OWNER, at: AT });
const HASH = Buffer.alloc(32, 0xab);
const inputs = { PK: set.PK.certificate, KEK: [set.KEK.certificate], db: [set.db.certificate], dbx: { certificates: [], hashes: [HASH] } };

const GLOBAL = '8be4df61-93ca-11d2-aa0d-00e098032b8c';
const SECURITY_DB = 'd719b2cb-3d3a-4596-a3bc-dad00e67656f';
const MICROSOFT_OWNER = '77fa9abd-0359-4d32-bd60-28f4e78f784b';
const sha256 = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

/** awslabs/python-uefivars testdata/t02.aws (MIT; see fixtures/NOTICE.md). */
const T02 = readFileSync(fileURLToPath(new URL('fixtures/python-uefivars-t02.aws', import.meta.url)));
const T02_BLOB = Buffer.from(T02.toString('latin1'), 'base64');

/** The blob with its CRC recomputed, so that a test reaches the checks behind the CRC. */
function reframe(blob: Buffer, edit: (rest: Buffer) => Buffer): Buffer {
  const rest = edit(Buffer.from(blob.subarray(12)));
  const crc = Buffer.alloc(4);
  crc.writeUInt32LE(crc32c(rest));
  return Buffer.concat([blob.subarray(0, 8), crc, rest]);
}

function keysOf(vars: readonly AwsVariable[]): unknown[] {
  return vars.map((v) => [v.name, v.guid, v.attributes, v.data.toString('hex'), v.timestamp?.toString('hex'), v.digest?.toString('hex')]);
}

describe('cloud exports', () => {
  test('GCP: DER certificates per flag, dbx hashes as a binary ESL named .bin, and the gcloud command line', () => {
    const files = gcpFiles(inputs, OWNER);
    assert.deepEqual(files.map((f) => [f.name, f.flag]), [
      ['PK.cer', '--platform-key-file'],
      ['KEK.cer', '--key-exchange-key-file'],
      ['db.cer', '--signature-database-file'],
      ['dbx-hashes.bin', '--forbidden-database-file'],
    ]);
    assert.ok(files[0]?.data.equals(set.PK.certificate.der));
    // gcloud sends a file as X509 only if it begins 30 82, and as BIN only if its name ends .bin.
    for (const f of files.filter((x) => x.name.endsWith('.cer'))) assert.deepEqual([...f.data.subarray(0, 2)], [0x30, 0x82]);
    const esl = files[3]?.data as Buffer;
    assert.ok(esl.equals(sha256SignatureList([HASH], OWNER)), 'dbx-hashes.bin is the ESL hash-to-efi-sig-list would write');
    const cmd = gcpCommand(files, 'out/');
    assert.match(cmd, /^gcloud compute images create IMAGE_NAME/);
    assert.match(cmd, /--platform-key-file=out\/PK\.cer/);
    assert.match(cmd, /--forbidden-database-file=out\/dbx-hashes\.bin/);
    assert.match(cmd, /--guest-os-features=UEFI_COMPATIBLE/);
    // A hash of another length would give an ESL whose header lies about its entries.
    assert.throws(() => gcpFiles({ ...inputs, dbx: { certificates: [], hashes: [HASH, Buffer.alloc(20)] } }, OWNER), (e: unknown) => e instanceof CofferError && /32 bytes, got 20/.test(e.message));
    assert.throws(() => gcpCommand(files, 'out,1/'), (e: unknown) => e instanceof CofferError && /has a comma/.test(e.message));
  });

  test('GCP: a certificate gcloud would refuse (DER not beginning 30 82) is refused up front', () => {
    // openssl with an empty config: a P-256 certificate without extensions, about 257 bytes (30 81 ...).
    // The ECDSA signature varies by a byte or two, so make one until it is short enough.
    const dir = tempDir('gcp');
    const der = join(dir, 'small.der');
    let small: Certificate | undefined;
    for (let i = 0; i < 10 && small?.der[1] !== 0x81; i++) {
      tool('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-subj', '/CN=s', '-set_serial', '1', '-days', '1', '-nodes', '-keyout', join(dir, 'small.key'), '-outform', 'DER', '-out', der, '-config', '/dev/null']);
      small = parseCertificates(readFileSync(der))[0] as Certificate;
    }
    assert.ok(small);
    assert.deepEqual([...small.der.subarray(0, 2)], [0x30, 0x81]);
    assert.throws(() => gcpFiles({ ...inputs, dbx: { certificates: [small], hashes: [] } }, OWNER), (e: unknown) => e instanceof CofferError && e.code === 'GCP_CERT_NOT_ACCEPTED' && /dbx-1\.cer \(s\)/.test(e.message));
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
});

describe('AWS --uefi-data', () => {
  test('CRC-32C and Adler-32 check values; the embedded dictionary is the v0 one', () => {
    assert.equal(crc32c(Buffer.from('123456789')), 0xe3069283);
    assert.equal(adler32(Buffer.from('Wikipedia')), 0x11e60398);
    const dict = awsV0Dictionary();
    assert.equal(dict.length, 11381);
    assert.equal(adler32(dict), AWS_V0_DICT_ADLER32);
    assert.equal(AWS_V0_DICT_ADLER32, 0x6bb7d9f7);
    // The zlib header of the published vector names that dictionary.
    assert.deepEqual([...T02_BLOB.subarray(16, 22)], [0x78, 0xf9, 0x6b, 0xb7, 0xd9, 0xf7]);
    dict[0] = (dict[0] as number) ^ 1;
    assert.equal(adler32(awsV0Dictionary()), AWS_V0_DICT_ADLER32, 'callers get a copy');
  });

  test('python-uefivars t02.aws decodes to the variables of its t02.json', () => {
    assert.equal(sha256(T02_BLOB), 'f2e4d478d5d02222ff5dd526ff76e984f12dca31815c2421e39417c7a1730255');
    const vars = decodeAwsUefiData(T02);
    assert.deepEqual(vars.map((v) => v.name), [
      'MemoryTypeInformation', 'HDDP', 'BootOrder', 'MemoryOverwriteRequestControlLock', 'MemoryOverwriteRequestControl', 'ConIn', 'ConOut', 'MTC',
      'Boot0006', 'Boot0005', 'Boot0004', 'Boot0003', 'Boot0002', 'Boot0001', 'Boot0000', 'ConsoleOutMode', 'PlatformLang', 'Lang',
      'SbConfigState', 'dbx', 'db', 'KEK', 'PK',
    ]);
    const by = new Map(vars.map((v) => [v.name, v]));
    // t02.json: "name", "guid", "attr" and "data" (hex), no "timestamp"/"digest" (both empty).
    assert.deepEqual([by.get('BootOrder')?.guid, by.get('BootOrder')?.attributes, by.get('BootOrder')?.data.toString('hex')], [GLOBAL, 7, '00000600000001000200030004000500']);
    assert.deepEqual([by.get('MemoryTypeInformation')?.guid, by.get('MTC')?.guid], ['4c19049f-4137-4dd3-9c10-8b97a83ffdfa', 'eb704011-1402-11d3-8e77-00a0c969723b']);
    assert.equal(by.get('PK')?.data.toString('hex'), '0000ed8c2e45ffdf8c4bae015118862e682c2d00000000000000110000005be9d5a38f0a53478735445afb708f6200');
    assert.deepEqual(['SbConfigState', 'dbx', 'db', 'KEK', 'PK'].map((n) => [by.get(n)?.attributes, by.get(n)?.timestamp?.toString('hex'), by.get(n)?.digest?.toString('hex')]), Array(5).fill([0x27, '00'.repeat(16), '00'.repeat(32)]));
    assert.deepEqual(['dbx', 'db', 'KEK', 'PK'].map((n) => by.get(n)?.guid), [SECURITY_DB, SECURITY_DB, GLOBAL, GLOBAL]);
    assert.deepEqual(['dbx', 'db', 'KEK'].map((n) => [by.get(n)?.data.length, sha256(by.get(n)?.data as Buffer)]), [
      [3726, 'ed5da771d932dd1ec903f813c751bdd7f5c1b719ef2873f92731ea143626c55e'],
      [5163, '87fadbe3f96e896ead35732be221c63a2e8347ad7ba6d59d8abbaf62c469b421'],
      [1562, '8b7848fbe32fe0c37ae45dec7164c7659c04ec87cab950bbb0123299a55c7674'],
    ]);
  });

  test('t02.aws: the Secure Boot values are EFI_SIGNATURE_LISTs after two leading zero bytes, readable by our ESL reader', () => {
    // Every value in this sample (t02.json too) starts with 00 00 that is not part of the variable
    // (BootOrder, Boot####, PK...): the sample's quirk, kept as opaque data by python-uefivars. The
    // blob virt-firmware ships (tests/data/secboot.aws) has none; neither does what uefivars -P writes.
    const by = new Map(decodeAwsUefiData(T02).map((v) => [v.name, v]));
    const esl = (n: string): ReturnType<typeof parseSignatureDatabase> => {
      const d = by.get(n)?.data as Buffer;
      assert.deepEqual([...d.subarray(0, 2)], [0, 0]);
      return parseSignatureDatabase(d.subarray(2));
    };
    const kek = esl('KEK');
    assert.deepEqual(kek.map((e) => [e.kind, e.owner, e.subject]), [['x509', MICROSOFT_OWNER, 'Microsoft Corporation KEK CA 2011']]);
    const db = esl('db');
    assert.equal(db.length, 4);
    assert.ok(db.every((e) => e.kind === 'x509'));
    assert.deepEqual(db.slice(2).map((e) => [e.owner, e.subject]), [
      [MICROSOFT_OWNER, 'Microsoft Corporation UEFI CA 2011'],
      [MICROSOFT_OWNER, 'Microsoft Windows Production PCA 2011'],
    ]);
    const dbx = esl('dbx');
    assert.equal(dbx.length, 77);
    assert.ok(dbx.every((e) => e.kind === 'sha256' && e.owner === MICROSOFT_OWNER));
    assert.equal(dbx[0]?.sha256, '80b4d96931bf0d02fd91a61e19d14f1da452e66db2408ca8604d411f92659f0a');
    assert.equal(esl('PK').length, 1);
    // Without skipping the two bytes the value is not an ESL: the reader says so.
    assert.throws(() => parseSignatureDatabase(by.get('KEK')?.data as Buffer), CofferError);
  });

  test('t02.aws re-encoded is byte-identical: store, zlib stream, framing and base64 text', () => {
    const vars = decodeAwsUefiData(T02);
    const store = inflateSync(T02_BLOB.subarray(16), { dictionary: awsV0Dictionary() });
    assert.equal(store.length, 12876);
    assert.ok(encodeAwsVarStore(vars).equals(store), 'our serializer writes the same 12876 bytes python-uefivars read');
    assert.ok(frameAwsUefiData(T02_BLOB.subarray(16)).equals(T02_BLOB), 'magic, CRC-32C and version framing are byte-identical');
    assert.ok(encodeAwsUefiData(vars).equals(T02_BLOB), 'the whole 4606-byte blob, zlib stream included');
    assert.equal(encodeAwsUefiDataBase64(vars), T02.toString('latin1').trim());
    // Node's own zlib (Chromium's fork) would not do: same store, other matches, 4596 bytes.
    const node = deflateSync(store, { level: 9, dictionary: awsV0Dictionary() });
    assert.ok(!node.equals(T02_BLOB.subarray(16)));
    assert.ok(inflateSync(node, { dictionary: awsV0Dictionary() }).equals(store));
    // A changed variable changes the blob.
    const changed = vars.map((v) => (v.name === 'BootOrder' ? { ...v, data: Buffer.from('0000060000000100', 'hex') } : v));
    assert.ok(!encodeAwsUefiData(changed).equals(T02_BLOB));
  });

  test('our keys as python-uefivars -i none -o aws -P PK.esl -K KEK.esl --db db.esl --dbx dbx.esl stores them', () => {
    const esl = { PK: x509SignatureList(set.PK.certificate, OWNER), KEK: x509SignatureList(set.KEK.certificate, OWNER), db: x509SignatureList(set.db.certificate, OWNER), dbx: sha256SignatureList([HASH], OWNER) };
    const vars = awsSecureBootVariables(esl);
    assert.deepEqual(vars.map((v) => [v.name, v.guid, v.attributes]), [
      ['PK', GLOBAL, 0x27],
      ['KEK', GLOBAL, 0x27],
      ['db', SECURITY_DB, 0x27],
      ['dbx', SECURITY_DB, 0x27],
    ]);
    // Straight-line expected store, written from aws.py's __bytes__: u64 count, then per variable
    // u64 len + UTF-8 name, u64 len + data, GUID bytes_le, u32 attr, 16-byte EMPTY_TIMESTAMP,
    // u64 32 + EMPTY_DIGEST.
    const u64 = (n: number): Buffer => {
      const b = Buffer.alloc(8);
      b.writeBigUInt64LE(BigInt(n));
      return b;
    };
    const guid = (g: string): Buffer => {
      const h = Buffer.from(g.replace(/-/g, ''), 'hex');
      return Buffer.concat([Buffer.from(h.subarray(0, 4)).reverse(), Buffer.from(h.subarray(4, 6)).reverse(), Buffer.from(h.subarray(6, 8)).reverse(), h.subarray(8)]);
    };
    const expected = Buffer.concat([
      u64(4),
      ...(['PK', 'KEK', 'db', 'dbx'] as const).flatMap((n) => [u64(n.length), Buffer.from(n), u64(esl[n].length), esl[n], guid(n.startsWith('d') ? SECURITY_DB : GLOBAL), Buffer.from([0x27, 0, 0, 0]), Buffer.alloc(16), u64(32), Buffer.alloc(32)]),
    ]);
    assert.ok(encodeAwsVarStore(vars).equals(expected));
    const back = decodeAwsUefiData(encodeAwsUefiData(vars));
    assert.deepEqual(keysOf(back), keysOf(vars));
    assert.deepEqual(parseSignatureDatabase(back[0]?.data as Buffer).map((e) => e.sha256), [set.PK.certificate.sha256]);
    // With --at, the EFI_TIME of that instant instead of zeros.
    assert.equal(awsSecureBootVariables(esl, AT)[0]?.timestamp?.toString('hex'), 'e8070305060708000000000000000000');
    assert.throws(() => awsSecureBootVariables({ ...esl, PK: Buffer.alloc(0) }), CofferError);
    assert.throws(() => awsSecureBootVariables({ ...esl, db: Buffer.from('not an ESL') }), CofferError);
  });

  test('the decoder refuses what it does not understand, each with its reason', () => {
    const code = (c: string, re: RegExp) => (e: unknown): boolean => e instanceof CofferError && e.code === c && re.test(e.message);
    const flip = (b: Buffer, i: number): Buffer => {
      const c = Buffer.from(b);
      c[i] = (c[i] as number) ^ 1;
      return c;
    };
    assert.throws(() => decodeAwsUefiData(flip(T02_BLOB, 0)), code('AWS_BAD_UEFI_DATA', /neither the binary blob|AMZNUEFI/));
    for (const i of [8, 12, 40, T02_BLOB.length - 1]) assert.throws(() => decodeAwsUefiData(flip(T02_BLOB, i)), code('AWS_BAD_UEFI_DATA', /CRC-32C mismatch/), `byte ${i}`);
    assert.throws(() => decodeAwsUefiData(reframe(T02_BLOB, (r) => (r.writeUInt32LE(1, 0), r))), code('AWS_UNSUPPORTED_VERSION', /version 1/));
    assert.throws(() => decodeAwsUefiData(reframe(T02_BLOB, (r) => (r.writeUInt32BE(0x12345678, 6), r))), code('AWS_BAD_UEFI_DATA', /wants dictionary 0x12345678/));
    const plain = deflateSync(Buffer.alloc(64));
    assert.throws(() => decodeAwsUefiData(frameAwsUefiData(plain)), code('AWS_BAD_UEFI_DATA', /no preset dictionary/));
    assert.throws(() => decodeAwsUefiData(reframe(T02_BLOB, (r) => Buffer.concat([r, Buffer.from([0])]))), code('AWS_BAD_UEFI_DATA', /1 bytes after the end of the zlib stream/));
    assert.throws(() => decodeAwsUefiData(reframe(T02_BLOB, (r) => r.subarray(0, r.length - 10))), code('AWS_BAD_UEFI_DATA', /does not inflate/));
    assert.throws(() => decodeAwsUefiData(reframe(T02_BLOB, (r) => ((r[200] = (r[200] as number) ^ 0x10), r))), code('AWS_BAD_UEFI_DATA', /does not inflate/));
    assert.throws(() => decodeAwsUefiData(T02_BLOB.subarray(0, 15)), code('AWS_BAD_UEFI_DATA', /shorter than its 16-byte header|CRC/));
    assert.throws(() => decodeAwsUefiData(Buffer.from(T02.toString('latin1').slice(0, 401))), code('AWS_BAD_UEFI_DATA', /multiple of 4/));
    assert.throws(() => decodeAwsUefiData(Buffer.from(`${T02.toString('latin1').slice(0, 400)}*${T02.toString('latin1').slice(401)}`)), code('AWS_BAD_UEFI_DATA', /neither/));
    // The store behind a valid frame and stream: every length checked, nothing left over, no duplicates.
    const store = encodeAwsVarStore(awsSecureBootVariables({ PK: x509SignatureList(set.PK.certificate, OWNER), KEK: x509SignatureList(set.KEK.certificate, OWNER), db: x509SignatureList(set.db.certificate, OWNER) }));
    const blobOf = (s: Buffer): Buffer => frameAwsUefiData(deflateSync(s, { level: 9, dictionary: awsV0Dictionary() }));
    assert.throws(() => decodeAwsUefiData(blobOf(store.subarray(0, store.length - 1))), code('AWS_BAD_UEFI_DATA', /claims 32 bytes, 31 remain/));
    assert.throws(() => decodeAwsUefiData(blobOf(Buffer.concat([store, Buffer.from([1])]))), code('AWS_BAD_UEFI_DATA', /1 bytes after the last of 3 variables/));
    const count = Buffer.from(store);
    count.writeBigUInt64LE(4n, 0);
    assert.throws(() => decodeAwsUefiData(blobOf(count)), code('AWS_BAD_UEFI_DATA', /truncated/));
    count.writeBigUInt64LE(1n << 40n, 0);
    assert.throws(() => decodeAwsUefiData(blobOf(count)), code('AWS_BAD_UEFI_DATA', /claims 1099511627776 variables/));
    const hugeName = Buffer.from(store);
    hugeName.writeBigUInt64LE(1n << 62n, 8);
    assert.throws(() => decodeAwsUefiData(blobOf(hugeName)), code('AWS_BAD_UEFI_DATA', /claims 4611686018427387904 bytes/));
    const twice = awsSecureBootVariables({ PK: x509SignatureList(set.PK.certificate, OWNER), KEK: x509SignatureList(set.KEK.certificate, OWNER), db: x509SignatureList(set.db.certificate, OWNER) });
    assert.throws(() => decodeAwsUefiData(encodeAwsUefiData([...twice, twice[0] as AwsVariable])), code('AWS_BAD_UEFI_DATA', /PK \(8be4df61-.*\) appears twice/));
    const badName = Buffer.from(store);
    badName[16] = 0xff;
    assert.throws(() => decodeAwsUefiData(blobOf(badName)), code('AWS_BAD_UEFI_DATA', /not UTF-8/));
    assert.deepEqual(keysOf(parseAwsVarStore(store)), keysOf(twice));
    assert.ok(AWS_MAGIC.equals(Buffer.from('AMZNUEFI')) && AWS_EMPTY_DIGEST.length === 32);
  });

  test('review regressions: linear base64 check, names kept byte for byte and printable', () => {
    const code = (c: string, re: RegExp) => (e: unknown): boolean => e instanceof CofferError && e.code === c && re.test(e.message);
    // Whitespace then a stray byte: was quadratic backtracking (40,000 spaces took ~4 s).
    const t0 = performance.now();
    assert.throws(() => decodeAwsUefiData(Buffer.from(`QU1aTlVFRk${' '.repeat(200000)}!`)), code('AWS_BAD_UEFI_DATA', /neither/));
    assert.ok(performance.now() - t0 < 1000, `base64 check took ${(performance.now() - t0).toFixed(0)} ms`);
    // Base64 text with ASCII whitespace is still read; a 0xa0 byte (U+00A0 in latin1) is not whitespace.
    const text = T02.toString('latin1').trim();
    assert.equal(decodeAwsUefiData(Buffer.from(` ${text.slice(0, 76)}\r\n${text.slice(76)}\n\t`)).length, 23);
    assert.throws(() => decodeAwsUefiData(Buffer.concat([Buffer.from(text.slice(0, 76)), Buffer.from([0xa0]), Buffer.from(text.slice(76))])), code('AWS_BAD_UEFI_DATA', /neither/));
    // Raw stores (the decoder's view), each name valid UTF-8.
    const raw = (name: Buffer): Buffer => {
      const w = Buffer.alloc(8 + 8 + name.length + 8 + 1 + 16 + 4);
      let o = w.writeBigUInt64LE(1n, 0);
      o = w.writeBigUInt64LE(BigInt(name.length), o);
      o += name.copy(w, o);
      o = w.writeBigUInt64LE(1n, o);
      o = w.writeUInt8(1, o) + 16;
      w.writeUInt32LE(7, o);
      return w;
    };
    assert.equal(parseAwsVarStore(raw(Buffer.from('PK')))[0]?.name, 'PK');
    // A name over the 1024-byte limit is said to be so, not to overrun what remains.
    const long = Buffer.concat([raw(Buffer.alloc(1025, 0x41)), Buffer.alloc(100)]);
    assert.throws(() => parseAwsVarStore(long), code('AWS_BAD_UEFI_DATA', /claims 1025 bytes, more than the 1024 allowed/));
    // A leading EF BB BF was dropped by TextDecoder's default: "\uFEFFPK" was shown as "PK".
    assert.throws(() => parseAwsVarStore(raw(Buffer.from([0xef, 0xbb, 0xbf, 0x50, 0x4b]))), code('AWS_BAD_UEFI_DATA', /\("\\u\{feff\}PK"\) has a control, format/));
    for (const bad of ['PK\nKEK 8be4df61 attributes 0x27', '\u001b[2JPK', 'P\u200bK', '\u202eKP', 'PK\u2028', 'PK\u0085', 'P\ue000K']) {
      assert.throws(() => parseAwsVarStore(raw(Buffer.from(bad, 'utf8'))), code('AWS_BAD_UEFI_DATA', /has a control, format or private-use character/), JSON.stringify(bad));
      assert.throws(() => encodeAwsVarStore([{ name: bad, guid: GLOBAL, attributes: 7, data: Buffer.from([1]) }]), code('USAGE', /has a control, format/), JSON.stringify(bad));
    }
    // A lone surrogate would be written as EF BF BD, another name than the one given.
    assert.throws(() => encodeAwsVarStore([{ name: 'PK\ud800', guid: GLOBAL, attributes: 7, data: Buffer.from([1]) }]), code('USAGE', /lone surrogate/));
    // Printable non-ASCII names still go both ways.
    assert.equal(parseAwsVarStore(encodeAwsVarStore([{ name: 'Clé\u00a0Ω', guid: GLOBAL, attributes: 7, data: Buffer.from([1]) }]))[0]?.name, 'Clé\u00a0Ω');
  });

  test('the encoder refuses variables it cannot write faithfully', () => {
    const v: AwsVariable = { name: 'Foo', guid: GLOBAL, attributes: 7, data: Buffer.from([1]) };
    assert.ok(encodeAwsVarStore([v]).length > 0);
    assert.throws(() => encodeAwsVarStore([{ ...v, name: '' }]), CofferError);
    assert.throws(() => encodeAwsVarStore([{ ...v, timestamp: Buffer.alloc(16) }]), /needs attribute TIME_BASED/);
    assert.throws(() => encodeAwsVarStore([{ ...v, attributes: 0x27, timestamp: Buffer.alloc(15) }]), /16 bytes/);
    assert.throws(() => encodeAwsVarStore([{ ...v, guid: 'nope' }]), CofferError);
    assert.equal(encodeSignatureDatabase([{ kind: 'sha256', owner: OWNER, hash: HASH }]).length, 76);
  });

  test('arbitrary bytes, base64 text and mutated stores give variables or a CofferError', () => {
    const store = encodeAwsVarStore(decodeAwsUefiData(T02));
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 512 }), fc.boolean(), (raw, asText) => {
        const b = Buffer.from(raw);
        valueOrCoffer('decodeAwsUefiData', () => decodeAwsUefiData(asText ? Buffer.from(b.toString('base64')) : b));
        valueOrCoffer('decodeAwsUefiData framed', () => decodeAwsUefiData(Buffer.concat([AWS_MAGIC, b])));
        valueOrCoffer('parseAwsVarStore', () => parseAwsVarStore(b));
      }),
      { numRuns: 300 },
    );
    fc.assert(
      fc.property(fc.nat({ max: store.length - 1 }), fc.integer({ min: 1, max: 255 }), (i, x) => {
        const m = Buffer.from(store);
        m[i] = (m[i] as number) ^ x;
        valueOrCoffer('parseAwsVarStore mutated', () => parseAwsVarStore(m));
      }),
      { numRuns: 400 },
    );
    fc.assert(
      fc.property(fc.nat({ max: T02_BLOB.length - 17 }), fc.integer({ min: 1, max: 255 }), (i, x) => {
        valueOrCoffer('decodeAwsUefiData mutated stream', () => decodeAwsUefiData(reframe(T02_BLOB, (r) => ((r[4 + i] = (r[4 + i] as number) ^ x), r))));
      }),
      { numRuns: 150 },
    );
  });
});
