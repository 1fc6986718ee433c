import { inputError } from '../../errors.js';

/**
 * Intel PCS collateral: TCB info (v2 and v3, SGX and TDX) and enclave (QE) identity (v2). Each
 * arrives as `{"tcbInfo": {...}, "signature": "<hex r||s>"}` (or `enclaveIdentity`), and the
 * signature is ECDSA P-256/SHA-256 over the exact bytes of the inner JSON value as it appears in
 * the document. So the value is sliced out of the raw bytes, never re-serialised, and the
 * structure Coffer reads is parsed from that same slice: what is used is what was signed.
 * Duplicate keys are refused everywhere (JSON.parse would silently keep the last one).
 */

export const TCB_STATUSES = [
  'UpToDate',
  'SWHardeningNeeded',
  'ConfigurationNeeded',
  'ConfigurationAndSWHardeningNeeded',
  'OutOfDate',
  'OutOfDateConfigurationNeeded',
  'Revoked',
] as const;
export type TcbStatus = (typeof TCB_STATUSES)[number];

export interface SignedJson {
  /** The exact signed bytes (the inner JSON value). */
  signed: Buffer;
  /** r || s, 64 bytes. */
  signature: Buffer;
}

export interface TcbLevel {
  /** SGX TCB components 1..16. */
  sgxComponents: number[];
  pceSvn: number;
  /** TDX TCB components 1..16 (TDX TCB info only). */
  tdxComponents?: number[];
  tcbDate: string;
  status: TcbStatus;
  advisoryIds: string[];
}

export interface IsvLevel {
  isvSvn: number;
  tcbDate: string;
  status: TcbStatus;
  advisoryIds: string[];
}

export interface TdxModuleIdentity {
  id: string;
  mrSigner: Buffer;
  attributes: Buffer;
  attributesMask: Buffer;
  levels: IsvLevel[];
}

export interface TcbInfo extends SignedJson {
  kind: 'tcb-info';
  id: 'SGX' | 'TDX';
  version: 2 | 3;
  issueDate: Date;
  nextUpdate: Date;
  fmspc: Buffer;
  pceId: Buffer;
  tcbType: number;
  tcbEvaluationDataNumber: number;
  tdxModule?: { mrSigner: Buffer; attributes: Buffer; attributesMask: Buffer };
  tdxModuleIdentities?: TdxModuleIdentity[];
  levels: TcbLevel[];
}

export interface QeIdentity extends SignedJson {
  kind: 'qe-identity';
  id: 'QE' | 'QVE' | 'TD_QE';
  version: 2;
  issueDate: Date;
  nextUpdate: Date;
  tcbEvaluationDataNumber: number;
  miscSelect: number;
  miscSelectMask: number;
  attributes: Buffer;
  attributesMask: Buffer;
  mrSigner: Buffer;
  isvProdId: number;
  levels: IsvLevel[];
}

const MAX_JSON = 1 << 20;
const MAX_DEPTH = 32;

function bad(what: string, msg: string): never {
  throw inputError('DCAP_BAD_COLLATERAL', `${what}: ${msg}`);
}

/**
 * Walks well-formed JSON bytes (already accepted by JSON.parse), refusing duplicate keys and
 * excessive nesting, and returns the byte spans of the top-level object's members.
 */
