import { createHash, timingSafeEqual } from 'node:crypto';
import { toHex } from '../../bytes/hex.js';
import { inputError } from '../../errors.js';
import { EV } from './types.js';
import type { EventLog, TcgEvent } from './log.js';

/**
 * Replay: each bank's PCRs from zero (PCR 0 from the StartupLocality value when the log says
 * TPM2_Startup came from locality 3 or 4), `pcr = H(pcr || digest)` for every event except
 * EV_NO_ACTION. For a CCEL: RTMR[i-1] = SHA384(RTMR[i-1] || digest) for MR index i in 1..4;
 * MR index 0 (MRTD) is measured by the TDX module, not by these events.
 */

export interface Replayed {
  /** bank name → PCR index → value, for every PCR that at least one event extends. */
  pcrs: Record<string, Record<number, Buffer>>;
  /** CCEL only: RTMR 0-3 (all four, zero when nothing was extended). */
  rtmrs?: Record<number, Buffer>;
}

const STARTUP_LOCALITY = Buffer.from('StartupLocality\0', 'latin1');

/**
 * The locality from the StartupLocality EV_NO_ACTION event (PFP spec, "Startup Locality Event"),
 * or undefined when the log has none. It sets PCR 0's starting value, so it is held to the spec:
 * exactly one such event, in PCR 0, 17 bytes, before the first event extended into PCR 0, with
 * locality 0, 3 or 4 (H-CRTM). Anything else is refused (EVENTLOG_BAD_STARTUP_LOCALITY): a
 * second or late StartupLocality would let a log choose PCR 0's initial value after the fact.
 * Only TPM logs have one; a CCEL's is ignored (RTMRs start at zero).
 */
export function startupLocality(log: EventLog): number | undefined {
  if (log.kind !== 'tpm') return undefined;
  let found: { seq: number; locality: number } | undefined;
  let firstPcr0: number | undefined;
  for (const e of log.events) {
    if (e.type !== EV.NO_ACTION) {
      if (e.register === 0 && firstPcr0 === undefined && isExtended(log, e)) firstPcr0 = e.seq;
      continue;
    }
    if (!e.data.subarray(0, 16).equals(STARTUP_LOCALITY)) continue;
    const bad = (why: string): never => {
      throw inputError('EVENTLOG_BAD_STARTUP_LOCALITY', `event ${e.seq}: StartupLocality ${why}`);
    };
    if (found) bad(`appears a second time (first at event ${found.seq})`);
    if (e.register !== 0) bad(`is logged for PCR ${e.register}, not PCR 0`);
    if (e.data.length !== 17) bad(`event is ${e.data.length} bytes, not 17`);
    if (firstPcr0 !== undefined) bad(`comes after event ${firstPcr0} was already extended into PCR 0`);
    const locality = e.data[16] as number;
    if (locality !== 0 && locality !== 3 && locality !== 4) bad(`locality is ${locality}, not 0, 3 or 4`);
    found = { seq: e.seq, locality };
  }
  return found?.locality;
}

/** Is this event extended into a register (everything except EV_NO_ACTION and the header)? */
export function isExtended(log: EventLog, e: TcgEvent): boolean {
  if (e.type === EV.NO_ACTION) return false;
  if (e.seq === 0 && log.specId) return false;
  if (log.kind === 'ccel' && e.register === 0) return false;
  return true;
}

export function replayEventLog(log: EventLog): Replayed {
  const locality = startupLocality(log) ?? 0;
  const pcrs: Record<string, Record<number, Buffer>> = {};
  for (const alg of log.algorithms) {
    if (!alg.replayable) continue;
    const bank: Record<number, Buffer> = {};
    for (const e of log.events) {
      if (!isExtended(log, e)) continue;
      const d = e.digests[alg.name];
      if (!d) throw inputError('EVENTLOG_DIGEST_COUNT', `event ${e.seq} has no ${alg.name} digest to replay`);
      let cur = bank[e.register];
      if (!cur) {
        cur = Buffer.alloc(alg.size);
        if (e.register === 0) cur[alg.size - 1] = locality;
      }
      bank[e.register] = createHash(alg.name).update(cur).update(d).digest();
    }
    pcrs[alg.name] = bank;
  }
  if (log.kind !== 'ccel') return { pcrs };
  const rtmrs: Record<number, Buffer> = {};
  const sha384 = pcrs.sha384 ?? {};
  for (let i = 0; i < 4; i++) rtmrs[i] = sha384[i + 1] ?? Buffer.alloc(48);
  return { pcrs, rtmrs };
}

