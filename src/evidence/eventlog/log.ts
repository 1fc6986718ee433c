import { ByteReader } from '../../bytes/reader.js';
import { inputError, isCofferError } from '../../errors.js';
import { EV, eventTypeName, hashById, type HashAlgorithm, type HashName } from './types.js';

/**
 * TCG event logs: the PC Client Platform Firmware Profile log (legacy SHA-1 TCG_PCClientPCREvent
 * entries, or a SHA-1 header followed by crypto-agile TCG_PCR_EVENT2 entries whose digest sizes
 * the Spec ID event declares) and the Confidential Computing event log (CCEL) that TDX firmware
 * writes in the same format with CC measurement-register indices (0 = MRTD, 1-4 = RTMR0-3).
 */

export type EventLogKind = 'tpm' | 'ccel';
export type EventLogFormat = 'crypto-agile' | 'sha1';

export interface SpecIdEvent {
  platformClass: number;
  specVersion: { major: number; minor: number; errata: number };
  uintnSize: number;
  algorithms: { id: number; name: HashName; size: number }[];
  vendorInfo: Buffer;
}

export interface TcgEvent {
  /** Position in the log, 0-based, counting the header event. */
  readonly seq: number;
  /** Byte offset of the event in the log. */
  readonly offset: number;
  /** PCR index (TPM log) or CC measurement-register index (CCEL: 0 MRTD, 1-4 RTMR0-3). */
  readonly register: number;
  readonly type: number;
  readonly typeName: string;
  /** One digest per bank, keyed by algorithm name, in log order. */
  readonly digests: Readonly<Partial<Record<HashName, Buffer>>>;
  readonly data: Buffer;
}

export interface EventLog {
  readonly kind: EventLogKind;
  readonly format: EventLogFormat;
  /** The banks the log carries digests for. */
  readonly algorithms: readonly HashAlgorithm[];
  readonly specId: SpecIdEvent | undefined;
  /** Every event including the header (Spec ID) event. */
  readonly events: readonly TcgEvent[];
  /** Recognised fill after the last event (a fixed-size ACPI region such as the CCEL's). */
  readonly padding: { byte: 0x00 | 0xff; length: number } | undefined;
  /** Size of the input in bytes. */
  readonly size: number;
}

export interface ParseOptions {
  /**
   * `ccel` reads register indices as CC MR indices (0 = MRTD, 1-4 = RTMR0-3). Default `tpm`: the
   * kind is never guessed from the banks (a SHA-384-only TPM log is a TPM log); the caller knows
   * where the log came from (see detectEventLogKind for the one documented rule the CLI uses).
   */
  kind?: EventLogKind;
  /** Accept trailing 0x00 or 0xFF fill after the last event (default true). */
  allowPadding?: boolean;
}

/** One event's data may not exceed this: the largest real events (db with many certificates) are a few tens of KiB. */
export const MAX_EVENT_DATA = 16 * 1024 * 1024;
/** A TPM has at most a few dozen PCRs; anything beyond this index is a corrupt log. */
export const MAX_PCR_INDEX = 31;

const SPEC_ID_SIGNATURE = Buffer.from('Spec ID Event03\0', 'latin1');
const SPEC_ID_HEADER = 16 + 4 + 1 + 1 + 1 + 1 + 4;

export function parseSpecIdEvent(data: Buffer): SpecIdEvent {
  const r = new ByteReader(data, 'Spec ID event');
  const sig = r.view(16);
  if (!sig.equals(SPEC_ID_SIGNATURE)) throw inputError('EVENTLOG_BAD_SPEC_ID', 'Spec ID event signature is not "Spec ID Event03"');
  const platformClass = r.u32le();
  const minor = r.u8();
  const major = r.u8();
  const errata = r.u8();
  const uintnSize = r.u8();
  if (major !== 2 || minor !== 0) throw inputError('EVENTLOG_BAD_SPEC_ID', `Spec ID event version ${major}.${minor} is not 2.0`);
  if (uintnSize !== 1 && uintnSize !== 2) throw inputError('EVENTLOG_BAD_SPEC_ID', `Spec ID event uintnSize ${uintnSize} is neither 1 (32-bit) nor 2 (64-bit)`);
  const count = r.u32le();
  if (count === 0 || count > 16 || count * 4 > r.remaining) throw inputError('EVENTLOG_BAD_SPEC_ID', `Spec ID event declares ${count} algorithms`);
  const algorithms: SpecIdEvent['algorithms'] = [];
  for (let i = 0; i < count; i++) {
    const id = r.u16le();
    const size = r.u16le();
    const alg = hashById(id);
    if (!alg) throw inputError('EVENTLOG_UNKNOWN_ALGORITHM', `Spec ID event declares unknown hash algorithm 0x${id.toString(16).padStart(4, '0')}`);
    if (alg.size !== size) throw inputError('EVENTLOG_BAD_SPEC_ID', `Spec ID event gives ${alg.name} a digest size of ${size}, not ${alg.size}`);
    if (algorithms.some((a) => a.id === id)) throw inputError('EVENTLOG_BAD_SPEC_ID', `Spec ID event lists ${alg.name} twice`);
    algorithms.push({ id, name: alg.name, size });
  }
  const vendorSize = r.u8();
  const vendorInfo = r.bytes(vendorSize);
  r.end();
  return { platformClass, specVersion: { major, minor, errata }, uintnSize, algorithms, vendorInfo };
}

