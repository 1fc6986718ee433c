import { createHash } from 'node:crypto';
import { decodeEvent, type EventDetail } from './decode.js';
import { checkDigests, describeMismatch, type DigestReport } from './digests.js';
import { compareReplay, isExtended, replayEventLog, type ComparedRegisters, type ExpectedRegisters } from './replay.js';
import { EV } from './types.js';
import type { SignatureEntry } from './efi.js';
import type { EventLog, TcgEvent } from './log.js';

/**
 * What a reviewer wants from a measured boot: Secure Boot state and databases, the authorities
 * that verified each boot application, the applications' Authenticode digests, the kernel
 * command line, whether ExitBootServices was reached, and whether the separators are sane.
 * Only events whose digests were checked against their data count (plus the boot application
 * digests, which are the measurement itself); everything that could not be checked is said so.
 */

export interface BootFlag {
  code: string;
  message: string;
  event?: number;
}

export interface SignatureDb {
  event: number;
  certificates: { subject: string; subjectDn: string; issuer: string; sha256: string; owner: string }[];
  hashes: string[];
  other: number;
}

export interface BootApplication {
  event: number;
  path: string;
  /** bank → digest (hex): the Authenticode hash the firmware measured. */
  digests: Record<string, string>;
  /** Authorities logged (after the Secure Boot separator) since the previous application load. */
  authorities: { event: number; variable: string; subject?: string; sha256?: string; text?: string }[];
}

export interface BootState {
  kind: EventLog['kind'];
  /** `PCR` for a TPM log, `MR` for a CCEL (1-4 = RTMR0-3). */
  registerName: 'PCR' | 'MR';
  secureBoot: { enabled: boolean; event: number } | undefined;
  databases: { PK?: SignatureDb; KEK?: SignatureDb; db?: SignatureDb; dbx?: SignatureDb };
  authorities: { event: number; variable: string; subject?: string; sha256?: string; text?: string }[];
  bootApplications: BootApplication[];
  kernelCommandLine: { text: string; source: 'grub' | 'systemd-stub'; event: number } | undefined;
  exitBootServices: { invoked: boolean; returned: 'success' | 'failure' | undefined };
  separators: { register: number; events: number[] }[];
  digests: Omit<DigestReport, 'checks'>;
  /** When expected register values were given: the comparison. */
  replay?: ComparedRegisters;
  /** Defects, each with a stable code. */
  flags: BootFlag[];
  /** Plain statements of what this summary could not verify. */
  notVerified: string[];
}

export interface BootStateOptions {
  /** Quoted PCRs / RTMRs: when given, only events in registers that replay to them count. */
  expected?: ExpectedRegisters;
}

interface Layout {
  secureBoot: number;
  apps: number;
  ebs: number;
  grub: number;
  separators: number[];
}

const TPM_LAYOUT: Layout = { secureBoot: 7, apps: 4, ebs: 5, grub: 8, separators: [0, 1, 2, 3, 4, 5, 6, 7] };
// TDVF maps PCR 1 and 7 to MR 1 (RTMR0), PCR 2-6 to MR 2 (RTMR1), PCR 8-15 to MR 3 (RTMR2).
const CCEL_LAYOUT: Layout = { secureBoot: 1, apps: 2, ebs: 2, grub: 3, separators: [1, 2] };

function db(event: number, sigs: readonly SignatureEntry[]): SignatureDb {
  return {
    event,
    certificates: sigs.filter((s) => s.kind === 'x509').map((s) => ({ subject: s.subject ?? '', subjectDn: s.subjectDn ?? '', issuer: s.issuer ?? '', sha256: s.sha256, owner: s.owner })),
    hashes: sigs.filter((s) => s.kind === 'sha256').map((s) => s.sha256),
    other: sigs.filter((s) => s.kind === 'other').length,
  };
}

const KERNEL_PREFIXES = ['kernel_cmdline: ', 'grub_kernel_cmdline '];

