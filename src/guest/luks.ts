import { spawn } from 'node:child_process';
import { mkdtemp, open, readFile, rm, stat, type FileHandle } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
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
/**
 * Between them, samples spread evenly over the device: a disk whose start and end were wiped
 * (wipefs, a zeroed LUKS header) still holds data in the middle, and mkfs would destroy it.
 */
export const BLANK_SAMPLES = 256;
export const BLANK_SAMPLE_BYTES = 64 * 1024;

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

/** Fills `buf` from `position`: a short read must not leave zeros that would pass for a blank volume. */
async function readFully(fh: FileHandle, buf: Buffer, position: number, path: string): Promise<void> {
  let done = 0;
  while (done < buf.length) {
    const { bytesRead } = await fh.read(buf, done, buf.length - done, position + done);
    if (bytesRead === 0) throw verifyError('VOLUME_UNREADABLE', `${path}: read ended at offset ${position + done}, before the ${buf.length} bytes probed`);
    done += bytesRead;
  }
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
    await readFully(fh, head, 0, path);
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
      await readFully(fh, tail, size - tailLen, path);
      const tz = tail.findIndex((b) => b !== 0);
      if (tz >= 0) return { kind: 'other', size, what: `data at offset ${size - tailLen + tz} near the end (a backup GPT or RAID metadata?)` };
    }
    const midStart = head.length;
    const midLen = size - head.length - tailLen;
    if (midLen > 0) {
      const sample = Buffer.alloc(Math.min(BLANK_SAMPLE_BYTES, midLen));
      const count = Math.min(BLANK_SAMPLES, Math.ceil(midLen / sample.length));
      for (let i = 0; i < count; i++) {
        const at = midStart + Math.floor(((midLen - sample.length) * i) / Math.max(count - 1, 1));
        await readFully(fh, sample, at, path);
        const sz = sample.findIndex((b) => b !== 0);
        if (sz >= 0) return { kind: 'other', size, what: `data at offset ${at + sz} (not all zero between the probed start and end)` };
      }
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

/**
 * Ciphers a LUKS2 header may name for its data segment and key slots. The header lives on the
 * host-controlled disk: a header with `cipher_null` key slots opens with ANY key (the volume key
 * sits in the slot unencrypted), and a `cipher_null` or otherwise weak segment leaves the data in
 * clear or in a key the host chose. cryptsetup accepts both, so the agent refuses anything else.
 */
export const LUKS_ALLOWED_CIPHERS: readonly string[] = ['aes-xts-plain64'];
/** AES-256-XTS: 64 bytes of volume key (cryptsetup's default for aes-xts-plain64). */
const LUKS_VOLUME_KEY_BYTES = 64;

/** Checks `cryptsetup luksDump --dump-json-metadata` output against what the agent formats and accepts. */
export function checkLuksMetadata(text: string, device: string): void {
  const bad = (why: string) => verifyError('VOLUME_WEAK_HEADER', `${device}: the LUKS2 header ${why}: refusing to open it (a header on a host-controlled disk is untrusted)`);
  let meta: unknown;
  try {
    meta = JSON.parse(text);
  } catch {
    throw bad('metadata is not JSON');
  }
  const obj = (v: unknown): Record<string, unknown> | undefined => (v && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined);
  const m = obj(meta);
  const keyslots = obj(m?.keyslots);
  const segments = obj(m?.segments);
  const config = obj(m?.config);
  if (!m || !keyslots || !segments) throw bad('metadata has no keyslots or segments');
  const req = obj(config?.requirements);
  if (req && Array.isArray(req.mandatory) && req.mandatory.length > 0) throw bad(`has mandatory requirements ${JSON.stringify(req.mandatory).slice(0, 80)} (reencryption in progress?)`);
  const segs = Object.entries(segments);
  if (segs.length !== 1) throw bad(`has ${segs.length} segments, not 1`);
  for (const [id, raw] of segs) {
    const seg = obj(raw);
    if (seg?.type !== 'crypt') throw bad(`segment ${id} is of type ${JSON.stringify(seg?.type)}, not crypt`);
    if (!LUKS_ALLOWED_CIPHERS.includes(String(seg.encryption))) throw bad(`segment ${id} is encrypted with ${JSON.stringify(seg.encryption)}, not ${LUKS_ALLOWED_CIPHERS.join(' or ')}`);
    if (seg.integrity !== undefined) throw bad(`segment ${id} has an integrity section, which the agent does not set up`);
  }
  const slots = Object.entries(keyslots);
  if (slots.length === 0) throw bad('has no key slot');
  for (const [id, raw] of slots) {
    const ks = obj(raw);
    const area = obj(ks?.area);
    if (ks?.type !== 'luks2') throw bad(`key slot ${id} is of type ${JSON.stringify(ks?.type)}, not luks2`);
    if (ks.key_size !== LUKS_VOLUME_KEY_BYTES) throw bad(`key slot ${id} holds a ${JSON.stringify(ks.key_size)}-byte volume key, not ${LUKS_VOLUME_KEY_BYTES}`);
    if (area?.type !== 'raw' || !LUKS_ALLOWED_CIPHERS.includes(String(area.encryption))) throw bad(`key slot ${id} area is encrypted with ${JSON.stringify(area?.encryption)}, not ${LUKS_ALLOWED_CIPHERS.join(' or ')}`);
  }
}

/**
 * A copy of the LUKS2 header (both binary headers, JSON areas and key slots) in a private
 * temporary directory: it is checked and then used with `--header`, so that the header cryptsetup
 * opens is the one checked, whatever the host serves on a second read of the disk. The copy holds
 * only what the disk holds (key slots encrypted under the key), never the key.
 */
async function withCheckedHeader<T>(device: string, cryptsetup: string, fn: (header: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), 'coffer-hdr-'));
  const header = join(dir, 'header');
  try {
    const b = await runTool(cryptsetup, ['luksHeaderBackup', '--header-backup-file', header, device]);
    if (b.code !== 0) throw verifyError('VOLUME_OPEN_FAILED', `cryptsetup luksHeaderBackup ${device} failed (exit ${b.code ?? b.signal}): ${lastLine(b.stderr)}`);
    const d = await runTool(cryptsetup, ['luksDump', '--dump-json-metadata', header]);
    if (d.code !== 0) throw verifyError('VOLUME_WEAK_HEADER', `${device}: cryptsetup cannot read the LUKS2 header (exit ${d.code ?? d.signal}): ${lastLine(d.stderr)}`);
    checkLuksMetadata(d.stdout, device);
    return await fn(header);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** `cryptsetup open` with the key on stdin; in `test-passphrase` mode only checks the key against the header (no device-mapper needed, nothing is mapped). */
export async function openLuks(device: string, name: string, key: Buffer, mode: UnlockMode, o: CryptsetupOptions = {}): Promise<void> {
  const cryptsetup = o.cryptsetup ?? 'cryptsetup';
  const r = await withCheckedHeader(device, cryptsetup, (header) => {
    const args = mode === 'open' ? ['open', '--type', 'luks2', '--key-file=-', '--header', header, device, name] : ['open', '--type', 'luks2', '--test-passphrase', '--key-file=-', '--header', header, device];
    return runTool(cryptsetup, args, key);
  });
  if (r.code === 0) return;
  // cryptsetup exit status 2: no key slot opened with this key.
  if (r.code === 2) throw verifyError('VOLUME_KEY_REJECTED', `${device}: no LUKS2 key slot accepts the released key (cryptsetup: ${lastLine(r.stderr) || 'exit 2'})`);
  throw verifyError('VOLUME_OPEN_FAILED', `cryptsetup open ${device} failed (exit ${r.code ?? r.signal}): ${lastLine(r.stderr)}`);
}

/** `cryptsetup luksFormat --type luks2` with the key on stdin. The caller has established the volume is blank. */
export async function formatLuks(device: string, key: Buffer, o: CryptsetupOptions = {}): Promise<void> {
  const kdf = (o.pbkdf ?? 'pbkdf2') === 'pbkdf2' ? ['--pbkdf', 'pbkdf2', '--pbkdf-force-iterations', '1000'] : ['--pbkdf', 'argon2id'];
  const r = await runTool(o.cryptsetup ?? 'cryptsetup', ['luksFormat', '--type', 'luks2', '--batch-mode', '--key-file=-', '--cipher', 'aes-xts-plain64', '--key-size', String(LUKS_VOLUME_KEY_BYTES * 8), ...kdf, '--label', 'coffer-data', device], key);
  if (r.code !== 0) throw verifyError('VOLUME_FORMAT_FAILED', `cryptsetup luksFormat ${device} failed (exit ${r.code ?? r.signal}): ${lastLine(r.stderr)}`);
}

export type Filesystem = 'ext4' | 'xfs' | 'none';

/** A filesystem on the opened mapping (first boot only). */
export async function makeFilesystem(mapped: string, fs: Filesystem): Promise<void> {
  if (fs === 'none') return;
  const r = await runTool(`mkfs.${fs}`, fs === 'ext4' ? ['-q', '-L', 'coffer-data', mapped] : ['-q', '-L', 'coffer-data', mapped]);
  if (r.code !== 0) throw verifyError('VOLUME_MKFS_FAILED', `mkfs.${fs} ${mapped} failed (exit ${r.code ?? r.signal}): ${lastLine(r.stderr)}`);
}
