import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { availableParallelism } from 'node:os';
import { closeSync, openSync, readFileSync, readSync, statSync, writeSync } from 'node:fs';
import { Worker } from 'node:worker_threads';
import { ByteReader } from '../bytes/reader.js';
import { ByteWriter } from '../bytes/writer.js';
import { CofferError, inputError, verifyError } from '../errors.js';
import { hashDataBlocks, VERITY_BLOCK_SIZE, VERITY_DIGEST_SIZE } from './verity-leaves.js';

/**
 * dm-verity, format 1 (Chromium OS / cryptsetup), SHA-256, 4096-byte data and hash blocks,
 * byte-identical to `veritysetup format`: block digests H(salt || block), 128 per hash block,
 * levels stored top first after an optional 4 KiB superblock, root H(salt || top block).
 * Leaf hashing, nearly all the work, runs in worker threads over ranges of the data file.
 */

export { VERITY_BLOCK_SIZE } from './verity-leaves.js';
const PER_BLOCK = VERITY_BLOCK_SIZE / VERITY_DIGEST_SIZE; // 128
const MAX_SALT = 256;
const SUPERBLOCK_SIZE = 512;
const MAGIC = Buffer.from('verity\0\0', 'latin1');
/** Below this many data blocks (16 MiB) starting workers costs more than it saves. */
const WORKER_THRESHOLD = 4096;

export interface VerityLevel {
  /** Hash blocks in this level. */
  blocks: number;
  /** Offset of the level in the hash file. */
  offset: number;
}

export interface VerityLayout {
  dataBlocks: number;
  superblock: boolean;
  /** Index 0 is the leaf level (digests of data blocks); the last is the single top block. */
  levels: VerityLevel[];
  hashBlocks: number;
  /** Size of the hash file: superblock (if any) and tree. */
  hashSize: number;
}

export function verityLayout(dataBlocks: number, superblock: boolean): VerityLayout {
  if (!Number.isSafeInteger(dataBlocks) || dataBlocks < 1) throw inputError('VERITY_BAD_INPUT', `dm-verity needs at least one whole ${VERITY_BLOCK_SIZE}-byte data block, got ${dataBlocks}`);
  const counts: number[] = [];
  // The smallest L with ((dataBlocks - 1) >> (7 L)) == 0; level i has ceil(n_i / 128) blocks.
  for (let n = dataBlocks; n > 1; ) {
    n = Math.ceil(n / PER_BLOCK);
    counts.push(n);
  }
  const start = superblock ? VERITY_BLOCK_SIZE : 0;
  const levels: VerityLevel[] = [];
  let offset = start;
  for (let i = counts.length - 1; i >= 0; i--) {
    levels[i] = { blocks: counts[i] as number, offset };
    offset += (counts[i] as number) * VERITY_BLOCK_SIZE;
  }
  const hashBlocks = counts.reduce((a, b) => a + b, 0);
  return { dataBlocks, superblock, levels, hashBlocks, hashSize: start + hashBlocks * VERITY_BLOCK_SIZE };
}

export interface VeritySuperblock {
  uuid: string;
  salt: Buffer;
  dataBlocks: number;
  hashType: number;
  algorithm: string;
  dataBlockSize: number;
  hashBlockSize: number;
}

function uuidBytes(uuid: string): Buffer {
  const u = uuid.trim().toLowerCase();
  if (!/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/.test(u)) throw inputError('VERITY_BAD_INPUT', `--uuid "${uuid}" is not a UUID`);
  return Buffer.from(u.replace(/-/g, ''), 'hex');
}

