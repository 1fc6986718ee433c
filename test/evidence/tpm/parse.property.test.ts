// The TPM parsers against arbitrary input (a value or a CofferError, never another exception,
// never a hang), then each deterministic refusal with its code.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import fc from 'fast-check';
import { valueOrCoffer } from '../../helpers/property.js';
import { CofferError } from '../../../src/errors.js';
import {
  encodePcrSelection,
  parseAkPart,
  parsePcrFile,
  parsePcrJson,
  parseTpm2bPublic,
  parseTpm2ToolsPcrs,
  parseTpmQuote,
  parseTpmSignature,
  parseTpmtPublic,
  qualifiedName,
  verifyTpmQuote,
  loadAttestationKey,
} from '../../../src/evidence/tpm/index.js';
import { GCE, GCE_AT, GCE_DIRS, KINVOLK, expectCoffer, gceQuote, vector } from './vectors.js';

function allParsers(b: Uint8Array): void {
  valueOrCoffer('parseTpmQuote', () => parseTpmQuote(b));
  valueOrCoffer('parseTpmSignature', () => parseTpmSignature(b));
  valueOrCoffer('parseTpmtPublic', () => parseTpmtPublic(b));
  valueOrCoffer('parseTpm2bPublic', () => parseTpm2bPublic(b));
  valueOrCoffer('parseAkPart', () => parseAkPart(b));
  valueOrCoffer('parsePcrFile', () => parsePcrFile(b));
  valueOrCoffer('parseTpm2ToolsPcrs', () => parseTpm2ToolsPcrs(b));
}

const ATTESTS = GCE_DIRS.flatMap((d) => ['sha1', 'sha256', 'sha384'].map((bank) => gceQuote(d, bank).attest)).concat([vector(join(KINVOLK, 'derived/quote.msg'))]);
const SIGS = GCE_DIRS.map((d) => gceQuote(d, 'sha256').signature);
const TPMT = vector(join(GCE, GCE_DIRS[0], 'ak_pub.tpmt'));

// A tpm2-tools PCR file (two banks, 3 values) built to the documented layout.
function tssPcrFile(): Buffer {
  const sel = Buffer.alloc(132);
  sel.writeUInt32LE(2, 0);
  sel.writeUInt16LE(0x0004, 4);
  sel[6] = 3;
  sel[7] = 0b0000_0001; // sha1:0
  sel.writeUInt16LE(0x000b, 12);
  sel[14] = 3;
  sel[15] = 0b0000_0011; // sha256:0,1
  const list = Buffer.alloc(532);
  list.writeUInt32LE(3, 0);
  for (const [i, size, fill] of [[0, 20, 0x11], [1, 32, 0x22], [2, 32, 0x33]] as const) {
    list.writeUInt16LE(size, 4 + i * 66);
    list.fill(fill, 6 + i * 66, 6 + i * 66 + size);
  }
  const n = Buffer.alloc(4);
  n.writeUInt32LE(1);
  return Buffer.concat([sel, n, list]);
}

const mutations = fc.array(fc.tuple(fc.nat({ max: 100_000 }), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 6 });
function mutate(base: Uint8Array, muts: [number, number][]): Buffer {
  const out = Buffer.from(base);
  for (const [o, v] of muts) out[o % out.length] = v;
  return out;
}

