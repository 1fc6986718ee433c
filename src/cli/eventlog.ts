import type { Command } from 'commander';
import { inputError } from '../errors.js';
import {
  bootState,
  checkDigests,
  compareReplay,
  decodeLog,
  detectEventLogKind,
  parseEventLog,
  replayEventLog,
  type BootState,
  type EventLog,
  type EventLogKind,
  type ExpectedRegisters,
  type Replayed,
} from '../evidence/eventlog/index.js';
import { action, common, type CliContext } from './main.js';
import { toJson, EXIT_OK, EXIT_FAILED } from './output.js';
import { readInput } from './files.js';

interface Flags {
  json?: boolean;
  kind?: string;
  padding?: boolean;
  expect?: string;
}

/**
 * The log's kind: as --kind says, or with `auto` (the default) by detectEventLogKind's one rule
 * (a SHA-384-only log whose Spec ID header sits at index 1, as TDVF writes it, is a CCEL; a log
 * with its header at index 0 and any other bank set is a TPM log). Anything else is ambiguous
 * (td-shim's CCEL and a SHA-384-only TPM log look alike) and needs --kind.
 */
function loadLog(path: string, f: Flags): EventLog {
  const bytes = readInput(path, 'event log');
  const flag = f.kind ?? 'auto';
  let kind: EventLogKind;
  if (flag === 'tpm' || flag === 'ccel') kind = flag;
  else if (flag === 'auto') {
    const detected = detectEventLogKind(bytes);
    if (!detected) {
      throw inputError('EVENTLOG_KIND_REQUIRED', `${path}: cannot tell a TPM event log from a CCEL (a SHA-384-only log with its Spec ID header at index 0, as td-shim writes a CCEL and a SHA-384-only TPM its log): pass --kind tpm or --kind ccel`);
    }
    kind = detected;
  } else throw inputError('BAD_KIND', `--kind must be tpm, ccel or auto, got "${flag}"`);
  return parseEventLog(bytes, { kind, allowPadding: f.padding !== false });
}

function registersJson(r: Replayed): { pcrs: Record<string, Record<string, string>>; rtmrs?: Record<string, string> } {
  const pcrs: Record<string, Record<string, string>> = {};
  for (const [bank, regs] of Object.entries(r.pcrs)) {
    pcrs[bank] = {};
    for (const k of Object.keys(regs).map(Number).sort((a, b) => a - b)) (pcrs[bank] as Record<string, string>)[String(k)] = (regs[k] as Buffer).toString('hex');
  }
  if (!r.rtmrs) return { pcrs };
  const rtmrs: Record<string, string> = {};
  for (let i = 0; i < 4; i++) rtmrs[String(i)] = (r.rtmrs[i] as Buffer).toString('hex');
  return { pcrs, rtmrs };
}

/** Reads expected values: `{"pcrs": {bank: {idx: hex}}, "rtmrs": {idx: hex}}`, or `{"rtmr0": hex, ...}`. */
function loadExpected(path: string): ExpectedRegisters {
  let v: unknown;
  try {
    v = JSON.parse(readInput(path, 'expected values file').toString('utf8'));
  } catch (e) {
    if (e instanceof SyntaxError) throw inputError('BAD_EXPECTED', `${path} is not JSON`);
    throw e;
  }
  if (!v || typeof v !== 'object') throw inputError('BAD_EXPECTED', `${path} must hold a JSON object`);
  const o = v as Record<string, unknown>;
  const out: ExpectedRegisters = {};
  const hexMap = (m: unknown, what: string): Record<string, string> => {
    if (!m || typeof m !== 'object') throw inputError('BAD_EXPECTED', `${what} must be an object of index → hex`);
    for (const [k, x] of Object.entries(m)) {
      if (!/^\d+$/.test(k) || typeof x !== 'string' || !/^[0-9a-fA-F]+$/.test(x)) throw inputError('BAD_EXPECTED', `${what}: entry "${k}" is not index → hex`);
    }
    return m as Record<string, string>;
  };
  if (o.pcrs !== undefined) {
    if (!o.pcrs || typeof o.pcrs !== 'object') throw inputError('BAD_EXPECTED', 'pcrs must be an object of bank → {index: hex}');
    out.pcrs = {};
    for (const [bank, m] of Object.entries(o.pcrs)) out.pcrs[bank] = hexMap(m, `pcrs.${bank}`);
  }
  const rt: Record<string, string> = {};
  for (let i = 0; i < 4; i++) if (typeof o[`rtmr${i}`] === 'string') rt[String(i)] = o[`rtmr${i}`] as string;
  if (o.rtmrs !== undefined) Object.assign(rt, hexMap(o.rtmrs, 'rtmrs'));
  if (Object.keys(rt).length) out.rtmrs = rt;
  if (!out.pcrs && !out.rtmrs) throw inputError('BAD_EXPECTED', `${path} names no pcrs or rtmrs`);
  return out;
}

