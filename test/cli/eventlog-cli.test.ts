// `coffer eventlog show|replay` on the real event logs: exit codes, one-line failures, the JSON
// shape and values against the expected PCRs/RTMRs. Variations run in-process through run();
// one spawn of the real bin/coffer checks the built CLI end to end.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ensureBuilt } from '../helpers/build.js';
import { runBin, runCli, type Run } from '../helpers/cli.js';

const REPO = fileURLToPath(new URL('../../', import.meta.url));
const EL = join(REPO, '../shared/vectors/tpm-eventlog');
const RHEL = join(EL, 'go-eventlog/rhel8-uefi.bin');
const COS113 = join(EL, 'ccel/go-eventlog/cos-113-intel-tdx.bin');
const expectedPcrs = JSON.parse(readFileSync(join(EL, 'expected-pcrs.json'), 'utf8')) as Record<string, { pcrs: Record<string, Record<string, string>> }>;
const expectedRtmrs = JSON.parse(readFileSync(join(EL, 'ccel/expected-rtmrs.json'), 'utf8')) as Record<string, Record<string, string>>;

const work = mkdtempSync(join(tmpdir(), 'coffer-eventlog-cli-'));
after(() => rmSync(work, { recursive: true, force: true }));

before(ensureBuilt);

const bin = (args: string[]): Promise<Run> => runBin(args, { cwd: work });
const cli = runCli;