describe('property: arbitrary bytes produce a value or a CofferError', () => {
  test('arbitrary byte arrays (0..1024)', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 1024 }), (b) => allParsers(b)), { numRuns: 500 });
  });

  test('real quotes, signatures, public areas and PCR files with random mutations', () => {
    const bases = [...ATTESTS, ...SIGS, TPMT, tssPcrFile(), vector(join(KINVOLK, 'akpub.pem')), vector(join(GCE, GCE_DIRS[0], 'ak_cert.der'))];
    fc.assert(fc.property(fc.constantFrom(...bases), mutations, (base, muts) => allParsers(mutate(base, muts))), { numRuns: 1500 });
  });

  test('structured prefixes: valid magic/type or algorithm ids followed by random bytes', () => {
    const prefix = fc.constantFrom('ff5443478018', '00140b00', '0014000b', '0018000b', '0016000c', '0001000b', '0023000b', '0023000c00050072');
    fc.assert(fc.property(prefix, fc.uint8Array({ maxLength: 300 }), (p, rest) => allParsers(Buffer.concat([Buffer.from(p, 'hex'), rest]))), { numRuns: 800 });
  });

  test('mutated quotes never verify and never throw a foreign exception', () => {
    const ak = loadAttestationKey([{ data: TPMT, what: 'tpmt' }]);
    fc.assert(
      fc.property(fc.constantFrom(...ATTESTS.slice(0, 6)), mutations, (base, muts) => {
        const b = mutate(base, muts);
        if (b.equals(base)) return;
        valueOrCoffer('verifyTpmQuote', () => verifyTpmQuote(b, SIGS[0] as Buffer, { at: GCE_AT, ak, skipNonceCheck: true }));
        assert.throws(() => verifyTpmQuote(b, SIGS[0] as Buffer, { at: GCE_AT, ak, skipNonceCheck: true }), CofferError);
      }),
      { numRuns: 300 },
    );
  });

  test('JSON PCR files of arbitrary shape', () => {
    const json = fc.jsonValue({ maxDepth: 4 });
    fc.assert(fc.property(json, (v) => valueOrCoffer('parsePcrJson', () => parsePcrJson(JSON.stringify(v)))), { numRuns: 500 });
  });
});