const STATUS_MARK: Record<string, string> = { verified: 'ok', mismatch: 'BAD', unverified: '?', external: '', 'not-extended': '-' };

function summaryLines(s: BootState): string[] {
  const out: string[] = ['', 'Boot state (from events whose digests were checked against their data):'];
  out.push(`  Secure Boot        ${s.secureBoot ? `${s.secureBoot.enabled ? 'ON' : 'OFF'} (event ${s.secureBoot.event})` : 'unknown'}`);
  for (const name of ['PK', 'KEK', 'db', 'dbx'] as const) {
    const d = s.databases[name];
    if (!d) {
      out.push(`  ${name.padEnd(18)} not verified`);
      continue;
    }
    const parts = d.certificates.map((c) => `"${c.subject}" (sha256 ${c.sha256.slice(0, 16)}…)`);
    if (d.hashes.length) parts.push(`${d.hashes.length} SHA-256 hash(es)`);
    if (d.other) parts.push(`${d.other} other entr${d.other === 1 ? 'y' : 'ies'}`);
    out.push(`  ${name.padEnd(18)} ${parts.length ? parts.join(', ') : 'empty'} (event ${d.event})`);
  }
  if (s.bootApplications.length === 0) out.push('  Boot applications  none logged');
  for (const a of s.bootApplications) {
    const digest = Object.entries(a.digests).find(([b]) => b === 'sha256') ?? Object.entries(a.digests)[0];
    out.push(`  Boot application   event ${a.event}: ${a.path || '(no device path)'}`);
    if (digest) out.push(`                       Authenticode ${digest[0]} ${digest[1]}`);
  }
  // Which authority verified which application is not authenticated (PCR 7 and PCR 4 are
  // extended independently), so the authorities are listed on their own, not under an application.
  if (s.authorities.length === 0) out.push('  Authorities used   none checked');
  s.authorities.forEach((au, i) => out.push(`  ${i === 0 ? 'Authorities used   ' : '                   '}${au.variable}: ${au.subject ? `"${au.subject}"` : `SHA-256 ${au.sha256 ?? '?'}`} (event ${au.event})`));
  if (s.authorities.length > 0) out.push('                     (order not authenticated: the log does not prove which key verified which application)');
  out.push(`  Kernel cmdline     ${s.kernelCommandLine ? `${s.kernelCommandLine.text} (${s.kernelCommandLine.source}, event ${s.kernelCommandLine.event})` : 'not verified'}`);
  out.push(`  ExitBootServices   ${s.exitBootServices.invoked ? `invoked, returned ${s.exitBootServices.returned ?? 'not logged'}` : 'NOT logged'}`);
  out.push(`  Separators         ${s.separators.map((x) => `${s.registerName}${x.register}×${x.events.length}`).join(' ')}`);
  out.push(`  Digests            ${s.digests.verified} checked, ${s.digests.mismatched} mismatched, ${s.digests.unverified} unmatched (EV_IPL), ${s.digests.external} of external data`);
  if (s.flags.length) {
    out.push('', 'Flagged:');
    for (const f of s.flags) out.push(`  ${f.code}: ${f.message}`);
  }
  out.push('', 'Not verified:');
  for (const n of s.notVerified) out.push(`  - ${n}`);
  return out;
}

function showText(log: EventLog): string {
  const decoded = decodeLog(log);
  const checks = checkDigests(log).checks;
  const banks = log.algorithms.map((a) => a.name);
  const reg = log.kind === 'ccel' ? 'MR' : 'PCR';
  const head = `${log.kind === 'ccel' ? 'CC event log (CCEL, MR 0 = MRTD, 1-4 = RTMR0-3)' : 'TCG PC Client event log'}, ${log.format}, banks ${banks.join(', ')}, ${log.events.length} events${log.padding ? `, ${log.padding.length} bytes of 0x${log.padding.byte.toString(16).padStart(2, '0')} padding` : ''}`;
  const rows = decoded.map(({ event, summary }) => [
    String(event.seq),
    String(event.register === 0xffffffff ? '-1' : event.register),
    event.typeName,
    ...banks.map((b) => (event.digests[b] ? `${event.digests[b]?.toString('hex').slice(0, 8)}…` : '-')),
    STATUS_MARK[checks[event.seq]?.status ?? ''] ?? '',
    summary,
  ]);
  const header = ['#', reg, 'type', ...banks, 'chk', 'detail'];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (i === header.length - 1 ? 0 : (r[i] ?? '').length))));
  const line = (r: string[]) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i] ?? 0))).join('  ').trimEnd();
  return [head, '(decoded from the log alone: compare `coffer eventlog replay` with a verified quote before trusting it)', '', line(header), ...rows.map(line), ...summaryLines(bootState(log))].join('\n');
}

