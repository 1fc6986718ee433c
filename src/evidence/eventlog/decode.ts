import { ByteReader } from '../../bytes/reader.js';
import { CofferError, inputError } from '../../errors.js';
import {
  boundedLength,
  formatGuid,
  looksUtf16,
  parseAuthority,
  parseGpt,
  parseImageLoad,
  parseSignatureLists,
  parseUefiVariable,
  printable,
  readGuid,
  text,
  utf16,
  type AuthorityData,
  type GptData,
  type ImageLoad,
  type SignatureEntry,
} from './efi.js';
import { parseSpecIdEvent, type EventLog, type SpecIdEvent, type TcgEvent } from './log.js';
import { EV } from './types.js';

/**
 * Event data decoded for a reviewer. Decoding never throws for malformed data: an event whose
 * data does not parse as its type says so (`kind: 'malformed'`) and keeps its raw bytes.
 */
export type EventDetail =
  | { kind: 'spec-id'; specId: SpecIdEvent }
  | { kind: 'startup-locality'; locality: number }
  | { kind: 'sp800-155'; version: 1 | 3; platformManufacturerId: number; referenceManifestGuid: string; platformManufacturer: string; platformModel: string; platformVersion: string; firmwareManufacturer: string; firmwareManufacturerId: number; firmwareVersion: string; rimLocator?: { type: number; value: string }; platformCertLocator?: { type: number; value: string }; trailing: number }
  | { kind: 'no-action'; signature: string }
  | { kind: 'string'; text: string; encoding: 'ascii' | 'utf-16' }
  | { kind: 'separator'; value: number; error: boolean }
  | { kind: 'firmware-blob'; description?: string; base: bigint; length: bigint }
  | { kind: 'variable'; guid: string; name: string; dataLength: number; trailing: number; secureBoot?: number; signatures?: SignatureEntry[]; value?: string }
  | { kind: 'authority'; guid: string; name: string; authority: AuthorityData; trailing: number }
  | { kind: 'image-load'; image: ImageLoad }
  | { kind: 'gpt'; gpt: GptData }
  | { kind: 'event-tag'; id: number; description: string }
  | { kind: 'handoff-tables'; description?: string; tables: { guid: string; address: bigint }[] }
  | { kind: 'binary'; length: number }
  | { kind: 'malformed'; error: string };

const SP800_155 = 'SP800-155 Event\0';
const SP800_155_3 = 'SP800-155 Event3';
const STARTUP_LOCALITY = 'StartupLocality\0';

/** Linux EFI stub tagged-event ids (drivers/firmware/efi/libstub). */
const TAGS: Record<number, string> = { 0x8f3b22ec: 'Linux initrd', 0x8f3b22ed: 'LOADED_IMAGE::LoadOptions' };

const SECURE_BOOT_DBS = new Set(['PK', 'KEK', 'db', 'dbx', 'dbt', 'dbr', 'MokList', 'MokListX', 'MokListRT', 'MokListXRT', 'MokListTrusted']);

function str8(r: ByteReader): string {
  return text(r.view(r.u8()));
}

function decodeSp800155(data: Buffer, version: 1 | 3): EventDetail {
  const r = new ByteReader(data, 'SP800-155 event');
  r.skip(16);
  const platformManufacturerId = r.u32le();
  const referenceManifestGuid = readGuid(r);
  const platformManufacturer = str8(r);
  const platformModel = str8(r);
  const platformVersion = str8(r);
  const firmwareManufacturer = str8(r);
  const firmwareManufacturerId = r.u32le();
  const firmwareVersion = str8(r);
  const out: Extract<EventDetail, { kind: 'sp800-155' }> = { kind: 'sp800-155', version, platformManufacturerId, referenceManifestGuid, platformManufacturer, platformModel, platformVersion, firmwareManufacturer, firmwareManufacturerId, firmwareVersion, trailing: 0 };
  if (version === 3) {
    const locator = () => {
      const type = r.u32le();
      const v = r.view(boundedLength(r, BigInt(r.u32le()), 1, 'locator length'));
      // Type 3 (UEFI variable) is a GUID followed by the UTF-16 variable name; others are URIs or paths.
      const value = type === 3 && v.length >= 16 ? `${formatGuid(v)}:${printable(utf16(v.subarray(16)))}` : text(v);
      return { type, value };
    };
    out.rimLocator = locator();
    out.platformCertLocator = locator();
  }
  // GCE's firmware writes 6 zero bytes after the Event3 structure; kept visible, not refused.
  out.trailing = r.remaining;
  return out;
}

