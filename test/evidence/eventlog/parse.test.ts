// Deterministic refusals and edge cases of the parser, replay and digest checks, on synthetic logs
// built independently (build.ts) and on real logs with one thing changed.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { bootState, checkDigests, compareReplay, decodeEvent, parseEventLog, replayEventLog, EV } from '../../../src/evidence/eventlog/index.js';
import { CofferError } from '../../../src/errors.js';
import { H, cryptoAgileLog, event2, eventlog, extend, legacyEvent, specIdEvent, u32 } from './build.js';

function expectCoffer(fn: () => unknown, code: string, message?: RegExp): CofferError {
  let caught: unknown;
  try {
    fn();
  } catch (e) {
    caught = e;
  }
  assert.ok(caught instanceof CofferError, `expected CofferError ${code}, got ${String(caught)}`);
  assert.equal(caught.code, code, caught.message);
  assert.equal(caught.kind, 'input');
  if (message) assert.match(caught.message, message);
  return caught;
}

const BANKS = ['sha1', 'sha256'];
const ACTION = (s: string, pcr = 4) => ({ pcr, type: EV.EFI_ACTION, data: Buffer.from(s) });
const SEP = (pcr: number) => ({ pcr, type: EV.SEPARATOR, data: Buffer.alloc(4) });

describe('parser refusals', () => {
  test('empty input, a truncated header, a truncated last event', () => {
    expectCoffer(() => parseEventLog(Buffer.alloc(0)), 'EVENTLOG_EMPTY');
    expectCoffer(() => parseEventLog(Buffer.alloc(10, 1)), 'TRUNCATED');
    const log = cryptoAgileLog(BANKS, [ACTION('a'), ACTION('bbbbbbbb')]);
    expectCoffer(() => parseEventLog(log.subarray(0, log.length - 3)), 'EVENTLOG_BAD_EVENT', /exceeds the \d+ remaining/);
    expectCoffer(() => parseEventLog(Buffer.concat([log, Buffer.from([1, 2, 3])])), 'EVENTLOG_TRUNCATED');
  });

  test('Spec ID: unknown algorithm, wrong digest size, zero or absurd algorithm count, wrong version, trailing vendor bytes', () => {
    expectCoffer(() => parseEventLog(specIdEvent([], { algs: [[0x0099, 32]] })), 'EVENTLOG_UNKNOWN_ALGORITHM');
    expectCoffer(() => parseEventLog(specIdEvent([], { algs: [[0x000b, 20]] })), 'EVENTLOG_BAD_SPEC_ID', /sha256 a digest size of 20/);
    expectCoffer(() => parseEventLog(specIdEvent([], { algs: [] })), 'EVENTLOG_BAD_SPEC_ID');
    expectCoffer(() => parseEventLog(specIdEvent(['sha256'], { count: 0xffffffff })), 'EVENTLOG_BAD_SPEC_ID');
    expectCoffer(() => parseEventLog(specIdEvent([], { algs: [[0x000b, 32], [0x000b, 32]] })), 'EVENTLOG_BAD_SPEC_ID', /twice/);
    const v = specIdEvent(['sha256']);
    const wrongVersion = Buffer.from(v);
    wrongVersion[32 + 16 + 4 + 1] = 1; // specVersionMajor
    expectCoffer(() => parseEventLog(wrongVersion), 'EVENTLOG_BAD_SPEC_ID', /version 1\.0/);
  });

  test('crypto-agile events: digest count or algorithm disagreeing with the Spec ID; an absurd event size; a PCR index out of range', () => {
    const head = specIdEvent(BANKS);
    const ok = event2(BANKS, ACTION('x'));
    assert.equal(parseEventLog(Buffer.concat([head, ok])).events.length, 2);
    const fewer = event2(['sha1'], ACTION('x'));
    expectCoffer(() => parseEventLog(Buffer.concat([head, fewer])), 'EVENTLOG_DIGEST_COUNT', /carries 1 digest\(s\) but the Spec ID event declares 2/);
    const otherAlg = event2(['sha1', 'sha384'], ACTION('x'));
    expectCoffer(() => parseEventLog(Buffer.concat([head, otherAlg])), 'EVENTLOG_UNKNOWN_ALGORITHM');
    const huge = Buffer.from(ok);
    huge.writeUInt32LE(0x7fffffff, ok.length - 1 - 4);
    expectCoffer(() => parseEventLog(Buffer.concat([head, huge])), 'EVENTLOG_BAD_EVENT', /exceeds the 16777216-byte limit/);
    const pcr = Buffer.from(ok);
    pcr.writeUInt32LE(40, 0);
    expectCoffer(() => parseEventLog(Buffer.concat([head, pcr])), 'EVENTLOG_BAD_EVENT', /PCR index 40/);
    // CCEL: MR indices stop at 4.
    const ccel = Buffer.concat([specIdEvent(['sha384']), event2(['sha384'], { pcr: 5, type: EV.EFI_ACTION, data: Buffer.from('x') })]);
    expectCoffer(() => parseEventLog(ccel, { kind: 'ccel' }), 'EVENTLOG_BAD_EVENT', /CC MR index 5/);
  });

  test('legacy SHA-1 logs parse as sha1; a trailing non-fill byte is refused; the kind can be forced', () => {
    const log = Buffer.concat([legacyEvent(SEP(0)), legacyEvent(ACTION('hello'))]);
    const p = parseEventLog(log);
    assert.equal(p.format, 'sha1');
    assert.equal(p.events.length, 2);
    assert.equal(replayEventLog(p).pcrs.sha1?.[4]?.toString('hex'), extend('sha1', [H('sha1', 'hello')]));
    expectCoffer(() => parseEventLog(Buffer.concat([log, Buffer.from([0xff, 0xff, 0x00])])), 'EVENTLOG_TRUNCATED');
    const asTpm = parseEventLog(Buffer.concat([specIdEvent(['sha384']), event2(['sha384'], ACTION('x', 1))]), { kind: 'tpm' });
    assert.equal(asTpm.kind, 'tpm');
    assert.equal(replayEventLog(asTpm).rtmrs, undefined);
  });
});