function topLevelSpans(buf: Buffer, what: string): Map<string, [number, number]> {
  let i = 0;
  const ws = () => {
    while (i < buf.length && (buf[i] === 0x20 || buf[i] === 0x0a || buf[i] === 0x0d || buf[i] === 0x09)) i++;
  };
  const str = (): string => {
    const start = i;
    i++;
    while (i < buf.length && buf[i] !== 0x22) i += buf[i] === 0x5c ? 2 : 1;
    i++;
    return JSON.parse(buf.toString('utf8', start, i)) as string;
  };
  const value = (depth: number, spans?: Map<string, [number, number]>): void => {
    if (depth > MAX_DEPTH) bad(what, `nested deeper than ${MAX_DEPTH} levels`);
    ws();
    const c = buf[i];
    if (c === 0x7b || c === 0x5b) {
      const close = c === 0x7b ? 0x7d : 0x5d;
      const keys = new Set<string>();
      i++;
      ws();
      if (buf[i] === close) {
        i++;
        return;
      }
      for (;;) {
        ws();
        if (c === 0x7b) {
          const key = str();
          if (keys.has(key)) bad(what, `key "${key}" appears twice in one object`);
          keys.add(key);
          ws();
          i++; // ':'
          ws();
          const start = i;
          value(depth + 1);
          spans?.set(key, [start, i]);
        } else {
          value(depth + 1);
        }
        ws();
        if (buf[i] === 0x2c) {
          i++;
          continue;
        }
        i++; // close
        return;
      }
    }
    if (c === 0x22) {
      str();
      return;
    }
    while (i < buf.length && !/[\s,\]}]/.test(String.fromCharCode(buf[i] as number))) i++;
  };
  const spans = new Map<string, [number, number]>();
  ws();
  if (buf[i] !== 0x7b) bad(what, 'is not a JSON object');
  value(0, spans);
  return spans;
}

function parseJson(bytes: Uint8Array, what: string): unknown {
  if (bytes.length > MAX_JSON) bad(what, `larger than ${MAX_JSON} bytes`);
  const text = Buffer.from(bytes).toString('utf8');
  try {
    return JSON.parse(text);
  } catch {
    return bad(what, 'is not valid JSON');
  }
}

function sigHex(v: unknown, what: string): Buffer {
  if (typeof v !== 'string' || !/^[0-9a-fA-F]{128}$/.test(v)) bad(what, 'signature must be 128 hex digits (ECDSA P-256 r || s)');
  return Buffer.from(v, 'hex');
}

/** Splits a PCS response `{"<key>": {...}, "signature": "..."}` into the signed bytes and signature. */
export function splitSignedJson(bytes: Uint8Array, key: 'tcbInfo' | 'enclaveIdentity', what: string): SignedJson & { body: unknown } {
  const doc = parseJson(bytes, what);
  if (!doc || typeof doc !== 'object' || Array.isArray(doc)) bad(what, 'is not a JSON object');
  const buf = Buffer.from(bytes);
  const spans = topLevelSpans(buf, what);
  const extra = [...spans.keys()].filter((k) => k !== key && k !== 'signature');
  if (extra.length > 0) bad(what, `unexpected member(s) ${extra.join(', ')}`);
  const span = spans.get(key);
  if (!span) bad(what, `has no "${key}"`);
  const signed = Buffer.from(buf.subarray(span[0], span[1]));
  return { signed, signature: sigHex((doc as Record<string, unknown>).signature, what), body: JSON.parse(signed.toString('utf8')) as unknown };
}

// ---------------------------------------------------------------------------------------------
// Field readers: every field typed and sized, unknown statuses refused.

type Obj = Record<string, unknown>;

function obj(v: unknown, what: string): Obj {
  if (!v || typeof v !== 'object' || Array.isArray(v)) bad(what, 'is not an object');
  return v as Obj;
}

function int(o: Obj, k: string, what: string, max = 0xffffffff): number {
  const v = o[k];
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > max) bad(what, `"${k}" must be an integer 0..${max}`);
  return v;
}

function hex(o: Obj, k: string, what: string, bytes: number): Buffer {
  const v = o[k];
  if (typeof v !== 'string' || v.length !== bytes * 2 || !/^[0-9a-fA-F]*$/.test(v)) bad(what, `"${k}" must be ${bytes} bytes of hex`);
  return Buffer.from(v, 'hex');
}

const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?Z$/;
function date(o: Obj, k: string, what: string): Date {
  const v = o[k];
  const d = typeof v === 'string' && ISO.test(v) ? new Date(v) : undefined;
  if (!d || Number.isNaN(d.getTime())) bad(what, `"${k}" must be an ISO 8601 UTC time`);
  return d;
}

