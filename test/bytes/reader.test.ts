// ByteReader, ByteWriter and the hex helpers: the one place offsets are read, so every read is
// bounds-checked and every failure is a CofferError with a stable code.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { ByteReader, ByteWriter, fromHex, toHex, isAllZero } from '../../src/bytes/index.js';
import { CofferError } from '../../src/errors.js';

/** Asserts that fn throws a CofferError with `code` (and kind), returning it for further checks. */
function throwsCoffer(fn: () => unknown, code: string, kind: 'input' | 'verify' = 'input'): CofferError {
  let caught: unknown;
  try {
    fn();
  } catch (e) {
    caught = e;
  }
  assert.ok(caught instanceof CofferError, `expected CofferError ${code}, got ${caught instanceof Error ? `${caught.name}: ${caught.message}` : String(caught)}`);
  assert.equal(caught.code, code, caught.message);
  assert.equal(caught.kind, kind);
  assert.ok(!caught.message.includes('\n'), 'error messages are one line');
  return caught;
}

const SAMPLE = Buffer.from('0102030405060708090a0b0c0d0e0f10', 'hex');

describe('ByteReader: values', () => {
  test('little- and big-endian integers of every width, advancing the offset', () => {
    const r = new ByteReader(SAMPLE, 'sample');
    assert.equal(r.length, 16);
    assert.equal(r.u8(), 0x01);
    assert.equal(r.offset, 1);
    assert.equal(r.u16le(), 0x0302);
    assert.equal(r.u32le(), 0x07060504);
    assert.equal(r.offset, 7);
    assert.equal(r.u64le(), 0x0f0e0d0c0b0a0908n);
    assert.equal(r.remaining, 1);
    assert.equal(r.u8(), 0x10);
    assert.equal(r.remaining, 0);
    r.end();

    const b = new ByteReader(SAMPLE, 'sample');
    assert.equal(b.u16be(), 0x0102);
    assert.equal(b.u32be(), 0x03040506);
    assert.equal(b.u64be(), 0x0708090a0b0c0d0en);
    assert.equal(b.offset, 14);
  });

  test('u32 and u64 are unsigned, u64 is a bigint (no precision loss above 2^53)', () => {
    const ff = Buffer.alloc(8, 0xff);
    assert.equal(new ByteReader(ff).u32le(), 0xffffffff);
    assert.equal(new ByteReader(ff).u32be(), 0xffffffff);
    assert.equal(new ByteReader(ff).u64le(), 0xffffffffffffffffn);
    assert.equal(new ByteReader(ff).u64be(), 0xffffffffffffffffn);
    assert.equal(new ByteReader(Buffer.from('0100000000002000', 'hex')).u64le(), 0x0020000000000001n);
  });

  test('seek, skip and a start offset are relative to the buffer given', () => {
    const r = new ByteReader(SAMPLE, 'sample', 4);
    assert.equal(r.offset, 4);
    assert.equal(r.u8(), 0x05);
    r.seek(15);
    assert.equal(r.u8(), 0x10);
    r.seek(0).skip(2);
    assert.equal(r.u8(), 0x03);
    r.seek(16); // the end is a valid position
    assert.equal(r.remaining, 0);
    r.end();
  });

  test('a reader over a subarray sees only that view, never the bytes around it', () => {
    const parent = Buffer.from('aabbccddeeff0011', 'hex');
    const view = new Uint8Array(parent.buffer, parent.byteOffset + 2, 4); // cc dd ee ff
    const r = new ByteReader(view, 'view');
    assert.equal(r.length, 4);
    assert.equal(r.u32be(), 0xccddeeff);
    const e = throwsCoffer(() => r.u8(), 'TRUNCATED');
    assert.match(e.message, /offset 0x4/);
    // Also through a plain Uint8Array (not a Buffer) with a byteOffset.
    const u8 = new Uint8Array([9, 9, 1, 2, 3]).subarray(2);
    const r2 = new ByteReader(u8);
    assert.deepEqual([...r2.bytes(3)], [1, 2, 3]);
    throwsCoffer(() => r2.u8(), 'TRUNCATED');
  });
});

