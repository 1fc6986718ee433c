import { createHash } from 'node:crypto';
import { ByteReader } from '../../bytes/reader.js';
import { CofferError, inputError } from '../../errors.js';
import { Certificate } from '../../pki/certificate.js';

/**
 * UEFI structures that appear inside TCG event data (UEFI 2.10 and the TCG PC Client PFP spec):
 * GUIDs, UEFI_VARIABLE_DATA, EFI_SIGNATURE_LIST / EFI_SIGNATURE_DATA, device paths,
 * UEFI_IMAGE_LOAD_EVENT and UEFI_GPT_DATA. All little-endian, all read through ByteReader.
 */

/** EFI GUIDs are "mixed-endian": the first three fields little-endian, the last eight bytes as stored. */
export function readGuid(r: ByteReader): string {
  const b = r.view(16);
  return formatGuid(b);
}

export function formatGuid(b: Uint8Array): string {
  const h = (i: number, n: number, le: boolean): string => {
    const part = Buffer.from(b.subarray(i, i + n));
    return (le ? part.reverse() : part).toString('hex');
  };
  return `${h(0, 4, true)}-${h(4, 2, true)}-${h(6, 2, true)}-${h(8, 2, false)}-${h(10, 6, false)}`;
}

export const EFI_GLOBAL_VARIABLE = '8be4df61-93ca-11d2-aa0d-00e098032b8c';
export const EFI_IMAGE_SECURITY_DATABASE = 'd719b2cb-3d3a-4596-a3bc-dad00e67656f';
export const SHIM_LOCK_GUID = '605dab50-e046-4300-abb6-3dd810dd8b23';
export const EFI_CERT_X509 = 'a5c059a1-94e4-4aa7-87b5-ab155c2bf072';
export const EFI_CERT_SHA256 = 'c1c41626-504c-4092-aca9-41f936934328';

const SIGNATURE_TYPE_NAMES: Record<string, string> = {
  [EFI_CERT_X509]: 'X509',
  [EFI_CERT_SHA256]: 'SHA256',
  '826ca512-cf10-4ac9-b187-be01496631bd': 'SHA1',
  '3c5766e8-269c-4e34-aa14-ed776e85b3b6': 'RSA2048',
  '3bd2a492-96c0-4079-b420-fcf98ef103ed': 'X509_SHA256',
  '7076876e-80c2-4ee6-aad2-28b349a6865b': 'X509_SHA384',
  '446dbf63-2502-4cda-bcfa-2465d2b0fe9d': 'X509_SHA512',
  'ff3e5307-9fd0-48c9-85f1-8ad56c701e01': 'SHA384',
  '093e0fae-a6c4-4f50-9f1b-d41e2b89c19a': 'SHA512',
};

/** Decode UTF-16LE, refusing odd lengths; an embedded terminator ends the string. */
export function utf16(b: Buffer): string {
  const even = b.length % 2 === 0 ? b : b.subarray(0, b.length - 1);
  const s = even.toString('utf16le');
  const nul = s.indexOf('\u0000');
  return nul === -1 ? s : s.slice(0, nul);
}

/** Printable text with control characters escaped, so a log can never inject terminal sequences. */
export function printable(s: string): string {
  // eslint-disable-next-line no-control-regex
  return s.replace(/[\u0000-\u001f\u007f-\u009f]/g, (c) => (c === '\n' ? '\\n' : c === '\t' ? '\\t' : `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`));
}

/** ASCII/UTF-8 event text: trailing NULs removed, control characters escaped. */
export function text(b: Buffer): string {
  let end = b.length;
  while (end > 0 && b[end - 1] === 0) end--;
  return printable(b.subarray(0, end).toString('utf8'));
}

/** Does the data look like a UTF-16LE string (every other byte zero, at least one character)? */
export function looksUtf16(b: Buffer): boolean {
  if (b.length < 2 || b.length % 2 !== 0) return false;
  let ascii = 0;
  for (let i = 0; i + 1 < b.length; i += 2) {
    if (b[i + 1] !== 0) return false;
    if ((b[i] ?? 0) >= 0x20 && (b[i] ?? 0) < 0x7f) ascii++;
  }
  return ascii > 0;
}

/** Bounds a u64 length so that it is a safe number no larger than what remains. */
export function boundedLength(r: ByteReader, n: bigint, unit: number, field: string): number {
  if (n > BigInt(r.remaining) / BigInt(unit)) {
    throw inputError('EVENTLOG_BAD_EVENT_DATA', `${r.what}: ${field} ${n} exceeds the ${r.remaining} remaining byte(s)`);
  }
  return Number(n);
}

