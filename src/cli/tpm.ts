import type { Command } from 'commander';
import { CofferError, inputError } from '../errors.js';
import { fail, notChecked, pass, type Check } from '../check.js';
import { parseCertificates, type Certificate } from '../pki/certificate.js';
import type { TrustAnchor } from '../pki/chain.js';
import {
  HASH_NAMES,
  TPM_GENERATED_VALUE,
  loadAttestationKey,
  mergePcrBanks,
  parsePcrFile,
  parseTpmQuote,
  parseTpmSignature,
  tpmQuoteClaims,
  formatTpmQuote,
  validateTpmQuote,
  verifyTpmQuote,
  type PcrBanks,
  type TpmHash,
  type TpmQuoteClaims,
  type TpmQuote,
  type TpmQuoteVerified,
} from '../evidence/tpm/index.js';
import { parseEventLog, replayEventLog, compareReplay, startupLocality, type EventLog, type Replayed } from '../evidence/eventlog/index.js';
import { action, common, type CliContext } from './main.js';
import { toJson, EXIT_OK, EXIT_FAILED, EXIT_USAGE } from './output.js';
import { readInput, parseTime, hexArg, collect } from './files.js';

interface VerifyFlags {
  quote: string;
  signature: string;
  ak: string[];
  akRoot?: string[];
  akChain?: string[];
  nonce?: string;
  nonceCheck?: boolean;
  pcrs?: string[];
  eventlog?: string;
  expectPcrs?: string;
  expectQualifiedSigner?: string;
  at?: string;
  json?: boolean;
}

/** The quote file: a TPMS_ATTEST as tpm2_quote -m writes it, or a TPM2B_ATTEST (u16 size first). */
export function readQuoteBytes(data: Buffer): Buffer {
  if (data.length >= 6 && data.readUInt32BE(0) !== TPM_GENERATED_VALUE && data.readUInt16BE(0) === data.length - 2 && data.readUInt32BE(2) === TPM_GENERATED_VALUE) {
    return data.subarray(2);
  }
  return data;
}

function anchors(files: readonly string[]): TrustAnchor[] {
  return files.flatMap((f) => parseCertificates(readInput(f, 'AK root file'), f).map((cert) => ({ cert, label: `${cert.subjectCn || cert.subject || 'root'} (from ${f})` })));
}

function certs(files: readonly string[]): Certificate[] {
  return files.flatMap((f) => parseCertificates(readInput(f, 'AK chain file'), f));
}

/**
 * The PCR values an event log stands for, per bank it can replay: every PCR it extends, and PCRs
 * 0-7 always (the PC Client profile requires the firmware log to account for every extend of
 * them, so one it never extends must hold its reset value, PCR 0 from the StartupLocality).
 */