export function bootState(log: EventLog, opts: BootStateOptions = {}): BootState {
  const layout = log.kind === 'ccel' ? CCEL_LAYOUT : TPM_LAYOUT;
  const reg = log.kind === 'ccel' ? 'MR' : 'PCR';
  const flags: BootFlag[] = [];
  const notVerified: string[] = [];
  const report = checkDigests(log);
  const details: EventDetail[] = log.events.map((e) => decodeEvent(e));

  let replay: ComparedRegisters | undefined;
  let trusted: (e: TcgEvent) => boolean = () => true;
  if (opts.expected) {
    replay = compareReplay(log, replayEventLog(log), opts.expected);
    const ok = new Set(replay.matched.filter((m) => m.bank !== 'rtmr').map((m) => m.register));
    const okRtmr = new Set(replay.matched.filter((m) => m.bank === 'rtmr').map((m) => m.register + 1));
    const bad = new Set(replay.diverged.map((d) => (d.bank === 'rtmr' ? d.register + 1 : d.register)));
    trusted = (e) => !bad.has(e.register) && (ok.has(e.register) || okRtmr.has(e.register));
    for (const d of replay.diverged) {
      flags.push({ code: 'EVENTLOG_REPLAY_MISMATCH', message: `${d.bank === 'rtmr' ? `RTMR ${d.register}` : `${d.bank} PCR ${d.register}`}: ${d.explanation}` });
    }
  } else {
    notVerified.push(`The log is not authenticated: every fact below holds only if the replayed ${log.kind === 'ccel' ? 'RTMRs equal those of a verified TD quote' : 'PCRs equal those of a verified TPM quote'} (pass the quoted values to check).`);
  }

  const checked = (e: TcgEvent) => report.checks[e.seq]?.status === 'verified' && trusted(e);

  for (const c of report.checks) {
    if (c.status === 'mismatch') flags.push({ code: 'EVENTLOG_DIGEST_MISMATCH', message: describeMismatch(log, c), event: c.seq });
  }
  log.events.forEach((e, i) => {
    const d = details[i];
    if (d?.kind === 'malformed' && isExtended(log, e) && report.checks[i]?.rule === 'must') {
      flags.push({ code: 'EVENTLOG_MALFORMED_EVENT', message: `event ${e.seq} (${e.typeName}): ${d.error}`, event: e.seq });
    }
  });

  // Separators: exactly once per register, value 0; and no other event may carry a separator's digest.
  const sepDigests = new Map(log.algorithms.filter((a) => a.replayable).map((a) => [a.name, [createHash(a.name).update(Buffer.alloc(4)).digest('hex'), createHash(a.name).update(Buffer.alloc(4, 0xff)).digest('hex')]]));
  const separators = layout.separators.map((r) => ({ register: r, events: log.events.filter((e) => e.type === EV.SEPARATOR && e.register === r && isExtended(log, e)).map((e) => e.seq) }));
  for (const s of separators) {
    if (s.events.length === 0) flags.push({ code: 'EVENTLOG_SEPARATOR_MISSING', message: `${reg} ${s.register} has no separator` });
    if (s.events.length > 1) flags.push({ code: 'EVENTLOG_SEPARATOR_DUPLICATE', message: `${reg} ${s.register} has ${s.events.length} separators (events ${s.events.join(', ')})`, event: s.events[1] as number });
  }
  for (const e of log.events) {
    if (!isExtended(log, e) || !layout.separators.includes(e.register)) continue;
    const d = details[e.seq];
    if (e.type === EV.SEPARATOR) {
      if (d?.kind === 'separator' && d.value !== 0) {
        flags.push({ code: 'EVENTLOG_SEPARATOR_ERROR', message: `event ${e.seq}: ${reg} ${e.register} separator value is 0x${d.value.toString(16)}${d.error ? ' (firmware error)' : ''}, not 0`, event: e.seq });
      }
    } else if ([...sepDigests].some(([bank, ds]) => ds.includes(e.digests[bank as keyof TcgEvent['digests']]?.toString('hex') ?? ''))) {
      flags.push({ code: 'EVENTLOG_SEPARATOR_DISGUISED', message: `event ${e.seq} carries a separator's digest but claims type ${e.typeName}`, event: e.seq });
    }
  }

  // Secure Boot configuration: variables before the separator in the Secure Boot register.
  const sbSeparator = separators.find((s) => s.register === layout.secureBoot)?.events[0] ?? Infinity;
  let secureBoot: BootState['secureBoot'];
  const databases: BootState['databases'] = {};
  const seenVars = new Set<string>();
  const authorities: BootState['authorities'] = [];
  for (const e of log.events) {
    if (e.register !== layout.secureBoot || !isExtended(log, e)) continue;
    const d = details[e.seq];
    if (e.type === EV.EFI_ACTION && d?.kind === 'string' && d.text === 'UEFI Debug Mode') {
      flags.push({ code: 'EVENTLOG_UEFI_DEBUGGER', message: `event ${e.seq}: a UEFI debugger was present during boot`, event: e.seq });
    }
    if (e.type === EV.EFI_VARIABLE_DRIVER_CONFIG && d?.kind === 'variable') {
      if (seenVars.has(d.name)) flags.push({ code: 'EVENTLOG_VARIABLE_DUPLICATE', message: `event ${e.seq}: Secure Boot variable ${d.name} measured twice`, event: e.seq });
      seenVars.add(d.name);
      if (e.seq > sbSeparator) flags.push({ code: 'EVENTLOG_VARIABLE_AFTER_SEPARATOR', message: `event ${e.seq}: Secure Boot variable ${d.name} measured after the separator`, event: e.seq });
      if (!checked(e) || d.trailing !== 0) continue;
      if (d.name === 'SecureBoot') {
        if (d.secureBoot === undefined) flags.push({ code: 'EVENTLOG_BAD_SECURE_BOOT_VARIABLE', message: `event ${e.seq}: SecureBoot variable is ${d.dataLength} byte(s), not 1`, event: e.seq });
        else secureBoot = { enabled: d.secureBoot === 1, event: e.seq };
      } else if ((d.name === 'PK' || d.name === 'KEK' || d.name === 'db' || d.name === 'dbx') && d.signatures) {
        databases[d.name] = db(e.seq, d.signatures);
      }
    }
    if (e.type === EV.EFI_VARIABLE_AUTHORITY && d?.kind === 'authority' && checked(e)) {
      if (e.seq < sbSeparator) continue; // pre-separator authorities verified drivers, not boot applications
      const a = d.authority;
      authorities.push({ event: e.seq, variable: d.name, ...(a.entry?.subject !== undefined ? { subject: a.entry.subject } : {}), ...(a.entry ? { sha256: a.entry.sha256 } : {}), ...(a.text !== undefined ? { text: a.text } : {}) });
    }
  }

  // Boot applications and ExitBootServices.
  const bootApplications: BootApplication[] = [];
  const exitBootServices: BootState['exitBootServices'] = { invoked: false, returned: undefined };
  let lastApp = -1;
  for (const e of log.events) {
    if (!isExtended(log, e) || !trusted(e)) continue;
    const d = details[e.seq];
    if (e.register === layout.apps && e.type === EV.EFI_BOOT_SERVICES_APPLICATION) {
      const digests: Record<string, string> = {};
      for (const a of log.algorithms) {
        const v = e.digests[a.name];
        if (v) digests[a.name] = v.toString('hex');
      }
      bootApplications.push({
        event: e.seq,
        path: d?.kind === 'image-load' ? d.image.path || '(no device path)' : '(malformed image load event)',
        digests,
        authorities: authorities.filter((a) => a.event > lastApp && a.event < e.seq),
      });
      lastApp = e.seq;
    }
    if (e.register === layout.ebs && e.type === EV.EFI_ACTION && checked(e) && d?.kind === 'string') {
      if (d.text === 'Exit Boot Services Invocation') exitBootServices.invoked = true;
      if (d.text === 'Exit Boot Services Returned with Success') exitBootServices.returned = 'success';
      if (d.text === 'Exit Boot Services Returned with Failure') exitBootServices.returned ??= 'failure';
    }
  }
  if (!exitBootServices.invoked) {
    flags.push({ code: 'EVENTLOG_NO_EXIT_BOOT_SERVICES', message: `no checked "Exit Boot Services Invocation" event in ${reg} ${layout.ebs}: the log does not show that the boot manager handed over to an OS (firmware that omits these events leaves the quoted ${reg} ${layout.ebs} unexplained)` });
  }

  // Kernel command line: GRUB's kernel_cmdline in PCR 8 (MR 3), or systemd-stub's EV_IPL in PCR 12.
  let kernelCommandLine: BootState['kernelCommandLine'];
  const cmdlines = new Set<string>();
  for (const e of log.events) {
    if (e.type !== EV.IPL || !checked(e)) continue;
    const d = details[e.seq];
    if (d?.kind !== 'string') continue;
    if (e.register === layout.grub) {
      const p = KERNEL_PREFIXES.find((x) => d.text.startsWith(x));
      if (p) {
        kernelCommandLine = { text: d.text.slice(p.length), source: 'grub', event: e.seq };
        cmdlines.add(kernelCommandLine.text);
      }
    } else if (log.kind === 'tpm' && e.register === 12 && d.encoding === 'utf-16') {
      kernelCommandLine = { text: d.text, source: 'systemd-stub', event: e.seq };
      cmdlines.add(d.text);
    }
  }
  if (cmdlines.size > 1) flags.push({ code: 'EVENTLOG_MULTIPLE_CMDLINES', message: `${cmdlines.size} different kernel command lines were measured; the last is shown` });

  if (secureBoot?.enabled && authorities.length === 0) {
    flags.push({ code: 'EVENTLOG_NO_AUTHORITY', message: 'Secure Boot is on but no checked EV_EFI_VARIABLE_AUTHORITY event shows a key being used' });
  }

  // What could not be verified, in plain words.
  if (!secureBoot) notVerified.push(`Secure Boot state: no checked SecureBoot variable event in ${reg} ${layout.secureBoot}.`);
  for (const name of ['PK', 'KEK', 'db', 'dbx'] as const) if (!databases[name]) notVerified.push(`${name}: not measured, or its event could not be checked.`);
  if (report.external > 0) {
    notVerified.push(`${report.external} event(s) measure data outside the log (firmware volumes, PE images, ACPI tables, files, the initrd): their digests are replayed but what they measure cannot be checked here.`);
  }
  if (report.unverified > 0) {
    notVerified.push(`${report.unverified} EV_IPL/EV_COMPACT_HASH event(s) match no known digest convention (e.g. shim's MokList measurements, GRUB's file measurements in ${reg} ${log.kind === 'ccel' ? 3 : 9}); their text is not trusted.`);
  }
  if (bootApplications.length > 0) notVerified.push('Boot application digests are Authenticode hashes as the firmware measured them; compare them with reference values (the images are not in the log).');
  if (!kernelCommandLine) notVerified.push('Kernel command line: no checked GRUB kernel_cmdline or systemd-stub command-line event.');
  if (log.kind === 'ccel') notVerified.push('MRTD is measured by the TDX module, not by this log: check it against a reference value from the TD quote.');

  const digests = { verified: report.verified, mismatched: report.mismatched, unverified: report.unverified, external: report.external };
  return {
    kind: log.kind,
    registerName: reg,
    secureBoot,
    databases,
    authorities,
    bootApplications,
    kernelCommandLine,
    exitBootServices,
    separators,
    digests,
    ...(replay ? { replay } : {}),
    flags,
    notVerified,
  };
}
