// dm-verity against veritysetup (cryptsetup-bin): hash file and root hash byte for byte for
// several sizes, with and without superblock; veritysetup verify accepts Coffer's trees;
// Coffer's verify names the damaged data or hash block.
import { test, describe, before } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CofferError } from '../../src/errors.js';
import { encodeVeritySuperblock, formatVerity, formatVerityFile, parseVeritySuperblock, verifyVerity, verifyVerityFile, verityLayout } from '../../src/image/index.js';
import { flip, tempDir, tool } from './tools.js';

const SALT = '5a17c0ffee00112233445566778899aabbccddeeff00112233445566778899aa';
const UUID = '8f1d9c4e-3b2a-4c5d-9e6f-0a1b2c3d4e5f';
const B = 4096;

let dir: string;

/** Deterministic data: one pseudo-random block pattern, each block starting with its own digest, so every block differs. */
function data(bytes: number, seed: string): Buffer {
  const pattern = Buffer.alloc(B);
  for (let i = 0; i < B / 32; i++) createHash('sha256').update(`${seed}/${i}`).digest().copy(pattern, i * 32);
  const out = Buffer.alloc(bytes);
  for (let off = 0, n = 0; off < bytes; off += B, n++) {
    pattern.copy(out, off);
    createHash('sha256').update(`${seed}:${n}`).digest().copy(out, off);
  }
  return out;
}

function veritysetup(dataPath: string, hashPath: string, superblock: boolean, salt = SALT): string {
  const args = ['format', dataPath, hashPath, `--salt=${salt}`, ...(superblock ? [`--uuid=${UUID}`] : ['--no-superblock'])];
  const out = tool('veritysetup', args).stdout;
  const m = /Root hash:\s+([0-9a-f]{64})/.exec(out);
  assert.ok(m, out);
  return m[1] as string;
}

function code(fn: () => unknown): string {
  try {
    fn();
    return 'OK';
  } catch (e) {
    assert.ok(e instanceof CofferError, String(e));
    return e.code;
  }
}

async function codeAsync(fn: () => Promise<unknown>): Promise<string> {
  try {
    await fn();
    return 'OK';
  } catch (e) {
    assert.ok(e instanceof CofferError, String(e));
    return e.code;
  }
}

before(() => {
  dir = tempDir('verity');
});

describe('dm-verity format against veritysetup format', () => {
  const sizes: [string, number][] = [
    ['1 block', B],
    ['127 blocks', 127 * B],
    ['128 blocks', 128 * B],
    ['129 blocks', 129 * B],
    ['129 blocks + 100 bytes (floored)', 129 * B + 100],
    ['16385 blocks (three levels, worker threads)', 16385 * B],
  ];
  for (const [name, bytes] of sizes) {
    for (const superblock of [true, false]) {
      test(`${name}, ${superblock ? 'with' : 'without'} superblock: same hash file and root hash`, async () => {
        const d = data(bytes, name);
        const dataPath = join(dir, `data-${bytes}`);
        writeFileSync(dataPath, d);
        const ref = join(dir, `ref-${bytes}-${superblock}`);
        const root = veritysetup(dataPath, ref, superblock);
        const ours = join(dir, `ours-${bytes}-${superblock}`);
        const r = await formatVerityFile(dataPath, ours, { salt: Buffer.from(SALT, 'hex'), superblock, ...(superblock ? { uuid: UUID } : {}) });
        assert.equal(r.rootHash, root);
        assert.deepEqual(readFileSync(ours), readFileSync(ref));
        assert.equal(r.dataBlocks, Math.floor(bytes / B));
        // in memory, single-threaded: the same
        const mem = formatVerity(d, { salt: Buffer.from(SALT, 'hex'), superblock, ...(superblock ? { uuid: UUID } : {}) });
        assert.equal(mem.rootHash, root);
        assert.deepEqual(mem.hash, readFileSync(ref));
        // veritysetup verify accepts Coffer's tree
        const args = superblock ? ['verify', dataPath, ours, root] : ['verify', dataPath, ours, root, '--no-superblock', `--salt=${SALT}`, `--data-blocks=${r.dataBlocks}`];
        assert.equal(tool('veritysetup', args).status, 0);
      });
    }
  }

  test('worker threads and a single thread give the same tree; progress reaches the total', async () => {
    const dataPath = join(dir, 'data-workers');
    writeFileSync(dataPath, data(5000 * B, 'workers'));
    const seen: number[] = [];
    const a = await formatVerityFile(dataPath, join(dir, 'w2'), { salt: Buffer.from(SALT, 'hex'), uuid: UUID, workers: 2, onProgress: (done, total) => seen.push(done / total) });
    const b = await formatVerityFile(dataPath, join(dir, 'w0'), { salt: Buffer.from(SALT, 'hex'), uuid: UUID, workers: 0 });
    assert.equal(a.rootHash, b.rootHash);
    assert.equal(a.rootHash, veritysetup(dataPath, join(dir, 'wref'), true));
    assert.deepEqual(readFileSync(join(dir, 'w2')), readFileSync(join(dir, 'w0')));
    assert.equal(seen[seen.length - 1], 1);
    assert.ok(seen.every((x, i) => i === 0 || x >= (seen[i - 1] as number)));
  });

  test('empty salt, layout arithmetic and superblock round trip', async () => {
    const dataPath = join(dir, 'data-nosalt');
    writeFileSync(dataPath, data(200 * B, 'nosalt'));
    const root = veritysetup(dataPath, join(dir, 'nosalt-ref'), true, '-');
    const r = await formatVerityFile(dataPath, join(dir, 'nosalt'), { salt: Buffer.alloc(0), uuid: UUID });
    assert.equal(r.rootHash, root);
    assert.deepEqual(readFileSync(join(dir, 'nosalt')), readFileSync(join(dir, 'nosalt-ref')));
    assert.deepEqual(verityLayout(129, true).levels, [{ blocks: 2, offset: 2 * B }, { blocks: 1, offset: B }]);
    assert.deepEqual(verityLayout(1, false).levels, []);
    assert.equal(verityLayout(16385, true).hashBlocks, 129 + 2 + 1);
    const sb = parseVeritySuperblock(encodeVeritySuperblock({ uuid: UUID, salt: Buffer.from(SALT, 'hex'), dataBlocks: 77 }));
    assert.deepEqual([sb.uuid, sb.salt.toString('hex'), sb.dataBlocks, sb.algorithm], [UUID, SALT, 77, 'sha256']);
    await assert.rejects(formatVerityFile(join(dir, 'missing'), join(dir, 'x')), (e: unknown) => e instanceof CofferError && e.code === 'FILE_UNREADABLE');
    writeFileSync(join(dir, 'tiny'), Buffer.alloc(100));
    await assert.rejects(formatVerityFile(join(dir, 'tiny'), join(dir, 'x')), (e: unknown) => e instanceof CofferError && e.code === 'VERITY_BAD_INPUT');
  });
});

