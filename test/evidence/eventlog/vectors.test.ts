// Every real event log in shared/vectors replays to the register values its origin repository
// (or the matching quote) gives; decoded details match trustee's independent parse; the boot
// state of the GCE, Ubuntu and RHEL logs shows what the logs really hold; the broken logs are
// flagged for their defect.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import {
  bootState,
  checkDigests,
  compareReplay,
  decodeEvent,
  parseCcelTable,
  parseEventLog,
  replayEventLog,
  EV,
  type EventLog,
} from '../../../src/evidence/eventlog/index.js';
import { CofferError } from '../../../src/errors.js';
import { EL, H, eventlog, extend, vector } from './build.js';

type Banks = Record<string, Record<string, string>>;
const expectedPcrs = JSON.parse(eventlog('expected-pcrs.json').toString('utf8')) as Record<string, { pcrs: Banks; expected_efi_app_digests?: Record<string, string[]> | string[] }>;
const expectedRtmrs = JSON.parse(eventlog('ccel/expected-rtmrs.json').toString('utf8')) as Record<string, Record<string, string>>;
/** A CCEL is read as one: the kind is the caller's to say, never guessed. */
const CCEL = { kind: 'ccel' } as const;

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

/** PCRs the log extends must equal the expected value; the others are left to the caller. */
function assertReplay(log: EventLog, pcrs: Banks, skip: (bank: string, idx: number) => boolean = () => false): number {
  const r = replayEventLog(log);
  let compared = 0;
  for (const [bank, regs] of Object.entries(pcrs)) {
    if (!log.algorithms.some((a) => a.name === bank)) continue;
    for (const [k, want] of Object.entries(regs)) {
      const got = r.pcrs[bank]?.[Number(k)];
      if (!got || skip(bank, Number(k))) continue;
      assert.equal(got.toString('hex'), want, `${bank} PCR ${k}`);
      compared++;
    }
  }
  return compared;
}

