// Our port of stock zlib's level-9 deflate (used for the AWS --uefi-data blob) against stock zlib:
// python-uefivars' published t02.aws stream, and streams python 3's zlib 1.2.13 wrote for
// synthetic inputs (sha256 pinned below, computed with `zlib.compressobj(9[, zdict=dict])`),
// chosen to reach stored blocks, maximal matches, window slides past 64 KiB and the dictionary.
// Every output must also inflate back with Node's (independent) inflater.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { inflateSync } from 'node:zlib';
import fc from 'fast-check';
import { zlibDeflateLevel9, awsV0Dictionary } from '../../src/image/index.js';

const sha256 = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');
const DICT = awsV0Dictionary();
const T02_BLOB = Buffer.from(readFileSync(fileURLToPath(new URL('fixtures/python-uefivars-t02.aws', import.meta.url))).toString('latin1'), 'base64');
const T02_STORE = inflateSync(T02_BLOB.subarray(16), { dictionary: DICT });

/** The LCG python's generator used: x = (x * 1103515245 + 12345) mod 2^31, byte (x >> 16) & 0xff. */
function lcg(n: number): Buffer {
  const out = Buffer.alloc(n);
  let x = 1n;
  for (let i = 0; i < n; i++) {
    x = (x * 1103515245n + 12345n) % (1n << 31n);
    out[i] = Number((x >> 16n) & 0xffn);
  }
  return out;
}

const CASES: { name: string; data: () => Buffer; dict: boolean; length: number; sha256: string }[] = [
  { name: '200000 zeros (maximal matches, many blocks)', data: () => Buffer.alloc(200000), dict: false, length: 217, sha256: '6da4f3e43c9461927d84691b69a2bb3b028a3259c4b2ee411ef0b37c0220d609' },
  { name: 'ramp (i*7)%251, 100000 bytes', data: () => Buffer.from(Array.from({ length: 100000 }, (_, i) => (i * 7) % 251)), dict: false, length: 713, sha256: 'a1447ba59b6bd624fe4956b7e07ae41ea597718c8dbb5f553177847a0a42f899' },
  { name: '70000 LCG bytes with the dictionary (stored blocks, window slides)', data: () => lcg(70000), dict: true, length: 70035, sha256: '5020804856b5a645e1490c3c42ab6d93b853b6c3d34a5d2a6c6c866901843cb9' },
  { name: 'the dictionary 7 times + "AMZNUEFI", with the dictionary', data: () => Buffer.concat([...Array<Buffer>(7).fill(DICT), Buffer.from('AMZNUEFI')]), dict: true, length: 579, sha256: '5e8c7ae287ddc631575055d0aa83a947a9126e6b85e9f2d165a0c4bdc80c07c6' },
  { name: "t02's store 6 times, with the dictionary", data: () => Buffer.concat(Array<Buffer>(6).fill(T02_STORE)), dict: true, length: 5196, sha256: 'be9edb26708593dcda1fe6f7b9da99af952fa164472ae1ca80515aeeb0eb439c' },
  { name: "20000 LCG bytes then t02's store, with the dictionary", data: () => Buffer.concat([lcg(20000), T02_STORE]), dict: true, length: 26452, sha256: '0392e7ef5c5703ebc0e41666ef5afeaa94910b4230ef57dc3f4672b6718a769f' },
];

describe('zlib level 9, as stock zlib writes it', () => {
  test("python-uefivars t02.aws: the 4590-byte stream from its 12876-byte store", () => {
    assert.equal(T02_STORE.length, 12876);
    const ours = zlibDeflateLevel9(T02_STORE, DICT);
    assert.ok(ours.equals(T02_BLOB.subarray(16)));
    // Header: deflate, 32 KiB window, FLEVEL 3, FDICT; DICTID of the v0 dictionary.
    assert.deepEqual([...ours.subarray(0, 6)], [0x78, 0xf9, 0x6b, 0xb7, 0xd9, 0xf7]);
    // Another dictionary gives other deflate data, not just another DICTID (a negative twin: the
    // dictionary's bytes are really matched against). Byte 10000 is one t02's matches reach;
    // flipping byte 5000, which none reaches, changes only the header.
    const other = Buffer.from(DICT);
    other[10000] = (other[10000] as number) ^ 1;
    assert.ok(!zlibDeflateLevel9(T02_STORE, other).subarray(6).equals(ours.subarray(6)));
    assert.ok(inflateSync(zlibDeflateLevel9(T02_STORE, other), { dictionary: other }).equals(T02_STORE));
  });

  for (const c of CASES) {
    test(c.name, () => {
      const data = c.data();
      const out = c.dict ? zlibDeflateLevel9(data, DICT) : zlibDeflateLevel9(data);
      assert.equal(out.length, c.length);
      assert.equal(sha256(out), c.sha256);
      assert.ok(inflateSync(out, c.dict ? { dictionary: DICT } : {}).equals(data));
    });
  }

  test('arbitrary data and dictionaries inflate back with Node', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 3000 }), fc.uint8Array({ maxLength: 600 }), fc.integer({ min: 1, max: 40 }), (raw, dict, repeat) => {
        // Repetition gives matches; raw randomness gives literals and stored blocks.
        const data = Buffer.concat(Array<Buffer>(repeat).fill(Buffer.from(raw)));
        const out = zlibDeflateLevel9(data, dict.length > 0 ? dict : undefined);
        assert.ok(inflateSync(out, dict.length > 0 ? { dictionary: Buffer.from(dict) } : {}).equals(data));
      }),
      { numRuns: 120 },
    );
  });
});
