import type { SnpProduct } from './report.js';

/**
 * A TCB_VERSION, decoded for its product. Milan and Genoa: byte 0 boot loader, 1 TEE, 2-5
 * reserved, 6 SNP firmware, 7 microcode. Turin adds the FMC: byte 0 FMC, 1 boot loader, 2 TEE,
 * 3 SNP, 4-6 reserved, 7 microcode.
 */
export interface TcbVersion {
  raw: bigint;
  fmc?: number;
  bootloader: number;
  tee: number;
  snp: number;
  microcode: number;
}

export type TcbComponent = 'fmc' | 'bootloader' | 'tee' | 'snp' | 'microcode';

/** The four TCB values of a report, decoded. REPORTED is the one the VCEK certifies. */
export interface SnpTcbSet {
  reported: TcbVersion;
  current: TcbVersion;
  committed: TcbVersion;
  launch: TcbVersion;
}

const byteAt = (raw: bigint, i: number) => Number((raw >> BigInt(8 * i)) & 0xffn);

export function decodeTcbSet(r: { reportedTcb: bigint; currentTcb: bigint; committedTcb: bigint; launchTcb: bigint }, product: SnpProduct): SnpTcbSet {
  return { reported: decodeTcb(r.reportedTcb, product), current: decodeTcb(r.currentTcb, product), committed: decodeTcb(r.committedTcb, product), launch: decodeTcb(r.launchTcb, product) };
}

export function decodeTcb(raw: bigint, product: SnpProduct): TcbVersion {
  if (product === 'Turin') {
    return { raw, fmc: byteAt(raw, 0), bootloader: byteAt(raw, 1), tee: byteAt(raw, 2), snp: byteAt(raw, 3), microcode: byteAt(raw, 7) };
  }
  return { raw, bootloader: byteAt(raw, 0), tee: byteAt(raw, 1), snp: byteAt(raw, 6), microcode: byteAt(raw, 7) };
}

/** Non-zero reserved bytes of a TCB value (not signed into the VCEK, so they must be zero). */
export function tcbReservedBytes(raw: bigint, product: SnpProduct): number[] {
  const reserved = product === 'Turin' ? [4, 5, 6] : [2, 3, 4, 5];
  return reserved.filter((i) => byteAt(raw, i) !== 0);
}

export function encodeTcb(t: Omit<TcbVersion, 'raw'>, product: SnpProduct): bigint {
  const b = (v: number, i: number) => BigInt(v & 0xff) << BigInt(8 * i);
  if (product === 'Turin') return b(t.fmc ?? 0, 0) | b(t.bootloader, 1) | b(t.tee, 2) | b(t.snp, 3) | b(t.microcode, 7);
  return b(t.bootloader, 0) | b(t.tee, 1) | b(t.snp, 6) | b(t.microcode, 7);
}

export function formatTcb(t: TcbVersion): string {
  const parts = [`bl=${t.bootloader}`, `tee=${t.tee}`, `snp=${t.snp}`, `ucode=${t.microcode}`];
  if (t.fmc !== undefined) parts.unshift(`fmc=${t.fmc}`);
  return parts.join(' ');
}

export function tcbComponents(t: TcbVersion): [TcbComponent, number][] {
  const out: [TcbComponent, number][] = [];
  if (t.fmc !== undefined) out.push(['fmc', t.fmc]);
  out.push(['bootloader', t.bootloader], ['tee', t.tee], ['snp', t.snp], ['microcode', t.microcode]);
  return out;
}