function replayedBanks(log: EventLog): PcrBanks {
  const replayed = replayEventLog(log);
  const out: PcrBanks = new Map();
  for (const alg of log.algorithms) {
    if (!alg.replayable || !(HASH_NAMES as readonly string[]).includes(alg.name)) continue;
    const regs = replayed.pcrs[alg.name] ?? {};
    const bank = new Map<number, Buffer>(Object.entries(regs).map(([i, v]) => [Number(i), v]));
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

/** The PCRs the log must be quoted for, per bank it carries: every PCR it extends, and 0-7. */
function logPcrs(log: EventLog, replayed: Replayed): Map<string, number[]> {
  const out = new Map<string, number[]>();
  for (const a of log.algorithms) {
    if (!a.replayable) continue;
    const set = new Set([0, 1, 2, 3, 4, 5, 6, 7, ...Object.keys(replayed.pcrs[a.name] ?? {}).map(Number)]);
    out.set(a.name, [...set].sort((x, y) => x - y));
  }
  return out;
}

/**
 * Event-log integration (src/evidence/eventlog): the replayed registers must equal the verified
 * quoted values for every quoted PCR the log extends, and for PCRs 0-7 always (the PC Client
 * firmware profile requires the firmware log to cover them). Other quoted PCRs the log does not
 * touch (PCR 10 for IMA, say) are listed as not covered; PCRs the log extends that the quote does
 * not select are NOT CHECKED.
 *
 * When the PCR values came from the log itself, the digest check proves only what the quote
 * selects: a quote selecting fewer PCRs than the log extends (or none) would "verify" any log. So
 * the selection must cover, in a bank the log carries, every PCR the log extends and 0-7.
 */
function eventLogChecks(log: EventLog, quote: TpmQuote, quoted: PcrBanks, fromLog: boolean): Check[] {
  const replayed = replayEventLog(log);
  const needed = logPcrs(log, replayed);
  const checks: Check[] = [];
  if (fromLog) {
    const covering: string[] = [];
    const partial: string[] = [];
    for (const s of quote.pcrSelection) {
      const need = needed.get(s.hashName);
      if (!need) continue;
      const missing = need.filter((p) => !s.pcrs.includes(p));
      if (missing.length === 0) covering.push(s.hashName);
      else partial.push(`${s.hashName} (not selected: ${missing.join(',')})`);
    }
    const want = [...needed].map(([b, p]) => `${b}:${p.join(',')}`).join(' or ');
    if (covering.length === 0) {
      return [fail('eventlog.coverage', 'TPM_EVENTLOG_NOT_COVERED', `the PCR values were taken from the event log, but the quote's selection (${quote.pcrSelection.map((s) => `${s.hashName}:${s.pcrs.join(',') || 'none'}`).join(' ') || 'empty'}) does not cover every PCR the log extends in any bank it carries (needed: ${want}): the quote does not vouch for the log`, { expected: want, found: quote.pcrSelection.map((s) => `${s.hashName}:${s.pcrs.join(',') || 'none'}`).join(' ') || 'none' })];
    }
    checks.push(pass('eventlog.replay', `the PCR values were replayed from the event log (${log.events.length} events) and hash to the quoted pcrDigest; the quote covers every PCR the log extends in ${covering.join(', ')}`));
    if (partial.length > 0) checks.push(notChecked('eventlog.coverage', `the quote selects only part of what the log extends in ${partial.join(', ')}`));
    return checks;
  }
  if (![...quoted.keys()].some((bank) => needed.has(bank))) {
    return [fail('eventlog.banks', 'TPM_EVENTLOG_NO_COMMON_BANK', `the event log carries ${log.algorithms.map((a) => a.name).join(', ')} digests, the quote covers ${[...quoted.keys()].join(', ') || 'no'} PCRs: nothing can be compared`)];
  }
  for (const [bank, regs] of quoted) {
    if (!needed.has(bank)) {
      checks.push(notChecked(`eventlog.${bank}`, `the event log carries no ${bank} digests`));
      continue;
    }
    const expected: Record<number, Buffer> = {};
    const uncovered: number[] = [];
    for (const [i, v] of [...regs].sort(([a], [b]) => a - b)) {
      if (replayed.pcrs[bank]?.[i] !== undefined || i <= 7) expected[i] = v;
      else uncovered.push(i);
    }
    const cmp = compareReplay(log, replayed, { pcrs: { [bank]: expected } });
    for (const d of cmp.diverged) {
      checks.push(fail(`eventlog.${bank}.${d.register}`, 'TPM_EVENTLOG_MISMATCH', `PCR ${bank}:${d.register}: the event log does not replay to the quoted value; ${d.explanation}`, { expected: d.expected, found: d.found }));
    }
    if (cmp.ok) {
      const note = uncovered.length > 0 ? `; PCRs ${uncovered.join(',')} are not extended by this log and not covered by it` : '';
      checks.push(pass(`eventlog.${bank}`, `the event log replays to the quoted ${bank} PCRs ${cmp.matched.map((m) => m.register).join(',')}${note}`));
    }
    const unquoted = (needed.get(bank) ?? []).filter((p) => !regs.has(p));
    if (unquoted.length > 0) checks.push(notChecked(`eventlog.${bank}.unquoted`, `the event log extends ${bank} PCR(s) ${unquoted.join(',')}, which the quote does not select: their events are not vouched for`));
  }
  return checks;
}

function checkLine(c: Check): string {
  const detail = !c.ok && (c.expected !== undefined || c.found !== undefined) ? ` (expected ${c.expected ?? '-'}, found ${c.found ?? '-'})` : '';
  return `  ${c.notChecked ? '--  ' : c.ok ? 'ok  ' : 'FAIL'} ${c.name.padEnd(24)} ${c.description}${detail}`;
}

/** Best-effort claims for a failed verification (the bytes may not even parse). */
function tentativeClaims(quote: Buffer, signature: Buffer): TpmQuoteClaims | null {
  try {
    return tpmQuoteClaims(parseTpmQuote(quote), parseTpmSignature(signature));
  } catch {
    return null;
  }
}

export function registerTpm(program: Command, ctx: CliContext): void {
  const tpm = program.command('tpm').description('TPM 2.0 quotes');

  common(
    tpm
      .command('verify')
      .description('verify a TPM 2.0 quote: AK signature, nonce, PCR digest, AK certificate chain; optionally replay an event log against it')
      .requiredOption('--quote <file>', 'TPMS_ATTEST bytes (tpm2_quote -m), or a TPM2B_ATTEST')
      .requiredOption('--signature <file>', 'TPMT_SIGNATURE (tpm2_quote -s, default format)')
      .requiredOption('--ak <file>', 'the attestation key: TPMT_PUBLIC/TPM2B_PUBLIC, PEM or DER public key, JWK, or X.509 AK certificate (repeatable: all must hold the same key)', collect)
      .option('--ak-root <file>', 'root certificate(s) the AK certificate must chain to (repeatable; PEM bundle or DER)', collect)
      .option('--ak-chain <file>', 'intermediate certificate(s) for the AK certificate (repeatable)', collect)
      .option('--nonce <hex>', 'the nonce the quote must carry as extraData (required unless --no-nonce-check)')
      .option('--no-nonce-check', 'DANGEROUS: do not check freshness (accepts a replayed quote); for archived evidence only')
      .option('--pcrs <file>', 'PCR values: JSON {"sha256": {"0": "hex", ...}} or tpm2_quote -o output (repeatable)', collect)
      .option('--eventlog <file>', 'TCG event log: replayed and compared with the quoted PCRs (or used as the PCR values when --pcrs is absent)')
      .option('--expect-pcrs <file>', 'reference PCR values (JSON) the verified PCRs must equal')
      .option('--expect-qualified-signer <hex>', "the AK's qualified name, H(parent QN || name), when its parent is known")
      .option('--at <iso8601>', 'time at which the AK certificate chain must be valid (default: now)'),
  ).action(
    action(ctx, (f: VerifyFlags) => {
      const at = parseTime(f.at);
      const skipNonce = f.nonceCheck === false;
      if (skipNonce && f.nonce !== undefined) throw inputError('USAGE', 'give --nonce or --no-nonce-check, not both');
      if (!skipNonce && f.nonce === undefined) {
        throw inputError('TPM_NONCE_REQUIRED', '--nonce is required: a quote not bound to a fresh nonce proves nothing about when it was made (--no-nonce-check only for archived evidence)');
      }
      const nonce = f.nonce === undefined ? undefined : hexArg(f.nonce, '--nonce', 66, false);
      const quote = readQuoteBytes(readInput(f.quote, 'quote file'));
      const signature = readInput(f.signature, 'signature file');
      const ak = loadAttestationKey(f.ak.map((p) => ({ data: readInput(p, 'AK file'), what: p })));
      const akRoots = anchors(f.akRoot ?? []);
      const akIntermediates = certs(f.akChain ?? []);
      // A TPM quote's log is a TPM log: the kind is never guessed.
      const log = f.eventlog === undefined ? undefined : parseEventLog(readInput(f.eventlog, 'event log'), { kind: 'tpm' });
      let pcrs: PcrBanks | undefined = f.pcrs && f.pcrs.length > 0 ? mergePcrBanks(f.pcrs.map((p) => parsePcrFile(readInput(p, 'PCR file'), p))) : undefined;
      const pcrsFromLog = pcrs === undefined && log !== undefined;
      if (pcrsFromLog) pcrs = replayedBanks(log);
      const expected = f.expectPcrs === undefined ? undefined : parsePcrFile(readInput(f.expectPcrs, 'reference PCR file'), f.expectPcrs);
      const qualified = f.expectQualifiedSigner === undefined ? undefined : hexArg(f.expectQualifiedSigner, '--expect-qualified-signer', 66, false);

      let verified: TpmQuoteVerified;
      try {
        verified = verifyTpmQuote(quote, signature, {
          at,
          ak,
          ...(nonce ? { nonce } : { skipNonceCheck: true }),
          ...(pcrs ? { pcrs } : {}),
          ...(akRoots.length > 0 ? { akRoots } : {}),
          akIntermediates,
          ...(qualified ? { expectedQualifiedSigner: qualified } : {}),
        });
      } catch (e) {
        if (f.json && e instanceof CofferError) {
          ctx.io.out(toJson({ ok: false, claims: tentativeClaims(quote, signature), checks: e.details?.checks ?? [], error: { code: e.code, message: e.message } }));
          return e.kind === 'input' ? EXIT_USAGE : EXIT_FAILED;
        }
        throw e;
      }
      const extra: Check[] = [];
      if (log !== undefined) extra.push(...eventLogChecks(log, verified.quote, verified.pcrs ?? new Map(), pcrsFromLog));
      if (expected) extra.push(...validateTpmQuote(verified.quote, verified.pcrs, { pcrs: expected }));
      const checks = [...verified.checks, ...extra];
      const failed = extra.filter((c) => !c.ok);
      const claims = tpmQuoteClaims(verified.quote, verified.signature, verified.ak, verified.pcrs);
      if (f.json) {
        const first = failed[0];
        ctx.io.out(toJson({ ok: !first, claims, checks, ...(first ? { error: { code: first.code, message: first.description } } : {}) }));
        return first ? EXIT_FAILED : EXIT_OK;
      }
      if (failed.length > 0) {
        for (const c of failed) ctx.io.err(`coffer: ${c.code ?? 'FAILED'}: ${c.description}${c.expected !== undefined ? ` (expected ${c.expected}, found ${c.found ?? '-'})` : ''}`);
        return EXIT_FAILED;
      }
      if (!verified.nonceChecked) ctx.io.err('coffer: WARNING: --no-nonce-check: the quote was NOT checked for freshness; it may be a replay');
      const root = verified.akChain?.[verified.akChain.length - 1];
      const unchecked = checks.filter((c) => c.notChecked);
      ctx.io.out(
        `VERIFIED  TPM 2.0 quote, ${claims.signature.alg.toUpperCase()}/${claims.signature.hash.toUpperCase()} by AK ${claims.ak?.key ?? ''}${root ? `, AK certificate chained to ${root.subjectCn || root.subject}` : ''}\n` +
          (unchecked.length > 0 ? `  NOT CHECKED: ${unchecked.map((c) => c.name).join(', ')} (see below; pass the AK's TPM public area, --nonce, --pcrs or --eventlog to check them)\n` : '') +
          `${formatTpmQuote(claims).replace(/^/gm, '  ')}\n` +
          checks.map(checkLine).join('\n'),
      );
      return EXIT_OK;
    }),
  );
}
