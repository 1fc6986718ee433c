import { spawn } from 'node:child_process';
import { open, readFile, stat } from 'node:fs/promises';
import { CofferError, inputError, verifyError } from '../errors.js';
import { sanitize } from './log.js';

/**
 * The data volume: what is on it (LUKS2, blank, or something else), and cryptsetup driven with the
 * key on standard input only (never argv, never a file). Formatting happens only to a volume that
 * is blank by the checks here: all zero at its start and end, no known signature.
 */

/** How much of the start must be zero for "blank" (covers LUKS2's 16 KiB-4 MiB header area, GPT, md, LVM labels). */
export const BLANK_HEAD_BYTES = 4 * 1024 * 1024;
/** And of the end (GPT backup header, md 0.90 and DDF metadata live there). */
export const BLANK_TAIL_BYTES = 1024 * 1024;

export type VolumeState =
  | { kind: 'luks2'; size: number }
  | { kind: 'blank'; size: number }
  | { kind: 'other'; size: number; what: string };

interface Magic {
  name: string;
  offsets: number[];
  bytes: Buffer;
}

const m = (name: string, offsets: number[], bytes: string | number[]): Magic => ({ name, offsets, bytes: typeof bytes === 'string' ? Buffer.from(bytes, 'latin1') : Buffer.from(bytes) });

/** Signatures as blkid knows them (offset of the magic from the start of the device). */
const MAGICS: readonly Magic[] = [
  m('LUKS2 secondary header', [0x4000, 0x8000, 0x10000, 0x20000, 0x40000, 0x80000, 0x100000, 0x200000, 0x400000 - 0x1000], 'SKUL\xba\xbe'),
  m('ext2/3/4 filesystem', [0x438], [0x53, 0xef]),
  m('XFS filesystem', [0], 'XFSB'),
  m('btrfs filesystem', [0x10040], '_BHRfS_M'),
  m('F2FS filesystem', [0x400], [0x10, 0x20, 0xf5, 0xf2]),
  m('EROFS filesystem', [0x400], [0xe2, 0xe1, 0xf5, 0xe0]),
  m('squashfs', [0], 'hsqs'),
  m('swap space', [4086, 8182, 16374, 65526], 'SWAPSPACE2'),
  m('swap space (v0)', [4086], 'SWAP-SPACE'),
  m('NTFS filesystem', [3], 'NTFS    '),
  m('BitLocker volume', [3], '-FVE-FS-'),
  m('exFAT filesystem', [3], 'EXFAT   '),
  m('FAT filesystem', [54], 'FAT1'),
  m('FAT32 filesystem', [82], 'FAT32   '),
  m('GPT partition table', [512, 4096], 'EFI PART'),
  m('MBR boot sector or partition table', [510], [0x55, 0xaa]),
  m('ISO 9660 filesystem', [0x8001], 'CD001'),
  m('LVM2 physical volume', [0, 512, 1024, 1536], 'LABELONE'),
  m('Linux md RAID member (1.1/1.2)', [0, 4096], [0xfc, 0x4e, 0x2b, 0xa9]),
  m('bcache device', [4096 + 24], [0xc6, 0x85, 0x73, 0xf6, 0x4e, 0x1a, 0x45, 0xca, 0x82, 0x65, 0xf5, 0x7f, 0x48, 0xba, 0x6d, 0x81]),
  m('dm-verity hash device', [0], 'verity\0\0'),
];

const LUKS_MAGIC = Buffer.from('LUKS\xba\xbe', 'latin1');

async function deviceSize(path: string): Promise<number> {
  const st = await stat(path);
  if (st.isFile()) return st.size;
  if (st.isBlockDevice()) {
    const major = Math.floor(st.rdev / 256) & 0xfff;
    const minor = (st.rdev & 0xff) | ((Math.floor(st.rdev / 4096) & 0xfff00) >>> 0);
    const sectors = (await readFile(`/sys/dev/block/${major}:${minor}/size`, 'latin1')).trim();
    if (!/^\d+$/.test(sectors)) throw verifyError('VOLUME_UNREADABLE', `cannot tell the size of ${path}`);
    return Number(sectors) * 512;
  }
  throw inputError('VOLUME_NOT_A_DEVICE', `${path} is neither a block device nor a regular file`);
}