const STACK = /^\s+at .+[:(]/m;
function failsWithOneLine(r: Run, exit: number, code: string): void {
  assert.equal(r.code, exit, r.stderr);
  assert.equal(r.stdout, '');
  assert.doesNotMatch(r.stderr, STACK);
  const l = r.stderr.split('\n').filter(Boolean);
  assert.equal(l.length, 1, r.stderr);
  assert.match(l[0] as string, new RegExp(`^coffer: ${code}: \\S`));
}

describe('coffer eventlog replay', () => {
  test('--json is exactly {"pcrs": {bank: {index: hex}}} and equals the expected PCRs (RHEL 8, all banks)', async () => {
    const r = await cli(['eventlog', 'replay', RHEL, '--json']);
    assert.equal(r.code, 0, r.stderr);
    const j = JSON.parse(r.stdout) as { ok: boolean; kind: string; format: string; pcrs: Record<string, Record<string, string>>; rtmrs?: unknown };
    assert.equal(j.ok, true);
    assert.equal(j.kind, 'tpm');
    assert.equal(j.format, 'crypto-agile');
    assert.equal(j.rtmrs, undefined);
    assert.deepEqual(Object.keys(j.pcrs), ['sha1', 'sha256', 'sha384']);
    const exp = expectedPcrs['go-eventlog/rhel8-uefi.bin']?.pcrs;
    assert.deepEqual(j.pcrs.sha1, exp?.sha1);
    assert.deepEqual(j.pcrs.sha256, exp?.sha256);
    assert.deepEqual(Object.keys(j.pcrs.sha384 ?? {}), ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9', '14']);
  });

  test('a CCEL adds "rtmrs" 0-3 equal to the expected RTMRs; text mode prints one line per register', async () => {
    const r = await cli(['eventlog', 'replay', COS113, '--json']);
    const j = JSON.parse(r.stdout) as { kind: string; rtmrs: Record<string, string>; pcrs: { sha384: Record<string, string> } };
    assert.equal(j.kind, 'ccel');
    const exp = expectedRtmrs['go-eventlog/cos-113-intel-tdx.bin'];
    assert.deepEqual(j.rtmrs, { 0: exp?.rtmr0, 1: exp?.rtmr1, 2: exp?.rtmr2, 3: exp?.rtmr3 });
    assert.deepEqual(Object.keys(j.pcrs.sha384), ['1', '2', '3']);
    const t = await cli(['eventlog', 'replay', COS113]);
    assert.equal(t.code, 0);
    assert.match(t.stdout, new RegExp(`^RTMR0\\s+${exp?.rtmr0}$`, 'm'));
    assert.match(t.stdout, new RegExp(`^RTMR3\\s+${'0'.repeat(96)}$`, 'm'));
  });

  test('--expect: a match exits 0; the ebs_event_missing log against its TPM value exits 1 naming PCR 5 and its last event', async () => {
    const good = join(work, 'good.json');
    writeFileSync(good, JSON.stringify({ pcrs: { sha256: expectedPcrs['go-eventlog/rhel8-uefi.bin']?.pcrs.sha256 } }));
    const ok = await cli(['eventlog', 'replay', RHEL, '--expect', good]);
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(ok.stdout, /MATCH {2}all 11 expected register/);
    const bad = join(work, 'bad.json');
    writeFileSync(bad, JSON.stringify({ pcrs: { sha1: { 5: '31245808d6d35849bc394f6343f2b3ff908ed5e3' } } }));
    const r = await cli(['eventlog', 'replay', join(EL, 'go-attestation/ebs_event_missing_eventlog'), '--expect', bad]);
    assert.equal(r.code, 1);
    assert.doesNotMatch(r.stderr, STACK);
    assert.match(r.stderr, /^coffer: EVENTLOG_REPLAY_MISMATCH: sha1 PCR5 expected 31245808d6d35849bc394f6343f2b3ff908ed5e3, replayed e5781a2fd49c23a33b16bf0ba5f10efa1aa5d43c; last event extended: \d+;/);
    const j = JSON.parse((await cli(['eventlog', 'replay', join(EL, 'go-attestation/ebs_event_missing_eventlog'), '--expect', bad, '--json'])).stdout) as { ok: boolean; error: { code: string }; compared: { diverged: { register: number }[] } };
    assert.equal(j.ok, false);
    assert.equal(j.error.code, 'EVENTLOG_REPLAY_MISMATCH');
    assert.equal(j.compared.diverged[0]?.register, 5);
    // RTMRs in expected-rtmrs.json form.
    const rt = join(work, 'rt.json');
    writeFileSync(rt, JSON.stringify(expectedRtmrs['go-eventlog/cos-113-intel-tdx.bin']));
    assert.equal((await cli(['eventlog', 'replay', COS113, '--expect', rt])).code, 0);
  });

  test('bad input: a missing file, garbage, a log with trailing bytes, --no-padding on a padded CCEL, a bad --kind, bad --expect JSON — one line, exit 2', async () => {
    failsWithOneLine(await cli(['eventlog', 'replay', join(work, 'nope.bin')]), 2, 'FILE_UNREADABLE');
    const junk = join(work, 'junk.bin');
    writeFileSync(junk, Buffer.alloc(100, 0x41));
    failsWithOneLine(await cli(['eventlog', 'replay', junk]), 2, 'EVENTLOG_BAD_EVENT');
    const trailing = join(work, 'trailing.bin');
    writeFileSync(trailing, Buffer.concat([readFileSync(RHEL), Buffer.from('xyz')]));
    failsWithOneLine(await cli(['eventlog', 'show', trailing]), 2, 'EVENTLOG_TRUNCATED');
    failsWithOneLine(await cli(['eventlog', 'replay', COS113, '--no-padding']), 2, 'EVENTLOG_PADDING');
    failsWithOneLine(await cli(['eventlog', 'replay', RHEL, '--kind', 'sgx']), 2, 'BAD_KIND');
    // M4: td-shim's CCEL (SHA-384 only, header at index 0) cannot be told from a TPM log: --kind is required.
    const tdshim = join(EL, 'ccel/trustee/CCEL_data');
    failsWithOneLine(await cli(['eventlog', 'replay', tdshim]), 2, 'EVENTLOG_KIND_REQUIRED');
    const asCcel = JSON.parse((await cli(['eventlog', 'replay', tdshim, '--kind', 'ccel', '--json'])).stdout) as { kind: string; rtmrs: Record<string, string> };
    assert.equal(asCcel.kind, 'ccel');
    assert.equal(asCcel.rtmrs['0'], expectedRtmrs['trustee/CCEL_data']?.rtmr0);
    // Forced to tpm, the TDVF CCEL is read as PCRs (no rtmrs).
    const forced = JSON.parse((await cli(['eventlog', 'replay', COS113, '--kind', 'tpm', '--json'])).stdout) as { kind: string; rtmrs?: unknown };
    assert.deepEqual([forced.kind, forced.rtmrs], ['tpm', undefined]);
    const notJson = join(work, 'x.json');
    writeFileSync(notJson, '{');
    failsWithOneLine(await cli(['eventlog', 'replay', RHEL, '--expect', notJson]), 2, 'BAD_EXPECTED');
    const j = JSON.parse((await cli(['eventlog', 'replay', junk, '--json'])).stdout) as { ok: boolean; error: { code: string } };
    assert.deepEqual([j.ok, j.error.code], [false, 'EVENTLOG_BAD_EVENT']);
  });
});

describe('coffer eventlog show', () => {
  test('text: aligned events with decoded details, then the boot-state summary with what was not verified', async () => {
    const r = await cli(['eventlog', 'show', RHEL]);
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.split('\n');
    assert.match(lines[0] as string, /^TCG PC Client event log, crypto-agile, banks sha1, sha256, sha384, 83 events$/);
    const header = lines.find((l) => l.startsWith('#'));
    assert.ok(header);
    const detailCol = header.indexOf('detail');
    const rows = lines.filter((l) => /^\d+\s/.test(l));
    assert.equal(rows.length, 83);
    for (const row of rows) assert.ok(row.length > detailCol && row[detailCol - 1] === ' ', `aligned: ${row}`);
    assert.match(r.stdout, /^3\s+7\s+EV_EFI_VARIABLE_DRIVER_CONFIG\s+d4fdd1f1…\s+ccfc4bb3…\s+2cded0c6…\s+ok\s+SecureBoot \(8be4df61-93ca-11d2-aa0d-00e098032b8c\) = 1 \(Secure Boot on\)$/m);
    assert.match(r.stdout, /File\(\\EFI\\redhat\\shimx64\.efi\)/);
    assert.match(r.stdout, /^ {2}Secure Boot {8}ON \(event 3\)$/m);
    assert.match(r.stdout, /^ {2}db {17}"Microsoft Corporation UEFI CA 2011" \(sha256 48e99b991f57fc52…\), "Microsoft Windows Production PCA 2011" \(sha256 e8e95f0733a55e8b…\) \(event 6\)$/m);
    // M5: authorities are listed as used, in no authenticated order, not under an application.
    assert.doesNotMatch(r.stdout, /verified by/);
    assert.match(r.stdout, /^ {2}Authorities used {3}db: "Microsoft Corporation UEFI CA 2011" \(event 21\)\n {21}Shim: "Red Hat Secure Boot CA 5" \(event 27\)\n {21}\(order not authenticated/m);
    assert.match(r.stdout, /^ {2}ExitBootServices {3}invoked, returned success$/m);
    assert.match(r.stdout, /Not verified:\n {2}- The log is not authenticated/);
  });

  test('--json: events with digests, digest checks, decoded details, and the boot state', async () => {
    const r = await cli(['eventlog', 'show', COS113, '--json']);
    assert.equal(r.code, 0);
    const j = JSON.parse(r.stdout) as {
      ok: boolean; verified: boolean; kind: string; banks: string[]; padding: { byte: number; length: number };
      events: { seq: number; register: number; typeName: string; digests: Record<string, string>; digestCheck: { status: string }; detail: { kind: string } }[];
      bootState: { secureBoot: { enabled: boolean }; kernelCommandLine: { text: string }; flags: unknown[]; registerName: string };
    };
    assert.equal(j.verified, false);
    assert.equal(j.kind, 'ccel');
    assert.deepEqual(j.banks, ['sha384']);
    assert.deepEqual(j.padding, { byte: 255, length: 262144 - 18101 });
    assert.equal(j.events.length, 44);
    assert.equal(j.events[3]?.typeName, 'EV_EFI_VARIABLE_DRIVER_CONFIG');
    assert.equal(j.events[3]?.digestCheck.status, 'verified');
    assert.equal(j.events[18]?.detail.kind, 'image-load');
    assert.equal(j.bootState.registerName, 'MR');
    assert.equal(j.bootState.secureBoot.enabled, false);
    assert.match(j.bootState.kernelCommandLine.text, /^\/syslinux\/vmlinuz\.A /);
    assert.deepEqual(j.bootState.flags, []);
  });

  test('the duplicate-separator CCEL is shown with its flag', async () => {
    const r = await cli(['eventlog', 'show', join(EL, 'ccel/go-eventlog/cos-113-intel-tdx-dupe-separator.bin')]);
    assert.equal(r.code, 0);
    assert.match(r.stdout, /^ {2}EVENTLOG_SEPARATOR_DUPLICATE: MR 1 has 2 separators \(events 8, 16\)$/m);
  });
});

test('the built bin/coffer: eventlog replay --json on a real log, and a one-line failure', async () => {
  const r = await bin(['eventlog', 'replay', join(EL, 'go-eventlog/debian-10.bin'), '--json']);
  assert.equal(r.code, 0, r.stderr);
  const j = JSON.parse(r.stdout) as { pcrs: Record<string, Record<string, string>> };
  assert.deepEqual(j.pcrs, expectedPcrs['go-eventlog/debian-10.bin']?.pcrs);
  const bad = await bin(['eventlog', 'show', join(work, 'missing.bin')]);
  failsWithOneLine(bad, 2, 'FILE_UNREADABLE');
});
