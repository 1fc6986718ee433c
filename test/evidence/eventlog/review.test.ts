// The security review's attacks on the boot-state summary, reproduced on the real vectors (or on
// synthetic logs where a real one cannot show the shape), each asserting the fixed behaviour:
// the replay still matches the "quoted" registers, yet the forged facts are not reported.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  bootState,
  checkDigests,
  compareReplay,
  decodeEvent,
  describeEvent,
  detectEventLogKind,
  grubCommandLineArgs,
  parseEventLog,
  replayEventLog,
  startupLocality,
  EV,
  type EventLog,
} from '../../../src/evidence/eventlog/index.js';
import { CofferError } from '../../../src/errors.js';
import { GLOBAL, H, SECURITY_DB, cryptoAgileLog, event2, eventlog, rewriteLog, specIdEvent, u16, u32, variableData, vector } from './build.js';

function expectCoffer(fn: () => unknown, code: string): CofferError {
  let caught: unknown;
  try {
    fn();
  } catch (e) {
    caught = e;
  }
  assert.ok(caught instanceof CofferError, `expected CofferError ${code}, got ${String(caught)}`);
  assert.equal(caught.code, code, caught.message);
  return caught;
}

/** What a quote taken after the attack would show: the log's own replay, every bank. */
function quotedNow(log: EventLog): { pcrs: Record<string, Record<number, Buffer>> } {
  return { pcrs: replayEventLog(log).pcrs };
}

const codes = (st: { flags: { code: string }[] }) => st.flags.map((f) => f.code);
const COREOS = 'go-attestation/coreos_36_shielded_vm_no_secure_boot_eventlog';
const COS113 = 'ccel/go-eventlog/cos-113-intel-tdx.bin';
const expectedRtmrs = (JSON.parse(eventlog('ccel/expected-rtmrs.json').toString('utf8')) as Record<string, Record<string, string>>)['go-eventlog/cos-113-intel-tdx.bin'] as Record<string, string>;
const RTMRS = { 0: expectedRtmrs.rtmr0 as string, 1: expectedRtmrs.rtmr1 as string, 2: expectedRtmrs.rtmr2 as string, 3: expectedRtmrs.rtmr3 as string };