describe('TPMS_ATTEST refusals', () => {
  const base = ATTESTS[3] as Buffer; // nonce9009 sha1: 115 bytes, extraData 9009
  const at = (fn: (b: Buffer) => void): Buffer => {
    const b = Buffer.from(base);
    fn(b);
    return b;
  };

  test('fields are read from their places', () => {
    const q = parseTpmQuote(base);
    assert.equal(q.qualifiedSigner.length, 34);
    assert.equal(q.extraData.toString('hex'), '9009');
    assert.equal(q.clockInfo.clock, 8219159479n);
    assert.deepEqual([q.clockInfo.resetCount, q.clockInfo.restartCount, q.clockInfo.safe], [10, 0, true]);
    assert.equal(q.firmwareVersion, 0x2016051100162800n);
    assert.deepEqual(q.pcrSelection, [{ hash: 4, hashName: 'sha1', sizeofSelect: 3, pcrs: Array.from({ length: 24 }, (_, i) => i) }]);
    assert.equal(q.pcrDigest.toString('hex'), 'fda327d4ba5d5978fe3a23db1a47964050e872639ef5d6a99c123cca39e56d8b');
    assert.ok(q.raw.equals(base));
  });

  test('magic, type, trailing bytes, truncation', () => {
    expectCoffer(() => parseTpmQuote(at((b) => (b[0] = 0xfe))), 'TPM_BAD_MAGIC', { kind: 'input', message: /0xfe544347/ });
    expectCoffer(() => parseTpmQuote(at((b) => b.writeUInt16BE(0x8017, 4))), 'TPM_NOT_A_QUOTE', { kind: 'input', message: /"certify"/ });
    expectCoffer(() => parseTpmQuote(at((b) => b.writeUInt16BE(0x8020, 4))), 'TPM_NOT_A_QUOTE', { message: /not a TPM_ST_ATTEST value/ });
    expectCoffer(() => parseTpmQuote(Buffer.concat([base, Buffer.alloc(1)])), 'TRAILING_BYTES');
    expectCoffer(() => parseTpmQuote(base.subarray(0, base.length - 1)), 'TRUNCATED');
    expectCoffer(() => parseTpmQuote(Buffer.alloc(0)), 'TRUNCATED');
  });

  test('TPM2B bounds, names, TPMI_YES_NO, PCR selections', () => {
    // qualifiedSigner size 0x22 at offset 6: a name of 33 bytes is no name.
    expectCoffer(() => parseTpmQuote(at((b) => b.writeUInt16BE(0x0021, 6))), 'TPM_BAD_NAME');
    expectCoffer(() => parseTpmQuote(at((b) => b.writeUInt16BE(0x0100, 6))), 'TPM_BAD_SIZE', { message: /qualifiedSigner claims 256 bytes, more than the 66/ });
    // Layout of this quote: name size @6 (34 bytes), extraData size @0x2a (2 bytes), clock @0x2e,
    // resetCount @0x36, restartCount @0x3a, safe @0x3e, firmware @0x3f, selection count @0x47,
    // bank hash @0x4b, sizeofSelect @0x4d, bitmap @0x4e, pcrDigest size @0x51.
    expectCoffer(() => parseTpmQuote(at((b) => b.writeUInt16BE(67, 0x2a))), 'TPM_BAD_SIZE', { message: /extraData claims 67/ });
    expectCoffer(() => parseTpmQuote(at((b) => (b[0x3e] = 2))), 'TPM_BAD_VALUE', { message: /TPMI_YES_NO/ });
    expectCoffer(() => parseTpmQuote(at((b) => b.writeUInt32BE(17, 0x47))), 'TPM_BAD_PCR_SELECTION', { message: /17 banks/ });
    expectCoffer(() => parseTpmQuote(at((b) => b.writeUInt16BE(0x0012, 0x4b))), 'TPM_UNSUPPORTED_ALG', { message: /sm3-256/ });
    expectCoffer(() => parseTpmQuote(at((b) => (b[0x4d] = 5))), 'TPM_BAD_PCR_SELECTION', { message: /PCR_SELECT_MAX/ });
    expectCoffer(() => parseTpmQuote(at((b) => b.writeUInt16BE(65, 0x51))), 'TPM_BAD_SIZE', { message: /pcrDigest claims 65/ });
    const q = parseTpmQuote(at((b) => (b[0x3e] = 0)));
    assert.equal(q.clockInfo.safe, false);
    // Two banks, the same hash twice.
    const dup = Buffer.concat([base.subarray(0, 0x47), encodePcrSelection([{ hash: 4, pcrs: [0] }, { hash: 4, pcrs: [1] }]), base.subarray(0x51)]);
    expectCoffer(() => parseTpmQuote(dup), 'TPM_BAD_PCR_SELECTION', { message: /selected twice/ });
    // pcrDigest of 33 bytes is the size of no hash.
    const odd = Buffer.concat([base.subarray(0, 0x51), Buffer.from([0, 33]), Buffer.alloc(33)]);
    expectCoffer(() => parseTpmQuote(odd), 'TPM_BAD_SIZE', { message: /pcrDigest is 33 bytes/ });
    // A 4-octet bitmap (32 PCRs) and an all-zero 3-octet one parse (an empty selection is refused by verification).
    const wide = Buffer.concat([base.subarray(0, 0x47), encodePcrSelection([{ hash: 0x0b, pcrs: [0, 31], sizeofSelect: 4 }, { hash: 0x0c, pcrs: [], sizeofSelect: 3 }]), base.subarray(0x51)]);
    assert.deepEqual(parseTpmQuote(wide).pcrSelection.map((s) => [s.hashName, s.pcrs]), [['sha256', [0, 31]], ['sha384', []]]);
    // L2: a bitmap shorter than PCR_SELECT_MIN (3 octets) is no TPM's encoding.
    for (const size of [0, 1, 2]) {
      const short = Buffer.concat([base.subarray(0, 0x47), encodePcrSelection([{ hash: 0x0b, pcrs: [], sizeofSelect: size }]), base.subarray(0x51)]);
      expectCoffer(() => parseTpmQuote(short), 'TPM_BAD_PCR_SELECTION', { message: /less than PCR_SELECT_MIN/ });
    }
  });
});

