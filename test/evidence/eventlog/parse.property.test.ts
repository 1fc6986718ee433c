// Every event-log parser against arbitrary input: a value or a CofferError, never another
// exception, never a hang. Mutations of real logs reach the deep decoders (signature lists,
// device paths, GPT) that random bytes alone rarely get to.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { performance } from 'node:perf_hooks';
import fc from 'fast-check';
import { HANG_MS, valueOrCoffer } from '../../helpers/property.js';
import {
  bootState,
  checkDigests,
  decodeLog,
  parseAuthority,
  parseCcelTable,
  parseDevicePath,
  parseEventLog,
  detectEventLogKind,
  parseGpt,
  parseImageLoad,
  parseSignatureLists,
  parseUefiVariable,
  replayEventLog,
} from '../../../src/evidence/eventlog/index.js';
import { eventlog, specIdEvent } from './build.js';

/** The whole pipeline a CLI user triggers: parse, replay, decode every event, digests, boot state. */
function pipeline(bytes: Uint8Array): void {
  for (const kind of ['tpm', 'ccel'] as const) {
    valueOrCoffer(`eventlog pipeline (${kind})`, () => {
      const log = parseEventLog(bytes, { kind });
      const r = replayEventLog(log);
      decodeLog(log);
      checkDigests(log);
      bootState(log);
      bootState(log, { expected: { pcrs: r.pcrs } });
    });
  }
  valueOrCoffer('detectEventLogKind', () => detectEventLogKind(bytes));
}

function helpers(bytes: Uint8Array): void {
  const b = Buffer.from(bytes);
  valueOrCoffer('parseCcelTable', () => parseCcelTable(b));
  valueOrCoffer('parseDevicePath', () => parseDevicePath(b));
  valueOrCoffer('parseSignatureLists', () => parseSignatureLists(b));
  valueOrCoffer('parseGpt', () => parseGpt(b));
  valueOrCoffer('parseImageLoad', () => parseImageLoad(b));
  valueOrCoffer('parseUefiVariable', () => parseUefiVariable(b));
  valueOrCoffer('parseAuthority', () => parseAuthority('db', b));
}

const REAL = ['go-eventlog/rhel8-uefi.bin', 'go-eventlog/debian-10.bin', 'go-attestation/sb_cert_eventlog', 'ccel/trustee/CCEL_data_grub'].map((f) => eventlog(f));
const REAL_SMALL = REAL.map((b) => {
  // Cut the fixed-size CCEL region down to its events so that mutations land in them.
  const log = parseEventLog(b, { kind: detectEventLogKind(b) ?? 'tpm' });
  const last = log.events[log.events.length - 1];
  return b.subarray(0, (last?.offset ?? 0) + 4096 > b.length ? b.length : (last?.offset ?? 0) + 2048);
});

describe('property: arbitrary bytes produce a value or a CofferError', () => {
  test('random bytes to every parser', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 2048 }), (bytes) => {
        pipeline(bytes);
        helpers(bytes);
      }),
      { numRuns: 400 },
    );
  });

  test('random bytes after a valid Spec ID header (crypto-agile events) and after a legacy header', () => {
    const head = specIdEvent(['sha1', 'sha256']);
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 1024 }), (tail) => {
        pipeline(Buffer.concat([head, tail]));
        pipeline(Buffer.concat([Buffer.from('0000000008000000', 'hex'), Buffer.alloc(20), tail]));
      }),
      { numRuns: 300 },
    );
  });

  test('byte mutations of real logs (TPM crypto-agile, legacy SHA-1, shim bug #157, CCEL)', () => {
    fc.assert(
      fc.property(
        fc.nat({ max: REAL_SMALL.length - 1 }),
        fc.array(fc.tuple(fc.nat({ max: 1_000_000 }), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 6 }),
        (which, muts) => {
          const b = Buffer.from(REAL_SMALL[which] as Buffer);
          for (const [o, v] of muts) b[o % b.length] = v;
          pipeline(b);
        },
      ),
      { numRuns: 150 },
    );
  });

  test('event data of real logs, mutated, to the structure decoders', () => {
    const datas = parseEventLog(REAL[0] as Buffer).events.map((e) => e.data).filter((d) => d.length > 0 && d.length < 8192);
    fc.assert(
      fc.property(fc.nat({ max: datas.length - 1 }), fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 4 }), (i, muts) => {
        const b = Buffer.from(datas[i] as Buffer);
        for (const [o, v] of muts) b[o % b.length] = v;
        helpers(b);
        helpers(b.subarray(16));
      }),
      { numRuns: 200 },
    );
  });

  test('no quadratic fill scan: 4 MiB of zero-valued legacy events ending in one stray byte fails fast', () => {
    const big = Buffer.alloc(4 * 1024 * 1024 + 1);
    big[big.length - 1] = 1;
    const t0 = performance.now();
    valueOrCoffer('4 MiB log', () => parseEventLog(big));
    assert.ok(performance.now() - t0 < HANG_MS);
    // The same zeros without the stray byte: one header event, the rest recognised as fill.
    const padded = parseEventLog(big.subarray(0, big.length - 1));
    assert.equal(padded.events.length, 1);
    assert.deepEqual(padded.padding, { byte: 0, length: 4 * 1024 * 1024 - 32 });
  });

  test('truncation at every offset of a real log ends in a CofferError, never anything else', () => {
    const b = REAL[2] as Buffer;
    for (let n = 0; n < b.length; n += 7) pipeline(b.subarray(0, n));
  });
});
