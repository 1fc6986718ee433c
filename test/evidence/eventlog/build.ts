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