export interface SignatureEntry {
  owner: string;
  kind: 'x509' | 'sha256' | 'other';
  /** For X.509: subject CN (or full subject when there is no CN) and SHA-256 of the DER. */
  subject?: string;
  /** Full subject distinguished name (X.509 only). */
  subjectDn?: string;
  issuer?: string;
  /** SHA-256 of the certificate DER for X.509; the hash itself for SHA-256 entries; SHA-256 of the data otherwise. */
  sha256: string;
  /** The signature type name for `other` entries. */
  type?: string;
  der?: Buffer;
}

function certEntry(owner: string, der: Buffer): SignatureEntry {
  let cert: Certificate;
  try {
    cert = Certificate.fromDer(der);
  } catch (e) {
    if (e instanceof CofferError) throw inputError('EVENTLOG_BAD_SIGNATURE_LIST', `an X.509 entry (owner ${owner}) is not a valid certificate: ${e.message}`);
    throw e;
  }
  return { owner, kind: 'x509', subject: cert.subjectCn || cert.subject, subjectDn: cert.subject, issuer: cert.issuerCn || cert.issuer, sha256: cert.sha256, der: cert.der };
}

/** EFI_SIGNATURE_LIST, concatenated: the contents of PK, KEK, db, dbx, MokList... */
export function parseSignatureLists(data: Buffer): SignatureEntry[] {
  const r = new ByteReader(data, 'EFI_SIGNATURE_LIST');
  const out: SignatureEntry[] = [];
  while (r.remaining > 0) {
    const start = r.offset;
    const type = readGuid(r);
    const listSize = r.u32le();
    const headerSize = r.u32le();
    const sigSize = r.u32le();
    if (listSize < 28 || listSize > data.length - start) {
      throw inputError('EVENTLOG_BAD_SIGNATURE_LIST', `EFI_SIGNATURE_LIST at offset ${start}: list size ${listSize} does not fit the ${data.length - start} remaining byte(s)`);
    }
    if (sigSize < 16 || headerSize > listSize - 28 || (listSize - 28 - headerSize) % sigSize !== 0) {
      throw inputError('EVENTLOG_BAD_SIGNATURE_LIST', `EFI_SIGNATURE_LIST at offset ${start}: header size ${headerSize} and signature size ${sigSize} do not divide list size ${listSize}`);
    }
    r.skip(headerSize);
    const count = (listSize - 28 - headerSize) / sigSize;
    for (let i = 0; i < count; i++) {
      const owner = readGuid(r);
      const sig = r.bytes(sigSize - 16);
      if (type === EFI_CERT_X509) out.push(certEntry(owner, sig));
      else if (type === EFI_CERT_SHA256) {
        if (sig.length !== 32) throw inputError('EVENTLOG_BAD_SIGNATURE_LIST', `EFI_CERT_SHA256 entry is ${sig.length} bytes, not 32`);
        out.push({ owner, kind: 'sha256', sha256: sig.toString('hex') });
      } else {
        out.push({ owner, kind: 'other', type: SIGNATURE_TYPE_NAMES[type] ?? type, sha256: createHash('sha256').update(sig).digest('hex') });
      }
    }
  }
  return out;
}

/** Length of one DER TLV at the start of b (definite lengths only), or undefined. */
export function derLength(b: Buffer): number | undefined {
  if (b.length < 2 || b[0] !== 0x30) return undefined;
  const first = b[1] ?? 0;
  if (first < 0x80) return 2 + first;
  const n = first & 0x7f;
  if (n === 0 || n > 4 || b.length < 2 + n) return undefined;
  let len = 0;
  for (let i = 0; i < n; i++) len = len * 256 + (b[2 + i] ?? 0);
  return 2 + n + len;
}

export interface AuthorityData {
  entry?: SignatureEntry;
  /** shim before rhboot/shim@8a27a48 logged the certificate without its owner GUID and with one extra byte (go-attestation #157). */
  missingOwner: boolean;
  /** SbatLevel and other non-certificate authority payloads. */
  text?: string;
}

/** The VariableData of EV_EFI_VARIABLE_AUTHORITY: one EFI_SIGNATURE_DATA (owner GUID + certificate). */
export function parseAuthority(name: string, data: Buffer): AuthorityData {
  if (name === 'SbatLevel') return { missingOwner: false, text: text(data) };
  if (data[0] === 0x30 && data[1] === 0x82) {
    const n = derLength(data);
    if (n !== undefined && n <= data.length) return { entry: certEntry('(none)', data.subarray(0, n)), missingOwner: true };
  }
  // shim measures MokListTrusted and similar one-byte settings as authorities.
  if (data.length < 17) return { missingOwner: false, text: data.toString('hex') };
  const r = new ByteReader(data, `${name} authority`);
  const owner = readGuid(r);
  const rest = r.bytes(r.remaining);
  if (rest[0] === 0x30) return { entry: certEntry(owner, rest), missingOwner: false };
  if (rest.length === 32) return { entry: { owner, kind: 'sha256', sha256: rest.toString('hex') }, missingOwner: false };
  return { entry: { owner, kind: 'other', sha256: createHash('sha256').update(rest).digest('hex') }, missingOwner: false };
}