describe('TPM event logs replay to the expected PCRs', () => {
  const clean = Object.keys(expectedPcrs).filter((f) => f !== 'go-attestation/ebs_event_missing_eventlog');
  for (const file of clean) {
    test(file, () => {
      const log = parseEventLog(eventlog(file));
      const exp = expectedPcrs[file]?.pcrs as Banks;
      const r = replayEventLog(log);
      const compared = assertReplay(log, exp);
      // Every PCR the log extends in a listed bank is listed and compared.
      // Every PCR the log extends in a listed bank is listed and compared (go-attestation's
      // option_rom test lists only PCRs 0-7; the log also extends Windows' 12-14).
      const extended = Object.entries(r.pcrs).filter(([b]) => exp[b]).reduce((n, [, regs]) => n + Object.keys(regs).filter((k) => file !== 'go-attestation/option_rom_eventlog' || Number(k) <= 7).length, 0);
      assert.equal(compared, extended, 'every extended PCR of a listed bank has an expected value');
      assert.ok(compared >= 4, `compared ${compared}`);
      // The same through compareReplay: exactly the extended registers match.
      const only: Banks = Object.fromEntries(Object.entries(exp).filter(([b]) => r.pcrs[b]).map(([b, regs]) => [b, Object.fromEntries(Object.entries(regs).filter(([k]) => r.pcrs[b]?.[Number(k)]))]));
      const c = compareReplay(log, r, { pcrs: only });
      assert.equal(c.ok, true);
      assert.equal(c.matched.length, compared);
    });
  }

  test('sb_cert_eventlog: registers the firmware log does not touch keep their reset values (17-22 are DRTM 0xFF, 10 is IMA)', () => {
    const log = parseEventLog(eventlog('go-attestation/sb_cert_eventlog'));
    const r = replayEventLog(log);
    assert.deepEqual(Object.keys(r.pcrs.sha256 ?? {}).map(Number), [0, 4, 5, 7]);
    const exp = expectedPcrs['go-attestation/sb_cert_eventlog']?.pcrs as Banks;
    for (const k of [1, 2, 3, 6, 8, 9]) assert.equal(exp.sha256?.[String(k)], '0'.repeat(64));
    assert.equal(exp.sha256?.['17'], 'f'.repeat(64));
  });

  test('the logs with no listed values parse: crypto_agile (SHA-256 only), coreos_36, short_no_action (49 bytes, one StartupLocality event)', () => {
    const ca = parseEventLog(eventlog('go-attestation/crypto_agile_eventlog'));
    assert.deepEqual(ca.algorithms.map((a) => a.name), ['sha256']);
    assert.equal(ca.format, 'crypto-agile');
    assert.equal(ca.events.length, 27);
    const co = parseEventLog(eventlog('go-attestation/coreos_36_shielded_vm_no_secure_boot_eventlog'));
    assert.deepEqual(co.algorithms.map((a) => a.name), ['sha1', 'sha256', 'sha384']);
    assert.equal(co.events.length, 76);
    const short = parseEventLog(eventlog('go-attestation/short_no_action_eventlog'));
    assert.equal(short.size, 49);
    assert.equal(short.format, 'sha1');
    assert.equal(short.events.length, 1);
    // The only event says TPM2_Startup came from locality 3: PCR 0 starts at 00..03.
    assert.deepEqual(decodeEvent(short.events[0] as never), { kind: 'startup-locality', locality: 3 });
    assert.deepEqual(replayEventLog(short).pcrs, { sha1: {} });
    assert.equal(compareReplay(short, replayEventLog(short), { pcrs: { sha1: { 0: `${'00'.repeat(19)}03` } } }).ok, true);
  });

  test('debian-10 is a legacy SHA-1 log; option_rom holds Windows WBCL EV_NO_ACTION under PCR 0xFFFFFFFF', () => {
    const deb = parseEventLog(eventlog('go-eventlog/debian-10.bin'));
    assert.equal(deb.format, 'sha1');
    assert.equal(deb.specId, undefined);
    const rom = parseEventLog(eventlog('go-attestation/option_rom_eventlog'));
    const last = rom.events[rom.events.length - 1];
    assert.equal(last?.register, 0xffffffff);
    assert.equal(last?.type, EV.NO_ACTION);
  });

  test('the GCE quote folders: event_log.bin replays to the PCRs of all three quoted banks', () => {
    const dir = join(EL, '../tpm-quote/gce-shielded-vm-cos85');
    const folders = readdirSync(dir).filter((n) => !n.endsWith('.pb'));
    assert.equal(folders.length, 2);
    for (const f of folders) {
      const ex = JSON.parse(vector(`tpm-quote/gce-shielded-vm-cos85/${f}/extracted.json`).toString('utf8')) as { quotes: { bank: string; pcrs: Record<string, string> }[] };
      const log = parseEventLog(vector(`tpm-quote/gce-shielded-vm-cos85/${f}/event_log.bin`));
      const pcrs: Banks = Object.fromEntries(ex.quotes.map((q) => [q.bank, q.pcrs]));
      assert.deepEqual(Object.keys(pcrs), ['sha1', 'sha256', 'sha384']);
      // PCR 10 is IMA, outside the firmware log; every PCR the log extends matches the quote.
      const n = assertReplay(log, pcrs);
      assert.equal(n, 30);
      const st = bootState(log, { expected: { pcrs } });
      assert.equal(st.flags.find((x) => x.code === 'EVENTLOG_REPLAY_MISMATCH')?.message.includes('PCR 10'), true);
      assert.equal(st.secureBoot?.enabled, true);
    }
  });
});