function status(o: Obj, what: string): TcbStatus {
  const v = o.tcbStatus;
  if (typeof v !== 'string' || !(TCB_STATUSES as readonly string[]).includes(v)) bad(what, `unknown tcbStatus ${JSON.stringify(v)}`);
  return v as TcbStatus;
}

function advisories(o: Obj, what: string): string[] {
  const v = o.advisoryIDs;
  if (v === undefined) return [];
  if (!Array.isArray(v) || !v.every((x) => typeof x === 'string')) bad(what, '"advisoryIDs" must be an array of strings');
  return v as string[];
}

function tcbDate(o: Obj, what: string): string {
  return date(o, 'tcbDate', what).toISOString();
}

function array(v: unknown, what: string): unknown[] {
  if (!Array.isArray(v) || v.length === 0) bad(what, 'must be a non-empty array');
  return v;
}

function isvLevels(v: unknown, what: string): IsvLevel[] {
  return array(v, `${what} tcbLevels`).map((l, n) => {
    const lv = obj(l, `${what} tcbLevels[${n}]`);
    const tcb = obj(lv.tcb, `${what} tcbLevels[${n}].tcb`);
    return { isvSvn: int(tcb, 'isvsvn', what, 0xffff), tcbDate: tcbDate(lv, what), status: status(lv, what), advisoryIds: advisories(lv, what) };
  });
}

function components(v: unknown, what: string): number[] {
  const a = array(v, what);
  if (a.length !== 16) bad(what, `must list 16 components, lists ${a.length}`);
  return a.map((c, n) => int(obj(c, `${what}[${n}]`), 'svn', what, 255));
}

function tcbLevel(l: unknown, n: number, version: 2 | 3, id: 'SGX' | 'TDX', what: string): TcbLevel {
  const w = `${what} tcbLevels[${n}]`;
  const lv = obj(l, w);
  const tcb = obj(lv.tcb, `${w}.tcb`);
  let sgxComponents: number[];
  if (version === 2) {
    sgxComponents = [];
    for (let i = 1; i <= 16; i++) sgxComponents.push(int(tcb, `sgxtcbcomp${String(i).padStart(2, '0')}svn`, w, 255));
  } else {
    sgxComponents = components(tcb.sgxtcbcomponents, `${w}.tcb.sgxtcbcomponents`);
  }
  const out: TcbLevel = { sgxComponents, pceSvn: int(tcb, 'pcesvn', w, 0xffff), tcbDate: tcbDate(lv, w), status: status(lv, w), advisoryIds: advisories(lv, w) };
  if (id === 'TDX') out.tdxComponents = components(tcb.tdxtcbcomponents, `${w}.tcb.tdxtcbcomponents`);
  return out;
}

function moduleFields(o: Obj, what: string): { mrSigner: Buffer; attributes: Buffer; attributesMask: Buffer } {
  return { mrSigner: hex(o, 'mrsigner', what, 48), attributes: hex(o, 'attributes', what, 8), attributesMask: hex(o, 'attributesMask', what, 8) };
}