describe('ByteReader: every read is bounds-checked', () => {
  const reads: [string, (r: ByteReader) => unknown, number][] = [
    ['u8', (r) => r.u8(), 1],
    ['u16le', (r) => r.u16le(), 2],
    ['u32le', (r) => r.u32le(), 4],
    ['u64le', (r) => r.u64le(), 8],
    ['u16be', (r) => r.u16be(), 2],
    ['u32be', (r) => r.u32be(), 4],
    ['u64be', (r) => r.u64be(), 8],
    ['bytes(5)', (r) => r.bytes(5), 5],
    ['view(5)', (r) => r.view(5), 5],
    ['skip(5)', (r) => r.skip(5), 5],
    ['zeros(5)', (r) => r.zeros(5, 'reserved'), 5],
  ];
  for (const [name, read, width] of reads) {
    test(`${name} one byte short is TRUNCATED, naming the structure and the offset, and does not move`, () => {
      const data = Buffer.alloc(3 + width - 1);
      const r = new ByteReader(data, 'widget header', 3);
      const e = throwsCoffer(() => read(r), 'TRUNCATED');
      assert.match(e.message, /widget header/);
      assert.match(e.message, /offset 0x3\b/);
      assert.match(e.message, new RegExp(`needed ${width} byte`));
      assert.equal(r.offset, 3, 'a failed read leaves the position unchanged');
      // Exactly enough is fine.
      const ok = new ByteReader(Buffer.alloc(3 + width), 'widget header', 3);
      read(ok);
      assert.equal(ok.offset, 3 + width);
    });
  }

  test('empty buffer: every read fails, end() passes', () => {
    const r = new ByteReader(new Uint8Array(0), 'empty');
    for (const [, read] of reads) throwsCoffer(() => read(r), 'TRUNCATED');
    r.end();
  });

  test('negative, oversize and non-integer lengths are refused', () => {
    const r = new ByteReader(SAMPLE, 's');
    throwsCoffer(() => r.bytes(-1), 'TRUNCATED');
    throwsCoffer(() => r.skip(-1), 'TRUNCATED');
    throwsCoffer(() => r.view(17), 'TRUNCATED');
    throwsCoffer(() => r.bytes(1.5), 'TRUNCATED');
    throwsCoffer(() => r.bytes(Number.NaN), 'TRUNCATED');
    throwsCoffer(() => r.bytes(Number.MAX_SAFE_INTEGER), 'TRUNCATED');
    throwsCoffer(() => r.bytes(Infinity), 'TRUNCATED');
    assert.equal(r.offset, 0);
  });

  test('seek and the start offset are bounds-checked', () => {
    const r = new ByteReader(SAMPLE, 's');
    throwsCoffer(() => r.seek(17), 'TRUNCATED');
    throwsCoffer(() => r.seek(-1), 'TRUNCATED');
    assert.equal(r.offset, 0);
    throwsCoffer(() => new ByteReader(SAMPLE, 's', 17), 'TRUNCATED');
    throwsCoffer(() => new ByteReader(SAMPLE, 's', -1), 'TRUNCATED');
  });

  test(
    'a non-integer seek target or start offset is refused, not turned into a RangeError on the next read',
    () => {
      for (const bad of [1.5, Number.NaN]) {
        const r = new ByteReader(SAMPLE, 's');
        let caught: unknown;
        try {
          r.seek(bad);
          r.u8();
        } catch (e) {
          caught = e;
        }
        assert.ok(caught instanceof CofferError, `seek(${bad}) then u8(): ${String(caught)}`);
        let caught2: unknown;
        try {
          new ByteReader(SAMPLE, 's', bad).u8();
        } catch (e) {
          caught2 = e;
        }
        assert.ok(caught2 instanceof CofferError, `new ByteReader(…, ${bad}).u8(): ${String(caught2)}`);
      }
    },
  );

  test('property: any sequence of reads on any bytes yields values or TRUNCATED, never another error', () => {
    const op = fc.constantFrom(...reads.map(([, read]) => read));
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 40 }), fc.array(op, { maxLength: 20 }), (data, ops) => {
        const r = new ByteReader(data, 'fuzz');
        for (const read of ops) {
          const before = r.offset;
          try {
            read(r);
          } catch (e) {
            if (!(e instanceof CofferError) || (e.code !== 'TRUNCATED' && e.code !== 'RESERVED_NOT_ZERO')) throw e;
            if (e.code === 'TRUNCATED') assert.equal(r.offset, before);
          }
          assert.ok(r.offset >= 0 && r.offset <= data.length);
        }
      }),
      { numRuns: 300 },
    );
  });
});