function decodeNoAction(e: TcgEvent): EventDetail {
  const sig = e.data.subarray(0, 16).toString('latin1');
  if (sig === 'Spec ID Event03\0') return { kind: 'spec-id', specId: parseSpecIdEvent(e.data) };
  if (sig === STARTUP_LOCALITY) {
    if (e.data.length !== 17) throw inputError('EVENTLOG_BAD_EVENT_DATA', `StartupLocality event is ${e.data.length} bytes, not 17`);
    return { kind: 'startup-locality', locality: e.data[16] ?? 0 };
  }
  if (sig === SP800_155) return decodeSp800155(e.data, 1);
  if (sig === SP800_155_3) return decodeSp800155(e.data, 3);
  return { kind: 'no-action', signature: text(e.data.subarray(0, Math.min(16, e.data.length))) };
}

function stringDetail(data: Buffer): EventDetail {
  if (looksUtf16(data)) return { kind: 'string', text: printable(utf16(data)), encoding: 'utf-16' };
  const nul = data.indexOf(0);
  if (nul !== -1 && data.subarray(nul).some((b) => b !== 0)) {
    return { kind: 'string', text: `${text(data.subarray(0, nul))} (+${data.length - nul} bytes)`, encoding: 'ascii' };
  }
  return { kind: 'string', text: text(data), encoding: 'ascii' };
}

function blob(data: Buffer, withDescription: boolean): EventDetail {
  const r = new ByteReader(data, 'firmware blob event');
  const description = withDescription ? text(r.view(r.u8())) : undefined;
  const base = r.u64le();
  const length = r.u64le();
  r.end();
  return { kind: 'firmware-blob', ...(description !== undefined ? { description } : {}), base, length };
}

function handoff(data: Buffer, withDescription: boolean): EventDetail {
  const r = new ByteReader(data, 'handoff tables event');
  const description = withDescription ? text(r.view(r.u8())) : undefined;
  const count = boundedLength(r, r.u64le(), 24, 'NumberOfTables');
  const tables: { guid: string; address: bigint }[] = [];
  for (let i = 0; i < count; i++) tables.push({ guid: readGuid(r), address: r.u64le() });
  r.end();
  return { kind: 'handoff-tables', ...(description !== undefined ? { description } : {}), tables };
}

function variable(data: Buffer): EventDetail {
  const v = parseUefiVariable(data);
  const d: Extract<EventDetail, { kind: 'variable' }> = { kind: 'variable', guid: v.guid, name: v.name, dataLength: v.data.length, trailing: v.trailing };
  if (v.name === 'SecureBoot' && v.data.length === 1) d.secureBoot = v.data[0];
  else if (SECURE_BOOT_DBS.has(v.name)) d.signatures = parseSignatureLists(v.data);
  else if (/^Boot[0-9A-F]{4}$/.test(v.name) && v.data.length >= 6) {
    // EFI_LOAD_OPTION: u32 attributes, u16 device path length, NUL-terminated UTF-16 description.
    d.value = printable(utf16(v.data.subarray(6)));
  } else if (v.name === 'BootOrder') {
    const order: string[] = [];
    for (let i = 0; i + 1 < v.data.length && order.length < 256; i += 2) order.push((v.data.readUInt16LE(i)).toString(16).toUpperCase().padStart(4, '0'));
    d.value = order.join(',');
  } else if (v.data.length <= 64 && /^[\x20-\x7e\n]*$/.test(v.data.toString('latin1'))) {
    d.value = text(v.data);
  }
  return d;
}