describe('deliberately broken logs are flagged', () => {
  test('ebs_event_missing: PCR 5 does not replay; the divergence names the register and its last event; adding the two EBS events explains the TPM value', () => {
    const file = 'go-attestation/ebs_event_missing_eventlog';
    const log = parseEventLog(eventlog(file));
    const r = replayEventLog(log);
    assert.equal(r.pcrs.sha1?.[5]?.toString('hex'), 'e5781a2fd49c23a33b16bf0ba5f10efa1aa5d43c');
    const want = '31245808d6d35849bc394f6343f2b3ff908ed5e3';
    const c = compareReplay(log, r, { pcrs: { sha1: { 5: want } } });
    assert.equal(c.ok, false);
    const d = c.diverged[0];
    assert.equal(d?.bank, 'sha1');
    assert.equal(d?.register, 5);
    assert.equal(d?.expected, want);
    assert.equal(d?.found, 'e5781a2fd49c23a33b16bf0ba5f10efa1aa5d43c');
    const pcr5 = log.events.filter((e) => e.register === 5 && e.type !== EV.NO_ACTION);
    assert.equal(d?.lastEvent, pcr5[pcr5.length - 1]?.seq);
    assert.equal(d?.events, pcr5.length);
    // go-attestation's workaround, done by hand: the firmware extended but did not log the EBS actions.
    const fixed = extend('sha1', [H('sha1', 'Exit Boot Services Invocation'), H('sha1', 'Exit Boot Services Returned with Success')], r.pcrs.sha1?.[5]);
    assert.equal(fixed, want);
    const st = bootState(log);
    assert.ok(st.flags.some((x) => x.code === 'EVENTLOG_NO_EXIT_BOOT_SERVICES'));
    assert.equal(st.exitBootServices.invoked, false);
  });

  test('the duplicate-separator CCEL (padded and unpadded) is flagged EVENTLOG_SEPARATOR_DUPLICATE; the clean COS 113 CCEL is not', () => {
    for (const f of ['cos-113-intel-tdx-dupe-separator.bin', 'cos-113-intel-tdx-dupe-separator-unpadded.bin']) {
      const st = bootState(parseEventLog(eventlog(`ccel/go-eventlog/${f}`), CCEL));
      const dup = st.flags.find((x) => x.code === 'EVENTLOG_SEPARATOR_DUPLICATE');
      assert.ok(dup, f);
      assert.equal(dup.event, 16);
      assert.deepEqual(st.separators, [{ register: 1, events: [8, 16] }, { register: 2, events: [] }]);
      assert.ok(st.flags.some((x) => x.code === 'EVENTLOG_SEPARATOR_MISSING'));
    }
    const clean = bootState(parseEventLog(eventlog('ccel/go-eventlog/cos-113-intel-tdx.bin'), CCEL));
    assert.deepEqual(clean.flags, []);
    assert.deepEqual(clean.separators, [{ register: 1, events: [8] }, { register: 2, events: [16] }]);
  });

  test('arch-linux: SecureBoot variable with no data is flagged, Secure Boot state stays unknown', () => {
    const st = bootState(parseEventLog(eventlog('go-eventlog/arch-linux-workstation.bin')));
    assert.equal(st.secureBoot, undefined);
    assert.ok(st.flags.some((x) => x.code === 'EVENTLOG_BAD_SECURE_BOOT_VARIABLE'));
    assert.ok(st.notVerified.some((n) => n.startsWith('Secure Boot state')));
  });

  test('debian-10 (firmware does not measure ExitBootServices) and sb_cert (separators only in PCR 7) are flagged', () => {
    const deb = bootState(parseEventLog(eventlog('go-eventlog/debian-10.bin')));
    assert.deepEqual(deb.flags.map((f) => f.code), ['EVENTLOG_NO_EXIT_BOOT_SERVICES']);
    const sb = bootState(parseEventLog(eventlog('go-attestation/sb_cert_eventlog')));
    assert.deepEqual(sb.flags.filter((f) => f.code === 'EVENTLOG_SEPARATOR_MISSING').map((f) => f.message), [0, 1, 2, 3, 4, 5, 6].map((i) => `PCR ${i} has no separator`));
  });
});