export interface UefiVariable {
  guid: string;
  name: string;
  data: Buffer;
  /** Bytes after VariableData (0 in a well-formed event). */
  trailing: number;
}

/** UEFI_VARIABLE_DATA: GUID, u64 name length (characters), u64 data length, UTF-16 name, data. */
export function parseUefiVariable(data: Buffer): UefiVariable {
  const r = new ByteReader(data, 'UEFI_VARIABLE_DATA');
  const guid = readGuid(r);
  const nameLen = r.u64le();
  const dataLen = r.u64le();
  const chars = boundedLength(r, nameLen, 2, 'UnicodeNameLength');
  const name = printable(r.view(chars * 2).toString('utf16le'));
  const len = boundedLength(r, dataLen, 1, 'VariableDataLength');
  const value = r.bytes(len);
  return { guid, name, data: value, trailing: r.remaining };
}

// ---------------------------------------------------------------------------------------------
// Device paths (UEFI 2.10 chapter 10)

export interface DevicePathNode {
  type: number;
  subtype: number;
  text: string;
}

const MAX_NODES = 256;

function eisaId(hid: number): string {
  if ((hid & 0xffff) === 0x41d0) return `PNP${(hid >>> 16).toString(16).toUpperCase().padStart(4, '0')}`;
  return `0x${hid.toString(16)}`;
}

function nodeText(type: number, subtype: number, body: Buffer): string {
  const r = new ByteReader(body, 'device path node');
  const hex = () => body.toString('hex');
  try {
    switch (type) {
      case 0x01:
        if (subtype === 0x01 && body.length === 2) {
          const fn = r.u8();
          const dev = r.u8();
          return `Pci(${dev},${fn})`;
        }
        if (subtype === 0x03 && body.length >= 20) {
          const memType = r.u32le();
          return `MemoryMapped(${memType},0x${r.u64le().toString(16)},0x${r.u64le().toString(16)})`;
        }
        if (subtype === 0x04 && body.length >= 16) return `VenHw(${readGuid(r)}${r.remaining ? `,${r.bytes(r.remaining).toString('hex')}` : ''})`;
        break;
      case 0x02:
        if (subtype === 0x01 && body.length === 8) {
          const hid = r.u32le();
          return `Acpi(${eisaId(hid)},${r.u32le()})`;
        }
        break;
      case 0x03:
        if (subtype === 0x02 && body.length === 4) return `Scsi(${r.u16le()},${r.u16le()})`;
        if (subtype === 0x05 && body.length === 2) return `USB(${r.u8()},${r.u8()})`;
        if (subtype === 0x0b && body.length >= 32) return `MAC(${r.bytes(6).toString('hex')})`;
        if (subtype === 0x12 && body.length === 6) return `Sata(${r.u16le()},${r.u16le()},${r.u16le()})`;
        if (subtype === 0x17 && body.length === 12) return `NVMe(${r.u32le()},${r.bytes(8).toString('hex')})`;
        if (subtype === 0x0a && body.length >= 16) return `VenMsg(${readGuid(r)})`;
        if (subtype === 0x18 && body.length >= 0) return `Uri(${text(body)})`;
        break;
      case 0x04:
        if (subtype === 0x01 && body.length === 38) {
          const part = r.u32le();
          const start = r.u64le();
          const size = r.u64le();
          const sig = r.view(16);
          r.u8(); // partition format (MBR 1, GPT 2)
          const sigType = r.u8();
          const sigText = sigType === 2 ? formatGuid(sig).toUpperCase() : sigType === 1 ? `0x${sig.readUInt32LE(0).toString(16)}` : '0';
          return `HD(${part},${sigType === 2 ? 'GPT' : sigType === 1 ? 'MBR' : 'None'},${sigText},0x${start.toString(16)},0x${size.toString(16)})`;
        }
        if (subtype === 0x02 && body.length === 20) return `CDROM(${r.u32le()},0x${r.u64le().toString(16)},0x${r.u64le().toString(16)})`;
        if (subtype === 0x03 && body.length >= 16) return `VenMedia(${readGuid(r).toUpperCase()})`;
        if (subtype === 0x04) return `File(${printable(utf16(body))})`;
        if (subtype === 0x06 && body.length === 16) return `FvFile(${readGuid(r).toUpperCase()})`;
        if (subtype === 0x07 && body.length === 16) return `Fv(${readGuid(r).toUpperCase()})`;
        if (subtype === 0x08 && body.length === 20) {
          r.u32le();
          return `Offset(0x${r.u64le().toString(16)},0x${r.u64le().toString(16)})`;
        }
        break;
      case 0x05:
        if (subtype === 0x01 && body.length >= 4) return `BBS(${r.u16le()},${r.u16le()})`;
        break;
    }
  } catch (e) {
    if (!(e instanceof CofferError)) throw e;
  }
  return `Path(${type},${subtype}${body.length ? `,${hex()}` : ''})`;
}