describe('ByteReader: zeros, end, copies', () => {
  test('zeros() consumes all-zero bytes and refuses any non-zero byte with RESERVED_NOT_ZERO naming the field', () => {
    const r = new ByteReader(Buffer.from('000000000000', 'hex'), 'report');
    r.zeros(4, 'RESERVED_1');
    assert.equal(r.offset, 4);

    for (let i = 0; i < 8; i++) {
      const data = Buffer.alloc(12);
      data[2 + i] = 0x80;
      const rr = new ByteReader(data, 'report', 2);
      const e = throwsCoffer(() => rr.zeros(8, 'RESERVED_AT_0x1F8'), 'RESERVED_NOT_ZERO');
      assert.match(e.message, /RESERVED_AT_0x1F8/);
      assert.match(e.message, /report/);
      assert.match(e.message, new RegExp(`byte at 0x${(2 + i).toString(16)} is 0x80`));
      assert.equal(rr.offset, 2, 'refused bytes are not consumed');
    }
  });

  test('end() refuses trailing bytes with TRAILING_BYTES and the count', () => {
    const r = new ByteReader(Buffer.alloc(10), 'table');
    r.skip(7);
    const e = throwsCoffer(() => r.end(), 'TRAILING_BYTES');
    assert.match(e.message, /table has 3 unexpected trailing byte/);
    r.skip(3);
    r.end();
  });

  test('bytes() returns a copy: changing the source afterwards does not change it (and vice versa)', () => {
    const src = Buffer.from('1122334455', 'hex');
    const r = new ByteReader(src, 's', 1);
    const got = r.bytes(3);
    src.fill(0xee);
    assert.equal(got.toString('hex'), '223344');
    got[0] = 0;
    assert.equal(src[1], 0xee);
    // Same for a Uint8Array source.
    const u8 = new Uint8Array([1, 2, 3]);
    const got2 = new ByteReader(u8).bytes(3);
    u8[0] = 99;
    assert.equal(got2[0], 1);
  });

  test('view() is documented as aliasing the source (no copy)', () => {
    const src = Buffer.from('aabbcc', 'hex');
    const v = new ByteReader(src).view(2);
    src[0] = 0x11;
    assert.equal(v[0], 0x11);
  });
});

describe('ByteWriter', () => {
  test('writes each width in the right byte order and tracks its length', () => {
    const w = new ByteWriter().u8(0x01).u16le(0x0302).u32le(0x07060504).u64le(0x0f0e0d0c0b0a0908n).u8(0x10);
    assert.equal(w.length, 16);
    assert.deepEqual(w.toBuffer(), SAMPLE);
    const be = new ByteWriter().u16be(0x0102).u32be(0x03040506).bytes(Buffer.from('0708', 'hex')).zeros(3);
    assert.equal(be.toBuffer().toString('hex'), '0102030405060708000000');
  });

  test('bytes() copies its argument', () => {
    const b = Buffer.from('abcd', 'hex');
    const w = new ByteWriter().bytes(b);
    b.fill(0);
    assert.equal(w.toBuffer().toString('hex'), 'abcd');
  });

  test('property: whatever ByteWriter writes, ByteReader reads back, and end() agrees', () => {
    type Field =
      | { k: 'u8'; v: number }
      | { k: 'u16le' | 'u16be'; v: number }
      | { k: 'u32le' | 'u32be'; v: number }
      | { k: 'u64le'; v: bigint }
      | { k: 'bytes'; v: Uint8Array }
      | { k: 'zeros'; v: number };
    const field: fc.Arbitrary<Field> = fc.oneof(
      fc.record({ k: fc.constant('u8' as const), v: fc.integer({ min: 0, max: 0xff }) }),
      fc.record({ k: fc.constantFrom('u16le' as const, 'u16be' as const), v: fc.integer({ min: 0, max: 0xffff }) }),
      fc.record({ k: fc.constantFrom('u32le' as const, 'u32be' as const), v: fc.integer({ min: 0, max: 0xffffffff }) }),
      fc.record({ k: fc.constant('u64le' as const), v: fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }) }),
      fc.record({ k: fc.constant('bytes' as const), v: fc.uint8Array({ maxLength: 24 }) }),
      fc.record({ k: fc.constant('zeros' as const), v: fc.integer({ min: 0, max: 16 }) }),
    );
    fc.assert(
      fc.property(fc.array(field, { maxLength: 20 }), (fields) => {
        const w = new ByteWriter();
        for (const f of fields) {
          switch (f.k) {
            case 'u64le':
              w.u64le(f.v);
              break;
            case 'bytes':
              w.bytes(f.v);
              break;
            case 'zeros':
              w.zeros(f.v);
              break;
            default:
              w[f.k](f.v);
          }
        }
        const buf = w.toBuffer();
        assert.equal(buf.length, w.length);
        const r = new ByteReader(buf, 'roundtrip');
        for (const f of fields) {
          switch (f.k) {
            case 'u64le':
              assert.equal(r.u64le(), f.v);
              break;
            case 'bytes':
              assert.deepEqual([...r.bytes(f.v.length)], [...f.v]);
              break;
            case 'zeros':
              r.zeros(f.v, 'pad');
              break;
            default:
              assert.equal(r[f.k](), f.v);
          }
        }
        r.end();
      }),
      { numRuns: 300 },
    );
  });

  test('u64 big-endian: the reader has u64be, checked against Buffer (ByteWriter has no u64be)', () => {
    const b = Buffer.alloc(8);
    b.writeBigUInt64BE(0x0123456789abcdefn);
    assert.equal(new ByteReader(b).u64be(), 0x0123456789abcdefn);
  });
});