function tcbInfoFrom(body: unknown, signed: SignedJson, what: string): TcbInfo {
  const t = obj(body, what);
  const version = t.version;
  if (version !== 2 && version !== 3) bad(what, `TCB info version ${JSON.stringify(version)} is not supported (2 and 3 are)`);
  let id: 'SGX' | 'TDX';
  if (version === 2) {
    if (t.id !== undefined) bad(what, 'a version 2 TCB info has no "id"');
    id = 'SGX';
  } else if (t.id === 'SGX' || t.id === 'TDX') {
    id = t.id;
  } else {
    return bad(what, `TCB info id ${JSON.stringify(t.id)} is neither SGX nor TDX`);
  }
  const info: TcbInfo = {
    kind: 'tcb-info',
    ...signed,
    id,
    version,
    issueDate: date(t, 'issueDate', what),
    nextUpdate: date(t, 'nextUpdate', what),
    fmspc: hex(t, 'fmspc', what, 6),
    pceId: hex(t, 'pceId', what, 2),
    tcbType: int(t, 'tcbType', what, 0xffff),
    tcbEvaluationDataNumber: int(t, 'tcbEvaluationDataNumber', what),
    levels: array(t.tcbLevels, `${what} tcbLevels`).map((l, n) => tcbLevel(l, n, version, id, what)),
  };
  if (t.tdxModule !== undefined) info.tdxModule = moduleFields(obj(t.tdxModule, `${what} tdxModule`), `${what} tdxModule`);
  if (t.tdxModuleIdentities !== undefined) {
    info.tdxModuleIdentities = array(t.tdxModuleIdentities, `${what} tdxModuleIdentities`).map((m, n) => {
      const w = `${what} tdxModuleIdentities[${n}]`;
      const o = obj(m, w);
      if (typeof o.id !== 'string' || !/^TDX_[0-9A-Fa-f]{2}$/.test(o.id)) bad(w, `id ${JSON.stringify(o.id)} is not TDX_<hex byte>`);
      return { id: o.id.toUpperCase(), ...moduleFields(o, w), levels: isvLevels(o.tcbLevels, w) };
    });
  }
  if (id === 'SGX' && (info.tdxModule || info.tdxModuleIdentities)) bad(what, 'an SGX TCB info carries TDX module data');
  return info;
}

function qeIdentityFrom(body: unknown, signed: SignedJson, what: string): QeIdentity {
  const q = obj(body, what);
  if (q.version !== 2) bad(what, `enclave identity version ${JSON.stringify(q.version)} is not supported (2 is)`);
  if (q.id !== 'QE' && q.id !== 'QVE' && q.id !== 'TD_QE') bad(what, `enclave identity id ${JSON.stringify(q.id)} is not QE, QVE or TD_QE`);
  return {
    kind: 'qe-identity',
    ...signed,
    id: q.id,
    version: 2,
    issueDate: date(q, 'issueDate', what),
    nextUpdate: date(q, 'nextUpdate', what),
    tcbEvaluationDataNumber: int(q, 'tcbEvaluationDataNumber', what),
    miscSelect: hex(q, 'miscselect', what, 4).readUInt32BE(0),
    miscSelectMask: hex(q, 'miscselectMask', what, 4).readUInt32BE(0),
    attributes: hex(q, 'attributes', what, 16),
    attributesMask: hex(q, 'attributesMask', what, 16),
    mrSigner: hex(q, 'mrsigner', what, 32),
    isvProdId: int(q, 'isvprodid', what, 0xffff),
    levels: isvLevels(q.tcbLevels, what),
  };
}

/** A PCS TCB info response (`{"tcbInfo": ..., "signature": ...}`), exactly as served. */
export function parseTcbInfo(bytes: Uint8Array, what = 'TCB info'): TcbInfo {
  const { body, ...signed } = splitSignedJson(bytes, 'tcbInfo', what);
  return tcbInfoFrom(body, signed, what);
}

/** A PCS enclave identity response (`{"enclaveIdentity": ..., "signature": ...}`), exactly as served. */
export function parseQeIdentity(bytes: Uint8Array, what = 'QE identity'): QeIdentity {
  const { body, ...signed } = splitSignedJson(bytes, 'enclaveIdentity', what);
  return qeIdentityFrom(body, signed, what);
}

/** The same from its parts: the inner JSON text exactly as signed, and the hex signature (the dcap-qvl collateral form). */
export function tcbInfoFromParts(inner: Uint8Array | string, signatureHex: string, what = 'TCB info'): TcbInfo {
  const signed = Buffer.from(inner);
  const body = parseJson(signed, what);
  topLevelSpans(signed, what);
  return tcbInfoFrom(body, { signed, signature: sigHex(signatureHex, what) }, what);
}

export function qeIdentityFromParts(inner: Uint8Array | string, signatureHex: string, what = 'QE identity'): QeIdentity {
  const signed = Buffer.from(inner);
  const body = parseJson(signed, what);
  topLevelSpans(signed, what);
  return qeIdentityFrom(body, { signed, signature: sigHex(signatureHex, what) }, what);
}