/** A device path (one instance) into nodes; stops at the end node, bounded by the input size. */
export function parseDevicePath(data: Buffer): DevicePathNode[] {
  const r = new ByteReader(data, 'device path');
  const nodes: DevicePathNode[] = [];
  while (r.remaining > 0) {
    if (nodes.length >= MAX_NODES) throw inputError('EVENTLOG_BAD_DEVICE_PATH', `device path has more than ${MAX_NODES} nodes`);
    const type = r.u8();
    const subtype = r.u8();
    const len = r.u16le();
    if (len < 4 || len - 4 > r.remaining) throw inputError('EVENTLOG_BAD_DEVICE_PATH', `device path node (${type},${subtype}) length ${len} is invalid`);
    const body = r.view(len - 4);
    if (type === 0x7f) {
      if (subtype === 0xff) break;
      nodes.push({ type, subtype, text: '/' }); // end of this instance, another follows
      continue;
    }
    nodes.push({ type, subtype, text: nodeText(type, subtype, body) });
  }
  return nodes;
}

export function formatDevicePath(nodes: readonly DevicePathNode[]): string {
  return nodes.map((n) => n.text).join('/').replace(/\/\/\//g, ' | ');
}

export interface ImageLoad {
  location: bigint;
  length: bigint;
  linkTimeAddress: bigint;
  devicePath: DevicePathNode[];
  path: string;
  /** Bytes after the device path (shim allocates the structure with a placeholder node: 8 bytes). */
  trailing: number;
}

/** UEFI_IMAGE_LOAD_EVENT. */
export function parseImageLoad(data: Buffer): ImageLoad {
  const r = new ByteReader(data, 'UEFI_IMAGE_LOAD_EVENT');
  const location = r.u64le();
  const length = r.u64le();
  const linkTimeAddress = r.u64le();
  const dpLen = boundedLength(r, r.u64le(), 1, 'LengthOfDevicePath');
  const devicePath = parseDevicePath(r.view(dpLen));
  return { location, length, linkTimeAddress, devicePath, path: formatDevicePath(devicePath), trailing: r.remaining };
}

export interface GptPartition {
  typeGuid: string;
  uniqueGuid: string;
  startLba: bigint;
  endLba: bigint;
  attributes: bigint;
  name: string;
}

export interface GptData {
  diskGuid: string;
  partitions: GptPartition[];
}

/** UEFI_GPT_DATA: the 92-byte EFI_PARTITION_TABLE_HEADER, u64 number of partitions, the entries. */
export function parseGpt(data: Buffer): GptData {
  const r = new ByteReader(data, 'UEFI_GPT_DATA');
  const sig = r.bytes(8).toString('latin1');
  if (sig !== 'EFI PART') throw inputError('EVENTLOG_BAD_EVENT_DATA', `GPT header signature is "${printable(sig)}", not "EFI PART"`);
  r.u32le(); // revision
  const headerSize = r.u32le();
  if (headerSize < 92 || headerSize > 512) throw inputError('EVENTLOG_BAD_EVENT_DATA', `GPT header size ${headerSize} is out of range`);
  r.skip(4 + 4 + 8 + 8 + 8 + 8);
  const diskGuid = readGuid(r);
  r.skip(8);
  r.u32le(); // number of entries in the on-disk array
  const entrySize = r.u32le();
  r.skip(4);
  r.skip(headerSize - 92);
  if (entrySize < 128 || entrySize > 4096) throw inputError('EVENTLOG_BAD_EVENT_DATA', `GPT partition entry size ${entrySize} is out of range`);
  const count = boundedLength(r, r.u64le(), entrySize, 'NumberOfPartitions');
  const partitions: GptPartition[] = [];
  for (let i = 0; i < count; i++) {
    const e = new ByteReader(r.view(entrySize), 'GPT partition entry');
    partitions.push({
      typeGuid: readGuid(e),
      uniqueGuid: readGuid(e),
      startLba: e.u64le(),
      endLba: e.u64le(),
      attributes: e.u64le(),
      name: printable(utf16(e.view(72))),
    });
  }
  r.end();
  return { diskGuid, partitions };
}
