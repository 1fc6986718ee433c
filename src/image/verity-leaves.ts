import { hash } from 'node:crypto';
import { closeSync, openSync, readSync } from 'node:fs';
import { inputError } from '../errors.js';

/**
 * The hot loop of dm-verity: digest `count` 4096-byte data blocks starting at `first`, each
 * as SHA-256(salt || block), into `out` at 32 bytes per block (block i at (i - first) * 32 +
 * outOffset). Used in the main thread and in worker threads (verity-worker.ts) alike.
 */

export const VERITY_BLOCK_SIZE = 4096;
export const VERITY_DIGEST_SIZE = 32;
const CHUNK_BLOCKS = 256;

export function hashDataBlocks(path: string, first: number, count: number, salt: Uint8Array, out: Uint8Array, outOffset: number, onChunk?: (blocks: number) => void): void {
  const fd = openData(path);
  try {
    // One-shot hashing of salt || block from a scratch buffer: no Hash object per block.
    const scratch = Buffer.alloc(salt.length + VERITY_BLOCK_SIZE);
    scratch.set(salt, 0);
    const buf = Buffer.alloc(CHUNK_BLOCKS * VERITY_BLOCK_SIZE);
    for (let done = 0; done < count; ) {
      const n = Math.min(CHUNK_BLOCKS, count - done);
      const want = n * VERITY_BLOCK_SIZE;
      let got = 0;
      while (got < want) {
        const r = readSync(fd, buf, got, want - got, (first + done) * VERITY_BLOCK_SIZE + got);
        if (r === 0) throw inputError('VERITY_DATA_TOO_SHORT', `${path} ends inside data block ${first + done + Math.floor(got / VERITY_BLOCK_SIZE)}`);
        got += r;
      }
      for (let i = 0; i < n; i++) {
        buf.copy(scratch, salt.length, i * VERITY_BLOCK_SIZE, (i + 1) * VERITY_BLOCK_SIZE);
        out.set(hash('sha256', scratch, 'buffer'), outOffset + (done + i) * VERITY_DIGEST_SIZE);
      }
      done += n;
      onChunk?.(n);
    }
  } finally {
    closeSync(fd);
  }
}

function openData(path: string): number {
  try {
    return openSync(path, 'r');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw inputError('FILE_UNREADABLE', `data file ${path} ${code === 'ENOENT' ? 'does not exist' : 'cannot be read'}`);
  }
}
