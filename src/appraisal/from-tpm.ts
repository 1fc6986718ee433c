import { fail, notChecked, pass, type Check } from '../check.js';
import { toHex } from '../bytes/hex.js';
import { HASH_NAMES, akFingerprint, pcrBanksToJson, type PcrBanks, type TpmHash, type TpmQuoteVerified } from '../evidence/tpm/index.js';
import { bootState, compareReplay, replayEventLog, startupLocality, type BootState, type EventLog, type Replayed, type SignatureDb } from '../evidence/eventlog/index.js';
import type { BootStateClaims, Claims, SignatureDatabaseSummary } from '../evidence/claims-model.js';
import { emptyClaims, verityFromCommandLine } from './claims.js';

function dbSummary(d: SignatureDb | undefined): SignatureDatabaseSummary | undefined {
  if (!d) return undefined;
  return { certificates: d.certificates.map((c) => ({ subject: c.subject || c.subjectDn, sha256: c.sha256, issuer: c.issuer })), hashes: [...d.hashes] };
}

/** A boot-state summary (from checked events only) as claims. */
export function bootClaims(b: BootState): BootStateClaims {
  const out: BootStateClaims = {
    source: b.kind === 'ccel' ? 'ccel' : 'tpm-eventlog',
    // Which authority verified which application is not authenticated (PCR 7 and PCR 4 are
    // extended independently), so authorities are claimed for the boot as a whole, never per
    // application; the per-application list stays empty for the type's sake.
    bootApplications: b.bootApplications.map((a) => ({ path: a.path, authenticode: { ...a.digests }, authorities: [] })),
    authorities: b.authorities.map((x) => ({ variable: x.variable, ...(x.subject !== undefined ? { subject: x.subject } : {}), ...(x.sha256 !== undefined ? { sha256: x.sha256 } : {}) })),
    flags: b.flags.map((f) => f.code),
    notVerified: [...b.notVerified],
  };
  if (b.secureBoot) out.secureBoot = b.secureBoot.enabled;
  const dbs = { pk: dbSummary(b.databases.PK), kek: dbSummary(b.databases.KEK), db: dbSummary(b.databases.db), dbx: dbSummary(b.databases.dbx) };
  for (const [k, v] of Object.entries(dbs)) if (v) out[k as 'pk' | 'kek' | 'db' | 'dbx'] = v;
  if (b.kernelCommandLine) {
    out.kernelCommandLine = b.kernelCommandLine.text;
    const verity = verityFromCommandLine(b.kernelCommandLine.text);
    if (verity) out.verity = verity;
  }
  return out;
}

/**
 * The PCRs a TPM event log must be quoted for, per bank it can replay: every PCR it extends, and
 * 0-7 always (the PC Client profile requires the firmware log to account for every extend of them).
 * Same rule as `coffer tpm verify` (src/cli/tpm.ts logPcrs); meant to move to src/evidence.
 */
export function eventLogPcrs(log: EventLog, replayed: Replayed = replayEventLog(log)): Map<string, number[]> {
  const out = new Map<string, number[]>();
  for (const a of log.algorithms) {
    if (!a.replayable) continue;
    const set = new Set([0, 1, 2, 3, 4, 5, 6, 7, ...Object.keys(replayed.pcrs[a.name] ?? {}).map(Number)]);
    out.set(a.name, [...set].sort((x, y) => x - y));
  }
  return out;
}

/**
 * The PCR values an event log stands for, per bank it can replay that a TPM can quote: every PCR
 * it extends, and PCRs 0-7 always (one the log never extends holds its reset value, PCR 0 the
 * StartupLocality). Same as src/cli/tpm.ts replayedBanks.
 */