function uuidText(b: Buffer): string {
  const h = b.toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/** The 4096-byte superblock area (512-byte superblock, zero-filled). The UUID is stored as written, not GUID-swapped. */
export function encodeVeritySuperblock(sb: { uuid: string; salt: Uint8Array; dataBlocks: number }): Buffer {
  if (sb.salt.length > MAX_SALT) throw inputError('VERITY_BAD_INPUT', `salt is ${sb.salt.length} bytes; at most ${MAX_SALT}`);
  const w = new ByteWriter()
    .bytes(MAGIC)
    .u32le(1)
    .u32le(1)
    .bytes(uuidBytes(sb.uuid))
    .bytes(Buffer.concat([Buffer.from('sha256', 'latin1'), Buffer.alloc(26)]))
    .u32le(VERITY_BLOCK_SIZE)
    .u32le(VERITY_BLOCK_SIZE)
    .u64le(BigInt(sb.dataBlocks))
    .u16le(sb.salt.length)
    .zeros(6)
    .bytes(sb.salt)
    .zeros(MAX_SALT - sb.salt.length)
    .zeros(168);
  return Buffer.concat([w.toBuffer(), Buffer.alloc(VERITY_BLOCK_SIZE - SUPERBLOCK_SIZE)]);
}

export function parseVeritySuperblock(data: Uint8Array): VeritySuperblock {
  const r = new ByteReader(data.subarray(0, SUPERBLOCK_SIZE), 'dm-verity superblock');
  const bad = (why: string) => inputError('VERITY_BAD_SUPERBLOCK', `dm-verity superblock: ${why}`);
  if (!r.bytes(8).equals(MAGIC)) throw bad('no "verity" signature (a hash file made with --no-superblock needs --no-superblock and --salt)');
  const version = r.u32le();
  if (version !== 1) throw bad(`version ${version} is not 1`);
  const hashType = r.u32le();
  if (hashType !== 1) throw bad(`hash type ${hashType} is not 1 (only format 1 is supported)`);
  const uuid = uuidText(r.bytes(16));
  const alg = r.bytes(32);
  const algorithm = alg.subarray(0, alg.indexOf(0) === -1 ? 32 : alg.indexOf(0)).toString('latin1');
  if (algorithm !== 'sha256') throw bad(`hash algorithm "${algorithm}" is not sha256`);
  const dataBlockSize = r.u32le();
  const hashBlockSize = r.u32le();
  if (dataBlockSize !== VERITY_BLOCK_SIZE || hashBlockSize !== VERITY_BLOCK_SIZE) throw bad(`block sizes ${dataBlockSize}/${hashBlockSize} are not 4096/4096`);
  const blocks = r.u64le();
  if (blocks < 1n || blocks > BigInt(Number.MAX_SAFE_INTEGER) / BigInt(VERITY_BLOCK_SIZE)) throw bad(`data block count ${blocks} is out of range`);
  const saltSize = r.u16le();
  if (saltSize > MAX_SALT) throw bad(`salt size ${saltSize} exceeds ${MAX_SALT}`);
  r.zeros(6, 'pad1');
  const salt = r.bytes(saltSize);
  r.zeros(MAX_SALT - saltSize, 'salt padding').zeros(168, 'pad2');
  return { uuid, salt, dataBlocks: Number(blocks), hashType, algorithm, dataBlockSize, hashBlockSize };
}

function digest(salt: Uint8Array, block: Uint8Array): Buffer {
  return createHash('sha256').update(salt).update(block).digest();
}

/**
 * The upper levels and root from the leaf level (leaf digests packed at 32 bytes per data
 * block in a buffer of whole hash blocks). Returns levels leaf first.
 */
export function buildVerityTree(leaves: Buffer, salt: Uint8Array, layout: VerityLayout): { levels: Buffer[]; root: Buffer } {
  const levels: Buffer[] = [leaves];
  for (let i = 1; i < layout.levels.length; i++) {
    const below = levels[i - 1] as Buffer;
    const out = Buffer.alloc((layout.levels[i] as VerityLevel).blocks * VERITY_BLOCK_SIZE);
    const base = createHash('sha256').update(salt);
    for (let b = 0; b * VERITY_BLOCK_SIZE < below.length; b++) {
      out.set(base.copy().update(below.subarray(b * VERITY_BLOCK_SIZE, (b + 1) * VERITY_BLOCK_SIZE)).digest(), b * VERITY_DIGEST_SIZE);
    }
    levels.push(out);
  }
  const top = levels[levels.length - 1] as Buffer;
  return { levels, root: digest(salt, top.subarray(0, VERITY_BLOCK_SIZE)) };
}

export interface VerityOptions {
  /** Salt (default 32 random bytes, as veritysetup); an empty salt is allowed. */
  salt?: Uint8Array;
  /** Superblock UUID (default random). */
  uuid?: string;
  /** Write the 4 KiB superblock before the tree (default true). */
  superblock?: boolean;
  /** Hash only this many data blocks (default: all whole blocks of the data). */
  dataBlocks?: number;
  /** Worker threads for leaf hashing: default the available cores (0 = hash in this thread). */
  workers?: number;
  /** Progress in data blocks hashed. */
  onProgress?: (done: number, total: number) => void;
}

export interface VerityResult {
  rootHash: string;
  salt: string;
  uuid: string | null;
  dataBlocks: number;
  hashBlocks: number;
  levels: number;
  hashSize: number;
  superblock: boolean;
}

function saltOf(o: VerityOptions): Buffer {
  const s = o.salt === undefined ? randomBytes(32) : Buffer.from(o.salt);
  if (s.length > MAX_SALT) throw inputError('VERITY_BAD_INPUT', `salt is ${s.length} bytes; at most ${MAX_SALT}`);
  return s;
}

function dataBlockCount(size: number, o: VerityOptions): number {
  const whole = Math.floor(size / VERITY_BLOCK_SIZE);
  if (o.dataBlocks === undefined) return whole;
  if (!Number.isSafeInteger(o.dataBlocks) || o.dataBlocks < 1 || o.dataBlocks > whole) {
    throw inputError('VERITY_BAD_INPUT', `--data-blocks ${o.dataBlocks} is not between 1 and the ${whole} whole block(s) of the data`);
  }
  return o.dataBlocks;
}

function hashFile(layout: VerityLayout, tree: { levels: Buffer[] }, superblock: Buffer | undefined): Buffer {
  const parts: Buffer[] = superblock ? [superblock] : [];
  for (let i = tree.levels.length - 1; i >= 0; i--) parts.push(tree.levels[i] as Buffer);
  const out = Buffer.concat(parts);
  if (out.length !== layout.hashSize) throw new Error(`dm-verity layout mismatch: ${out.length} != ${layout.hashSize}`);
  return out;
}

function result(layout: VerityLayout, root: Buffer, salt: Buffer, uuid: string | undefined): VerityResult {
  return { rootHash: root.toString('hex'), salt: salt.toString('hex'), uuid: uuid ?? null, dataBlocks: layout.dataBlocks, hashBlocks: layout.hashBlocks, levels: layout.levels.length, hashSize: layout.hashSize, superblock: layout.superblock };
}

/** In memory: the hash file for `data` (whole 4096-byte blocks; a partial tail is ignored, as veritysetup does). */
export function formatVerity(data: Uint8Array, opts: VerityOptions = {}): VerityResult & { hash: Buffer } {
  const salt = saltOf(opts);
  const layout = verityLayout(dataBlockCount(data.length, opts), opts.superblock ?? true);
  const uuid = layout.superblock ? (opts.uuid ?? randomUUID()) : undefined;
  if (uuid) uuidBytes(uuid);
  const buf = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  if (layout.levels.length === 0) {
    const root = digest(salt, buf.subarray(0, VERITY_BLOCK_SIZE));
    const hash = uuid ? encodeVeritySuperblock({ uuid, salt, dataBlocks: 1 }) : Buffer.alloc(0);
    return { ...result(layout, root, salt, uuid), hash };
  }
  const leaves = Buffer.alloc((layout.levels[0] as VerityLevel).blocks * VERITY_BLOCK_SIZE);
  const base = createHash('sha256').update(salt);
  for (let i = 0; i < layout.dataBlocks; i++) leaves.set(base.copy().update(buf.subarray(i * VERITY_BLOCK_SIZE, (i + 1) * VERITY_BLOCK_SIZE)).digest(), i * VERITY_DIGEST_SIZE);
  const tree = buildVerityTree(leaves, salt, layout);
  const hash = hashFile(layout, tree, uuid ? encodeVeritySuperblock({ uuid, salt, dataBlocks: layout.dataBlocks }) : undefined);
  return { ...result(layout, tree.root, salt, uuid), hash };
}

/**
 * The worker's source, plain JavaScript run with `eval`: the same loop as hashDataBlocks
 * (verity-leaves.ts), kept free of imports so that a worker starts in milliseconds both from
 * dist/ and under tsx (Node 20 does not carry tsx's loader into workers; bootstrapping it
 * there costs most of a second). Errors travel back as { code, kind, message }.
 */
const WORKER_SOURCE = `
const { parentPort, workerData: job } = require('node:worker_threads');
const { hash } = require('node:crypto');
const { openSync, readSync, closeSync } = require('node:fs');
const BLOCK = ${VERITY_BLOCK_SIZE}, DIGEST = ${VERITY_DIGEST_SIZE}, CHUNK = 256;
try {
  const out = new Uint8Array(job.shared);
  const salt = Buffer.from(job.salt);
  const scratch = Buffer.alloc(salt.length + BLOCK);
  salt.copy(scratch, 0);
  const buf = Buffer.alloc(CHUNK * BLOCK);
  const fd = openSync(job.path, 'r');
  try {
    for (let done = 0; done < job.count; ) {
      const n = Math.min(CHUNK, job.count - done);
      const want = n * BLOCK;
      let got = 0;
      while (got < want) {
        const r = readSync(fd, buf, got, want - got, (job.first + done) * BLOCK + got);
        if (r === 0) throw Object.assign(new Error(job.path + ' ends inside data block ' + (job.first + done + Math.floor(got / BLOCK))), { code: 'VERITY_DATA_TOO_SHORT' });
        got += r;
      }
      for (let i = 0; i < n; i++) {
        buf.copy(scratch, salt.length, i * BLOCK, (i + 1) * BLOCK);
        out.set(hash('sha256', scratch, 'buffer'), job.outOffset + (done + i) * DIGEST);
      }
      done += n;
      parentPort.postMessage({ blocks: n });
    }
  } finally {
    closeSync(fd);
  }
  parentPort.postMessage({ finished: true });
} catch (e) {
  parentPort.postMessage({ error: { code: typeof e.code === 'string' && e.code.startsWith('VERITY') ? e.code : 'FILE_UNREADABLE', kind: 'input', message: String(e.message) } });
}
`;

function startWorker(workerData: unknown): Worker {
  return new Worker(WORKER_SOURCE, { eval: true, workerData });
}

/**
 * Digests of data blocks [0, count) of a file into a buffer of whole hash blocks, split
 * over `workers` threads (0: this thread).
 */
export async function hashLeaves(path: string, count: number, salt: Buffer, workers: number, onBlocks?: (n: number) => void): Promise<Buffer> {
  const size = Math.ceil(count / PER_BLOCK) * VERITY_BLOCK_SIZE;
  if (workers <= 0 || count < WORKER_THRESHOLD) {
    const out = Buffer.alloc(size);
    hashDataBlocks(path, 0, count, salt, out, 0, onBlocks);
    return out;
  }
  const shared = new SharedArrayBuffer(size);
  const n = Math.min(workers, count);
  const jobs: Promise<void>[] = [];
  for (let k = 0; k < n; k++) {
    const first = Math.floor((k * count) / n);
    const last = Math.floor(((k + 1) * count) / n);
    jobs.push(
      new Promise<void>((resolve, reject) => {
        const w = startWorker({ path, first, count: last - first, salt, shared, outOffset: first * VERITY_DIGEST_SIZE });
        let settled = false;
        w.on('message', (m: { blocks?: number; finished?: boolean; error?: { code: string; kind: 'input' | 'verify'; message: string } }) => {
          if (m.blocks) onBlocks?.(m.blocks);
          if (m.error) {
            settled = true;
            reject(new CofferError(m.error.code, m.error.message, { kind: m.error.kind }));
          }
          if (m.finished) {
            settled = true;
            resolve();
          }
        });
        w.on('error', (e) => {
          settled = true;
          reject(e);
        });
        w.on('exit', (code) => {
          if (!settled) reject(new Error(`dm-verity worker exited with status ${code}`));
        });
      }),
    );
  }
  await Promise.all(jobs);
  return Buffer.from(shared);
}

function fileSize(path: string, what: string): number {
  try {
    const s = statSync(path);
    if (!s.isFile() && !s.isBlockDevice()) throw inputError('FILE_UNREADABLE', `${what} ${path} is not a file`);
    return s.size;
  } catch (e) {
    if (e instanceof CofferError) throw e;
    throw inputError('FILE_UNREADABLE', `${what} ${path} does not exist or cannot be read`);
  }
}

function defaultWorkers(o: VerityOptions): number {
  return o.workers ?? Math.min(8, availableParallelism());
}

/** `veritysetup format DATA HASH`: writes the hash file (replacing it) and returns the root hash. */
export async function formatVerityFile(dataPath: string, hashPath: string, opts: VerityOptions = {}): Promise<VerityResult> {
  const salt = saltOf(opts);
  const layout = verityLayout(dataBlockCount(fileSize(dataPath, 'data file'), opts), opts.superblock ?? true);
  const uuid = layout.superblock ? (opts.uuid ?? randomUUID()) : undefined;
  const superblock = uuid ? encodeVeritySuperblock({ uuid, salt, dataBlocks: layout.dataBlocks }) : undefined;
  let done = 0;
  const progress = (n: number) => {
    done += n;
    opts.onProgress?.(done, layout.dataBlocks);
  };
  let out: Buffer;
  let root: Buffer;
  if (layout.levels.length === 0) {
    const leaf = Buffer.alloc(VERITY_DIGEST_SIZE);
    const block = Buffer.alloc(VERITY_BLOCK_SIZE);
    const fd = openSync(dataPath, 'r');
    try {
      if (readSyncFull(fd, block, 0) !== VERITY_BLOCK_SIZE) throw inputError('VERITY_DATA_TOO_SHORT', `${dataPath} is shorter than one block`);
    } finally {
      closeSync(fd);
    }
    leaf.set(digest(salt, block));
    root = leaf;
    progress(1);
    out = superblock ?? Buffer.alloc(0);
  } else {
    const leaves = await hashLeaves(dataPath, layout.dataBlocks, salt, defaultWorkers(opts), progress);
    const tree = buildVerityTree(leaves, salt, layout);
    root = tree.root;
    out = hashFile(layout, tree, superblock);
  }
  writeWhole(hashPath, out);
  return result(layout, root, salt, uuid);
}

function readSyncFull(fd: number, buf: Buffer, position: number): number {
  let got = 0;
  while (got < buf.length) {
    const r = readSync(fd, buf, got, buf.length - got, position + got);
    if (r === 0) break;
    got += r;
  }
  return got;
}

function writeWhole(path: string, data: Buffer): void {
  let fd: number;
  try {
    fd = openSync(path, 'w', 0o644);
  } catch {
    throw inputError('FILE_UNWRITABLE', `hash file ${path} cannot be written`);
  }
  try {
    for (let off = 0; off < data.length; ) off += writeSync(fd, data, off, data.length - off);
  } finally {
    closeSync(fd);
  }
}

export interface VerityVerifyOptions {
  /** For a hash file without superblock: its salt and the number of data blocks. */
  superblock?: boolean;
  salt?: Uint8Array;
  dataBlocks?: number;
  workers?: number;
  onProgress?: (done: number, total: number) => void;
}

export interface VerityVerified extends VerityResult {
  ok: true;
}

function corrupt(code: string, message: string, details: Record<string, unknown>): CofferError {
  return verifyError(code, message, details);
}

/** Checks the tree top-down: root, then every hash block against its parent's digest; and zeroed spare slots. */
function verifyTree(hash: Buffer, layout: VerityLayout, salt: Buffer, root: Buffer): Buffer {
  const levels = layout.levels;
  const top = levels[levels.length - 1] as VerityLevel;
  const topBlock = hash.subarray(top.offset, top.offset + VERITY_BLOCK_SIZE);
  const got = digest(salt, topBlock);
  if (!got.equals(root)) {
    throw corrupt('VERITY_ROOT_MISMATCH', `the top hash block (hash file offset ${top.offset}) hashes to ${got.toString('hex')}, not the root hash ${root.toString('hex')}: the root hash is wrong or the top of the tree is damaged`, { level: levels.length - 1, offset: top.offset });
  }
  const counts = [layout.dataBlocks, ...levels.map((l) => l.blocks)];
  for (let i = levels.length - 1; i >= 0; i--) {
    const lvl = levels[i] as VerityLevel;
    // Digests held by level i: one per block of the level below (or per data block).
    const entries = counts[i] as number;
    const area = hash.subarray(lvl.offset, lvl.offset + lvl.blocks * VERITY_BLOCK_SIZE);
    const spare = area.subarray(entries * VERITY_DIGEST_SIZE);
    const nz = spare.findIndex((b) => b !== 0);
    if (nz !== -1) {
      const off = lvl.offset + entries * VERITY_DIGEST_SIZE + nz;
      throw corrupt('VERITY_HASH_CORRUPT', `hash block ${Math.floor(off / VERITY_BLOCK_SIZE)} (level ${i}): unused digest space is not zero at hash file offset ${off}`, { level: i, hashBlock: Math.floor(off / VERITY_BLOCK_SIZE), offset: off });
    }
    if (i === 0) break;
    const below = levels[i - 1] as VerityLevel;
    const base = createHash('sha256').update(salt);
    for (let b = 0; b < below.blocks; b++) {
      const off = below.offset + b * VERITY_BLOCK_SIZE;
      const d = base.copy().update(hash.subarray(off, off + VERITY_BLOCK_SIZE)).digest();
      if (!d.equals(area.subarray(b * VERITY_DIGEST_SIZE, (b + 1) * VERITY_DIGEST_SIZE))) {
        const hb = off / VERITY_BLOCK_SIZE;
        throw corrupt('VERITY_HASH_CORRUPT', `hash block ${hb} (level ${i - 1}, block ${b}, hash file offset ${off}) does not match its digest in level ${i}`, { level: i - 1, block: b, hashBlock: hb, offset: off });
      }
    }
  }
  return hash.subarray((levels[0] as VerityLevel).offset, (levels[0] as VerityLevel).offset + (levels[0] as VerityLevel).blocks * VERITY_BLOCK_SIZE);
}

function resolveParams(hash: Buffer, o: VerityVerifyOptions, dataSize: number): { salt: Buffer; dataBlocks: number; superblock: boolean; uuid?: string } {
  if (o.superblock ?? true) {
    const sb = parseVeritySuperblock(hash);
    if (o.salt !== undefined && !Buffer.from(o.salt).equals(sb.salt)) throw inputError('VERITY_BAD_INPUT', 'the given salt differs from the superblock salt');
    if (o.dataBlocks !== undefined && o.dataBlocks !== sb.dataBlocks) throw inputError('VERITY_BAD_INPUT', `the given data block count differs from the superblock's ${sb.dataBlocks}`);
    if (sb.dataBlocks * VERITY_BLOCK_SIZE > dataSize) throw verifyError('VERITY_DATA_TOO_SHORT', `the superblock says ${sb.dataBlocks} data blocks; the data holds ${Math.floor(dataSize / VERITY_BLOCK_SIZE)}`);
    return { salt: sb.salt, dataBlocks: sb.dataBlocks, superblock: true, uuid: sb.uuid };
  }
  if (o.salt === undefined) throw inputError('USAGE', 'a hash file without superblock needs its salt (--salt)');
  const whole = Math.floor(dataSize / VERITY_BLOCK_SIZE);
  const dataBlocks = o.dataBlocks ?? whole;
  if (dataBlocks > whole || dataBlocks < 1) throw inputError('VERITY_BAD_INPUT', `data block count ${dataBlocks} is not between 1 and ${whole}`);
  return { salt: Buffer.from(o.salt), dataBlocks, superblock: false };
}

function checkHashSize(hash: Buffer, layout: VerityLayout): void {
  if (hash.length < layout.hashSize) throw verifyError('VERITY_HASH_TOO_SHORT', `the hash file is ${hash.length} bytes; ${layout.dataBlocks} data blocks need ${layout.hashSize}`);
}

function compareLeaves(stored: Buffer, computed: Buffer, dataBlocks: number): void {
  if (stored.equals(computed)) return;
  for (let i = 0; i < dataBlocks; i++) {
    const a = stored.subarray(i * VERITY_DIGEST_SIZE, (i + 1) * VERITY_DIGEST_SIZE);
    if (!a.equals(computed.subarray(i * VERITY_DIGEST_SIZE, (i + 1) * VERITY_DIGEST_SIZE))) {
      throw corrupt('VERITY_DATA_CORRUPT', `data block ${i} (data offset ${i * VERITY_BLOCK_SIZE}) does not match its digest in the hash tree`, { block: i, offset: i * VERITY_BLOCK_SIZE });
    }
  }
}

/** In memory: verifies data and hash file against a root hash; throws a verify CofferError naming the block. */
export function verifyVerity(data: Uint8Array, hashData: Uint8Array, rootHash: Uint8Array, opts: VerityVerifyOptions = {}): VerityVerified {
  const hash = Buffer.from(hashData.buffer, hashData.byteOffset, hashData.byteLength);
  const root = Buffer.from(rootHash);
  const p = resolveParams(hash, opts, data.length);
  const layout = verityLayout(p.dataBlocks, p.superblock);
  checkHashSize(hash, layout);
  const buf = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  if (layout.levels.length === 0) {
    const d = digest(p.salt, buf.subarray(0, VERITY_BLOCK_SIZE));
    if (!d.equals(root)) throw corrupt('VERITY_ROOT_MISMATCH', `data block 0 hashes to ${d.toString('hex')}, not the root hash ${root.toString('hex')}`, { block: 0 });
  } else {
    const stored = verifyTree(hash, layout, p.salt, root);
    const computed = formatVerity(buf, { salt: p.salt, dataBlocks: p.dataBlocks, superblock: false });
    compareLeaves(stored, computed.hash.subarray(computed.hash.length - stored.length), p.dataBlocks);
  }
  return { ok: true, ...result(layout, root, p.salt, p.uuid) };
}

/** `veritysetup verify DATA HASH ROOT` on files, leaf hashing in worker threads. */
export async function verifyVerityFile(dataPath: string, hashPath: string, rootHash: Uint8Array, opts: VerityVerifyOptions = {}): Promise<VerityVerified> {
  const dataSize = fileSize(dataPath, 'data file');
  let hash: Buffer;
  try {
    hash = readFileSync(hashPath);
  } catch {
    throw inputError('FILE_UNREADABLE', `hash file ${hashPath} does not exist or cannot be read`);
  }
  const root = Buffer.from(rootHash);
  if (root.length !== 32) throw inputError('VERITY_BAD_INPUT', `the root hash must be 32 bytes (64 hex digits), got ${root.length}`);
  const p = resolveParams(hash, opts, dataSize);
  const layout = verityLayout(p.dataBlocks, p.superblock);
  checkHashSize(hash, layout);
  let done = 0;
  const progress = (n: number) => {
    done += n;
    opts.onProgress?.(done, layout.dataBlocks);
  };
  if (layout.levels.length === 0) {
    const block = Buffer.alloc(VERITY_BLOCK_SIZE);
    const fd = openSync(dataPath, 'r');
    try {
      readSyncFull(fd, block, 0);
    } finally {
      closeSync(fd);
    }
    const d = digest(p.salt, block);
    if (!d.equals(root)) throw corrupt('VERITY_ROOT_MISMATCH', `data block 0 hashes to ${d.toString('hex')}, not the root hash ${root.toString('hex')}`, { block: 0 });
    progress(1);
  } else {
    const stored = verifyTree(hash, layout, p.salt, root);
    const computed = await hashLeaves(dataPath, layout.dataBlocks, p.salt, opts.workers ?? Math.min(8, availableParallelism()), progress);
    compareLeaves(stored, computed, layout.dataBlocks);
  }
  return { ok: true, ...result(layout, root, p.salt, p.uuid) };
}