describe('TPMT_SIGNATURE and TPMT_PUBLIC refusals', () => {
  test('signature algorithms and sizes', () => {
    const ecdsa = Buffer.from('0018000b0003010203000104', 'hex');
    const s = parseTpmSignature(ecdsa);
    assert.equal(s.alg, 'ecdsa');
    assert.deepEqual([s.ecdsa?.r.toString('hex'), s.ecdsa?.s.toString('hex')], ['010203', '04']);
    expectCoffer(() => parseTpmSignature(Buffer.from('001a000b00000000', 'hex')), 'TPM_UNSUPPORTED_ALG', { message: /ecdaa/ });
    expectCoffer(() => parseTpmSignature(Buffer.from('0005000b0000', 'hex')), 'TPM_UNSUPPORTED_ALG', { message: /hmac/ });
    expectCoffer(() => parseTpmSignature(Buffer.from('0018000b00430000', 'hex')), 'TPM_BAD_SIZE', { message: /signatureR claims 67/ });
    expectCoffer(() => parseTpmSignature(Buffer.from('0014000b0201', 'hex')), 'TPM_BAD_SIZE', { message: /513 bytes, more than the 512/ });
    expectCoffer(() => parseTpmSignature(Buffer.concat([SIGS[0] as Buffer, Buffer.alloc(2)])), 'TRAILING_BYTES');
  });

  test('public area: type, nameAlg, reserved attributes, authPolicy, key sizes, TPM2B length', () => {
    const at = (off: number, hex: string) => {
      const b = Buffer.from(TPMT);
      Buffer.from(hex, 'hex').copy(b, off);
      return b;
    };
    expectCoffer(() => parseTpmtPublic(at(0, '0008')), 'TPM_UNSUPPORTED_ALG', { message: /keyedhash/ });
    expectCoffer(() => parseTpmtPublic(at(2, '0010')), 'TPM_UNSUPPORTED_ALG', { message: /nameAlg null/ });
    expectCoffer(() => parseTpmtPublic(at(4, '00050073')), 'RESERVED_NOT_ZERO', { message: /reserved bit\(s\) 0x1/ });
    expectCoffer(() => parseTpmtPublic(at(4, '00070072')), 'TPM_BAD_PUBLIC', { message: /both sign and decrypt/ });
    expectCoffer(() => parseTpmtPublic(at(8, '0001')), 'TPM_BAD_PUBLIC', { message: /authPolicy is 1 bytes/ });
    expectCoffer(() => parseTpmtPublic(at(8, '0041')), 'TPM_BAD_SIZE', { message: /authPolicy claims 65/ });
    // keyBits at 8 + 2 (authPolicy size) + 2 (sym NULL) + 4 (scheme RSASSA + hash) = 16.
    expectCoffer(() => parseTpmtPublic(at(16, '0801')), 'TPM_UNSUPPORTED_ALG', { message: /RSA key size 2049/ });
    expectCoffer(() => parseTpmtPublic(at(16, '0c00')), 'TPM_BAD_PUBLIC', { message: /keyBits says 384/ });
    expectCoffer(() => parseTpmtPublic(at(18, '00000002')), 'TPM_BAD_PUBLIC', { message: /exponent 2/ });
    expectCoffer(() => parseTpmtPublic(Buffer.concat([TPMT, Buffer.alloc(1)])), 'TRAILING_BYTES');
    const size = Buffer.alloc(2);
    size.writeUInt16BE(TPMT.length + 1);
    expectCoffer(() => parseTpm2bPublic(Buffer.concat([size, TPMT])), 'TRUNCATED');
    // An ECC public area with an unsupported curve (BN P-256), and an off-curve point.
    const ecc = Buffer.from('0023000b00050072000000100018000b0010001000000000', 'hex');
    expectCoffer(() => parseTpmtPublic(ecc), 'TPM_UNSUPPORTED_ALG', { message: /bn-p256/ });
    const offCurve = Buffer.concat([Buffer.from('0023000b00050072000000100018000b000300100020', 'hex'), Buffer.alloc(32, 1), Buffer.from('0020', 'hex'), Buffer.alloc(32, 2)]);
    expectCoffer(() => parseTpmtPublic(offCurve), 'TPM_BAD_PUBLIC');
  });

  test('qualified names: hierarchy handle, then parent QN', () => {
    // Values read from swtpm with tpm2_readpublic (EK name → EK QN → AK QN).
    const ekName = Buffer.from('000b975c329b94a9c7cd80dce360c4c8e88e85002adc4bad3c959ff3ef31d0a8a721', 'hex');
    const ekQn = qualifiedName(0x4000000b, ekName);
    assert.equal(ekQn.toString('hex'), '000b34c7799e4ce9157d2b44ac0548f240b2ac35be2245cab3c5ff60540ff383d889');
    const akName = Buffer.from('000b5b43140a7514691614ff7fdf21056340136c853e6f094784f634aa70812d42bc', 'hex');
    assert.equal(qualifiedName(ekQn, akName).toString('hex'), '000be64e82846ec2b2848815009722540d7681e4a9b61b7d04111f476f9fe38a1768');
    expectCoffer(() => qualifiedName(0x4000000b, Buffer.from('0012', 'hex')), 'TPM_UNSUPPORTED_ALG');
  });
});

