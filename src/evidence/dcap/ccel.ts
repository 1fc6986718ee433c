import { fail, pass, type Check } from '../../check.js';
import { toHex } from '../../bytes/hex.js';
import { compareReplay, parseEventLog, replayEventLog } from '../eventlog/index.js';
import type { TdReport } from './quote.js';

/**
 * The TD's CC event log (CCEL) against the quote's RTMRs: the log is replayed (MR index 1..4 →
 * RTMR0..3, SHA-384) and each register compared. A mismatch names the register and, from the
 * replay, the first event that cannot be reconciled with the quoted value.
 */
export function checkCcelAgainstTd(td: TdReport, ccel: Uint8Array): Check[] {
  const log = parseEventLog(ccel, { kind: 'ccel' });
  const replayed = replayEventLog(log);
  const expected: Record<number, Buffer> = { 0: td.rtmrs[0], 1: td.rtmrs[1], 2: td.rtmrs[2], 3: td.rtmrs[3] };
  const cmp = compareReplay(log, replayed, { rtmrs: expected });
  const checks: Check[] = [];
  for (let i = 0; i < 4; i++) {
    const d = cmp.diverged.find((x) => x.register === i);
    const events = log.events.filter((e) => e.register === i + 1).length;
    checks.push(
      d
        ? fail(`tdx.ccel.rtmr${i}`, 'TDX_RTMR_MISMATCH', `RTMR${i} replayed from the CCEL differs from the quote: ${d.explanation}`, { expected: d.expected, found: d.found })
        : pass(`tdx.ccel.rtmr${i}`, `RTMR${i} equals the replay of ${events} CCEL event(s)`, { found: toHex(td.rtmrs[i] as Buffer) }),
    );
  }
  return checks;
}
