// The small primitives under the broker: the RFC 8785 canonicaliser against the RFC's own
// examples, RFC 3394 key wrap against its test vector, envelope encryption bound to the path,
// and the KEK file's creation mode and refusals.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FileKekProvider, aesKeyUnwrap, aesKeyWrap, canonicalize, open, seal } from '../../src/broker/index.js';
import { CofferError } from '../../src/errors.js';

const work = mkdtempSync(join(tmpdir(), 'coffer-kek-'));
after(() => rmSync(work, { recursive: true, force: true }));

test('JCS: RFC 8785 section 3.2.2 example (numbers, string escapes, literals)', () => {
  const input = JSON.parse(
    '{"numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001], "string": "\\u20ac$\\u000F\\u000aA\'\\u0042\\u0022\\u005c\\\\\\"\\/", "literals": [null, true, false]}',
  ) as unknown;
  assert.equal(canonicalize(input), '{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],"string":"€$\\u000f\\nA\'B\\"\\\\\\\\\\"/"}');
});

test('JCS: RFC 8785 section 3.2.3 sorting by UTF-16 code units', () => {
  const input = JSON.parse('{"\\u20ac": "Euro Sign", "\\r": "Carriage Return", "\\ufb33": "Hebrew Letter Dalet With Dagesh", "1": "One", "\\ud83d\\ude00": "Emoji: Grinning Face", "\\u0080": "Control", "\\u00f6": "Latin Small Letter O With Diaeresis"}') as unknown;
  const out = canonicalize(input);
  const values = [...out.matchAll(/":"([^"]+)"/g)].map((m) => m[1]);
  assert.deepEqual(values, ['Carriage Return', 'One', 'Control', 'Latin Small Letter O With Diaeresis', 'Euro Sign', 'Emoji: Grinning Face', 'Hebrew Letter Dalet With Dagesh']);
});

test('JCS: RFC 8785 appendix B numbers; refusals', () => {
  const bits = (hex: string) => Buffer.from(hex, 'hex').readDoubleBE(0);
  const cases: [string, string][] = [
    ['0000000000000000', '0'], ['8000000000000000', '0'], ['0000000000000001', '5e-324'], ['8000000000000001', '-5e-324'],
    ['7fefffffffffffff', '1.7976931348623157e+308'], ['ffefffffffffffff', '-1.7976931348623157e+308'], ['4340000000000000', '9007199254740992'],
    ['c340000000000000', '-9007199254740992'], ['4430000000000000', '295147905179352830000'], ['44b52d02c7e14af5', '9.999999999999997e+22'],
    ['44b52d02c7e14af6', '1e+23'], ['44b52d02c7e14af7', '1.0000000000000001e+23'], ['444b1ae4d6e2ef4e', '999999999999999700000'],
    ['444b1ae4d6e2ef50', '1e+21'], ['3eb0c6f7a0b5ed8c', '9.999999999999997e-7'], ['3eb0c6f7a0b5ed8d', '0.000001'],
    ['41b3de4355555553', '333333333.3333332'],
  ];
  for (const [hex, want] of cases) assert.equal(canonicalize(bits(hex)), want, hex);
  for (const bad of [NaN, Infinity, '\ud800x', { k: () => 1 }]) assert.throws(() => canonicalize(bad), CofferError);
  assert.equal(canonicalize({ b: [1, { d: 'x', c: null }], a: 'é' }), '{"a":"é","b":[1,{"c":null,"d":"x"}]}');
});

test('AES-256 key wrap: RFC 3394 section 4.6 vector; a flipped byte does not unwrap', () => {
  const kek = Buffer.from('000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F', 'hex');
  const key = Buffer.from('00112233445566778899AABBCCDDEEFF000102030405060708090A0B0C0D0E0F', 'hex');
  const wrapped = aesKeyWrap(kek, key);
  assert.equal(wrapped.toString('hex'), '28c9f404c4b810f4cbccb35cfb87f8263f5786e2d80ed326cbc7f0e71a99f43bfb988b9b7a02dd21');
  assert.deepEqual(aesKeyUnwrap(kek, wrapped), key);
  wrapped[3] = (wrapped[3] ?? 0) ^ 1;
  assert.throws(() => aesKeyUnwrap(kek, wrapped), (e: CofferError) => e.code === 'KEK_UNWRAP_FAILED');
});

test('KEK file: created 0600, reopened, refused when readable by others or of the wrong size', async () => {
  const path = join(work, 'sub', 'kek.key');
  const k = FileKekProvider.open(path, { create: true });
  assert.equal(k.created, true);
  assert.equal(statSync(path).mode & 0o777, 0o600);
  const again = FileKekProvider.open(path);
  assert.equal(again.created, false);
  assert.equal(again.currentId, k.currentId);
  assert.match(k.currentId, /^file:[0-9a-f]{16}$/);

  const secret = Buffer.from('the data');
  const sealed = await seal(k, 'a/b/c', Buffer.from(secret));
  assert.equal(sealed.wrappedKey.length, 40);
  assert.deepEqual(await open(again, 'a/b/c', sealed), secret);
  await assert.rejects(open(k, 'a/b/d', sealed), (e: CofferError) => e.code === 'SECRET_CORRUPT', 'the path is authenticated');
  const other = FileKekProvider.open(join(work, 'other.key'), { create: true });
  await assert.rejects(open(other, 'a/b/c', sealed), (e: CofferError) => e.code === 'KEK_UNKNOWN');

  chmodSync(path, 0o644);
  assert.throws(() => FileKekProvider.open(path), (e: CofferError) => e.code === 'KEK_INSECURE_FILE');
  chmodSync(path, 0o620);
  assert.throws(() => FileKekProvider.open(path), (e: CofferError) => e.code === 'KEK_INSECURE_FILE');
  const short = join(work, 'short.key');
  writeFileSync(short, 'abc', { mode: 0o600 });
  assert.throws(() => FileKekProvider.open(short), (e: CofferError) => e.code === 'KEK_BAD_FILE');
  assert.throws(() => FileKekProvider.open(join(work, 'missing.key')), (e: CofferError) => e.code === 'KEK_MISSING');
  await k.close();
  await assert.rejects(k.wrap(Buffer.alloc(32)), (e: CofferError) => e.code === 'KEK_CLOSED');
});