describe('replay', () => {
  test('StartupLocality 3 makes PCR 0 start at 00..03 in every bank; EV_NO_ACTION events are not extended', () => {
    const loc = { pcr: 0, type: EV.NO_ACTION, data: Buffer.concat([Buffer.from('StartupLocality\0', 'latin1'), Buffer.from([3])]) };
    const crtm = { pcr: 0, type: EV.S_CRTM_VERSION, data: Buffer.from('v\0', 'utf16le') };
    const noise = { pcr: 4, type: EV.NO_ACTION, data: Buffer.from('anything') };
    const log = parseEventLog(cryptoAgileLog(BANKS, [loc, crtm, noise, ACTION('a')]));
    const r = replayEventLog(log);
    for (const [bank, size] of [['sha1', 20], ['sha256', 32]] as const) {
      const start = Buffer.alloc(size);
      start[size - 1] = 3;
      assert.equal(r.pcrs[bank]?.[0]?.toString('hex'), extend(bank, [H(bank, crtm.data)], start));
      assert.equal(r.pcrs[bank]?.[4]?.toString('hex'), extend(bank, [H(bank, 'a')]));
    }
    assert.deepEqual(Object.keys(r.pcrs.sha1 ?? {}), ['0', '4']);
  });

  test('compareReplay: a changed digest shows the register, both values, the last event, and where the replay stops matching', () => {
    const events = [SEP(0), ACTION('one'), ACTION('two'), ACTION('three')];
    const good = parseEventLog(cryptoAgileLog(BANKS, events));
    const goodPcr4 = replayEventLog(good).pcrs.sha256?.[4]?.toString('hex') as string;
    // The quote saw only two of the three PCR 4 events: extra events logged after the quote.
    const twoOnly = extend('sha256', [H('sha256', 'one'), H('sha256', 'two')]);
    const c = compareReplay(good, replayEventLog(good), { pcrs: { sha256: { 4: twoOnly, 0: extend('sha256', [H('sha256', Buffer.alloc(4))]) } } });
    assert.equal(c.ok, false);
    assert.deepEqual(c.matched, [{ bank: 'sha256', register: 0 }]);
    const d = c.diverged[0];
    assert.equal(d?.register, 4);
    assert.equal(d?.expected, twoOnly);
    assert.equal(d?.found, goodPcr4);
    assert.equal(d?.lastEvent, 4);
    assert.equal(d?.firstDivergentEvent, 4);
    assert.match(d?.explanation ?? '', /after 2 of 3 event/);
    // A value no prefix reproduces: divergence from the register's first event.
    const c2 = compareReplay(good, replayEventLog(good), { pcrs: { sha1: { 4: 'aa'.repeat(20) } } });
    assert.equal(c2.diverged[0]?.firstDivergentEvent, 2);
    assert.equal(c2.diverged[0]?.events, 3);
    // A register the log never extends, quoted non-zero.
    const c3 = compareReplay(good, replayEventLog(good), { pcrs: { sha1: { 9: 'bb'.repeat(20) } } });
    assert.equal(c3.diverged[0]?.lastEvent, undefined);
    assert.equal(c3.diverged[0]?.found, '00'.repeat(20));
    assert.throws(() => compareReplay(good, replayEventLog(good), { pcrs: { sha384: { 0: '00' } } }), (e: unknown) => e instanceof CofferError && e.code === 'EVENTLOG_NO_BANK');
  });
});

/** Event data offset in a sha1+sha256+sha384 crypto-agile log: PCR, type, count, three digests, size. */
const dataOffset = (eventOffset: number): number => eventOffset + 4 + 4 + 4 + (2 + 20) + (2 + 32) + (2 + 48) + 4;