describe('H1: the kernel command line comes from the measured linux command, not from GRUB labels', () => {
  const bytes = eventlog(COS113);
  const log0 = parseEventLog(bytes, { kind: 'ccel' });
  const text = (seq: number) => log0.events[seq]?.data.toString('latin1') ?? '';

  test('the clean COS 113 CCEL: the linux command (event 39) and kernel_cmdline (event 41) agree; the kernel_cmdline form is reported', () => {
    assert.match(text(39), /^grub_cmd: linux \/syslinux\/vmlinuz\.A /);
    assert.match(text(41), /^kernel_cmdline: /);
    const st = bootState(log0, { expected: { rtmrs: RTMRS } });
    assert.equal(st.replay?.ok, true);
    assert.equal(st.kernelCommandLine?.event, 41);
    assert.equal(st.kernelCommandLine?.text, text(41).slice('kernel_cmdline: '.length).replace(/\0$/, ''));
    assert.ok(st.notVerified.some((n) => /GRUB's labels .* are not measured/.test(n)));
    // GRUB's quoting of the dm-mod.create argument is undone for the comparison.
    assert.equal(grubCommandLineArgs(st.kernelCommandLine?.text ?? ''), text(39).slice('grub_cmd: linux '.length).replace(/\0$/, ''));
  });

  test('exp7: relabel the real kernel_cmdline as grub_cmd and a menuentry as kernel_cmdline: RTMRs still match, but no command line is reported and the mismatch is flagged', () => {
    const forged = rewriteLog(bytes, log0, (e) => {
      if (e.seq === 41) return { data: Buffer.concat([Buffer.from('grub_cmd: '), e.data.subarray('kernel_cmdline: '.length)]) };
      if (e.seq === 37) return { data: Buffer.concat([Buffer.from('kernel_cmdline: '), e.data.subarray('grub_cmd: '.length)]) };
      return undefined;
    });
    const log = parseEventLog(forged, { kind: 'ccel' });
    const st = bootState(log, { expected: { rtmrs: RTMRS } });
    assert.equal(st.replay?.ok, true, 'the relabelled log replays to the TD quote’s RTMRs');
    assert.equal(st.kernelCommandLine, undefined);
    const mm = st.flags.find((f) => f.code === 'EVENTLOG_CMDLINE_MISMATCH');
    assert.equal(mm?.event, 37);
  });

  test('hiding the kernel_cmdline event (relabelled grub_cmd) still yields the linux command’s arguments', () => {
    const forged = rewriteLog(bytes, log0, (e) => (e.seq === 41 ? { data: Buffer.concat([Buffer.from('grub_cmd: '), e.data.subarray('kernel_cmdline: '.length)]) } : undefined));
    const st = bootState(parseEventLog(forged, { kind: 'ccel' }), { expected: { rtmrs: RTMRS } });
    assert.equal(st.replay?.ok, true);
    assert.equal(st.kernelCommandLine?.event, 39);
    assert.equal(st.kernelCommandLine?.text, text(39).slice('grub_cmd: linux '.length).replace(/\0$/, ''));
    assert.deepEqual(codes(st), []);
  });

  test('the linux command relabelled as kernel_cmdline is still the linux command (the word is measured, the label is not)', () => {
    const forged = rewriteLog(bytes, log0, (e) => (e.seq === 39 ? { data: Buffer.concat([Buffer.from('kernel_cmdline: '), e.data.subarray('grub_cmd: '.length)]) } : undefined));
    const st = bootState(parseEventLog(forged, { kind: 'ccel' }), { expected: { rtmrs: RTMRS } });
    assert.equal(st.kernelCommandLine?.event, 41);
    assert.deepEqual(codes(st), []);
  });

  test('a second measured linux command (appended and extended after boot) → no command line, EVENTLOG_MULTIPLE_LINUX_COMMANDS', () => {
    const forged = rewriteLog(bytes, log0, () => undefined, [{ pcr: 3, type: EV.IPL, data: Buffer.from('grub_cmd: linux /evil root=/dev/sda1\0'), digests: { sha384: H('sha384', 'linux /evil root=/dev/sda1') } }]);
    const log = parseEventLog(forged, { kind: 'ccel' });
    const st = bootState(log, { expected: { rtmrs: Object.fromEntries(Object.entries(replayEventLog(log).rtmrs ?? {}).map(([k, v]) => [k, v.toString('hex')])) } });
    assert.equal(st.replay?.ok, true);
    assert.equal(st.kernelCommandLine, undefined);
    assert.ok(codes(st).includes('EVENTLOG_MULTIPLE_LINUX_COMMANDS'));
  });

  test('RHEL 8’s older labels ("grub_cmd linux", "grub_kernel_cmdline") and Ubuntu’s agree with their linux command', () => {
    const rhel = bootState(parseEventLog(eventlog('go-eventlog/rhel8-uefi.bin')));
    assert.equal(rhel.kernelCommandLine?.source, 'grub');
    assert.equal(rhel.kernelCommandLine?.event, 78);
    const u = bootState(parseEventLog(eventlog('go-eventlog/ubuntu-1804-amd-sev.bin')));
    assert.equal(u.kernelCommandLine?.text, '/boot/vmlinuz-5.4.0-1046-gcp root=LABEL=cloudimg-rootfs ro console=ttyS0');
  });

  test('grubCommandLineArgs undoes grub_create_loader_cmdline’s quoting and escapes', () => {
    assert.equal(grubCommandLineArgs('/vmlinuz ro "dm=1 vroot none" a\\"b'), '/vmlinuz ro dm=1 vroot none a"b');
    assert.equal(grubCommandLineArgs('a  b'), 'a b');
  });
});

describe('H2: Secure Boot variables and the command line are not "last one wins"', () => {
  const bytes = eventlog(COREOS);
  const log0 = parseEventLog(bytes);
  const sbOn = variableData(GLOBAL, 'SecureBoot', Buffer.from([1]));

  test('the clean CoreOS log: Secure Boot off (event 3), GRUB command line, no flags', () => {
    const st = bootState(log0, { expected: quotedNow(log0) });
    assert.deepEqual(st.secureBoot, { enabled: false, event: 3 });
    assert.match(st.kernelCommandLine?.text ?? '', /^\(hd0,gpt3\)\/ostree\/fedora-coreos-/);
    assert.deepEqual(codes(st), []);
  });

  test('exp1: root appends SecureBoot=1 to PCR 7 and a kernel_cmdline to PCR 8 after boot: the quote matches, but Secure Boot is conflicting and the command line is not reported', () => {
    const forged = rewriteLog(bytes, log0, () => undefined, [
      { pcr: 7, type: EV.EFI_VARIABLE_DRIVER_CONFIG, data: sbOn },
      { pcr: 8, type: EV.IPL, data: Buffer.from('kernel_cmdline: root=/dev/evil verity=off\0'), digests: { sha1: H('sha1', 'root=/dev/evil verity=off'), sha256: H('sha256', 'root=/dev/evil verity=off'), sha384: H('sha384', 'root=/dev/evil verity=off') } },
    ]);
    const log = parseEventLog(forged);
    const st = bootState(log, { expected: quotedNow(log) });
    assert.equal(st.replay?.ok, true);
    assert.equal(st.secureBoot, undefined);
    assert.equal(st.kernelCommandLine, undefined);
    const c = codes(st);
    for (const code of ['EVENTLOG_VARIABLE_DUPLICATE', 'EVENTLOG_VARIABLE_AFTER_SEPARATOR', 'EVENTLOG_EVENT_AFTER_EXIT_BOOT_SERVICES', 'EVENTLOG_CMDLINE_MISMATCH']) assert.ok(c.includes(code), code);
  });

  test('exp2: the real SecureBoot=0 relabelled EV_EFI_ACTION and kernel_cmdline relabelled grub_cmd, forged copies appended: nothing forged is reported', () => {
    const forged = rewriteLog(
      bytes,
      log0,
      (e) => {
        const d = decodeEvent(e as never);
        if (e.type === EV.EFI_VARIABLE_DRIVER_CONFIG && d.kind === 'variable' && d.name === 'SecureBoot') return { type: EV.EFI_ACTION };
        if (e.type === EV.IPL && e.data.subarray(0, 16).toString() === 'kernel_cmdline: ') return { data: Buffer.concat([Buffer.from('grub_cmd: '), e.data.subarray(16)]) };
        return undefined;
      },
      [
        { pcr: 7, type: EV.EFI_VARIABLE_DRIVER_CONFIG, data: sbOn },
        { pcr: 8, type: EV.IPL, data: Buffer.from('kernel_cmdline: root=/dev/evil verity=off\0'), digests: { sha1: H('sha1', 'root=/dev/evil verity=off\0'), sha256: H('sha256', 'root=/dev/evil verity=off\0'), sha384: H('sha384', 'root=/dev/evil verity=off\0') } },
      ],
    );
    const log = parseEventLog(forged);
    const st = bootState(log, { expected: quotedNow(log) });
    assert.equal(st.replay?.ok, true);
    assert.equal(st.secureBoot, undefined, 'a SecureBoot measured only after the separator is not reported');
    assert.equal(st.kernelCommandLine, undefined);
    assert.ok(codes(st).includes('EVENTLOG_VARIABLE_AFTER_SEPARATOR'));
    assert.ok(codes(st).includes('EVENTLOG_CMDLINE_MISMATCH'));
  });

  test('synthetic: a duplicate before the separator (even agreeing), a wrong vendor GUID, db under EFI_GLOBAL_VARIABLE → undefined and flagged', () => {
    const seps = [0, 1, 2, 3, 4, 5, 6, 7].map((pcr) => ({ pcr, type: EV.SEPARATOR, data: Buffer.alloc(4) }));
    const sb = (guid: string, v: number) => ({ pcr: 7, type: EV.EFI_VARIABLE_DRIVER_CONFIG, data: variableData(guid, 'SecureBoot', Buffer.from([v])) });
    const banks = ['sha256'];
    const once = bootState(parseEventLog(cryptoAgileLog(banks, [sb(GLOBAL, 1), ...seps])));
    assert.deepEqual(once.secureBoot, { enabled: true, event: 1 });
    const twice = bootState(parseEventLog(cryptoAgileLog(banks, [sb(GLOBAL, 1), sb(GLOBAL, 1), ...seps])));
    assert.equal(twice.secureBoot, undefined);
    assert.ok(codes(twice).includes('EVENTLOG_VARIABLE_DUPLICATE'));
    const guid = bootState(parseEventLog(cryptoAgileLog(banks, [sb(SECURITY_DB, 1), ...seps])));
    assert.equal(guid.secureBoot, undefined);
    assert.ok(codes(guid).includes('EVENTLOG_VARIABLE_WRONG_GUID'));
    const dbWrong = bootState(parseEventLog(cryptoAgileLog(banks, [{ pcr: 7, type: EV.EFI_VARIABLE_DRIVER_CONFIG, data: variableData(GLOBAL, 'db', Buffer.alloc(0)) }, ...seps])));
    assert.equal(dbWrong.databases.db, undefined);
    assert.ok(codes(dbWrong).includes('EVENTLOG_VARIABLE_WRONG_GUID'));
    const dbRight = bootState(parseEventLog(cryptoAgileLog(banks, [{ pcr: 7, type: EV.EFI_VARIABLE_DRIVER_CONFIG, data: variableData(SECURITY_DB, 'db', Buffer.alloc(0)) }, ...seps])));
    assert.deepEqual(dbRight.databases.db, { event: 1, certificates: [], hashes: [], other: 0 });
  });

  test('two different command lines (GRUB and systemd-stub) → none reported', () => {
    const banks = ['sha256'];
    const stub = Buffer.from('console=ttyS0\0', 'utf16le');
    const log = parseEventLog(cryptoAgileLog(banks, [
      { pcr: 8, type: EV.IPL, data: Buffer.from('grub_cmd: linux /vmlinuz ro\0'), digests: { sha256: H('sha256', 'linux /vmlinuz ro') } },
      { pcr: 12, type: EV.IPL, data: stub },
    ]));
    const st = bootState(log);
    assert.equal(st.kernelCommandLine, undefined);
    assert.ok(codes(st).includes('EVENTLOG_MULTIPLE_CMDLINES'));
  });
});

describe('M1: a log with no bank this verifier can hash checks nothing', () => {
  test('exp3: an SM3-only log with made-up digests: every event unverified, no Secure Boot, no command line, no ExitBootServices; flagged', () => {
    const spec = specIdEvent([], { algs: [[0x0012, 32]] });
    const ev = (pcr: number, type: number, data: Buffer) => Buffer.concat([u32(pcr), u32(type), u32(1), u16(0x12), Buffer.alloc(32, 0xaa), u32(data.length), data]);
    const events = [ev(7, EV.EFI_VARIABLE_DRIVER_CONFIG, variableData(GLOBAL, 'SecureBoot', Buffer.from([1])))];
    for (let p = 0; p < 8; p++) events.push(ev(p, EV.SEPARATOR, Buffer.alloc(4)));
    events.push(ev(5, EV.EFI_ACTION, Buffer.from('Exit Boot Services Invocation')));
    events.push(ev(8, EV.IPL, Buffer.from('grub_cmd: linux anything-at-all')));
    const log = parseEventLog(Buffer.concat([spec, ...events]));
    const r = checkDigests(log);
    assert.equal(r.verified, 0);
    assert.equal(r.mismatched, 0);
    assert.equal(r.checks.filter((c) => c.rule === 'must' || c.rule === 'may').every((c) => c.status === 'unverified' && /no bank/.test(c.reason ?? '')), true);
    const st = bootState(log);
    assert.equal(st.secureBoot, undefined);
    assert.equal(st.kernelCommandLine, undefined);
    assert.equal(st.exitBootServices.invoked, false);
    assert.ok(codes(st).includes('EVENTLOG_NO_REPLAYABLE_BANK'));
    assert.ok(st.notVerified.some((n) => /no bank this verifier can hash/.test(n)));
  });
});

describe('M2: boot application digests only from banks the quote covered', () => {
  const dir = 'tpm-quote/gce-shielded-vm-cos85/gce-cos-85-nonce9009';
  const ex = JSON.parse(vector(`${dir}/extracted.json`).toString('utf8')) as { quotes: { bank: string; pcrs: Record<string, string> }[] };
  const quoted = (bank: string) => ex.quotes.find((q) => q.bank === bank)?.pcrs ?? {};

  test('exp6: the sha256 digest of the first application overwritten; only the SHA-1 quote given → only SHA-1 digests reported, trust noted as SHA-1 only', () => {
    const buf = Buffer.from(vector(`${dir}/event_log.bin`));
    const log0 = parseEventLog(buf);
    const app = log0.events.find((e) => e.type === EV.EFI_BOOT_SERVICES_APPLICATION);
    assert.ok(app);
    let off = app.offset + 12;
    for (const a of log0.algorithms) {
      off += 2;
      if (a.name === 'sha256') buf.fill(0x42, off, off + 32);
      off += a.size;
    }
    const st = bootState(parseEventLog(buf), { expected: { pcrs: { sha1: quoted('sha1') } } });
    assert.ok(st.bootApplications.length >= 2);
    for (const a of st.bootApplications) assert.deepEqual(Object.keys(a.digests), ['sha1']);
    assert.equal(st.bootApplications[0]?.digests.sha1, app.digests.sha1?.toString('hex'));
    assert.ok(!JSON.stringify(st.bootApplications).includes('4242424242'));
    assert.ok(st.notVerified.some((n) => /trust rests on SHA-1 only/.test(n) && /PCR [0-9, ]*\b4\b/.test(n)));
  });

  test('the unmodified log against all three quoted banks: every bank’s digests, no SHA-1-only note', () => {
    const log = parseEventLog(vector(`${dir}/event_log.bin`));
    const st = bootState(log, { expected: { pcrs: { sha1: quoted('sha1'), sha256: quoted('sha256'), sha384: quoted('sha384') } } });
    assert.deepEqual(Object.keys(st.bootApplications[0]?.digests ?? {}), ['sha1', 'sha256', 'sha384']);
    assert.ok(!st.notVerified.some((n) => /SHA-1 only/.test(n)));
  });
});

describe('M4: the kind is the caller’s, never guessed from the banks', () => {
  const spec384 = specIdEvent(['sha384']);
  const ev = (pcr: number, type: number, data: Buffer) => event2(['sha384'], { pcr, type, data });

  test('exp4: a SHA-384-only TPM log is a TPM log by default (PCR 7 allowed, PCR 0 extended normally)', () => {
    const bytes = Buffer.concat([spec384, ev(0, EV.S_CRTM_VERSION, Buffer.from('crtm')), ev(4, EV.SEPARATOR, Buffer.alloc(4)), ev(7, EV.SEPARATOR, Buffer.alloc(4))]);
    const log = parseEventLog(bytes);
    assert.equal(log.kind, 'tpm');
    const r = replayEventLog(log);
    assert.deepEqual(Object.keys(r.pcrs.sha384 ?? {}).map(Number), [0, 4, 7]);
    assert.equal(r.rtmrs, undefined);
    assert.equal(detectEventLogKind(bytes), undefined, 'SHA-384 only with the header at index 0: ambiguous');
  });

  test('detectEventLogKind: TDVF CCELs (header at MR 1) → ccel; TPM logs → tpm; td-shim’s CCEL (header at 0) → ambiguous', () => {
    assert.equal(detectEventLogKind(eventlog(COS113)), 'ccel');
    assert.equal(detectEventLogKind(eventlog('ccel/trustee/CCEL_data_grub')), 'ccel');
    assert.equal(detectEventLogKind(eventlog('go-eventlog/rhel8-uefi.bin')), 'tpm');
    assert.equal(detectEventLogKind(eventlog('go-eventlog/debian-10.bin')), 'tpm');
    assert.equal(detectEventLogKind(eventlog('ccel/trustee/CCEL_data')), undefined);
  });

  test('CCEL mode refuses an extended event at MR 0 (MRTD) instead of skipping it', () => {
    const bytes = Buffer.concat([spec384, ev(0, EV.EFI_ACTION, Buffer.from('x'))]);
    expectCoffer(() => parseEventLog(bytes, { kind: 'ccel' }), 'EVENTLOG_BAD_EVENT');
    // EV_NO_ACTION at MR 0 (td-shim's header) stays fine.
    assert.equal(parseEventLog(eventlog('ccel/trustee/CCEL_data'), { kind: 'ccel' }).kind, 'ccel');
  });
});

describe('M5: authorities are "used", not "verified which application"', () => {
  test('SbatLevel and MokListTrusted (COS 113) are not authorities; an authority after ExitBootServices is ignored', () => {
    const cos = bootState(parseEventLog(eventlog(COS113), { kind: 'ccel' }));
    assert.deepEqual(cos.authorities, []);
    const bytes = eventlog('go-eventlog/rhel8-uefi.bin');
    const log0 = parseEventLog(bytes);
    const auth = log0.events.find((e) => e.type === EV.EFI_VARIABLE_AUTHORITY && e.register === 7 && e.seq > 20);
    assert.ok(auth);
    const base = bootState(log0);
    assert.deepEqual(base.authorities.map((a) => a.subject), ['Microsoft Corporation UEFI CA 2011', 'Red Hat Secure Boot CA 5']);
    assert.ok(base.notVerified.some((n) => /order/.test(n) && /not authenticated/.test(n)));
    const late = parseEventLog(rewriteLog(bytes, log0, () => undefined, [{ pcr: 7, type: EV.EFI_VARIABLE_AUTHORITY, data: auth.data }]));
    const st = bootState(late);
    assert.deepEqual(st.authorities.map((a) => a.event), base.authorities.map((a) => a.event));
    assert.ok(codes(st).includes('EVENTLOG_EVENT_AFTER_EXIT_BOOT_SERVICES'));
  });
});

describe('L4-L6: StartupLocality, EV_NO_ACTION digests, separators, SecureBoot values', () => {
  const banks = ['sha1', 'sha256'];
  const locality = (v: number, pcr = 0) => ({ pcr, type: EV.NO_ACTION, data: Buffer.concat([Buffer.from('StartupLocality\0', 'latin1'), Buffer.from([v])]), digests: { sha1: Buffer.alloc(20), sha256: Buffer.alloc(32) } });
  const crtm = { pcr: 0, type: EV.S_CRTM_VERSION, data: Buffer.from('v1') };

  test('StartupLocality: once, in PCR 0, before the first PCR 0 extend, value 0/3/4 — otherwise the replay refuses and the summary flags', () => {
    assert.equal(startupLocality(parseEventLog(cryptoAgileLog(banks, [locality(3), crtm]))), 3);
    assert.equal(startupLocality(parseEventLog(cryptoAgileLog(banks, [locality(4), crtm]))), 4);
    for (const bad of [[locality(3), locality(3), crtm], [crtm, locality(3)], [locality(2), crtm], [locality(3, 1), crtm]]) {
      const log = parseEventLog(cryptoAgileLog(banks, bad));
      expectCoffer(() => replayEventLog(log), 'EVENTLOG_BAD_STARTUP_LOCALITY');
      expectCoffer(() => compareReplay(log, { pcrs: {} }, { pcrs: { sha1: { 0: '00'.repeat(20) } } }), 'EVENTLOG_BAD_STARTUP_LOCALITY');
      assert.ok(codes(bootState(log)).includes('EVENTLOG_BAD_STARTUP_LOCALITY'));
    }
  });

  test('an EV_NO_ACTION with a non-zero digest and a separator whose data is not 4 bytes are flagged', () => {
    const noAction = { pcr: 0, type: EV.NO_ACTION, data: Buffer.from('Something\0'), digests: { sha1: H('sha1', 'x'), sha256: Buffer.alloc(32) } };
    const sep5 = { pcr: 4, type: EV.SEPARATOR, data: Buffer.alloc(5) };
    const st = bootState(parseEventLog(cryptoAgileLog(banks, [noAction, sep5])));
    assert.equal(st.flags.find((f) => f.code === 'EVENTLOG_NO_ACTION_DIGEST')?.event, 1);
    assert.equal(st.flags.find((f) => f.code === 'EVENTLOG_SEPARATOR_MALFORMED')?.event, 2);
    // The real logs' EV_NO_ACTION events (Spec ID, StartupLocality, SP800-155) carry zero digests.
    for (const f of ['go-tpm-tools/eventlogwithsp800155.bin', 'go-eventlog/rhel8-uefi.bin', 'go-attestation/short_no_action_eventlog']) {
      assert.ok(!codes(bootState(parseEventLog(eventlog(f)))).includes('EVENTLOG_NO_ACTION_DIGEST'), f);
    }
  });

  test('SecureBoot = 2 is flagged and not shown as off', () => {
    const seps = [0, 1, 2, 3, 4, 5, 6, 7].map((pcr) => ({ pcr, type: EV.SEPARATOR, data: Buffer.alloc(4) }));
    const log = parseEventLog(cryptoAgileLog(banks, [{ pcr: 7, type: EV.EFI_VARIABLE_DRIVER_CONFIG, data: variableData(GLOBAL, 'SecureBoot', Buffer.from([2])) }, ...seps]));
    const st = bootState(log);
    assert.equal(st.secureBoot, undefined);
    assert.match(st.flags.find((f) => f.code === 'EVENTLOG_BAD_SECURE_BOOT_VARIABLE')?.message ?? '', /neither 0 \(off\) nor 1 \(on\)/);
    const d = describeEvent(decodeEvent(log.events[1] as never));
    assert.match(d, /INVALID/);
    assert.doesNotMatch(d, /off/);
  });
});