export function pcrsFromEventLog(log: EventLog): PcrBanks {
  const replayed = replayEventLog(log);
  const out: PcrBanks = new Map();
  for (const alg of log.algorithms) {
    if (!alg.replayable || !(HASH_NAMES as readonly string[]).includes(alg.name)) continue;
    const bank = new Map<number, Buffer>(Object.entries(replayed.pcrs[alg.name] ?? {}).map(([i, v]) => [Number(i), v]));
    for (let i = 0; i <= 7; i++) {
      if (bank.has(i)) continue;
      const v = Buffer.alloc(alg.size);
      if (i === 0) v[alg.size - 1] = startupLocality(log) ?? 0;
      bank.set(i, v);
    }
    out.set(alg.name as TpmHash, bank);
  }
  return out;
}

/**
 * When the PCR values were replayed from the event log itself, the quote's digest check proves
 * only what the quote selects: a quote over fewer PCRs than the log extends (PCR 0 alone, say)
 * would vouch for a fabricated log. So the selection must cover, in some bank the log carries,
 * every PCR the log extends and 0-7 (TPM_EVENTLOG_NOT_COVERED otherwise). Same rule as
 * src/cli/tpm.ts eventLogChecks.
 */
export function eventLogCoverage(log: EventLog, v: Pick<TpmQuoteVerified, 'quote'>, replayed: Replayed = replayEventLog(log)): Check[] {
  const needed = eventLogPcrs(log, replayed);
  const selection = v.quote.pcrSelection;
  const covering: string[] = [];
  const partial: string[] = [];
  for (const s of selection) {
    const need = needed.get(s.hashName);
    if (!need) continue;
    const missing = need.filter((p) => !s.pcrs.includes(p));
    if (missing.length === 0) covering.push(s.hashName);
    else partial.push(`${s.hashName} (not selected: ${missing.join(',')})`);
  }
  const selected = selection.map((s) => `${s.hashName}:${s.pcrs.join(',') || 'none'}`).join(' ') || 'none';
  const want = [...needed].map(([b, p]) => `${b}:${p.join(',')}`).join(' or ') || 'a bank the log carries';
  if (covering.length === 0) {
    return [fail('eventlog.coverage', 'TPM_EVENTLOG_NOT_COVERED', `the PCR values were taken from the event log, but the quote's selection (${selected}) does not cover every PCR the log extends in any bank it carries (needed: ${want}): the quote does not vouch for the log`, { expected: want, found: selected })];
  }
  const out = [pass('eventlog.coverage', `the quote covers every PCR the log extends (and 0-7) in ${covering.join(', ')}`, { expected: want, found: selected })];
  if (partial.length > 0) out.push(notChecked('eventlog.coverage.partial', `the quote selects only part of what the log extends in ${partial.join(', ')}`));
  return out;
}

/**
 * Replays the event log against the verified quoted PCRs (every bank the log carries; PCRs the
 * log extends, and 0-7 always, as the PC Client profile requires the firmware log to cover them)
 * and returns the checks plus a boot state built only from events in registers that match.
 */