function eventTag(data: Buffer): EventDetail {
  const r = new ByteReader(data, 'tagged event');
  const id = r.u32le();
  const body = r.view(boundedLength(r, BigInt(r.u32le()), 1, 'TaggedEventDataSize'));
  r.end();
  return { kind: 'event-tag', id, description: TAGS[id] ?? text(body) };
}

function decodeUnsafe(e: TcgEvent): EventDetail {
  const d = e.data;
  switch (e.type) {
    case EV.NO_ACTION:
      return decodeNoAction(e);
    case EV.SEPARATOR: {
      if (d.length !== 4) return stringDetail(d);
      const value = d.readUInt32LE(0);
      return { kind: 'separator', value, error: value === 1 };
    }
    case EV.S_CRTM_VERSION:
      return looksUtf16(d) ? { kind: 'string', text: printable(utf16(d)), encoding: 'utf-16' } : d.length === 16 ? { kind: 'string', text: formatGuid(d), encoding: 'ascii' } : stringDetail(d);
    case EV.EFI_PLATFORM_FIRMWARE_BLOB:
      return blob(d, false);
    case EV.EFI_PLATFORM_FIRMWARE_BLOB2:
      return blob(d, true);
    case EV.POST_CODE:
    case EV.POST_CODE2:
      if (d.length === 16) return blob(d, false);
      if (e.type === EV.POST_CODE2 && d.length > 0 && d.length === 17 + (d[0] ?? 0)) return blob(d, true);
      return stringDetail(d);
    case EV.EFI_VARIABLE_DRIVER_CONFIG:
    case EV.EFI_VARIABLE_BOOT:
    case EV.EFI_VARIABLE_BOOT2:
      return variable(d);
    case EV.EFI_VARIABLE_AUTHORITY: {
      const v = parseUefiVariable(d);
      return { kind: 'authority', guid: v.guid, name: v.name, authority: parseAuthority(v.name, v.data), trailing: v.trailing };
    }
    case EV.EFI_BOOT_SERVICES_APPLICATION:
    case EV.EFI_BOOT_SERVICES_DRIVER:
    case EV.EFI_RUNTIME_SERVICES_DRIVER:
      return { kind: 'image-load', image: parseImageLoad(d) };
    case EV.EFI_GPT_EVENT:
    case EV.EFI_GPT_EVENT2:
      return { kind: 'gpt', gpt: parseGpt(d) };
    case EV.EVENT_TAG:
      return eventTag(d);
    case EV.EFI_HANDOFF_TABLES:
      return handoff(d, false);
    case EV.EFI_HANDOFF_TABLES2:
      return handoff(d, true);
    case EV.IPL:
    case EV.EFI_ACTION:
    case EV.ACTION:
    case EV.OMIT_BOOT_DEVICE_EVENTS:
    case EV.COMPACT_HASH:
    case EV.PLATFORM_CONFIG_FLAGS:
    case EV.NONHOST_INFO:
    case EV.EFI_HCRTM_EVENT:
      return stringDetail(d);
    default:
      return /^[\x20-\x7e]+\0?$/.test(d.toString('latin1')) ? stringDetail(d) : { kind: 'binary', length: d.length };
  }
}

/** Decodes one event's data according to its (untrusted) type. */
export function decodeEvent(e: TcgEvent): EventDetail {
  try {
    return decodeUnsafe(e);
  } catch (err) {
    if (err instanceof CofferError) return { kind: 'malformed', error: err.message };
    throw err;
  }
}

function hex(n: bigint): string {
  return `0x${n.toString(16)}`;
}

function signatureSummary(s: SignatureEntry): string {
  if (s.kind === 'x509') return `X509 "${s.subject ?? ''}" sha256:${s.sha256.slice(0, 16)}`;
  if (s.kind === 'sha256') return `SHA256 ${s.sha256.slice(0, 16)}`;
  return `${s.type ?? 'other'} ${s.sha256.slice(0, 16)}`;
}