describe('CCEL', () => {
  for (const [file, exp] of Object.entries(expectedRtmrs)) {
    test(`${file} replays to RTMR0-3`, () => {
      const log = parseEventLog(eventlog(`ccel/${file}`), CCEL);
      assert.equal(log.kind, 'ccel');
      assert.deepEqual(log.algorithms.map((a) => a.name), ['sha384']);
      const r = replayEventLog(log);
      for (let i = 0; i < 4; i++) assert.equal(r.rtmrs?.[i]?.toString('hex'), exp[`rtmr${i}`], `RTMR${i}`);
      assert.equal(compareReplay(log, r, { rtmrs: { 0: exp.rtmr0 as string, 1: exp.rtmr1 as string, 2: exp.rtmr2 as string, 3: exp.rtmr3 as string } }).ok, true);
    });
  }

  test('the COS 113 CCEL replays to the RTMRs of its TD quote (manifest values)', () => {
    const r = replayEventLog(parseEventLog(eventlog('ccel/go-eventlog/cos-113-intel-tdx.bin'), CCEL));
    assert.equal(r.rtmrs?.[0]?.toString('hex'), '3fa2f61f395b7f5feefb4ec2df61297f109ad8abcd6410c1b7df60f21f37b19297fc35e544039c7e1edece752afd17f6');
    assert.equal(r.rtmrs?.[2]?.toString('hex'), '4969684dc87381fc3b3134176c8d8806eaf0a901859f5f70cfae8d17714b46c10a8de219048c9fc09f11f381a6fbe7c1');
  });

  test('padding: 0xFF fill (go-eventlog) and 0x00 fill (td-shim) are recognised; refused with allowPadding false; unpadded == padded', () => {
    const padded = parseEventLog(eventlog('ccel/go-eventlog/cos-113-intel-tdx-dupe-separator.bin'), CCEL);
    assert.deepEqual(padded.padding, { byte: 0xff, length: 262144 - 18101 });
    const unpadded = parseEventLog(eventlog('ccel/go-eventlog/cos-113-intel-tdx-dupe-separator-unpadded.bin'), { ...CCEL, allowPadding: false });
    assert.equal(unpadded.padding, undefined);
    assert.deepEqual(unpadded.events, padded.events);
    assert.deepEqual(replayEventLog(unpadded), replayEventLog(padded));
    expectCoffer(() => parseEventLog(eventlog('ccel/go-eventlog/cos-113-intel-tdx-dupe-separator.bin'), { ...CCEL, allowPadding: false }), 'EVENTLOG_PADDING');
    const tdshim = parseEventLog(eventlog('ccel/trustee/CCEL_data'), CCEL);
    // The last event (td_payload_info) ends at 9822; its data itself ends in zeros, so the fill starts there.
    const last = tdshim.events[tdshim.events.length - 1];
    assert.equal((last?.offset ?? 0) + 8 + 4 + 2 + 48 + 4 + (last?.data.length ?? 0), 9822);
    assert.deepEqual(tdshim.padding, { byte: 0x00, length: 1048576 - 9822 });
    assert.equal(tdshim.specId?.vendorInfo.toString(), 'td-shim');
    // Fill that stops being fill is trailing garbage.
    const bad = Buffer.from(eventlog('ccel/go-eventlog/cos-113-intel-tdx.bin'));
    bad[bad.length - 1] = 0x41;
    expectCoffer(() => parseEventLog(bad, CCEL), 'EVENTLOG_BAD_EVENT');
  });

  test('the ACPI CCEL tables decode to the manifest values; a bad signature or length is refused', () => {
    const t = parseCcelTable(eventlog('ccel/go-eventlog/cos-113-intel-tdx.table.bin'));
    assert.equal(t.ccType, 2);
    assert.equal(t.ccTypeName, 'TDX');
    assert.equal(t.ccSubtype, 0);
    assert.equal(t.laml, 262144n);
    assert.equal(t.lasa, 0xbedbf000n);
    assert.equal(t.oemId, 'INTEL');
    assert.equal(t.oemTableId, 'EDK2');
    assert.equal(t.checksumValid, true);
    const o = parseCcelTable(eventlog('ccel/go-eventlog/CCEL.bin'));
    assert.equal(o.laml, 65536n);
    assert.equal(o.lasa, 0x7d649000n);
    assert.equal(o.ccType, 2);
    const sig = Buffer.from(eventlog('ccel/go-eventlog/CCEL.bin'));
    sig.write('ABCD', 0, 'latin1');
    expectCoffer(() => parseCcelTable(sig), 'CCEL_BAD_TABLE');
    const len = Buffer.from(eventlog('ccel/go-eventlog/CCEL.bin'));
    len.writeUInt32LE(48, 4);
    expectCoffer(() => parseCcelTable(len), 'CCEL_BAD_TABLE');
    expectCoffer(() => parseCcelTable(eventlog('ccel/go-eventlog/CCEL.bin').subarray(0, 48)), 'CCEL_BAD_TABLE');
    // The checksum is reported, not hidden.
    const ck = Buffer.from(eventlog('ccel/go-eventlog/CCEL.bin'));
    ck[9] = (ck[9] ?? 0) ^ 1;
    assert.equal(parseCcelTable(ck).checksumValid, false);
  });

  const TRUSTEE_TYPES: Record<string, number> = {
    EV_EFI_HANDOFF_TABLES2: EV.EFI_HANDOFF_TABLES2,
    EV_EFI_PLATFORM_FIRMWARE_BLOB2: EV.EFI_PLATFORM_FIRMWARE_BLOB2,
    EV_EFI_VARIABLE_DRIVER_CONFIG: EV.EFI_VARIABLE_DRIVER_CONFIG,
    EV_SEPARATOR: EV.SEPARATOR,
    EV_PLATFORM_CONFIG_FLAGS: EV.PLATFORM_CONFIG_FLAGS,
    EV_EFI_VARIABLE_BOOT: EV.EFI_VARIABLE_BOOT,
    EV_EFI_ACTION: EV.EFI_ACTION,
    EV_EFI_VARIABLE_AUTHORITY: EV.EFI_VARIABLE_AUTHORITY,
    EV_EFI_GPT_EVENT: EV.EFI_GPT_EVENT,
    EV_EFI_BOOT_SERVICES_APPLICATION: EV.EFI_BOOT_SERVICES_APPLICATION,
    EV_IPL: EV.IPL,
    EV_EVENT_TAG: EV.EVENT_TAG,
  };

  for (const name of ['CCEL_data', 'CCEL_data_ovmf', 'CCEL_data_grub']) {
    test(`${name}: every event agrees with trustee's parse (${name}_out.json): type, MR index, digest, data, decoded details`, () => {
      const want = (JSON.parse(eventlog(`ccel/trustee/${name}_out.json`).toString('utf8')) as { uefi_event_logs: { details: Record<string, unknown>; digest_matches_event: boolean; digests: { alg: string; digest: string }[]; event: string; index: number; type_name: string }[] }).uefi_event_logs;
      const log = parseEventLog(eventlog(`ccel/trustee/${name}`), CCEL);
      const events = log.events.slice(1); // trustee leaves out the Spec ID header
      assert.equal(events.length, want.length);
      const checks = checkDigests(log).checks;
      events.forEach((e, i) => {
        const w = want[i];
        assert.ok(w);
        assert.equal(e.typeName, w.type_name, `event ${e.seq}`);
        if (TRUSTEE_TYPES[w.type_name] !== undefined) assert.equal(e.type, TRUSTEE_TYPES[w.type_name]);
        assert.equal(e.register, w.index);
        assert.deepEqual(w.digests.map((d) => d.alg), ['SHA-384']);
        assert.equal(e.digests.sha384?.toString('hex'), w.digests[0]?.digest);
        assert.equal(e.data.toString('base64'), w.event);
        // Where trustee says the digest is H(data), so do we.
        if (w.digest_matches_event) assert.equal(checks[e.seq]?.status, 'verified', `event ${e.seq} ${w.type_name}`);
        const d = decodeEvent(e);
        const det = w.details;
        if (typeof det.unicode_name === 'string') {
          assert.ok(d.kind === 'variable' || d.kind === 'authority', `event ${e.seq} is a variable`);
          assert.equal(d.name, det.unicode_name);
          // trustee prints the GUID bytes in storage order; EFI GUIDs are mixed-endian.
          const raw = String(det.variable_name).replace(/-/g, '');
          const b = Buffer.from(raw, 'hex');
          const mixed = `${Buffer.from(b.subarray(0, 4)).reverse().toString('hex')}-${Buffer.from(b.subarray(4, 6)).reverse().toString('hex')}-${Buffer.from(b.subarray(6, 8)).reverse().toString('hex')}-${b.subarray(8, 10).toString('hex')}-${b.subarray(10).toString('hex')}`;
          assert.equal(d.guid, mixed);
          if (d.kind === 'variable') assert.equal(d.dataLength, det.variable_data_length);
        }
        if (Array.isArray(det.device_paths)) {
          assert.equal(d.kind, 'image-load');
          const file = (det.device_paths as string[]).find((p) => p.startsWith('File('));
          if (file && d.kind === 'image-load') assert.ok(d.image.path.endsWith(file), `${d.image.path} ends with ${file}`);
          if (d.kind === 'image-load' && det.device_paths.length > 0) assert.equal(d.image.devicePath.length, det.device_paths.length);
        }
        if (typeof det.string === 'string' && det.string !== '' && (e.type === EV.EFI_ACTION || e.type === EV.IPL || e.type === EV.EVENT_TAG || e.type === EV.EFI_PLATFORM_FIRMWARE_BLOB2 || e.type === EV.EFI_HANDOFF_TABLES2)) {
          const text = d.kind === 'string' ? d.text : d.kind === 'event-tag' ? d.description : d.kind === 'firmware-blob' ? d.description : d.kind === 'handoff-tables' ? d.description : undefined;
          assert.equal(text, det.string, `event ${e.seq}`);
        }
      });
    });
  }

  test('CCEL_data_grub decodes the Ubuntu OVMF Secure Boot keys and shim/grub chain', () => {
    const st = bootState(parseEventLog(eventlog('ccel/trustee/CCEL_data_grub'), CCEL));
    assert.equal(st.registerName, 'MR');
    assert.deepEqual(st.secureBoot, { enabled: true, event: 3 });
    assert.deepEqual(st.databases.PK?.certificates.map((c) => c.subject), ['Ubuntu OVMF Secure Boot (PK/KEK key)']);
    assert.deepEqual(st.databases.db?.certificates.map((c) => c.subject), ['Microsoft Windows Production PCA 2011', 'Microsoft Corporation UEFI CA 2011']);
    assert.deepEqual(st.bootApplications.map((a) => a.path.replace(/.*File\(/, 'File(')), ['File(\\EFI\\BOOT\\BOOTX64.EFI)', 'File(\\EFI\\BOOT\\fbx64.efi)', 'File(\\EFI\\ubuntu\\shimx64.efi)', 'File(\\EFI\\ubuntu\\grubx64.efi)', '(no device path)']);
    assert.deepEqual(st.bootApplications[0]?.authorities.map((a) => a.subject), ['Microsoft Corporation UEFI CA 2011']);
    assert.equal(st.exitBootServices.returned, 'success');
    // OVMF of that era put the ready-to-boot separator into MR 1 as well: flagged like go-eventlog's dupe vector.
    assert.ok(st.flags.some((f) => f.code === 'EVENTLOG_SEPARATOR_DUPLICATE'));
  });
});

describe('boot state of the GCE, Ubuntu and RHEL logs', () => {
  const MS_DB = ['Microsoft Corporation UEFI CA 2011', 'Microsoft Windows Production PCA 2011'];

  test('RHEL 8 (GCE Shielded VM): Secure Boot on, Microsoft db, shim → grub → kernel, Red Hat CA authority, grub kernel command line', () => {
    const st = bootState(parseEventLog(eventlog('go-eventlog/rhel8-uefi.bin')));
    assert.deepEqual(st.secureBoot, { enabled: true, event: 3 });
    assert.deepEqual(st.databases.db?.certificates.map((c) => c.subject), MS_DB);
    assert.deepEqual(st.databases.KEK?.certificates.map((c) => c.subject), ['Microsoft Corporation KEK CA 2011']);
    assert.deepEqual(st.databases.PK?.certificates.map((c) => c.subject), ['newpk']);
    assert.deepEqual(st.databases.dbx?.certificates.map((c) => c.subject), ['Canonical Ltd. Secure Boot Signing', 'Virtual UEFI SubCA', 'Debian Secure Boot Signer']);
    assert.equal(st.databases.dbx?.hashes.length, 183);
    // GUIDs are mixed-endian: GCE's firmware owns its db entries, Microsoft's GUID owns the dbx ones.
    assert.equal(st.databases.db?.certificates[0]?.owner, 'd281fad2-8d88-47a4-9792-5baa47bb1b89');
    assert.equal(st.databases.dbx?.certificates[0]?.owner, '77fa9abd-0359-4d32-bd60-28f4e78f784b');
    assert.deepEqual(st.authorities.map((a) => a.subject), ['Microsoft Corporation UEFI CA 2011', 'Red Hat Secure Boot CA 5']);
    const exp = expectedPcrs['go-eventlog/rhel8-uefi.bin']?.expected_efi_app_digests as Record<string, string[]>;
    for (const bank of ['sha1', 'sha256', 'sha384']) assert.deepEqual(st.bootApplications.map((a) => a.digests[bank]), exp[bank]);
    assert.ok(st.bootApplications[0]?.path.endsWith('File(\\EFI\\redhat\\shimx64.efi)'));
    assert.equal(st.bootApplications[1]?.path, 'File(\\EFI\\redhat\\grubx64.efi)');
    assert.deepEqual(st.bootApplications[2]?.authorities.map((a) => a.subject), ['Red Hat Secure Boot CA 5']);
    assert.match(st.kernelCommandLine?.text ?? '', /^\(hd0,gpt2\)\/boot\/vmlinuz-4\.18\.0-240\.22\.1\.el8_3\.x86_64 root=UUID=f3948fb4-cce7-4193-940a-c50052e93bf3 ro .*console=ttyS0,38400n8$/);
    assert.deepEqual(st.exitBootServices, { invoked: true, returned: 'success' });
    assert.deepEqual(st.flags, []);
    assert.equal(st.digests.mismatched, 0);
  });

  test('Ubuntu 18.04 and 21.04 (GCE): Secure Boot off, Microsoft db; 21.04’s SbatLevel "authority" is decoded but is not an authority', () => {
    for (const [f, dbxCerts, dbxHashes] of [['go-eventlog/ubuntu-1804-amd-sev.bin', [], 77], ['go-eventlog/ubuntu-2104-no-secure-boot.bin', ['Canonical Ltd. Secure Boot Signing', 'Virtual UEFI SubCA', 'Debian Secure Boot Signer'], 183]] as const) {
      const st = bootState(parseEventLog(eventlog(f)));
      assert.deepEqual(st.secureBoot?.enabled, false, f);
      assert.deepEqual(st.databases.db?.certificates.map((c) => c.subject), MS_DB);
      assert.deepEqual(st.databases.dbx?.certificates.map((c) => c.subject), dbxCerts);
      assert.equal(st.databases.dbx?.hashes.length, dbxHashes);
      const exp = expectedPcrs[f]?.expected_efi_app_digests as Record<string, string[]>;
      for (const bank of ['sha1', 'sha256', 'sha384']) assert.deepEqual(st.bootApplications.map((a) => a.digests[bank]), exp[bank], `${f} ${bank}`);
      assert.ok(st.bootApplications[0]?.path.endsWith('File(\\EFI\\ubuntu\\shimx64.efi)'));
      assert.deepEqual(st.flags, []);
    }
    const u = bootState(parseEventLog(eventlog('go-eventlog/ubuntu-1804-amd-sev.bin')));
    assert.equal(u.kernelCommandLine?.text, '/boot/vmlinuz-5.4.0-1046-gcp root=LABEL=cloudimg-rootfs ro console=ttyS0');
    const u21log = parseEventLog(eventlog('go-eventlog/ubuntu-2104-no-secure-boot.bin'));
    const u21 = bootState(u21log);
    // M5: shim measures SbatLevel as an EV_EFI_VARIABLE_AUTHORITY, but it names no key: decoded, not counted.
    const sbat = u21log.events.map((e) => decodeEvent(e)).find((d) => d.kind === 'authority' && d.name === 'SbatLevel');
    assert.ok(sbat?.kind === 'authority');
    assert.equal(sbat.authority.text, 'sbat,1,2021030218\\n');
    assert.deepEqual(u21.authorities, []);
  });

  test('GCE COS 85 (the quote vectors’ log too): Secure Boot on, Google’s own PK/KEK/db, dm-verity root hash on the command line', () => {
    for (const bytes of [eventlog('go-eventlog/cos-85-amd-sev.bin'), vector('tpm-quote/gce-shielded-vm-cos85/gce-cos-85-no-nonce/event_log.bin')]) {
      const st = bootState(parseEventLog(bytes));
      assert.deepEqual(st.secureBoot?.enabled, true);
      assert.deepEqual(st.databases.db?.certificates.map((c) => c.subject), ['UEFI DB Key v10']);
      assert.equal(st.databases.db?.certificates[0]?.subjectDn, 'C=US, ST=California, L=Mountain View, O=Google LLC., OU=Container Optimized OS, CN=UEFI DB Key v10');
      assert.deepEqual(st.databases.PK?.certificates.map((c) => c.subject), ['UEFI Platform Key v10']);
      assert.deepEqual(st.databases.KEK?.certificates.map((c) => c.subject), ['UEFI Key Exchange Key v10']);
      assert.deepEqual(st.databases.dbx?.certificates.map((c) => c.subject), ['UEFI DB Key v1', 'UEFI Key Exchange Key v1', 'UEFI DB Key v1', 'UEFI Key Exchange Key v1']);
      assert.deepEqual(st.bootApplications[0]?.authorities.map((a) => a.subject), ['UEFI DB Key v10']);
      assert.match(st.kernelCommandLine?.text ?? '', /root_hexdigest=795872ee03859c10dfcc4d67b4b96c85094b340c2d8784783abc2fa12a6ed671/);
      assert.deepEqual(st.flags, []);
    }
    const exp = expectedPcrs['go-eventlog/cos-85-amd-sev.bin']?.expected_efi_app_digests as Record<string, string[]>;
    const st = bootState(parseEventLog(eventlog('go-eventlog/cos-85-amd-sev.bin')));
    for (const bank of ['sha1', 'sha256', 'sha384']) assert.deepEqual(st.bootApplications.map((a) => a.digests[bank]), exp[bank]);
  });

  test('debian-10 (legacy SHA-1): Secure Boot on, shim verified by the Microsoft UEFI CA, then the Debian Secure Boot CA', () => {
    const st = bootState(parseEventLog(eventlog('go-eventlog/debian-10.bin')));
    assert.equal(st.secureBoot?.enabled, true);
    assert.deepEqual(st.authorities.map((a) => a.subject), ['Microsoft Corporation UEFI CA 2011', 'Debian Secure Boot CA']);
    const exp = expectedPcrs['go-eventlog/debian-10.bin']?.expected_efi_app_digests as Record<string, string[]>;
    assert.deepEqual(st.bootApplications.map((a) => a.digests.sha1), exp.sha1);
  });

  test('sb_cert (go-attestation #157): the Canonical authority without owner GUID and with an extra byte still verifies and is counted', () => {
    const log = parseEventLog(eventlog('go-attestation/sb_cert_eventlog'));
    const checks = checkDigests(log).checks;
    assert.match(checks[12]?.convention ?? '', /without the last byte/);
    const st = bootState(log);
    assert.deepEqual(st.authorities.map((a) => a.subject), ['Microsoft Corporation UEFI CA 2011', 'Canonical Ltd. Master Certificate Authority', 'Canonical Ltd. Master Certificate Authority']);
    assert.deepEqual(st.databases.db?.certificates.map((c) => c.subject), ['Microsoft Corporation UEFI CA 2011', 'Microsoft Root Certificate Authority 2010', 'Microsoft Windows Production PCA 2011', 'Microsoft Corporation Third Party Marketplace Root']);
  });

  test('SP800-155 Event3 reference-manifest events decode (Google Compute Engine, RIM locators)', () => {
    const log = parseEventLog(eventlog('go-tpm-tools/eventlogwithsp800155.bin'));
    const sp = log.events.map((e) => decodeEvent(e)).filter((d) => d.kind === 'sp800-155');
    assert.equal(sp.length, 2);
    const [a, b] = sp;
    assert.ok(a?.kind === 'sp800-155' && b?.kind === 'sp800-155');
    assert.equal(a.version, 3);
    assert.equal(a.platformManufacturerId, 11129);
    assert.equal(a.platformManufacturer, 'Google, Inc.');
    assert.equal(a.platformModel, 'Google Compute Engine');
    assert.equal(a.firmwareVersion, '2.7');
    assert.equal(a.rimLocator?.type, 3);
    assert.match(a.rimLocator?.value ?? '', /:FirmwareRIM$/);
    assert.equal(b.rimLocator?.type, 1);
    assert.match(b.rimLocator?.value ?? '', /^https:\/\/storage\.googleapis\.com\/gce_tcb_integrity\/ovmf_x64_csm\//);
  });
});

describe('Spec ID and event-type coverage', () => {
  test('every real log: no event fails a must-check; every event type has a spec name', () => {
    const files = [...Object.keys(expectedPcrs), 'go-attestation/crypto_agile_eventlog', 'go-attestation/coreos_36_shielded_vm_no_secure_boot_eventlog', ...Object.keys(expectedRtmrs).map((f) => `ccel/${f}`)];
    for (const f of files) {
      const log = parseEventLog(eventlog(f), f.startsWith('ccel/') ? CCEL : {});
      assert.equal(checkDigests(log).mismatched, 0, f);
      for (const e of log.events) assert.doesNotMatch(e.typeName, /UNKNOWN/, `${f} event ${e.seq}`);
    }
  });
});