describe('digest checks on real logs with one thing changed', () => {
  test('a byte of the Exit Boot Services action changed: EVENTLOG_DIGEST_MISMATCH, and ExitBootServices no longer counts — while the PCR replay is unchanged', () => {
    const bytes = Buffer.from(eventlog('go-eventlog/rhel8-uefi.bin'));
    const orig = parseEventLog(bytes);
    const ebs = orig.events.find((e) => e.type === EV.EFI_ACTION && e.data.toString() === 'Exit Boot Services Invocation');
    assert.ok(ebs);
    const at = dataOffset(ebs.offset) + ebs.data.length - 1;
    bytes[at] = (bytes[at] ?? 0) ^ 0x20; // 'n' of "Invocation" → 'N'
    const log = parseEventLog(bytes);
    const changed = log.events[ebs.seq];
    assert.equal(changed?.data.toString(), 'Exit Boot Services InvocatioN');
    assert.deepEqual(replayEventLog(log), replayEventLog(orig));
    const st = bootState(log);
    const mm = st.flags.find((f) => f.code === 'EVENTLOG_DIGEST_MISMATCH');
    assert.equal(mm?.event, ebs.seq);
    assert.match(mm?.message ?? '', /sha1\/sha256\/sha384 digest is not the hash of the event data/);
    assert.equal(st.exitBootServices.invoked, false);
    assert.ok(st.flags.some((f) => f.code === 'EVENTLOG_NO_EXIT_BOOT_SERVICES'));
  });

  test('a db certificate byte changed: the db event is a mismatch and db drops out of the summary', () => {
    const bytes = Buffer.from(eventlog('go-eventlog/rhel8-uefi.bin'));
    const orig = parseEventLog(bytes);
    const dbEvent = orig.events[6];
    assert.ok(dbEvent);
    const d = decodeEvent(dbEvent);
    assert.equal(d.kind === 'variable' ? d.name : '', 'db');
    // Change one byte in the middle of the certificate's signature (still parses).
    const at = dataOffset(dbEvent.offset) + dbEvent.data.length - 10;
    bytes[at] = (bytes[at] ?? 0) ^ 1;
    const st = bootState(parseEventLog(bytes));
    assert.equal(st.databases.db, undefined);
    assert.deepEqual(st.flags.map((f) => f.code), ['EVENTLOG_DIGEST_MISMATCH']);
    assert.ok(st.notVerified.includes('db: not measured, or its event could not be checked.'));
    assert.equal(checkDigests(parseEventLog(bytes)).checks[6]?.status, 'mismatch');
  });

  test('one bank agreeing and another not is a mismatch (every bank is checked)', () => {
    const sep = { ...SEP(7), digests: { sha1: H('sha1', Buffer.alloc(4)), sha256: H('sha256', Buffer.from([0, 0, 0, 1])) } };
    const log = parseEventLog(cryptoAgileLog(BANKS, [sep]));
    const c = checkDigests(log).checks[1];
    assert.equal(c?.status, 'mismatch');
    assert.deepEqual(c?.failedBanks, ['sha256']);
  });

  test('an event disguised as a separator (separator digest, other type) is flagged; so are a separator of 1 and a duplicate', () => {
    const disguised = { pcr: 4, type: EV.EFI_ACTION, data: Buffer.from('x'), digests: { sha1: H('sha1', Buffer.alloc(4)), sha256: H('sha256', Buffer.alloc(4)) } };
    const err = { pcr: 3, type: EV.SEPARATOR, data: u32(1) };
    const events = [0, 1, 2, 4, 5, 6, 7].map(SEP);
    const st = bootState(parseEventLog(cryptoAgileLog(BANKS, [...events, disguised, err, SEP(5)])));
    const codes = st.flags.map((f) => f.code);
    assert.ok(codes.includes('EVENTLOG_SEPARATOR_DISGUISED'));
    assert.ok(codes.includes('EVENTLOG_SEPARATOR_ERROR'));
    assert.equal(st.flags.find((f) => f.code === 'EVENTLOG_SEPARATOR_DUPLICATE')?.message, 'PCR 5 has 2 separators (events 5, 10)');
  });

  test('Boot variables: both the whole-structure and the VariableData-only digest conventions are accepted', () => {
    const name = Buffer.from('BootOrder', 'utf16le');
    const value = Buffer.from([1, 0, 0, 0]);
    const guid = Buffer.from('61dfe48bca93d211aa0d00e098032b8c', 'hex');
    const len = (n: number) => {
      const b = Buffer.alloc(8);
      b.writeBigUInt64LE(BigInt(n));
      return b;
    };
    const data = Buffer.concat([guid, len(9), len(4), name, value]);
    const whole = { pcr: 1, type: EV.EFI_VARIABLE_BOOT, data };
    const onlyValue = { ...whole, digests: { sha1: H('sha1', value), sha256: H('sha256', value) } };
    const checks = checkDigests(parseEventLog(cryptoAgileLog(BANKS, [whole, onlyValue]))).checks;
    assert.equal(checks[1]?.convention, 'event data');
    assert.equal(checks[2]?.convention, 'VariableData only');
    const d = decodeEvent(parseEventLog(cryptoAgileLog(BANKS, [whole])).events[1] as never);
    assert.ok(d.kind === 'variable');
    assert.equal(d.guid, '8be4df61-93ca-11d2-aa0d-00e098032b8c');
    assert.equal(d.value, '0001,0000');
  });
});
