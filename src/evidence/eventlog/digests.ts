import { createHash, timingSafeEqual } from 'node:crypto';
import { ByteReader } from '../../bytes/reader.js';
import { CofferError } from '../../errors.js';
import { EV, eventTypeName } from './types.js';
import { isExtended } from './replay.js';
import type { EventLog, TcgEvent } from './log.js';

/**
 * Which events' digests can be checked against their own data (TCG PC Client PFP spec, the
 * "Events" table and the per-PCR usage sections, and what google/go-attestation and go-eventlog
 * verify):
 *
 * - `must`: the digest is defined as H(event data): EV_SEPARATOR, EV_ACTION, EV_EFI_ACTION,
 *   EV_S_CRTM_VERSION, EV_OMIT_BOOT_DEVICE_EVENTS, EV_NONHOST_INFO, EV_EFI_VARIABLE_DRIVER_CONFIG,
 *   EV_EFI_VARIABLE_AUTHORITY (also accepting shim's extra trailing byte, go-attestation #157),
 *   EV_EFI_GPT_EVENT(2), and EV_EFI_VARIABLE_BOOT(2) where firmware (EDK2/OVMF among them) hashes
 *   only VariableData instead of the whole UEFI_VARIABLE_DATA, so both are accepted.
 *   A mismatch is a defect (EVENTLOG_DIGEST_MISMATCH).
 * - `may`: EV_IPL and EV_COMPACT_HASH: GRUB hashes the command after its prefix (with or without
 *   the NUL), systemd-stub and others hash the data itself; shim's EV_IPL events in PCR 14 hash
 *   variable contents not in the log. Counted as checked when a known convention matches, never
 *   flagged otherwise.
 * - `external`: the digest covers something outside the log (firmware volumes, PE images,
 *   ACPI/SMBIOS tables, files, the initrd): cannot be checked from the log.
 * - `not-extended`: EV_NO_ACTION and the header event.
 */
export type DigestRule = 'must' | 'may' | 'external' | 'not-extended';

export type DigestStatus = 'verified' | 'mismatch' | 'unverified' | 'external' | 'not-extended';

export interface DigestCheck {
  seq: number;
  rule: DigestRule;
  status: DigestStatus;
  /** Which data convention matched, e.g. `event data`, `VariableData only`, `grub: after prefix, without NUL`. */
  convention?: string;
  /** Banks whose digest did not match any convention (for a mismatch). */
  failedBanks?: string[];
  /**
   * For a verified event: which bytes of the event data the digest covers. Whatever lies outside
   * (GRUB's `grub_cmd: ` / `kernel_cmdline: ` labels, a trailing NUL) is not measured.
   */
  measured?: { offset: number; length: number };
  /** Why a must/may event could not be checked (e.g. no bank this verifier can hash). */
  reason?: string;
}

const MUST = new Set<number>([
  EV.SEPARATOR,
  EV.ACTION,
  EV.EFI_ACTION,
  EV.S_CRTM_VERSION,
  EV.OMIT_BOOT_DEVICE_EVENTS,
  EV.NONHOST_INFO,
  EV.EFI_VARIABLE_DRIVER_CONFIG,
  EV.EFI_VARIABLE_AUTHORITY,
  EV.EFI_VARIABLE_BOOT,
  EV.EFI_VARIABLE_BOOT2,
  EV.EFI_GPT_EVENT,
  EV.EFI_GPT_EVENT2,
]);
const MAY = new Set<number>([EV.IPL, EV.COMPACT_HASH]);

export function digestRule(log: EventLog, e: TcgEvent): DigestRule {
  if (!isExtended(log, e)) return 'not-extended';
  if (MUST.has(e.type)) return 'must';
  if (MAY.has(e.type)) return 'may';
  return 'external';
}

const GRUB_PREFIXES = ['grub_cmd: ', 'kernel_cmdline: ', 'module_cmdline: ', 'grub_kernel_cmdline ', 'grub_cmd '].map((p) => Buffer.from(p, 'latin1'));