export function registerEventlog(program: Command, ctx: CliContext): void {
  const el = program.command('eventlog').description('TCG PC Client and TDX CCEL measured-boot event logs');

  common(
    el
      .command('show')
      .description('decode an event log for a person: events, aligned, then the boot-state summary')
      .argument('<file>', 'binary event log (e.g. /sys/kernel/security/tpm0/binary_bios_measurements or /sys/firmware/acpi/tables/data/CCEL), or -')
      .option('--kind <tpm|ccel|auto>', 'read register indices as TPM PCRs or CC MR indices; auto (default): CCEL only when SHA-384 is the only bank and the Spec ID header is at index 1 (TDVF), TPM when the header is at index 0 with other banks, otherwise --kind is required')
      .option('--no-padding', 'refuse 0x00/0xFF fill after the last event'),
  ).action(
    action(ctx, (path: string, f: Flags) => {
      const log = loadLog(path, f);
      if (f.json) {
        const checks = checkDigests(log).checks;
        const events = decodeLog(log).map(({ event, detail, summary }) => ({
          seq: event.seq,
          register: event.register,
          type: event.type,
          typeName: event.typeName,
          digests: Object.fromEntries(Object.entries(event.digests).map(([k, v]) => [k, v?.toString('hex')])),
          digestCheck: checks[event.seq],
          summary,
          detail,
        }));
        ctx.io.out(toJson({ ok: true, verified: false, kind: log.kind, format: log.format, banks: log.algorithms.map((a) => a.name), padding: log.padding ?? null, events, bootState: bootState(log) }));
      } else {
        ctx.io.out(showText(log));
      }
      return EXIT_OK;
    }),
  );

  common(
    el
      .command('replay')
      .description('replay every bank into PCR values (and RTMRs for a CCEL)')
      .argument('<file>', 'binary event log, or -')
      .option('--kind <tpm|ccel|auto>', 'read register indices as TPM PCRs or CC MR indices (auto: as for show)')
      .option('--no-padding', 'refuse 0x00/0xFF fill after the last event')
      .option('--expect <file>', 'JSON {"pcrs": {bank: {index: hex}}, "rtmrs": {index: hex}}: compare and fail on a difference'),
  ).action(
    action(ctx, (path: string, f: Flags) => {
      const log = loadLog(path, f);
      const replayed = replayEventLog(log);
      const regs = registersJson(replayed);
      const compared = f.expect ? compareReplay(log, replayed, loadExpected(f.expect)) : undefined;
      const failed = compared && !compared.ok;
      if (f.json) {
        ctx.io.out(toJson({ ok: !failed, kind: log.kind, format: log.format, ...regs, ...(compared ? { compared } : {}), ...(failed ? { error: { code: 'EVENTLOG_REPLAY_MISMATCH', message: `${compared.diverged.length} register(s) differ` } } : {}) }));
        return failed ? EXIT_FAILED : EXIT_OK;
      }
      const lines: string[] = [];
      for (const [bank, m] of Object.entries(regs.pcrs)) for (const [k, v] of Object.entries(m)) lines.push(`${bank.padEnd(7)} PCR${k.padEnd(3)} ${v}`);
      if (regs.rtmrs) for (const [k, v] of Object.entries(regs.rtmrs)) lines.push(`RTMR${k}       ${v}`);
      if (compared) lines.push('', compared.ok ? `MATCH  all ${compared.matched.length} expected register(s)` : `MISMATCH  ${compared.diverged.length} of ${compared.matched.length + compared.diverged.length} register(s)`);
      ctx.io.out(lines.join('\n'));
      if (failed) {
        for (const d of compared.diverged) {
          ctx.io.err(`coffer: EVENTLOG_REPLAY_MISMATCH: ${d.bank === 'rtmr' ? `RTMR${d.register}` : `${d.bank} PCR${d.register}`} expected ${d.expected}, replayed ${d.found}; last event extended: ${d.lastEvent ?? 'none'}; ${d.explanation}`);
        }
        return EXIT_FAILED;
      }
      return EXIT_OK;
    }),
  );
}