describe('dm-verity verify', () => {
  test('a flipped byte in data, hash tree, superblock or the root is found and the block named', async () => {
    const d = data(300 * B, 'verify');
    const dataPath = join(dir, 'vdata');
    const hashPath = join(dir, 'vhash');
    writeFileSync(dataPath, d);
    const r = await formatVerityFile(dataPath, hashPath, { salt: Buffer.from(SALT, 'hex'), uuid: UUID });
    const root = Buffer.from(r.rootHash, 'hex');
    const hash = readFileSync(hashPath);
    assert.equal((await verifyVerityFile(dataPath, hashPath, root)).dataBlocks, 300);
    // levels: superblock @0, top (1 block) @4096, leaves (3 blocks) @8192
    const errOf = (fn: () => unknown): CofferError => {
      try {
        fn();
      } catch (e) {
        assert.ok(e instanceof CofferError);
        return e;
      }
      assert.fail('no error');
    };
    const dataErr = errOf(() => verifyVerity(flip(d, 257 * B + 3), hash, root));
    assert.equal(dataErr.code, 'VERITY_DATA_CORRUPT');
    assert.equal(dataErr.details?.block, 257);
    assert.match(dataErr.message, /data block 257 /);
    const leafErr = errOf(() => verifyVerity(d, flip(hash, 3 * B + 40), root));
    assert.equal(leafErr.code, 'VERITY_HASH_CORRUPT');
    assert.equal(leafErr.details?.hashBlock, 3);
    assert.equal(leafErr.details?.level, 0);
    assert.equal(code(() => verifyVerity(d, flip(hash, B + 5), root)), 'VERITY_ROOT_MISMATCH', 'top hash block');
    assert.equal(code(() => verifyVerity(d, hash, flip(root, 0))), 'VERITY_ROOT_MISMATCH', 'root');
    // spare digest slots: leaf level holds 300 digests in 3 blocks; the end of the last block is unused
    assert.equal(code(() => verifyVerity(d, flip(hash, 5 * B - 1), root)), 'VERITY_HASH_CORRUPT', 'spare space');
    assert.equal(code(() => verifyVerity(d, flip(hash, 0), root)), 'VERITY_BAD_SUPERBLOCK', 'magic');
    assert.equal(code(() => verifyVerity(d, flip(hash, 88), root)), 'VERITY_ROOT_MISMATCH', 'salt in the superblock');
    // the same through files and worker threads
    writeFileSync(join(dir, 'vdata-bad'), flip(d, 12 * B));
    assert.equal(await codeAsync(() => verifyVerityFile(join(dir, 'vdata-bad'), hashPath, root, { workers: 2 })), 'VERITY_DATA_CORRUPT');
    writeFileSync(join(dir, 'vhash-bad'), flip(hash, 2 * B + 31));
    assert.equal(await codeAsync(() => verifyVerityFile(dataPath, join(dir, 'vhash-bad'), root)), 'VERITY_HASH_CORRUPT');
    // veritysetup agrees the flipped copies are bad
    assert.notEqual(tool('veritysetup', ['verify', join(dir, 'vdata-bad'), hashPath, r.rootHash], { allowFail: true }).status, 0);
    assert.notEqual(tool('veritysetup', ['verify', dataPath, join(dir, 'vhash-bad'), r.rootHash], { allowFail: true }).status, 0);
  });

  test('without superblock the salt is needed; one-block images compare data with the root', () => {
    const d = data(B, 'one');
    const f = formatVerity(d, { salt: Buffer.from(SALT, 'hex'), superblock: false });
    assert.equal(f.hash.length, 0);
    const root = Buffer.from(f.rootHash, 'hex');
    assert.equal(verifyVerity(d, f.hash, root, { superblock: false, salt: Buffer.from(SALT, 'hex') }).ok, true);
    assert.equal(code(() => verifyVerity(flip(d, 1), f.hash, root, { superblock: false, salt: Buffer.from(SALT, 'hex') })), 'VERITY_ROOT_MISMATCH');
    assert.equal(code(() => verifyVerity(d, f.hash, root, { superblock: false })), 'USAGE');
  });
});