describe('hex helpers', () => {
  test('fromHex decodes plain, upper-case, 0x-prefixed and whitespace-separated hex', () => {
    assert.equal(fromHex('00ff10').toString('hex'), '00ff10');
    assert.equal(fromHex('DEADbeef').toString('hex'), 'deadbeef');
    assert.equal(fromHex('0xdeadbeef').toString('hex'), 'deadbeef');
    assert.equal(fromHex('0XDEADBEEF').toString('hex'), 'deadbeef');
    assert.equal(fromHex('  de ad\nbe\tef \n').toString('hex'), 'deadbeef');
    assert.equal(fromHex(' 0xde ad ').toString('hex'), 'dead');
    assert.equal(fromHex('').length, 0);
    assert.ok(Buffer.isBuffer(fromHex('ab')));
  });

  test('fromHex refuses odd length and non-hex characters with BAD_HEX naming what was parsed', () => {
    for (const bad of ['abc', '0xabc', 'a', 'zz', '0g', 'ab-cd', 'ab:cd', '0x0x12', 'ab0xcd', '12 3', 'éé', '+1', 'ab\u0000']) {
      const e = throwsCoffer(() => fromHex(bad, '--expect-measurement'), 'BAD_HEX');
      assert.match(e.message, /--expect-measurement/, bad);
    }
    assert.match(throwsCoffer(() => fromHex('x'), 'BAD_HEX').message, /hex value/);
  });

  test('toHex is lowercase and respects a subarray view', () => {
    const parent = Buffer.from('00ABCDEF99', 'hex');
    assert.equal(toHex(parent.subarray(1, 4)), 'abcdef');
    assert.equal(toHex(new Uint8Array(parent.buffer, parent.byteOffset + 1, 2)), 'abcd');
    assert.equal(toHex(new Uint8Array(0)), '');
  });

  test('property: fromHex(toHex(b)) === b, also with a 0x prefix and upper case', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), (b) => {
        const h = toHex(b);
        assert.match(h, /^[0-9a-f]*$/);
        assert.deepEqual([...fromHex(h)], [...b]);
        assert.deepEqual([...fromHex(`0x${h.toUpperCase()}`)], [...b]);
      }),
      { numRuns: 200 },
    );
  });

  test('property: fromHex on arbitrary strings returns bytes or BAD_HEX, nothing else', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 20 }), (s) => {
        try {
          const b = fromHex(s);
          assert.equal(b.length * 2, s.trim().replace(/^0x/i, '').replace(/\s+/g, '').length);
        } catch (e) {
          if (!(e instanceof CofferError) || e.code !== 'BAD_HEX') throw e;
        }
      }),
      { numRuns: 300 },
    );
  });

  test('isAllZero', () => {
    assert.equal(isAllZero(new Uint8Array(0)), true);
    assert.equal(isAllZero(Buffer.alloc(64)), true);
    const b = Buffer.alloc(64);
    b[63] = 1;
    assert.equal(isAllZero(b), false);
    assert.equal(isAllZero(b.subarray(0, 63)), true);
  });
});
