import { createHash } from 'node:crypto';
import { decodeEvent, type EventDetail } from './decode.js';
import { checkDigests, describeMismatch, type DigestReport } from './digests.js';
import { compareReplay, isExtended, replayEventLog, startupLocality, type ComparedRegisters, type ExpectedRegisters } from './replay.js';
import { EV, type HashName } from './types.js';
import { CofferError } from '../../errors.js';
import { EFI_GLOBAL_VARIABLE, EFI_IMAGE_SECURITY_DATABASE, type SignatureEntry } from './efi.js';
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
  /**
   * bank → digest (hex): the Authenticode hash the firmware measured, only from banks in which the
   * application's register replayed to the quoted value (every replayable bank when no quoted
   * values were given, and then nothing is authenticated).
   */
  digests: Record<string, string>;
  /**
   * Authorities logged (after the Secure Boot separator, before ExitBootServices) since the
   * previous application load, BY LOG ORDER ONLY: PCR 7 and PCR 4 are extended independently, so
   * which key verified which application is not authenticated. See BootState.authorities.
   */
  authorities: { event: number; variable: string; subject?: string; sha256?: string; text?: string }[];
}

export interface BootState {
  kind: EventLog['kind'];
  /** `PCR` for a TPM log, `MR` for a CCEL (1-4 = RTMR0-3). */
  registerName: 'PCR' | 'MR';
  /** Undefined when unknown, unchecked, invalid, or measured more than once (conflicting). */
  secureBoot: { enabled: boolean; event: number } | undefined;
  /** Each present only when measured exactly once, before the separator, under its UEFI vendor GUID, and checked. */
  databases: { PK?: SignatureDb; KEK?: SignatureDb; db?: SignatureDb; dbx?: SignatureDb };
  /**
   * Authorities used during boot (order not authenticated): checked EV_EFI_VARIABLE_AUTHORITY
   * events after the Secure Boot separator and before ExitBootServices that name a certificate or
   * a hash (shim's SbatLevel and MokListTrusted settings are not authorities and are left out).
   */
  authorities: { event: number; variable: string; subject?: string; sha256?: string; text?: string }[];
  bootApplications: BootApplication[];
  /** Undefined when none was measured, or when the measured ones disagree (see flags). */
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

/** The UEFI vendor GUID each Secure Boot variable must be measured under. */
const SECURE_BOOT_VARIABLES: Readonly<Record<string, string>> = {
  SecureBoot: EFI_GLOBAL_VARIABLE,
  PK: EFI_GLOBAL_VARIABLE,
  KEK: EFI_GLOBAL_VARIABLE,
  db: EFI_IMAGE_SECURITY_DATABASE,
  dbx: EFI_IMAGE_SECURITY_DATABASE,
};

const GRUB_LABELS = ['grub_cmd: ', 'grub_cmd ', 'kernel_cmdline: ', 'grub_kernel_cmdline ', 'module_cmdline: '];
const KERNEL_CMDLINE_LABELS = ['kernel_cmdline: ', 'grub_kernel_cmdline '];
const LINUX_COMMAND = /^(linux|linuxefi)[ \t]+/;
const EBS_INVOCATION = 'Exit Boot Services Invocation';
const EBS_RETURNED = ['Exit Boot Services Returned with Success', 'Exit Boot Services Returned with Failure'];

/** The bytes the event's verified digest covers, as text without trailing NULs (undefined when not verified). */
function measuredText(e: TcgEvent, range: { offset: number; length: number } | undefined): string | undefined {
  if (!range) return undefined;
  let end = range.offset + range.length;
  while (end > range.offset && e.data[end - 1] === 0) end--;
  return e.data.subarray(range.offset, end).toString('utf8');
}

/**
 * GRUB's kernel_cmdline is grub_create_loader_cmdline(argv): each argument with `\`, `'` and `"`
 * escaped by a backslash, wrapped in double quotes when it holds a space, joined by spaces. Its
 * `linux` command is measured as argv joined by spaces. This undoes the quoting and joins the
 * arguments as the command measurement does, so the two can be compared.
 */
export function grubCommandLineArgs(cmdline: string): string {
  const args: string[] = [];
  let cur = '';
  let inArg = false;
  let quoted = false;
  for (let i = 0; i < cmdline.length; i++) {
    const c = cmdline[i] as string;
    if (c === '\\' && i + 1 < cmdline.length) {
      cur += cmdline[++i];
      inArg = true;
    } else if (c === '"') {
      quoted = !quoted;
      inArg = true;
    } else if (c === ' ' && !quoted) {
      if (inArg) args.push(cur);
      cur = '';
      inArg = false;
    } else {
      cur += c;
      inArg = true;
    }
  }
  if (inArg) args.push(cur);
  return args.join(' ');
}

export function bootState(log: EventLog, opts: BootStateOptions = {}): BootState {
  const layout = log.kind === 'ccel' ? CCEL_LAYOUT : TPM_LAYOUT;
  const reg = log.kind === 'ccel' ? 'MR' : 'PCR';
  const flags: BootFlag[] = [];
  const notVerified: string[] = [];
  const report = checkDigests(log);
  const details: EventDetail[] = log.events.map((e) => decodeEvent(e));
  const replayable = log.algorithms.filter((a) => a.replayable).map((a) => a.name);

  if (replayable.length === 0) {
    flags.push({ code: 'EVENTLOG_NO_REPLAYABLE_BANK', message: `the log carries only ${log.algorithms.map((a) => a.name).join(', ')} digests, which this verifier cannot compute: no event is checked, nothing below is trusted` });
    notVerified.push(`Every event: the log has no bank this verifier can hash (${log.algorithms.map((a) => a.name).join(', ')}), so no digest was checked and no register replayed.`);
  }
  // StartupLocality sets PCR 0's initial value: a misplaced or repeated one is refused by the
  // replay; here, without quoted values, it is flagged.
  if (!opts.expected) {
    try {
      startupLocality(log);
    } catch (e) {
      if (!(e instanceof CofferError)) throw e;
      flags.push({ code: e.code, message: e.message });
    }
  }

  // Trust per (bank, register): an event's facts count only through banks in which its register
  // replayed to the quoted value. A register that diverges in any compared bank is not trusted.
  let replay: ComparedRegisters | undefined;
  let trustedBanks: (e: TcgEvent) => HashName[] = () => replayable;
  if (opts.expected) {
    replay = compareReplay(log, replayEventLog(log), opts.expected);
    const matched = new Map<number, Set<HashName>>();
    for (const m of replay.matched) {
      const register = m.bank === 'rtmr' ? m.register + 1 : m.register;
      const bank = (m.bank === 'rtmr' ? 'sha384' : m.bank) as HashName;
      if (!replayable.includes(bank)) continue;
      let set = matched.get(register);
      if (!set) matched.set(register, (set = new Set()));
      set.add(bank);
    }
    const bad = new Set(replay.diverged.map((d) => (d.bank === 'rtmr' ? d.register + 1 : d.register)));
    trustedBanks = (e) => (bad.has(e.register) ? [] : [...(matched.get(e.register) ?? [])]);
    for (const d of replay.diverged) {
      flags.push({ code: 'EVENTLOG_REPLAY_MISMATCH', message: `${d.bank === 'rtmr' ? `RTMR ${d.register}` : `${d.bank} PCR ${d.register}`}: ${d.explanation}` });
    }
    const sha1Only = [...matched].filter(([r, banks]) => !bad.has(r) && banks.size === 1 && banks.has('sha1')).map(([r]) => r).sort((a, b) => a - b);
    if (sha1Only.length > 0) {
      notVerified.push(`${reg} ${sha1Only.join(', ')}: trust rests on SHA-1 only (the only quoted bank that covers ${sha1Only.length === 1 ? 'it' : 'them'}); SHA-1 collisions are practical, so a forged event could replay to the same value.`);
    }
  } else {
    notVerified.push(`The log is not authenticated: every fact below holds only if the replayed ${log.kind === 'ccel' ? 'RTMRs equal those of a verified TD quote' : 'PCRs equal those of a verified TPM quote'} (pass the quoted values to check).`);
  }
  const trusted = (e: TcgEvent) => trustedBanks(e).length > 0;
  const checked = (e: TcgEvent) => report.checks[e.seq]?.status === 'verified' && trusted(e);

  for (const c of report.checks) {
    if (c.status === 'mismatch') flags.push({ code: 'EVENTLOG_DIGEST_MISMATCH', message: describeMismatch(log, c), event: c.seq });
  }
  log.events.forEach((e, i) => {
    const d = details[i];
    if (d?.kind === 'malformed' && isExtended(log, e) && report.checks[i]?.rule === 'must') {
      flags.push({ code: 'EVENTLOG_MALFORMED_EVENT', message: `event ${e.seq} (${e.typeName}): ${d.error}`, event: e.seq });
    }
    // EV_NO_ACTION is never extended; the PFP spec fixes its digests at zero, so a non-zero one is
    // a value that no register accounts for.
    if (e.type === EV.NO_ACTION && Object.values(e.digests).some((v) => v !== undefined && v.some((b) => b !== 0))) {
      flags.push({ code: 'EVENTLOG_NO_ACTION_DIGEST', message: `event ${e.seq} (EV_NO_ACTION) carries a non-zero digest; EV_NO_ACTION digests must be all zero`, event: e.seq });
    }
  });

  // Separators: exactly once per register, 4 bytes, value 0; and no other event may carry a separator's digest.
  const sepDigests = new Map(replayable.map((name) => [name, [createHash(name).update(Buffer.alloc(4)).digest('hex'), createHash(name).update(Buffer.alloc(4, 0xff)).digest('hex')]]));
  const separators = layout.separators.map((r) => ({ register: r, events: log.events.filter((e) => e.type === EV.SEPARATOR && e.register === r && isExtended(log, e)).map((e) => e.seq) }));
  for (const s of separators) {
    if (s.events.length === 0) flags.push({ code: 'EVENTLOG_SEPARATOR_MISSING', message: `${reg} ${s.register} has no separator` });
    if (s.events.length > 1) flags.push({ code: 'EVENTLOG_SEPARATOR_DUPLICATE', message: `${reg} ${s.register} has ${s.events.length} separators (events ${s.events.join(', ')})`, event: s.events[1] as number });
  }
  for (const e of log.events) {
    if (!isExtended(log, e)) continue;
    if (e.type === EV.SEPARATOR && e.data.length !== 4) {
      flags.push({ code: 'EVENTLOG_SEPARATOR_MALFORMED', message: `event ${e.seq}: ${reg} ${e.register} separator data is ${e.data.length} byte(s), not 4`, event: e.seq });
    }
    if (!layout.separators.includes(e.register)) continue;
    const d = details[e.seq];
    if (e.type === EV.SEPARATOR) {
      if (d?.kind === 'separator' && d.value !== 0) {
        flags.push({ code: 'EVENTLOG_SEPARATOR_ERROR', message: `event ${e.seq}: ${reg} ${e.register} separator value is 0x${d.value.toString(16)}${d.error ? ' (firmware error)' : ''}, not 0`, event: e.seq });
      }
    } else if ([...sepDigests].some(([bank, ds]) => ds.includes(e.digests[bank]?.toString('hex') ?? ''))) {
      flags.push({ code: 'EVENTLOG_SEPARATOR_DISGUISED', message: `event ${e.seq} carries a separator's digest but claims type ${e.typeName}`, event: e.seq });
    }
  }

  // ExitBootServices: the first checked invocation; after it, nothing but its "returned" action
  // belongs in PCR 0-7 (MR 1-2): the OS extending those registers could forge firmware facts.
  const exitBootServices: BootState['exitBootServices'] = { invoked: false, returned: undefined };
  let ebsSeq: number | undefined;
  for (const e of log.events) {
    if (e.register !== layout.ebs || e.type !== EV.EFI_ACTION || !isExtended(log, e) || !checked(e)) continue;
    const d = details[e.seq];
    if (d?.kind !== 'string') continue;
    if (d.text === EBS_INVOCATION && ebsSeq === undefined) {
      exitBootServices.invoked = true;
      ebsSeq = e.seq;
    }
    if (ebsSeq !== undefined && d.text === EBS_RETURNED[0]) exitBootServices.returned ??= 'success';
    if (ebsSeq !== undefined && d.text === EBS_RETURNED[1]) exitBootServices.returned ??= 'failure';
  }
  if (ebsSeq !== undefined) {
    for (const e of log.events) {
      if (e.seq <= ebsSeq || !isExtended(log, e) || !layout.separators.includes(e.register)) continue;
      const d = details[e.seq];
      if (e.register === layout.ebs && e.type === EV.EFI_ACTION && d?.kind === 'string' && EBS_RETURNED.includes(d.text)) continue;
      flags.push({ code: 'EVENTLOG_EVENT_AFTER_EXIT_BOOT_SERVICES', message: `event ${e.seq} (${e.typeName}) extends ${reg} ${e.register} after ExitBootServices (event ${ebsSeq}): firmware registers must not change once the OS runs`, event: e.seq });
    }
  }

  // Secure Boot configuration: the first and only measurement of each variable, before the
  // separator in the Secure Boot register, under its UEFI vendor GUID. A second copy (even one
  // that agrees) or one after the separator makes the value conflicting: undefined, not overwritten.
  const sbSeparator = separators.find((s) => s.register === layout.secureBoot)?.events[0] ?? Infinity;
  let secureBoot: BootState['secureBoot'];
  const databases: BootState['databases'] = {};
  const occurrences = new Map<string, TcgEvent[]>();
  for (const e of log.events) {
    if (e.register !== layout.secureBoot || !isExtended(log, e)) continue;
    const d = details[e.seq];
    if (e.type === EV.EFI_ACTION && d?.kind === 'string' && d.text === 'UEFI Debug Mode') {
      flags.push({ code: 'EVENTLOG_UEFI_DEBUGGER', message: `event ${e.seq}: a UEFI debugger was present during boot`, event: e.seq });
    }
    if (e.type !== EV.EFI_VARIABLE_DRIVER_CONFIG || d?.kind !== 'variable') continue;
    const guid = SECURE_BOOT_VARIABLES[d.name];
    if (guid === undefined) continue;
    const seen = occurrences.get(d.name) ?? [];
    seen.push(e);
    occurrences.set(d.name, seen);
    if (d.guid !== guid) flags.push({ code: 'EVENTLOG_VARIABLE_WRONG_GUID', message: `event ${e.seq}: Secure Boot variable ${d.name} is measured under vendor GUID ${d.guid}, not ${guid}`, event: e.seq });
    if (seen.length > 1) flags.push({ code: 'EVENTLOG_VARIABLE_DUPLICATE', message: `event ${e.seq}: Secure Boot variable ${d.name} measured again (first at event ${seen[0]?.seq}); its value is conflicting and not reported`, event: e.seq });
    if (e.seq > sbSeparator) flags.push({ code: 'EVENTLOG_VARIABLE_AFTER_SEPARATOR', message: `event ${e.seq}: Secure Boot variable ${d.name} measured after the ${reg} ${layout.secureBoot} separator; its value is not reported`, event: e.seq });
  }
  for (const [name, evs] of occurrences) {
    const e = evs[0] as TcgEvent;
    const d = details[e.seq];
    if (evs.length !== 1 || e.seq > sbSeparator || d?.kind !== 'variable' || d.guid !== SECURE_BOOT_VARIABLES[name]) continue;
    if (!checked(e) || d.trailing !== 0) continue;
    if (name === 'SecureBoot') {
      if (d.secureBoot === undefined) flags.push({ code: 'EVENTLOG_BAD_SECURE_BOOT_VARIABLE', message: `event ${e.seq}: SecureBoot variable is ${d.dataLength} byte(s), not 1`, event: e.seq });
      else if (d.secureBoot !== 0 && d.secureBoot !== 1) flags.push({ code: 'EVENTLOG_BAD_SECURE_BOOT_VARIABLE', message: `event ${e.seq}: SecureBoot variable is ${d.secureBoot}, neither 0 (off) nor 1 (on)`, event: e.seq });
      else secureBoot = { enabled: d.secureBoot === 1, event: e.seq };
    } else if ((name === 'PK' || name === 'KEK' || name === 'db' || name === 'dbx') && d.signatures) {
      databases[name] = db(e.seq, d.signatures);
    }
  }

  // Authorities used: after the separator (before it they verified drivers), before
  // ExitBootServices, and only certificates or hashes.
  const authorities: BootState['authorities'] = [];
  for (const e of log.events) {
    if (e.register !== layout.secureBoot || e.type !== EV.EFI_VARIABLE_AUTHORITY || !isExtended(log, e) || !checked(e)) continue;
    const d = details[e.seq];
    if (d?.kind !== 'authority' || e.seq < sbSeparator || (ebsSeq !== undefined && e.seq > ebsSeq)) continue;
    const a = d.authority.entry;
    if (!a || (a.kind !== 'x509' && a.kind !== 'sha256')) continue;
    authorities.push({ event: e.seq, variable: d.name, ...(a.subject !== undefined ? { subject: a.subject } : {}), sha256: a.sha256 });
  }

  // Boot applications: digests only from the banks that authenticate their register.
  const bootApplications: BootApplication[] = [];
  let lastApp = -1;
  for (const e of log.events) {
    if (e.register !== layout.apps || e.type !== EV.EFI_BOOT_SERVICES_APPLICATION || !isExtended(log, e) || !trusted(e)) continue;
    const d = details[e.seq];
    const banks = trustedBanks(e);
    const digests: Record<string, string> = {};
    for (const a of log.algorithms) {
      const v = e.digests[a.name];
      if (v && banks.includes(a.name)) digests[a.name] = v.toString('hex');
    }
    bootApplications.push({
      event: e.seq,
      path: d?.kind === 'image-load' ? d.image.path || '(no device path)' : '(malformed image load event)',
      digests,
      authorities: authorities.filter((a) => a.event > lastApp && a.event < e.seq),
    });
    lastApp = e.seq;
  }
  if (!exitBootServices.invoked) {
    flags.push({ code: 'EVENTLOG_NO_EXIT_BOOT_SERVICES', message: `no checked "Exit Boot Services Invocation" event in ${reg} ${layout.ebs}: the log does not show that the boot manager handed over to an OS (firmware that omits these events leaves the quoted ${reg} ${layout.ebs} unexplained)` });
  }

  // Kernel command line. GRUB hashes only the text after its `grub_cmd: ` / `kernel_cmdline: `
  // label, so the label says nothing: the command line comes from the one measured command whose
  // measured bytes start with `linux`/`linuxefi`; a kernel_cmdline event is accepted only when it
  // equals that command's arguments. systemd-stub measures the UTF-16 command line into PCR 12.
  const candidates: { text: string; source: 'grub' | 'systemd-stub'; event: number }[] = [];
  const grubEvents = log.events.filter((e) => e.type === EV.IPL && e.register === layout.grub && isExtended(log, e));
  const grubSeen = grubEvents.some((e) => GRUB_LABELS.some((p) => e.data.subarray(0, p.length).toString('latin1') === p));
  const linux: { e: TcgEvent; args: string }[] = [];
  const kernelCmdlines: { e: TcgEvent; text: string }[] = [];
  for (const e of grubEvents) {
    if (!checked(e)) continue;
    const text = measuredText(e, report.checks[e.seq]?.measured);
    if (text === undefined) continue;
    const m = LINUX_COMMAND.exec(text);
    if (m) {
      linux.push({ e, args: text.slice(m[0].length) });
      continue;
    }
    const label = KERNEL_CMDLINE_LABELS.find((p) => e.data.subarray(0, p.length).toString('latin1') === p);
    if (label) kernelCmdlines.push({ e, text: text.startsWith(label) ? text.slice(label.length) : text });
  }
  if (linux.length > 1) {
    flags.push({ code: 'EVENTLOG_MULTIPLE_LINUX_COMMANDS', message: `${linux.length} measured GRUB linux commands (events ${linux.map((l) => l.e.seq).join(', ')}): the kernel command line is ambiguous and not reported` });
  } else if (linux.length === 0 && (grubSeen || kernelCmdlines.length > 0)) {
    flags.push({ code: 'EVENTLOG_NO_LINUX_COMMAND', message: `GRUB events are logged in ${reg} ${layout.grub} but no checked, measured linux/linuxefi command: no kernel command line is reported from GRUB` });
  } else if (linux[0]) {
    const { e, args } = linux[0];
    const mismatched = kernelCmdlines.filter((k) => grubCommandLineArgs(k.text) !== args);
    if (mismatched.length > 0) {
      for (const k of mismatched) flags.push({ code: 'EVENTLOG_CMDLINE_MISMATCH', message: `event ${k.e.seq}: a kernel_cmdline event does not equal the arguments of the measured linux command (event ${e.seq}); the kernel command line is not reported`, event: k.e.seq });
    } else {
      const k = kernelCmdlines[0];
      // The kernel_cmdline form is the string the kernel receives (with GRUB's quoting).
      candidates.push(k ? { text: k.text, source: 'grub', event: k.e.seq } : { text: args, source: 'grub', event: e.seq });
    }
  }
  if (log.kind === 'tpm') {
    for (const e of log.events) {
      if (e.type !== EV.IPL || e.register !== 12 || !isExtended(log, e) || !checked(e)) continue;
      const d = details[e.seq];
      if (d?.kind === 'string' && d.encoding === 'utf-16') candidates.push({ text: d.text, source: 'systemd-stub', event: e.seq });
    }
  }
  const distinct = new Set(candidates.map((c) => c.text));
  let kernelCommandLine: BootState['kernelCommandLine'];
  if (distinct.size > 1) {
    flags.push({ code: 'EVENTLOG_MULTIPLE_CMDLINES', message: `${distinct.size} different kernel command lines were measured (events ${candidates.map((c) => c.event).join(', ')}); none is reported` });
  } else {
    kernelCommandLine = candidates[0];
  }

  if (secureBoot?.enabled && authorities.length === 0) {
    flags.push({ code: 'EVENTLOG_NO_AUTHORITY', message: 'Secure Boot is on but no checked EV_EFI_VARIABLE_AUTHORITY event shows a key being used' });
  }

  // What could not be verified, in plain words.
  if (!secureBoot) notVerified.push(`Secure Boot state: no single, checked SecureBoot variable event (0 or 1) before the ${reg} ${layout.secureBoot} separator.`);
  for (const name of ['PK', 'KEK', 'db', 'dbx'] as const) if (!databases[name]) notVerified.push(`${name}: not measured, or its event could not be checked.`);
  notVerified.push(`Secure Boot variables count only when measured once, before the ${reg} ${layout.secureBoot} separator, under their UEFI vendor GUID; a second or later copy makes the value conflicting (not reported).`);
  if (authorities.length > 0) {
    notVerified.push(`Authorities: which key verified which boot application cannot be told from the log (${reg} ${layout.secureBoot} and ${reg} ${layout.apps} are extended independently; their interleaving is not authenticated): the authorities are those used during boot, in no authenticated order.`);
  }
  if (report.external > 0) {
    notVerified.push(`${report.external} event(s) measure data outside the log (firmware volumes, PE images, ACPI tables, files, the initrd): their digests are replayed but what they measure cannot be checked here.`);
  }
  if (report.unverified > 0) {
    notVerified.push(`${report.unverified} EV_IPL/EV_COMPACT_HASH event(s) match no known digest convention (e.g. shim's MokList measurements, GRUB's file measurements in ${reg} ${log.kind === 'ccel' ? 3 : 9}); their text is not trusted.`);
  }
  if (bootApplications.length > 0) notVerified.push('Boot application digests are Authenticode hashes as the firmware measured them; compare them with reference values (the images are not in the log).');
  if (grubSeen) notVerified.push(`GRUB's labels ("grub_cmd: ", "kernel_cmdline: ") are not measured: the kernel command line is taken only from the one measured linux/linuxefi command, and a kernel_cmdline event counts only when it equals that command's arguments.`);
  if (!kernelCommandLine) notVerified.push('Kernel command line: no single, checked GRUB linux command or systemd-stub command-line event.');
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