/** One line for a person. */
export function describeEvent(d: EventDetail): string {
  switch (d.kind) {
    case 'spec-id':
      return `Spec ID Event03: TCG ${d.specId.specVersion.major}.${d.specId.specVersion.minor} errata ${d.specId.specVersion.errata}, banks ${d.specId.algorithms.map((a) => a.name).join(', ')}${d.specId.vendorInfo.length ? `, vendor "${text(d.specId.vendorInfo)}"` : ''}`;
    case 'startup-locality':
      return `StartupLocality ${d.locality}`;
    case 'sp800-155':
      return `SP800-155 Event${d.version === 3 ? '3' : ''}: ${d.platformManufacturer} ${d.platformModel}, firmware ${d.firmwareManufacturer} ${d.firmwareVersion}, manifest ${d.referenceManifestGuid}${d.rimLocator ? `, RIM ${d.rimLocator.value || '(none)'}` : ''}`;
    case 'no-action':
      return `no action "${d.signature}"`;
    case 'string':
      return `"${d.text}"${d.encoding === 'utf-16' ? ' (UTF-16)' : ''}`;
    case 'separator':
      return d.error ? `separator: ERROR (${d.value})` : `separator ${d.value === 0 ? '0' : `0x${d.value.toString(16)}`}`;
    case 'firmware-blob':
      return `${d.description !== undefined ? `"${d.description}" ` : ''}base ${hex(d.base)} length ${hex(d.length)}`;
    case 'variable': {
      const head = `${d.name} (${d.guid})`;
      if (d.secureBoot !== undefined) return `${head} = ${d.secureBoot} (${d.secureBoot === 1 ? 'Secure Boot on' : d.secureBoot === 0 ? 'Secure Boot off' : 'INVALID: neither 0 nor 1'})`;
      if (d.signatures) {
        if (d.signatures.length === 0) return `${head}: empty`;
        const certs = d.signatures.filter((x) => x.kind === 'x509').map(signatureSummary);
        const hashes = d.signatures.filter((x) => x.kind !== 'x509');
        const rest = hashes.length > 3 ? [`${hashes.length} hash entries`] : hashes.map(signatureSummary);
        return `${head}: ${[...certs, ...rest].join('; ')}`;
      }
      if (d.value !== undefined) return `${head} = "${d.value}"`;
      return `${head}, ${d.dataLength} byte(s)`;
    }
    case 'authority': {
      const a = d.authority;
      const what = a.text !== undefined ? `"${a.text}"` : a.entry ? signatureSummary(a.entry) : '?';
      return `${d.name}: ${what}${a.missingOwner ? ' (no owner GUID: shim bug, go-attestation #157)' : ''}`;
    }
    case 'image-load':
      return `${d.image.path || '(no device path)'} at ${hex(d.image.location)} length ${hex(d.image.length)}`;
    case 'gpt':
      return `GPT disk ${d.gpt.diskGuid}: ${d.gpt.partitions.map((p) => `"${p.name}" ${p.typeGuid}`).join(', ')}`;
    case 'event-tag':
      return `tag 0x${d.id.toString(16)} "${d.description}"`;
    case 'handoff-tables':
      return `${d.description !== undefined ? `"${d.description}" ` : ''}${d.tables.map((t) => `${t.guid}@${hex(t.address)}`).join(', ')}`;
    case 'binary':
      return `${d.length} byte(s)`;
    case 'malformed':
      return `MALFORMED: ${d.error}`;
  }
}

/** Convenience: decode and describe every event of a log. */
export function decodeLog(log: EventLog): { event: TcgEvent; detail: EventDetail; summary: string }[] {
  return log.events.map((event) => {
    const detail = decodeEvent(event);
    return { event, detail, summary: describeEvent(detail) };
  });
}