/**
 * The one rule by which a log's kind may be inferred (the `coffer eventlog` CLI uses it when no
 * --kind is given; verifiers never do, they know what they were handed):
 *
 * - a log whose Spec ID header event declares SHA-384 as its only bank and is logged at index 1
 *   is a CCEL: the PC Client profile fixes the header's PCRIndex at 0, and TDVF (EDK2's TdTcg2Dxe)
 *   writes its CC event log header at MR index 1;
 * - a log without a (valid) Spec ID header, or whose Spec ID declares any bank set other than
 *   SHA-384 alone, is a TPM log (a CCEL is always crypto-agile SHA-384);
 * - a SHA-384-only log with its header at any other index (td-shim writes its CCEL header at 0,
 *   and so would a SHA-384-only TPM) is ambiguous: undefined, and the caller must say which.
 */
export function detectEventLogKind(bytes: Uint8Array): EventLogKind | undefined {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (buf.length < 32) return 'tpm';
  const register = buf.readUInt32LE(0);
  const type = buf.readUInt32LE(4);
  const size = buf.readUInt32LE(28);
  const data = buf.subarray(32, 32 + Math.min(size, buf.length - 32));
  if (type !== EV.NO_ACTION || data.length < SPEC_ID_HEADER || !data.subarray(0, 16).equals(SPEC_ID_SIGNATURE)) return 'tpm';
  let specId: SpecIdEvent;
  try {
    specId = parseSpecIdEvent(data);
  } catch (e) {
    if (isCofferError(e)) return 'tpm';
    throw e;
  }
  const sha384Only = specId.algorithms.length === 1 && specId.algorithms[0]?.name === 'sha384';
  if (!sha384Only) return 'tpm';
  return register === 1 ? 'ccel' : undefined;
}

/** Where the trailing run of one fill byte (0x00 or 0xFF) starts, found once from the end (linear, not per event). */
function fillStart(buf: Buffer): { byte: 0x00 | 0xff; from: number } | undefined {
  const last = buf[buf.length - 1];
  if (last !== 0x00 && last !== 0xff) return undefined;
  let from = buf.length - 1;
  while (from > 0 && buf[from - 1] === last) from--;
  return { byte: last, from };
}

function eventData(r: ByteReader, seq: number): Buffer {
  const size = r.u32le();
  if (size > MAX_EVENT_DATA) throw inputError('EVENTLOG_BAD_EVENT', `event ${seq}: event size ${size} exceeds the ${MAX_EVENT_DATA}-byte limit`);
  if (size > r.remaining) throw inputError('EVENTLOG_BAD_EVENT', `event ${seq}: event size ${size} exceeds the ${r.remaining} remaining byte(s) of the log`);
  return r.bytes(size);
}

function checkRegister(register: number, seq: number, kind: EventLogKind, type: number): void {
  // EV_NO_ACTION is never extended; Windows logs its WBCL information events under PCR 0xFFFFFFFF.
  if (type === EV.NO_ACTION) return;
  // MR 0 is MRTD, which the TDX module measures: no firmware event may claim it. Skipping such an
  // event would let a log carry measured-looking data that no register accounts for.
  if (kind === 'ccel' && register === 0) {
    throw inputError('EVENTLOG_BAD_EVENT', `event ${seq} (${eventTypeName(type)}): CC MR index 0 is MRTD, which no event log entry extends`);
  }
  const max = kind === 'ccel' ? 4 : MAX_PCR_INDEX;
  if (register > max) {
    throw inputError('EVENTLOG_BAD_EVENT', `event ${seq} (${eventTypeName(type)}): ${kind === 'ccel' ? 'CC MR' : 'PCR'} index ${register} is out of range 0-${max}`);
  }
}

