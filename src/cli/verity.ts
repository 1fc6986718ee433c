import { statSync } from 'node:fs';
import type { Command } from 'commander';
import { inputError } from '../errors.js';
import { fromHex } from '../bytes/hex.js';
import { formatVerityFile, verifyVerityFile, VERITY_BLOCK_SIZE, type VerityResult } from '../image/index.js';
import { action, common, type CliContext } from './main.js';
import { toJson, EXIT_OK } from './output.js';
import { intArg } from './files.js';

/** Progress on stderr for images of at least this size, every 10%. */
const PROGRESS_MIN_BYTES = 64 * 1024 * 1024;

interface Flags {
  salt?: string;
  uuid?: string;
  superblock: boolean;
  dataBlocks?: string;
  workers?: string;
  json?: boolean;
}

function salt(s: string | undefined): Buffer | undefined {
  if (s === undefined) return undefined;
  if (s === '-') return Buffer.alloc(0);
  const b = fromHex(s, '--salt');
  if (b.length > 256) throw inputError('BAD_HEX', `--salt is ${b.length} bytes; at most 256`);
  return b;
}

function progress(ctx: CliContext, what: string, path: string, json: boolean | undefined): ((done: number, total: number) => void) | undefined {
  if (json) return undefined;
  let size = 0;
  try {
    size = statSync(path).size;
  } catch {
    return undefined;
  }
  if (size < PROGRESS_MIN_BYTES) return undefined;
  let shown = 0;
  return (done, total) => {
    const pct = Math.floor((done * 100) / total);
    if (pct >= shown + 10 || (done === total && shown < 100)) {
      shown = done === total ? 100 : pct - (pct % 10);
      ctx.io.err(`coffer: verity ${what}: ${shown}% (${Math.round((done * VERITY_BLOCK_SIZE) / 1048576)}/${Math.round((total * VERITY_BLOCK_SIZE) / 1048576)} MiB)`);
    }
  };
}

function common2(f: Flags): { dataBlocks?: number; workers?: number } {
  return {
    ...(f.dataBlocks !== undefined ? { dataBlocks: intArg(f.dataBlocks, '--data-blocks', Number.MAX_SAFE_INTEGER) } : {}),
    ...(f.workers !== undefined ? { workers: intArg(f.workers, '--workers', 64) } : {}),
  };
}

function lines(r: VerityResult): string {
  return [
    `UUID:             ${r.uuid ?? '(no superblock)'}`,
    'Hash type:        1',
    `Data blocks:      ${r.dataBlocks}`,
    `Data block size:  ${VERITY_BLOCK_SIZE}`,
    `Hash blocks:      ${r.hashBlocks}`,
    `Hash block size:  ${VERITY_BLOCK_SIZE}`,
    'Hash algorithm:   sha256',
    `Salt:             ${r.salt || '-'}`,
    `Root hash:        ${r.rootHash}`,
  ].join('\n');
}

export function registerVerity(program: Command, ctx: CliContext): void {
  const verity = program.command('verity').description('dm-verity hash trees (format 1, SHA-256, 4096-byte blocks), as veritysetup makes them');

  common(
    verity
      .command('format')
      .description('build the hash tree of DATA into HASH and print the root hash (same bytes as veritysetup format)')
      .argument('<data>', 'data file or image (a partial last block is ignored)')
      .argument('<hash>', 'hash file to write (replaced)')
      .option('--salt <hex>', 'salt in hex, or - for none (default: 32 random bytes)')
      .option('--uuid <uuid>', 'superblock UUID (default: random)')
      .option('--no-superblock', 'write the tree only, from offset 0 (keep the salt: verify needs it)')
      .option('--data-blocks <n>', 'hash only the first N data blocks')
      .option('--workers <n>', 'worker threads for hashing (default: the available cores; 0 = none)'),
  ).action(
    action(ctx, async (data: string, hash: string, f: Flags) => {
      if (!f.superblock && f.uuid !== undefined) throw inputError('USAGE', '--uuid is stored in the superblock: it makes no sense with --no-superblock');
      const s = salt(f.salt);
      const onProgress = progress(ctx, 'format', data, f.json);
      const r = await formatVerityFile(data, hash, { superblock: f.superblock, ...(s ? { salt: s } : {}), ...(f.uuid !== undefined ? { uuid: f.uuid } : {}), ...common2(f), ...(onProgress ? { onProgress } : {}) });
      ctx.io.out(f.json ? toJson({ ok: true, data, hash, ...r }) : `VERITY header information for ${hash}\n${lines(r)}`);
      return EXIT_OK;
    }),
  );

  common(
    verity
      .command('verify')
      .description('check DATA and HASH against ROOT; a mismatch names the data or hash block')
      .argument('<data>', 'data file or image')
      .argument('<hash>', 'hash file')
      .argument('<root>', 'root hash (64 hex digits)')
      .option('--no-superblock', 'the hash file has no superblock (then --salt is required)')
      .option('--salt <hex>', 'salt in hex, or - for none (for a hash file without superblock)')
      .option('--data-blocks <n>', 'number of data blocks (for a hash file without superblock)')
      .option('--workers <n>', 'worker threads for hashing (default: the available cores; 0 = none)'),
  ).action(
    action(ctx, async (data: string, hash: string, root: string, f: Flags) => {
      const rootHash = fromHex(root, 'root hash');
      if (rootHash.length !== 32) throw inputError('BAD_HEX', `the root hash must be 32 bytes (64 hex digits), got ${rootHash.length}`);
      const s = salt(f.salt);
      const onProgress = progress(ctx, 'verify', data, f.json);
      const r = await verifyVerityFile(data, hash, rootHash, { superblock: f.superblock, ...(s ? { salt: s } : {}), ...common2(f), ...(onProgress ? { onProgress } : {}) });
      ctx.io.out(f.json ? toJson({ ...r, data, hash }) : `VERIFIED  ${data}: ${r.dataBlocks} data blocks and ${r.hashBlocks} hash blocks match root hash ${r.rootHash}`);
      return EXIT_OK;
    }),
  );
}