describe('PCR files', () => {
  test('the tpm2-tools serialized layout: selection order, little-endian, digest sizes', () => {
    const { selection, banks } = parseTpm2ToolsPcrs(tssPcrFile());
    assert.deepEqual(selection.map((s) => [s.hashName, s.pcrs]), [['sha1', [0]], ['sha256', [0, 1]]]);
    assert.equal(banks.get('sha1')?.get(0)?.toString('hex'), '11'.repeat(20));
    assert.equal(banks.get('sha256')?.get(1)?.toString('hex'), '33'.repeat(32));
    const short = tssPcrFile();
    short.writeUInt32LE(2, 136);
    expectCoffer(() => parseTpm2ToolsPcrs(short), 'TPM_BAD_PCR_FILE', { message: /names 3 PCR\(s\) but the file holds 2/ });
    const badSize = tssPcrFile();
    badSize.writeUInt16LE(32, 140);
    expectCoffer(() => parseTpm2ToolsPcrs(badSize), 'TPM_BAD_PCR_FILE', { message: /sha1:0 is 32 bytes/ });
    expectCoffer(() => parseTpm2ToolsPcrs(Buffer.concat([tssPcrFile(), Buffer.alloc(1)])), 'TRAILING_BYTES');
  });

  test('JSON shapes: banks, "pcrs", flat by size, arrays, GCE extracted.json; conflicts refused', () => {
    assert.equal(parsePcrJson('{"sha256": {"7": "' + 'ab'.repeat(32) + '"}}').get('sha256')?.get(7)?.toString('hex'), 'ab'.repeat(32));
    assert.equal(parsePcrJson('{"pcrs": {"sha1": ["' + '00'.repeat(20) + '"]}}').get('sha1')?.get(0)?.length, 20);
    assert.equal(parsePcrJson('{"3": "0x' + '01'.repeat(48) + '"}').get('sha384')?.get(3)?.toString('hex'), '01'.repeat(48));
    const gce = parsePcrFile(vector(join(GCE, GCE_DIRS[1], 'extracted.json')));
    assert.deepEqual([...gce.keys()], ['sha1', 'sha256', 'sha384']);
    assert.equal(gce.get('sha384')?.size, 24);
    expectCoffer(() => parsePcrJson('{"sha256": {"0": "' + 'ab'.repeat(20) + '"}}'), 'TPM_BAD_PCR_FILE', { message: /20 bytes, a sha256 value is 32/ });
    expectCoffer(() => parsePcrJson('{"sha256": {"32": "' + 'ab'.repeat(32) + '"}}'), 'TPM_BAD_PCR_FILE', { message: /not a PCR index/ });
    expectCoffer(() => parsePcrJson('{"sm3": {}}'), 'TPM_BAD_PCR_FILE');
    expectCoffer(() => parsePcrJson('{"0": "zz"}'), 'TPM_BAD_PCR_FILE', { message: /not valid hex/ });
    expectCoffer(() => parsePcrJson('not json'), 'TPM_BAD_PCR_FILE');
    expectCoffer(() => parsePcrJson('{}'), 'TPM_BAD_PCR_FILE');
  });
});