/**
 * Parses a TCG PC Client event log or a CCEL. Refuses unknown algorithms, digest lists that
 * disagree with the Spec ID event, oversized or out-of-range fields and trailing bytes other than
 * recognised 0x00/0xFF fill. Never replays or trusts anything: see replay.ts and digests.ts.
 */
export function parseEventLog(bytes: Uint8Array, opts: ParseOptions = {}): EventLog {
  const buf = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (buf.length === 0) throw inputError('EVENTLOG_EMPTY', 'the event log is empty');
  const allowPadding = opts.allowPadding ?? true;
  const r = new ByteReader(buf, 'event log');
  const events: TcgEvent[] = [];

  // The first event is always in the SHA-1 format.
  const headerRegister = r.u32le();
  const headerType = r.u32le();
  const headerDigest = r.bytes(20);
  const headerData = eventData(r, 0);
  let specId: SpecIdEvent | undefined;
  if (headerType === EV.NO_ACTION && headerData.length >= SPEC_ID_HEADER && headerData.subarray(0, 16).equals(SPEC_ID_SIGNATURE)) {
    specId = parseSpecIdEvent(headerData);
  }
  const kind: EventLogKind = opts.kind ?? 'tpm';
  if (kind !== 'tpm' && kind !== 'ccel') throw inputError('USAGE', `event log kind must be tpm or ccel`);
  // TDVF writes the CCEL header with register 1; the TPM spec says 0. Neither is extended.
  if (!specId) checkRegister(headerRegister, 0, kind, headerType);
  events.push({ seq: 0, offset: 0, register: headerRegister, type: headerType, typeName: eventTypeName(headerType), digests: { sha1: headerDigest }, data: headerData });

  const algorithms: HashAlgorithm[] = specId ? specId.algorithms.map((a) => hashById(a.id) as HashAlgorithm) : [hashById(0x0004) as HashAlgorithm];
  let padding: EventLog['padding'];

  const tail = fillStart(buf);
  while (r.remaining > 0) {
    const seq = events.length;
    const offset = r.offset;
    const fill = tail && offset >= tail.from ? tail.byte : undefined;
    if (fill !== undefined) {
      if (!allowPadding) throw inputError('EVENTLOG_PADDING', `${buf.length - offset} byte(s) of 0x${fill.toString(16).padStart(2, '0')} fill follow the last event at offset ${offset} (padding not allowed)`);
      padding = { byte: fill, length: buf.length - offset };
      break;
    }
    try {
      const register = r.u32le();
      const type = r.u32le();
      checkRegister(register, seq, kind, type);
      const digests: Partial<Record<HashName, Buffer>> = {};
      if (specId) {
        const count = r.u32le();
        if (count !== specId.algorithms.length) {
          throw inputError('EVENTLOG_DIGEST_COUNT', `event ${seq} (${eventTypeName(type)}) carries ${count} digest(s) but the Spec ID event declares ${specId.algorithms.length}`);
        }
        for (let i = 0; i < count; i++) {
          const id = r.u16le();
          const alg = specId.algorithms.find((a) => a.id === id);
          if (!alg) throw inputError('EVENTLOG_UNKNOWN_ALGORITHM', `event ${seq}: digest algorithm 0x${id.toString(16).padStart(4, '0')} is not one the Spec ID event declares`);
          if (digests[alg.name]) throw inputError('EVENTLOG_DIGEST_COUNT', `event ${seq}: two ${alg.name} digests`);
          digests[alg.name] = r.bytes(alg.size);
        }
      } else {
        digests.sha1 = r.bytes(20);
      }
      const data = eventData(r, seq);
      events.push({ seq, offset, register, type, typeName: eventTypeName(type), digests, data });
    } catch (e) {
      // A short final record is trailing garbage, not a truncated event the caller could fix.
      if (e instanceof Error && (e as { code?: string }).code === 'TRUNCATED') {
        throw inputError('EVENTLOG_TRUNCATED', `event ${seq} at offset ${offset} is truncated (${buf.length - offset} byte(s) left)`);
      }
      throw e;
    }
  }
  return { kind, format: specId ? 'crypto-agile' : 'sha1', algorithms, specId, events, padding, size: buf.length };
}