/** Candidate preimages for an event, each with a name: the digest must equal H(one of them). */
function candidates(e: TcgEvent): [string, Buffer][] {
  const out: [string, Buffer][] = [['event data', e.data]];
  if (e.type === EV.EFI_VARIABLE_BOOT || e.type === EV.EFI_VARIABLE_BOOT2 || e.type === EV.EFI_VARIABLE_AUTHORITY) {
    try {
      const r = new ByteReader(e.data, 'UEFI_VARIABLE_DATA');
      r.skip(16);
      const nameLen = r.u64le();
      const dataLen = r.u64le();
      if (nameLen <= BigInt(r.remaining) / 2n) {
        r.skip(Number(nameLen) * 2);
        if (dataLen <= BigInt(r.remaining)) {
          const value = r.view(Number(dataLen));
          if (e.type !== EV.EFI_VARIABLE_AUTHORITY) out.push(['VariableData only', value]);
        }
      }
    } catch (err) {
      if (!(err instanceof CofferError)) throw err;
    }
    if (e.type === EV.EFI_VARIABLE_AUTHORITY && e.data.length > 0) out.push(['event data without the last byte (shim bug, go-attestation #157)', e.data.subarray(0, e.data.length - 1)]);
  }
  if (e.type === EV.IPL) {
    const nul = e.data.length > 0 && e.data[e.data.length - 1] === 0;
    if (nul) out.push(['event data without the NUL', e.data.subarray(0, e.data.length - 1)]);
    for (const p of GRUB_PREFIXES) {
      if (e.data.length >= p.length && e.data.subarray(0, p.length).equals(p)) {
        const rest = e.data.subarray(p.length);
        if (nul) out.push([`grub: after "${p.toString().trim()}", without the NUL`, rest.subarray(0, rest.length - 1)]);
        out.push([`grub: after "${p.toString().trim()}"`, rest]);
        break;
      }
    }
  }
  return out;
}

function same(a: Buffer, b: Buffer): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}

/** Checks one event in every bank the log carries. */
export function checkEventDigest(log: EventLog, e: TcgEvent): DigestCheck {
  const rule = digestRule(log, e);
  if (rule === 'not-extended') return { seq: e.seq, rule, status: 'not-extended' };
  if (rule === 'external') return { seq: e.seq, rule, status: 'external' };
  const banks = log.algorithms.filter((a) => a.replayable);
  // With no bank we can hash (an SM3-only log), nothing is checked: `every` over no banks would
  // otherwise call every event verified.
  if (banks.length === 0) return { seq: e.seq, rule, status: 'unverified', reason: `the log carries no bank this verifier can hash (${log.algorithms.map((a) => a.name).join(', ')})` };
  const cands = candidates(e);
  // The same convention must hold in every bank: a log whose SHA-1 digest matches one reading
  // and whose SHA-256 digest matches another is not consistent.
  for (const [name, pre] of cands) {
    if (banks.every((a) => {
      const d = e.digests[a.name];
      return d !== undefined && same(createHash(a.name).update(pre).digest(), d);
    })) {
      return { seq: e.seq, rule, status: 'verified', convention: name, measured: { offset: pre.byteOffset - e.data.byteOffset, length: pre.length } };
    }
  }
  const failedBanks = banks.filter((a) => {
    const d = e.digests[a.name];
    return !d || !cands.some(([, pre]) => same(createHash(a.name).update(pre).digest(), d));
  }).map((a) => a.name);
  return { seq: e.seq, rule, status: rule === 'must' ? 'mismatch' : 'unverified', ...(failedBanks.length ? { failedBanks } : { failedBanks: banks.map((a) => a.name) }) };
}

export interface DigestReport {
  checks: DigestCheck[];
  verified: number;
  mismatched: number;
  unverified: number;
  external: number;
}

export function checkDigests(log: EventLog): DigestReport {
  const checks = log.events.map((e) => checkEventDigest(log, e));
  const count = (s: DigestStatus) => checks.filter((c) => c.status === s).length;
  return { checks, verified: count('verified'), mismatched: count('mismatch'), unverified: count('unverified'), external: count('external') };
}

export function describeMismatch(log: EventLog, c: DigestCheck): string {
  const e = log.events[c.seq];
  return `event ${c.seq} (${e ? eventTypeName(e.type) : '?'}, ${log.kind === 'ccel' ? 'MR' : 'PCR'} ${e?.register ?? '?'}): the ${c.failedBanks?.join('/') ?? ''} digest is not the hash of the event data`;
}