export function eventLogAgainstQuote(log: EventLog, v: TpmQuoteVerified, opts: { pcrsFromLog?: boolean } = {}): { checks: Check[]; boot: BootState | undefined } {
  const checks: Check[] = [];
  const replayed = replayEventLog(log);
  if (opts.pcrsFromLog) {
    const coverage = eventLogCoverage(log, v, replayed);
    checks.push(...coverage);
    // Nothing the log says is vouched for: no boot state at all.
    if (coverage.some((c) => !c.ok)) return { checks, boot: undefined };
  }
  const expected: Record<string, Record<number, Buffer>> = {};
  for (const [bank, regs] of v.pcrs ?? new Map()) {
    if (!log.algorithms.some((a) => a.name === bank && a.replayable)) continue;
    const sel: Record<number, Buffer> = {};
    for (const [i, val] of regs) if (replayed.pcrs[bank]?.[i] !== undefined || i <= 7) sel[i] = val;
    expected[bank] = sel;
  }
  if (Object.keys(expected).length === 0) {
    checks.push(fail('eventlog.replay', 'TPM_EVENTLOG_NO_COMMON_BANK', `the event log (banks ${log.algorithms.map((a) => a.name).join(', ')}) shares no verified PCR bank with the quote: none of its facts can be trusted`));
    return { checks, boot: bootState(log, { expected: { pcrs: {} } }) };
  }
  const cmp = compareReplay(log, replayed, { pcrs: expected });
  const needed = eventLogPcrs(log, replayed);
  for (const [bank, regs] of Object.entries(expected)) {
    const unquoted = (needed.get(bank) ?? []).filter((p) => regs[p] === undefined);
    if (unquoted.length > 0) checks.push(notChecked(`eventlog.${bank}.unquoted`, `the event log extends ${bank} PCR(s) ${unquoted.join(',')}, which the quote does not select: their events are not vouched for`));
  }
  for (const d of cmp.diverged) {
    checks.push(fail(`eventlog.${d.bank}.${d.register}`, 'TPM_EVENTLOG_MISMATCH', `PCR ${d.bank}:${d.register}: the event log does not replay to the quoted value; ${d.explanation}`, { expected: d.expected, found: d.found }));
  }
  if (cmp.ok) checks.push(pass('eventlog.replay', `the event log (${log.events.length} events) replays to the quoted PCRs (${Object.entries(expected).map(([b, r]) => `${b}:${Object.keys(r).join(',')}`).join(' ')})`));
  const boot = bootState(log, { expected: { pcrs: expected } });
  return { checks, boot };
}

/**
 * A verified TPM quote (and optionally its event log, checked against the quote) as claims. PCR
 * values are claims only when the quote's digest was checked against them. `pcrsFromLog`: the
 * caller replayed the PCR values from this log (no PCR file), so the quote must cover the log
 * (eventLogCoverage) or the verification fails.
 */
export function claimsFromTpm(v: TpmQuoteVerified, log?: EventLog, opts: { pcrsFromLog?: boolean } = {}): Claims {
  const out = emptyClaims();
  const checks = [...v.checks];
  if (log) {
    const r = eventLogAgainstQuote(log, v, opts);
    checks.push(...r.checks);
    if (r.boot) out.boot = bootClaims(r.boot);
  }
  const failed = checks.find((c) => !c.ok);
  out.verification.push({
    kind: 'tpm',
    label: `TPM 2.0 quote (${v.signature.alg.toUpperCase()}/${v.signature.hashName.toUpperCase()})${log ? ' with event log' : ''}`,
    verified: !failed,
    checks,
    ...(failed ? { error: { code: failed.code ?? 'VERIFICATION_FAILED', message: failed.description } } : {}),
  });
  const cert = v.ak.certificate;
  const root = v.akChain?.[v.akChain.length - 1];
  out.platforms.push({ tee: 'tpm', vendor: cert ? cert.issuerCn || cert.issuer : 'unknown (AK without certificate)', product: null, tcbStatus: 'unknown', firmware: `0x${v.quote.firmwareVersion.toString(16).padStart(16, '0')}` });
  if (v.pcrs) out.runtime.pcrs = pcrBanksToJson(v.pcrs);
  out.freshness.nonce = toHex(v.quote.extraData);
  out.freshness.nonceVerified = v.nonceChecked;
  out.signingKeys.push({
    evidence: 'tpm',
    kind: 'tpm-ak',
    subject: cert ? cert.subjectCn || cert.subject || '(empty subject)' : 'AK public key',
    issuer: cert ? cert.issuerCn || cert.issuer : 'none',
    ...(cert ? { sha256: cert.sha256 } : {}),
    keySha256: akFingerprint(v.ak.key),
    ...(v.ak.public ? { tpmName: toHex(v.ak.public.name) } : {}),
    ...(root ? { root: root.subjectCn || root.subject } : {}),
  });
  return out;
}
