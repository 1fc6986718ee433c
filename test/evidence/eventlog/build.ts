// Builds synthetic TCG event logs for the tests that need a specific shape (StartupLocality,
// malformed headers, tampered digests). Independent of the parser: plain Buffer writes.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const VECTORS = fileURLToPath(new URL('../../../../shared/vectors/', import.meta.url));
export const EL = join(VECTORS, 'tpm-eventlog');
export const vector = (rel: string): Buffer => readFileSync(join(VECTORS, rel));
export const eventlog = (rel: string): Buffer => readFileSync(join(EL, rel));

const ALGS: Record<string, [number, number]> = { sha1: [0x0004, 20], sha256: [0x000b, 32], sha384: [0x000c, 48] };

export function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n >>> 0);
  return b;
}

export function u16(n: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16LE(n);
  return b;
}

export function specIdEvent(banks: string[], opts: { count?: number; algs?: [number, number][]; vendor?: Buffer } = {}): Buffer {
  const algs = opts.algs ?? banks.map((b) => ALGS[b] as [number, number]);
  const vendor = opts.vendor ?? Buffer.alloc(0);
  const data = Buffer.concat([
    Buffer.from('Spec ID Event03\0', 'latin1'),
    u32(0),
    Buffer.from([0, 2, 0, 2]),
    u32(opts.count ?? algs.length),
    ...algs.map(([id, size]) => Buffer.concat([u16(id), u16(size)])),
    Buffer.from([vendor.length]),
    vendor,
  ]);
  return Buffer.concat([u32(0), u32(3), Buffer.alloc(20), u32(data.length), data]);
}

export interface SynthEvent {
  pcr: number;
  type: number;
  data: Buffer;
  /** Digest override per bank (default: H(data)). */
  digests?: Record<string, Buffer>;
}

export function event2(banks: string[], e: SynthEvent): Buffer {
  const parts = [u32(e.pcr), u32(e.type), u32(banks.length)];
  for (const b of banks) {
    const [id] = ALGS[b] as [number, number];
    parts.push(u16(id), e.digests?.[b] ?? createHash(b).update(e.data).digest());
  }
  parts.push(u32(e.data.length), e.data);
  return Buffer.concat(parts);
}

export function cryptoAgileLog(banks: string[], events: SynthEvent[]): Buffer {
  return Buffer.concat([specIdEvent(banks), ...events.map((e) => event2(banks, e))]);
}

export function legacyEvent(e: SynthEvent): Buffer {
  return Buffer.concat([u32(e.pcr), u32(e.type), e.digests?.sha1 ?? createHash('sha1').update(e.data).digest(), u32(e.data.length), e.data]);
}

export function extend(bank: string, events: Buffer[], start?: Buffer): string {
  let v = start ?? Buffer.alloc((ALGS[bank] as [number, number])[1]);
  for (const d of events) v = createHash(bank).update(v).update(d).digest();
  return v.toString('hex');
}

export const H = (bank: string, data: Buffer | string): Buffer => createHash(bank).update(data).digest();

export function u64(n: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(BigInt(n));
  return b;
}

/** An EFI GUID string in its mixed-endian storage form. */
export function guidBytes(s: string): Buffer {
  const b = Buffer.from(s.replace(/-/g, ''), 'hex');
  return Buffer.concat([Buffer.from(b.subarray(0, 4)).reverse(), Buffer.from(b.subarray(4, 6)).reverse(), Buffer.from(b.subarray(6, 8)).reverse(), b.subarray(8)]);
}

/** UEFI_VARIABLE_DATA. */
export function variableData(guid: string, name: string, value: Buffer): Buffer {
  return Buffer.concat([guidBytes(guid), u64(name.length), u64(value.length), Buffer.from(name, 'utf16le'), value]);
}

export const GLOBAL = '8be4df61-93ca-11d2-aa0d-00e098032b8c';
export const SECURITY_DB = 'd719b2cb-3d3a-4596-a3bc-dad00e67656f';

/** One event of a parsed log as the builder sees it (register, type, digests per bank, data). */
export interface LogEvent {
  seq: number;
  register: number;
  type: number;
  digests: Readonly<Partial<Record<string, Buffer>>>;
  data: Buffer;
}

/**
 * Re-serialises a crypto-agile log (header bytes kept), letting `edit` change an event's
 * unmeasured fields (type, data around the measured bytes) while keeping its digests, and
 * appending `extra` events (digest H(data) in every bank unless given).
 */
export function rewriteLog(bytes: Buffer, log: { algorithms: readonly { name: string }[]; events: readonly (LogEvent & { offset: number })[] }, edit: (e: LogEvent) => Partial<SynthEvent> | undefined, extra: SynthEvent[] = []): Buffer {
  const banks = log.algorithms.map((a) => a.name);
  const first = log.events[1];
  const parts = [bytes.subarray(0, first ? first.offset : bytes.length)];
  for (const e of log.events.slice(1)) {
    const change = edit(e) ?? {};
    parts.push(event2(banks, { pcr: change.pcr ?? e.register, type: change.type ?? e.type, data: change.data ?? e.data, digests: (change.digests ?? e.digests) as Record<string, Buffer> }));
  }
  for (const x of extra) parts.push(event2(banks, x));
  return Buffer.concat(parts);
}
