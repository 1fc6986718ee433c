import { fail, pass, type Check } from '../check.js';
import { toHex } from '../bytes/hex.js';
import { pcrBanksToJson, type TpmQuoteVerified } from '../evidence/tpm/index.js';
import { bootState, compareReplay, replayEventLog, type BootState, type EventLog, type SignatureDb } from '../evidence/eventlog/index.js';
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
    bootApplications: b.bootApplications.map((a) => ({ path: a.path, authenticode: { ...a.digests }, authorities: a.authorities.map((x) => x.subject ?? x.text ?? x.variable) })),
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
 * Replays the event log against the verified quoted PCRs (every bank the log carries; PCRs the
 * log extends, and 0-7 always, as the PC Client profile requires the firmware log to cover them)
 * and returns the checks plus a boot state built only from events in registers that match.
 */
export function eventLogAgainstQuote(log: EventLog, v: TpmQuoteVerified): { checks: Check[]; boot: BootState } {
  const checks: Check[] = [];
  const replayed = replayEventLog(log);
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
  for (const d of cmp.diverged) {
    checks.push(fail(`eventlog.${d.bank}.${d.register}`, 'TPM_EVENTLOG_MISMATCH', `PCR ${d.bank}:${d.register}: the event log does not replay to the quoted value; ${d.explanation}`, { expected: d.expected, found: d.found }));
  }
  if (cmp.ok) checks.push(pass('eventlog.replay', `the event log (${log.events.length} events) replays to the quoted PCRs (${Object.entries(expected).map(([b, r]) => `${b}:${Object.keys(r).join(',')}`).join(' ')})`));
  const boot = bootState(log, { expected: { pcrs: expected } });
  return { checks, boot };
}

/**
 * A verified TPM quote (and optionally its event log, checked against the quote) as claims. PCR
 * values are claims only when the quote's digest was checked against them.
 */
export function claimsFromTpm(v: TpmQuoteVerified, log?: EventLog): Claims {
  const out = emptyClaims();
  const checks = [...v.checks];
  if (log) {
    const r = eventLogAgainstQuote(log, v);
    checks.push(...r.checks);
    out.boot = bootClaims(r.boot);
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
    ...(root ? { root: root.subjectCn || root.subject } : {}),
  });
  return out;
}