export interface Divergence {
  bank: string;
  /** PCR index, or RTMR index when bank is `rtmr`. */
  register: number;
  expected: string;
  found: string;
  /** Log position (seq) of the last event extended into this register; undefined if none was. */
  lastEvent: number | undefined;
  /** How many events the log extends into the register. */
  events: number;
  /**
   * The first event after which the replay can no longer match: the earliest event whose running
   * value is never equal to the expected value again. Without a known-good intermediate value,
   * that is the first event of the register (when none of the prefixes matches) or the one
   * following the last prefix whose value equals the expected value (extra events logged).
   */
  firstDivergentEvent: number | undefined;
  /** A plain-language reading of the mismatch. */
  explanation: string;
}

export interface ExpectedRegisters {
  /** bank → PCR index → expected value (hex or bytes). */
  pcrs?: Record<string, Record<number | string, string | Buffer>>;
  /** RTMR index → expected value. */
  rtmrs?: Record<number | string, string | Buffer>;
}

export interface ComparedRegisters {
  ok: boolean;
  /** Registers that equal their expected value. */
  matched: { bank: string; register: number }[];
  diverged: Divergence[];
}

function asBuffer(v: string | Buffer, what: string): Buffer {
  if (Buffer.isBuffer(v)) return v;
  if (!/^[0-9a-fA-F]*$/.test(v) || v.length % 2 !== 0) throw inputError('BAD_HEX', `${what} is not hex`);
  return Buffer.from(v, 'hex');
}

function eq(a: Buffer, b: Buffer): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}

function diverge(log: EventLog, bankName: string, hash: string, size: number, register: number, logRegister: number, expected: Buffer, found: Buffer): Divergence {
  const events = log.events.filter((e) => e.register === logRegister && isExtended(log, e));
  const locality = log.kind === 'tpm' && logRegister === 0 ? (startupLocality(log) ?? 0) : 0;
  let cur = Buffer.alloc(size);
  if (locality) cur[size - 1] = locality;
  let lastMatch = eq(cur, expected) ? -1 : undefined;
  events.forEach((e, i) => {
    const d = e.digests[hash as keyof TcgEvent['digests']];
    if (!d) return;
    cur = createHash(hash).update(cur).update(d).digest();
    if (eq(cur, expected)) lastMatch = i;
  });
  const last = events[events.length - 1]?.seq;
  let firstDivergentEvent: number | undefined;
  let explanation: string;
  if (events.length === 0) {
    explanation = `the log extends nothing into this register, but the quoted value is not its reset value`;
  } else if (lastMatch !== undefined) {
    firstDivergentEvent = events[lastMatch + 1]?.seq;
    explanation = `the quoted value equals the replay after ${lastMatch + 1} of ${events.length} event(s): events from ${firstDivergentEvent ?? '?'} on were logged but not extended (or extended into another register)`;
  } else {
    firstDivergentEvent = events[0]?.seq;
    explanation = `no prefix of the ${events.length} logged event(s) reproduces the quoted value: an event is missing, altered or extra, from event ${firstDivergentEvent ?? '?'} at the earliest`;
  }
  return { bank: bankName, register, expected: toHex(expected), found: toHex(found), lastEvent: last, events: events.length, firstDivergentEvent, explanation };
}

/**
 * Compares replayed registers with expected (quoted) ones. Only the registers the caller lists
 * are compared; a listed register the log never extends is compared with its reset value.
 */
export function compareReplay(log: EventLog, replayed: Replayed, expected: ExpectedRegisters): ComparedRegisters {
  const matched: ComparedRegisters['matched'] = [];
  const diverged: Divergence[] = [];
  const locality = startupLocality(log) ?? 0;
  for (const [bank, regs] of Object.entries(expected.pcrs ?? {})) {
    const alg = log.algorithms.find((a) => a.name === bank);
    if (!alg) throw inputError('EVENTLOG_NO_BANK', `the log carries no ${bank} digests (banks: ${log.algorithms.map((a) => a.name).join(', ')})`);
    for (const [k, v] of Object.entries(regs)) {
      const idx = Number(k);
      const want = asBuffer(v, `expected ${bank} PCR ${k}`);
      let found = replayed.pcrs[bank]?.[idx];
      if (!found) {
        found = Buffer.alloc(alg.size);
        if (idx === 0 && log.kind === 'tpm') found[alg.size - 1] = locality;
      }
      if (eq(found, want)) matched.push({ bank, register: idx });
      else diverged.push(diverge(log, bank, bank, alg.size, idx, idx, want, found));
    }
  }
  for (const [k, v] of Object.entries(expected.rtmrs ?? {})) {
    const idx = Number(k);
    if (log.kind !== 'ccel') throw inputError('EVENTLOG_NO_BANK', 'RTMRs can only be compared with a CCEL');
    const want = asBuffer(v, `expected RTMR ${k}`);
    const found = replayed.rtmrs?.[idx] ?? Buffer.alloc(48);
    if (eq(found, want)) matched.push({ bank: 'rtmr', register: idx });
    else diverged.push(diverge(log, 'rtmr', 'sha384', 48, idx, idx + 1, want, found));
  }
  return { ok: diverged.length === 0, matched, diverged };
}