/** What the volume holds; reads only, never writes. */
export async function probeVolume(path: string): Promise<VolumeState> {
  let size: number;
  try {
    size = await deviceSize(path);
  } catch (e) {
    if (e instanceof CofferError) throw e;
    throw verifyError('VOLUME_UNREADABLE', `cannot open ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  if (size < 16 * 1024 * 1024) throw verifyError('VOLUME_TOO_SMALL', `${path} is ${size} bytes; a LUKS2 volume needs at least 16 MiB`);
  const fh = await open(path, 'r');
  try {
    const head = Buffer.alloc(Math.min(BLANK_HEAD_BYTES, size));
    await fh.read(head, 0, head.length, 0);
    if (head.subarray(0, 6).equals(LUKS_MAGIC)) {
      const version = head.readUInt16BE(6);
      if (version === 2) return { kind: 'luks2', size };
      return { kind: 'other', size, what: `LUKS version ${version} header (only LUKS2 is opened)` };
    }
    for (const mg of MAGICS) {
      for (const off of mg.offsets) {
        if (off + mg.bytes.length <= head.length && head.subarray(off, off + mg.bytes.length).equals(mg.bytes)) return { kind: 'other', size, what: `${mg.name} signature at offset ${off}` };
      }
    }
    const nz = head.findIndex((b) => b !== 0);
    if (nz >= 0) return { kind: 'other', size, what: `data at offset ${nz} (not all zero in the first ${head.length} bytes)` };
    const tailLen = Math.min(BLANK_TAIL_BYTES, size - head.length);
    if (tailLen > 0) {
      const tail = Buffer.alloc(tailLen);
      await fh.read(tail, 0, tailLen, size - tailLen);
      const tz = tail.findIndex((b) => b !== 0);
      if (tz >= 0) return { kind: 'other', size, what: `data at offset ${size - tailLen + tz} near the end (a backup GPT or RAID metadata?)` };
    }
    return { kind: 'blank', size };
  } finally {
    await fh.close();
  }
}

export interface ToolResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs a tool with `stdin` as its standard input; output is collected (bounded), never echoed. */
export function runTool(cmd: string, args: readonly string[], stdin?: Buffer, timeoutMs = 120_000): Promise<ToolResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'], env: { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin', LC_ALL: 'C' } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => {
      if (stdout.length < 1 << 20) stdout += d.toString('utf8');
    });
    child.stderr.on('data', (d: Buffer) => {
      if (stderr.length < 8192) stderr += d.toString('utf8');
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', (e: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      reject(verifyError('TOOL_MISSING', `cannot run ${cmd}: ${e.code ?? e.message}`));
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
    // EPIPE when the tool exits before reading: its exit status says what went wrong.
    child.stdin.on('error', () => undefined);
    child.stdin.end(stdin ?? Buffer.alloc(0));
  });
}

const lastLine = (s: string) => sanitize(s.trim().split('\n').filter(Boolean).pop() ?? '', 300);

export type UnlockMode = 'open' | 'test-passphrase';

export interface CryptsetupOptions {
  /** The cryptsetup binary (default `cryptsetup` on PATH). */
  cryptsetup?: string;
  /** `pbkdf2` (default: the key is 256 random bits, so a slow KDF adds nothing but boot time and memory) or `argon2id`. */
  pbkdf?: 'pbkdf2' | 'argon2id';
}

/** `cryptsetup open` with the key on stdin; in `test-passphrase` mode only checks the key against the header (no device-mapper needed, nothing is mapped). */
export async function openLuks(device: string, name: string, key: Buffer, mode: UnlockMode, o: CryptsetupOptions = {}): Promise<void> {
  const args = mode === 'open' ? ['open', '--type', 'luks2', '--key-file=-', device, name] : ['open', '--type', 'luks2', '--test-passphrase', '--key-file=-', device];
  const r = await runTool(o.cryptsetup ?? 'cryptsetup', args, key);
  if (r.code === 0) return;
  // cryptsetup exit status 2: no key slot opened with this key.
  if (r.code === 2) throw verifyError('VOLUME_KEY_REJECTED', `${device}: no LUKS2 key slot accepts the released key (cryptsetup: ${lastLine(r.stderr) || 'exit 2'})`);
  throw verifyError('VOLUME_OPEN_FAILED', `cryptsetup open ${device} failed (exit ${r.code ?? r.signal}): ${lastLine(r.stderr)}`);
}

/** `cryptsetup luksFormat --type luks2` with the key on stdin. The caller has established the volume is blank. */
export async function formatLuks(device: string, key: Buffer, o: CryptsetupOptions = {}): Promise<void> {
  const kdf = (o.pbkdf ?? 'pbkdf2') === 'pbkdf2' ? ['--pbkdf', 'pbkdf2', '--pbkdf-force-iterations', '1000'] : ['--pbkdf', 'argon2id'];
  const r = await runTool(o.cryptsetup ?? 'cryptsetup', ['luksFormat', '--type', 'luks2', '--batch-mode', '--key-file=-', ...kdf, '--label', 'coffer-data', device], key);
  if (r.code !== 0) throw verifyError('VOLUME_FORMAT_FAILED', `cryptsetup luksFormat ${device} failed (exit ${r.code ?? r.signal}): ${lastLine(r.stderr)}`);
}

export type Filesystem = 'ext4' | 'xfs' | 'none';

/** A filesystem on the opened mapping (first boot only). */
export async function makeFilesystem(mapped: string, fs: Filesystem): Promise<void> {
  if (fs === 'none') return;
  const r = await runTool(`mkfs.${fs}`, fs === 'ext4' ? ['-q', '-L', 'coffer-data', mapped] : ['-q', '-L', 'coffer-data', mapped]);
  if (r.code !== 0) throw verifyError('VOLUME_MKFS_FAILED', `mkfs.${fs} ${mapped} failed (exit ${r.code ?? r.signal}): ${lastLine(r.stderr)}`);
}
