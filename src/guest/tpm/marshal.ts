import { ByteReader } from '../../bytes/reader.js';
import type { ByteWriter } from '../../bytes/writer.js';
import { CofferError, inputError } from '../../errors.js';
import { HEADER_SIZE, TPM_ST } from './constants.js';

/**
 * The command and response frames of TPM 2.0 (Part 1, "Command/Response Structure"; Part 3,
 * each command's tables): header (tag, size, code), handle area, authorisation area (with
 * sessions), parameters. Everything big-endian, every length checked.
 */

/** One authorisation as it goes on the wire. */
export interface CommandSession {
  handle: number;
  nonce: Uint8Array;
  /** TPMA_SESSION. */
  attributes: number;
  /** HMAC, or the password for TPM_RS_PW. */
  hmac: Uint8Array;
}

export function tpm2b(w: ByteWriter, data: Uint8Array, max: number, field: string): ByteWriter {
  if (data.length > max) throw inputError('TPM_BAD_ARGUMENT', `${field} is ${data.length} bytes, more than the ${max} it may hold`);
  return w.u16be(data.length).bytes(data);
}

export function readTpm2b(r: ByteReader, max: number, field: string): Buffer {
  const n = r.u16be();
  if (n > max) throw inputError('TPM_BAD_RESPONSE', `${r.what}: ${field} claims ${n} bytes, more than the ${max} its type allows`);
  return r.bytes(n);
}

/**
 * Builds a complete command; with sessions the tag is TPM_ST_SESSIONS and the auth area follows the
 * handles. Written straight into the one buffer it returns: commands carry passwords and secrets
 * (Create's sensitive data), and the caller wipes that buffer, so no other copy may be left behind.
 */
export function buildCommand(code: number, handles: readonly number[], params: Uint8Array, sessions: readonly CommandSession[] = []): Buffer {
  let authSize = 0;
  for (const s of sessions) {
    if (s.nonce.length > 64) throw inputError('TPM_BAD_ARGUMENT', `session nonce is ${s.nonce.length} bytes, more than the 64 it may hold`);
    if (s.hmac.length > 64) throw inputError('TPM_BAD_ARGUMENT', `session HMAC or password is ${s.hmac.length} bytes, more than the 64 it may hold`);
    authSize += 4 + 2 + s.nonce.length + 1 + 2 + s.hmac.length;
  }
  const total = HEADER_SIZE + 4 * handles.length + (sessions.length > 0 ? 4 + authSize : 0) + params.length;
  const out = Buffer.alloc(total);
  let o = out.writeUInt16BE(sessions.length > 0 ? TPM_ST.SESSIONS : TPM_ST.NO_SESSIONS, 0);
  o = out.writeUInt32BE(total, o);
  o = out.writeUInt32BE(code >>> 0, o);
  for (const h of handles) o = out.writeUInt32BE(h >>> 0, o);
  if (sessions.length > 0) {
    o = out.writeUInt32BE(authSize, o);
    for (const s of sessions) {
      o = out.writeUInt32BE(s.handle >>> 0, o);
      o = out.writeUInt16BE(s.nonce.length, o);
      out.set(s.nonce, o);
      o += s.nonce.length;
      o = out.writeUInt8(s.attributes & 0xff, o);
      o = out.writeUInt16BE(s.hmac.length, o);
      out.set(s.hmac, o);
      o += s.hmac.length;
    }
  }
  out.set(params, o);
  return out;
}

export interface ResponseExpectation {
  /** Handles the command returns before its parameters (CreatePrimary, Load, StartAuthSession: 1). */
  handles?: number;
  /** Sessions the command sent: the response carries as many acknowledgements. */
  sessions?: number;
}

export interface ResponseSession {
  nonce: Buffer;
  attributes: number;
  hmac: Buffer;
}

export interface ParsedResponse {
  tag: number;
  /** TPM_RC; nothing else is set when it is not 0. */
  rc: number;
  handles: number[];
  /** The response parameter area, exactly. */
  params: Buffer;
  sessions: ResponseSession[];
}

/**
 * Parses a response frame strictly: tag TPM_ST_NO_SESSIONS or TPM_ST_SESSIONS, size field equal
 * to the bytes given, an error response exactly 10 bytes with TPM_ST_NO_SESSIONS, a success
 * response tagged as the command was, with the expected handles, a parameterSize that fits, and
 * one session acknowledgement per command session, ending exactly at the end.
 */
export function parseResponse(data: Uint8Array, exp: ResponseExpectation = {}): ParsedResponse {
  try {
    return parseFrame(data, exp);
  } catch (e) {
    // A short handle area or session block is a malformed response, whatever the reader called it.
    if (e instanceof CofferError && e.code !== 'TPM_BAD_RESPONSE') throw inputError('TPM_BAD_RESPONSE', e.message);
    throw e;
  }
}

function parseFrame(data: Uint8Array, exp: ResponseExpectation): ParsedResponse {
  const r = new ByteReader(data, 'TPM response');
  if (data.length < HEADER_SIZE) throw inputError('TPM_BAD_RESPONSE', `TPM response is ${data.length} bytes, shorter than the ${HEADER_SIZE}-byte header`);
  const tag = r.u16be();
  const size = r.u32be();
  const rc = r.u32be();
  if (tag !== TPM_ST.NO_SESSIONS && tag !== TPM_ST.SESSIONS) throw inputError('TPM_BAD_RESPONSE', `TPM response tag is 0x${tag.toString(16).padStart(4, '0')}, neither TPM_ST_NO_SESSIONS nor TPM_ST_SESSIONS`);
  if (size !== data.length) throw inputError('TPM_BAD_RESPONSE', `TPM response header declares ${size} bytes, ${data.length} were received`);
  if (rc !== 0) {
    if (size !== HEADER_SIZE || tag !== TPM_ST.NO_SESSIONS) throw inputError('TPM_BAD_RESPONSE', `TPM error response 0x${rc.toString(16)} is ${size} bytes with tag 0x${tag.toString(16)}; an error response is a bare ${HEADER_SIZE}-byte header tagged TPM_ST_NO_SESSIONS`);
    return { tag, rc, handles: [], params: Buffer.alloc(0), sessions: [] };
  }
  const nSessions = exp.sessions ?? 0;
  const want = nSessions > 0 ? TPM_ST.SESSIONS : TPM_ST.NO_SESSIONS;
  if (tag !== want) throw inputError('TPM_BAD_RESPONSE', `TPM response tag is 0x${tag.toString(16)}, the command ${nSessions > 0 ? 'had sessions (expected TPM_ST_SESSIONS)' : 'had none (expected TPM_ST_NO_SESSIONS)'}`);
  const handles: number[] = [];
  for (let i = 0; i < (exp.handles ?? 0); i++) handles.push(r.u32be());
  let params: Buffer;
  const sessions: ResponseSession[] = [];
  if (nSessions > 0) {
    const paramSize = r.u32be();
    if (paramSize > r.remaining) throw inputError('TPM_BAD_RESPONSE', `TPM response parameterSize ${paramSize} exceeds the ${r.remaining} bytes left`);
    params = r.bytes(paramSize);
    for (let i = 0; i < nSessions; i++) {
      const nonce = readTpm2b(r, 64, `session ${i + 1} nonce`);
      const attributes = r.u8();
      const hmac = readTpm2b(r, 64, `session ${i + 1} HMAC`);
      sessions.push({ nonce, attributes, hmac });
    }
    r.end();
  } else {
    params = r.bytes(r.remaining);
  }
  return { tag, rc, handles, params, sessions };
}
