import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { ByteReader } from '../../bytes/reader.js';
import { ByteWriter } from '../../bytes/writer.js';
import { CofferError, inputError } from '../../errors.js';
import { TPM_ALG, TPM_HASHES, type TpmHash } from '../../evidence/tpm/constants.js';
import { readPcrSelection, type PcrSelection } from '../../evidence/tpm/structures.js';
import { CC_NAMES, SESSION_CONTINUE, TPM_CAP, TPM_CC, TPM_HT_NV_INDEX, TPM_RH, TPM_RS_PW, TPM_SE, TPM_ST, TPM_SU } from './constants.js';
import { buildCommand, parseResponse, readTpm2b, tpm2b, type CommandSession, type ParsedResponse } from './marshal.js';
import { encodeSelection, type Selection } from './policy.js';
import { isRetryable, tpmRcError } from './rc.js';
import type { TpmTransport } from './transport.js';

/**
 * One method per TPM command, marshalled by hand (Part 3 tables). Authorisation is either a
 * password session (TPM_RS_PW, for hierarchies, PCRs and NV indices) or a policy session whose
 * command HMAC is computed and whose response HMAC is checked (unsalted, unbound: the HMAC key is
 * empty, so it protects against nothing but our own marshalling mistakes; see index.ts).
 */

export interface PcrReadResult {
  updateCounter: number;
  selection: PcrSelection[];
  /** Values in selection order. */
  digests: Buffer[];
}

export interface CreatedObject {
  /** TPM2B_PRIVATE contents (without the size prefix). */
  private: Buffer;
  /** TPMT_PUBLIC bytes (without the TPM2B size prefix). */
  public: Buffer;
}

export interface LoadedObject {
  handle: number;
  /** TPMT_PUBLIC bytes. */
  public: Buffer;
  /** nameAlg || H(TPMT_PUBLIC), as the TPM computed it. */
  name: Buffer;
}

export interface NvPublic {
  index: number;
  nameAlg: number;
  attributes: number;
  authPolicy: Buffer;
  dataSize: number;
  /** The name the TPM reports for the index. */
  name: Buffer;
}

/** A policy session's state between commands. */
export interface PolicySession {
  handle: number;
  hash: TpmHash;
  nonceTpm: Buffer;
}

type Auth = { kind: 'password'; password?: Uint8Array } | { kind: 'policy'; session: PolicySession; continueSession?: boolean };

const MAX_RETRIES = 5;
/** TPM2B_DATA for Quote qualifyingData: the broker passes a SHA-256 or SHA-384 digest. */
export const MAX_QUALIFYING_DATA = 64;

const u32 = (v: number) => new ByteWriter().u32be(v >>> 0).toBuffer();

/**
 * Runs a response-parameter parser over the whole parameter area: any structural complaint (a short
 * field, a size beyond its bound, an unknown selector, bytes left over) is TPM_BAD_RESPONSE.
 */
function parsed<T>(params: Buffer, what: string, fn: (r: ByteReader) => T): T {
  const r = new ByteReader(params, what);
  try {
    const v = fn(r);
    if (r.remaining !== 0) throw inputError('TPM_BAD_RESPONSE', `${what} has ${r.remaining} unexpected trailing byte(s)`);
    return v;
  } catch (e) {
    if (e instanceof CofferError && e.code !== 'TPM_BAD_RESPONSE') throw inputError('TPM_BAD_RESPONSE', `${what}: ${e.message}`);
    throw e;
  }
}

function readTpm2bPublicBytes(r: ByteReader, field: string): Buffer {
  const pub = readTpm2b(r, 4096, field);
  if (pub.length === 0) throw inputError('TPM_BAD_RESPONSE', `${r.what}: ${field} is empty`);
  return pub;
}

/** Computes nameAlg || H(TPMT_PUBLIC) for a public area whose first two fields are type and nameAlg. */
export function objectName(pub: Uint8Array): Buffer {
  if (pub.length < 4) throw inputError('TPM_BAD_PUBLIC', 'a public area is shorter than its type and nameAlg');
  const nameAlg = Buffer.from(pub).readUInt16BE(2);
  const h = TPM_HASHES[nameAlg];
  if (!h) throw inputError('TPM_UNSUPPORTED_ALG', `nameAlg 0x${nameAlg.toString(16)} is not supported`);
  return Buffer.concat([u32(nameAlg).subarray(2), createHash(h.name).update(pub).digest()]);
}

export class TpmClient {
  constructor(readonly transport: TpmTransport) {}

  /** Sends a command, retries TPM warnings that ask for it, and turns any other TPM_RC into a CofferError. */
  private async exec(code: number, handles: readonly number[], params: Uint8Array, sessions: readonly CommandSession[] = [], responseHandles = 0): Promise<ParsedResponse> {
    const command = buildCommand(code, handles, params, sessions);
    const name = CC_NAMES[code] ?? `command 0x${code.toString(16)}`;
    try {
      for (let attempt = 0; ; attempt++) {
        const raw = await this.transport.send(command);
        let resp: ParsedResponse;
        try {
          resp = parseResponse(raw, { handles: responseHandles, sessions: sessions.length });
        } finally {
          // Commands and responses may carry secrets (Create's data, Unseal's output): parsed
          // values are copies, so the frames themselves are wiped as soon as they are read.
          raw.fill(0);
        }
        if (resp.rc === 0) return resp;
        if (isRetryable(resp.rc) && attempt < MAX_RETRIES) {
          await new Promise((r) => setTimeout(r, 20 * 2 ** attempt));
          continue;
        }
        throw tpmRcError(name, resp.rc);
      }
    } finally {
      command.fill(0);
    }
  }

  /**
   * A command with one authorisation: a password, or a policy session with its HMAC over
   * cpHash = H(commandCode || names of the handles || parameters), checked on the way back.
   */
  private async execAuth(code: number, handles: readonly number[], names: readonly Buffer[], params: Buffer, auth: Auth, responseHandles = 0): Promise<ParsedResponse> {
    if (auth.kind === 'password') {
      const pw = auth.password ?? new Uint8Array(0);
      return this.exec(code, handles, params, [{ handle: TPM_RS_PW, nonce: new Uint8Array(0), attributes: 0, hmac: pw }], responseHandles);
    }
    const s = auth.session;
    const h = s.hash;
    const nonceCaller = randomBytes(TPM_HASHES[ALG_OF[h]]?.size ?? 32);
    const attributes = auth.continueSession === false ? 0 : SESSION_CONTINUE;
    const cpHash = createHash(h).update(u32(code));
    for (const n of names) cpHash.update(n);
    const cp = cpHash.update(params).digest();
    // Unsalted, unbound, no PolicyAuthValue: the HMAC key (sessionKey || authValue) is empty.
    const hmac = createHmac(h, Buffer.alloc(0)).update(cp).update(nonceCaller).update(s.nonceTpm).update(Uint8Array.of(attributes)).digest();
    const resp = await this.exec(code, handles, params, [{ handle: s.handle, nonce: nonceCaller, attributes, hmac }], responseHandles);
    const ack = resp.sessions[0];
    if (!ack) throw inputError('TPM_BAD_RESPONSE', 'the TPM returned no session acknowledgement');
    const rp = createHash(h).update(u32(0)).update(u32(code)).update(resp.params).digest();
    const want = createHmac(h, Buffer.alloc(0)).update(rp).update(ack.nonce).update(nonceCaller).update(Uint8Array.of(ack.attributes)).digest();
    if (ack.hmac.length !== want.length || !timingSafeEqual(ack.hmac, want)) {
      // The parameters may be the secret (Unseal's outData): not kept for an answer that is refused.
      resp.params.fill(0);
      throw inputError('TPM_BAD_RESPONSE', `${CC_NAMES[code] ?? 'command'}: the response HMAC of the policy session does not verify`);
    }
    s.nonceTpm = ack.nonce;
    return resp;
  }

  async startup(type: 'clear' | 'state' = 'clear', opts: { alreadyStartedOk?: boolean } = {}): Promise<void> {
    try {
      await this.exec(TPM_CC.Startup, [], new ByteWriter().u16be(type === 'clear' ? TPM_SU.CLEAR : TPM_SU.STATE).toBuffer());
    } catch (e) {
      // TPM_RC_INITIALIZE: Startup was already done (by firmware, swtpm's startup-clear flag, or an earlier boot stage).
      if (opts.alreadyStartedOk && (e as { code?: string }).code === 'TPM_RC_INITIALIZE') return;
      throw e;
    }
  }

  async shutdown(type: 'clear' | 'state' = 'clear'): Promise<void> {
    await this.exec(TPM_CC.Shutdown, [], new ByteWriter().u16be(type === 'clear' ? TPM_SU.CLEAR : TPM_SU.STATE).toBuffer());
  }

  /** One TPM_PT property (TPM_CAP_TPM_PROPERTIES), or undefined when the TPM does not report it. */
  async getProperty(property: number): Promise<number | undefined> {
    const resp = await this.exec(TPM_CC.GetCapability, [], new ByteWriter().u32be(TPM_CAP.TPM_PROPERTIES).u32be(property).u32be(1).toBuffer());
    return parsed(resp.params, 'GetCapability response', (r) => {
      const more = r.u8();
      if (more > 1) throw inputError('TPM_BAD_RESPONSE', `GetCapability: moreData is ${more}, not a TPMI_YES_NO`);
      const cap = r.u32be();
      if (cap !== TPM_CAP.TPM_PROPERTIES) throw inputError('TPM_BAD_RESPONSE', `GetCapability answered capability 0x${cap.toString(16)}, not TPM_CAP_TPM_PROPERTIES`);
      const count = r.u32be();
      if (count > 1) throw inputError('TPM_BAD_RESPONSE', `GetCapability returned ${count} properties for a request of 1`);
      let value: number | undefined;
      for (let i = 0; i < count; i++) {
        const p = r.u32be();
        const v = r.u32be();
        if (p === property) value = v;
      }
      return value;
    });
  }

  async getRandom(n: number): Promise<Buffer> {
    const resp = await this.exec(TPM_CC.GetRandom, [], new ByteWriter().u16be(n).toBuffer());
    return parsed(resp.params, 'GetRandom response', (r) => readTpm2b(r, 64, 'randomBytes'));
  }

  /** One TPM2_PCR_Read: the TPM may return fewer PCRs than asked (at most 8 digests per call). */
  async pcrReadOnce(sel: readonly Selection[]): Promise<PcrReadResult> {
    const resp = await this.exec(TPM_CC.PCR_Read, [], encodeSelection(sel));
    const { updateCounter, selection, digests } = parsed(resp.params, 'PCR_Read response', (r) => {
      const updateCounter = r.u32be();
      const selection = readPcrSelection(r);
      const count = r.u32be();
      const want = selection.reduce((n, s) => n + s.pcrs.length, 0);
      if (count !== want) throw inputError('TPM_BAD_RESPONSE', `PCR_Read returned ${count} digests for ${want} selected PCRs`);
      const digests: Buffer[] = [];
      for (const s of selection) {
        const size = TPM_HASHES[s.hash]?.size ?? 0;
        for (const p of s.pcrs) {
          const d = readTpm2b(r, 64, `PCR ${s.hashName}:${p}`);
          if (d.length !== size) throw inputError('TPM_BAD_RESPONSE', `PCR_Read: ${s.hashName}:${p} is ${d.length} bytes, not ${size}`);
          digests.push(d);
        }
      }
      return { updateCounter, selection, digests };
    });
    // The TPM may only drop PCRs from the request, never add any.
    for (const s of selection) {
      const asked = sel.find((x) => x.hash === s.hash);
      if (!asked || s.pcrs.some((p) => !asked.pcrs.includes(p))) throw inputError('TPM_BAD_RESPONSE', `PCR_Read returned ${s.hashName} PCRs that were not asked for`);
    }
    return { updateCounter, selection, digests };
  }

  async pcrExtend(index: number, digests: readonly { hash: number; digest: Uint8Array }[], password?: Uint8Array): Promise<void> {
    if (!Number.isInteger(index) || index < 0 || index > 23) throw inputError('TPM_BAD_ARGUMENT', `PCR ${index} is not 0-23`);
    const w = new ByteWriter().u32be(digests.length);
    for (const d of digests) {
      const size = TPM_HASHES[d.hash]?.size;
      if (size === undefined || d.digest.length !== size) throw inputError('TPM_BAD_ARGUMENT', `an extend digest for algorithm 0x${d.hash.toString(16)} must be ${size ?? '?'} bytes, is ${d.digest.length}`);
      w.u16be(d.hash).bytes(d.digest);
    }
    await this.execAuth(TPM_CC.PCR_Extend, [index], [], w.toBuffer(), { kind: 'password', ...(password ? { password } : {}) });
  }

  /**
   * TPM2B_SENSITIVE_CREATE || TPM2B_PUBLIC || outsideInfo (empty) || creationPCR (none), written
   * into one buffer (the caller wipes it): the secret is copied exactly once.
   */
  private createParams(template: Uint8Array, data: Uint8Array = new Uint8Array(0), userAuth: Uint8Array = new Uint8Array(0)): Buffer {
    if (userAuth.length > 64) throw inputError('TPM_BAD_ARGUMENT', `userAuth is ${userAuth.length} bytes, more than the 64 it may hold`);
    if (data.length > 128) throw inputError('TPM_BAD_ARGUMENT', `sensitive data is ${data.length} bytes, more than the 128 it may hold`);
    if (template.length > 4096) throw inputError('TPM_BAD_ARGUMENT', `public template is ${template.length} bytes, more than the 4096 it may hold`);
    const sensSize = 2 + userAuth.length + 2 + data.length;
    const out = Buffer.alloc(2 + sensSize + 2 + template.length + 2 + 4);
    let o = out.writeUInt16BE(sensSize, 0);
    o = out.writeUInt16BE(userAuth.length, o);
    out.set(userAuth, o);
    o = out.writeUInt16BE(data.length, o + userAuth.length);
    out.set(data, o);
    o = out.writeUInt16BE(template.length, o + data.length);
    out.set(template, o);
    // outsideInfo and creationPCR (count 0) are the zeros Buffer.alloc left.
    return out;
  }

  /** Skips TPM2B_CREATION_DATA, TPM2B_DIGEST creationHash and TPMT_TK_CREATION (checked, not kept). */
  private skipCreation(r: ByteReader): void {
    readTpm2b(r, 4096, 'creationData');
    readTpm2b(r, 64, 'creationHash');
    const tag = r.u16be();
    if (tag !== TPM_ST.CREATION) throw inputError('TPM_BAD_RESPONSE', `${r.what}: creation ticket tag 0x${tag.toString(16)} is not TPM_ST_CREATION`);
    r.u32be();
    readTpm2b(r, 64, 'creation ticket digest');
  }

  async createPrimary(hierarchy: number, template: Uint8Array, opts: { hierarchyAuth?: Uint8Array } = {}): Promise<LoadedObject> {
    const resp = await this.execAuth(TPM_CC.CreatePrimary, [hierarchy], [], this.createParams(template), { kind: 'password', ...(opts.hierarchyAuth ? { password: opts.hierarchyAuth } : {}) }, 1);
    const handle = resp.handles[0] as number;
    try {
      const { pub, name } = parsed(resp.params, 'CreatePrimary response', (r) => {
          const pub = readTpm2bPublicBytes(r, 'outPublic');
          this.skipCreation(r);
          return { pub, name: readTpm2b(r, 66, 'name') };
      });
      if (!name.equals(objectName(pub))) throw inputError('TPM_BAD_RESPONSE', 'CreatePrimary: the name the TPM returned is not nameAlg || H(outPublic)');
      return { handle, public: pub, name };
    } catch (e) {
      await this.flushContext(handle).catch(() => undefined);
      throw e;
    }
  }

  async create(parent: number, template: Uint8Array, opts: { data?: Uint8Array; parentAuth?: Uint8Array } = {}): Promise<CreatedObject> {
    const params = this.createParams(template, opts.data);
    let resp: ParsedResponse;
    try {
      resp = await this.execAuth(TPM_CC.Create, [parent], [], params, { kind: 'password', ...(opts.parentAuth ? { password: opts.parentAuth } : {}) });
    } finally {
      params.fill(0);
    }
    return parsed(resp.params, 'Create response', (r) => {
        const priv = readTpm2b(r, 4096, 'outPrivate');
        const pub = readTpm2bPublicBytes(r, 'outPublic');
        this.skipCreation(r);
        return { private: priv, public: pub };
    });
  }

  async load(parent: number, obj: CreatedObject, opts: { parentAuth?: Uint8Array } = {}): Promise<LoadedObject> {
    const w = new ByteWriter();
    tpm2b(w, obj.private, 4096, 'inPrivate');
    tpm2b(w, obj.public, 4096, 'inPublic');
    const resp = await this.execAuth(TPM_CC.Load, [parent], [], w.toBuffer(), { kind: 'password', ...(opts.parentAuth ? { password: opts.parentAuth } : {}) }, 1);
    const handle = resp.handles[0] as number;
    let name: Buffer;
    try {
      name = parsed(resp.params, 'Load response', (r) => readTpm2b(r, 66, 'name'));
      if (!name.equals(objectName(obj.public))) throw inputError('TPM_BAD_RESPONSE', 'Load: the name the TPM returned is not nameAlg || H(inPublic)');
    } catch (e) {
      await this.flushContext(handle).catch(() => undefined);
      throw e;
    }
    return { handle, public: Buffer.from(obj.public), name };
  }

  /** ReadPublic: TPMT_PUBLIC, name and qualified name of a loaded object. */
  async readPublic(handle: number): Promise<{ public: Buffer; name: Buffer; qualifiedName: Buffer }> {
    const resp = await this.exec(TPM_CC.ReadPublic, [handle], new Uint8Array(0));
    return parsed(resp.params, 'ReadPublic response', (r) => ({ public: readTpm2bPublicBytes(r, 'outPublic'), name: readTpm2b(r, 66, 'name'), qualifiedName: readTpm2b(r, 66, 'qualifiedName') }));
  }

  /** Quote with the signing key's own scheme (inScheme TPM_ALG_NULL). */
  async quote(signHandle: number, qualifyingData: Uint8Array, sel: readonly Selection[], auth?: Uint8Array): Promise<{ attest: Buffer; signature: Buffer }> {
    if (qualifyingData.length > MAX_QUALIFYING_DATA) throw inputError('TPM_BAD_ARGUMENT', `qualifying data is ${qualifyingData.length} bytes; a quote carries at most ${MAX_QUALIFYING_DATA}`);
    const w = new ByteWriter();
    tpm2b(w, qualifyingData, MAX_QUALIFYING_DATA, 'qualifyingData');
    w.u16be(TPM_ALG.NULL).bytes(encodeSelection(sel));
    const resp = await this.execAuth(TPM_CC.Quote, [signHandle], [], w.toBuffer(), { kind: 'password', ...(auth ? { password: auth } : {}) });
    return parsed(resp.params, 'Quote response', (r) => {
        const attest = readTpm2b(r, 4096, 'quoted');
        // TPMT_SIGNATURE runs to the end of the parameters; evidence/tpm parses it strictly.
        const signature = r.bytes(r.remaining);
        if (attest.length === 0 || signature.length === 0) throw inputError('TPM_BAD_RESPONSE', 'Quote response: empty attestation or signature');
        return { attest, signature };
    });
  }

  async nvReadPublic(index: number): Promise<NvPublic> {
    if (index >>> 24 !== TPM_HT_NV_INDEX) throw inputError('TPM_BAD_ARGUMENT', `0x${(index >>> 0).toString(16)} is not an NV index handle (0x01xxxxxx)`);
    const resp = await this.exec(TPM_CC.NV_ReadPublic, [index], new Uint8Array(0));
    const out = parsed(resp.params, 'NV_ReadPublic response', (r) => {
      const size = r.u16be();
      const start = r.offset;
      const got = r.u32be();
      const nameAlg = r.u16be();
      const attributes = r.u32be();
      const authPolicy = readTpm2b(r, 64, 'authPolicy');
      const dataSize = r.u16be();
      if (r.offset - start !== size) throw inputError('TPM_BAD_RESPONSE', `NV_ReadPublic: TPM2B_NV_PUBLIC says ${size} bytes, its fields take ${r.offset - start}`);
      const name = readTpm2b(r, 66, 'nvName');
      return { index: got, nameAlg, attributes, authPolicy, dataSize, name };
    });
    if (out.index !== index >>> 0) throw inputError('TPM_BAD_RESPONSE', `NV_ReadPublic for 0x${index.toString(16)} answered for 0x${out.index.toString(16)}`);
    return out;
  }

  async nvRead(authHandle: number, index: number, size: number, offset: number, password?: Uint8Array): Promise<Buffer> {
    const resp = await this.execAuth(TPM_CC.NV_Read, [authHandle, index], [], new ByteWriter().u16be(size).u16be(offset).toBuffer(), { kind: 'password', ...(password ? { password } : {}) });
    const data = parsed(resp.params, 'NV_Read response', (r) => readTpm2b(r, 4096, 'data'));
    if (data.length !== size) throw inputError('TPM_BAD_RESPONSE', `NV_Read returned ${data.length} bytes for a request of ${size}`);
    return data;
  }

  /** NV_DefineSpace with owner authorisation (used to provision and in tests). */
  async nvDefineSpace(index: number, dataSize: number, attributes: number, opts: { ownerAuth?: Uint8Array; indexAuth?: Uint8Array } = {}): Promise<void> {
    const pub = new ByteWriter().u32be(index).u16be(TPM_ALG.SHA256).u32be(attributes >>> 0).u16be(0).u16be(dataSize).toBuffer();
    const w = new ByteWriter();
    tpm2b(w, opts.indexAuth ?? new Uint8Array(0), 64, 'NV auth');
    w.u16be(pub.length).bytes(pub);
    await this.execAuth(TPM_CC.NV_DefineSpace, [TPM_RH.OWNER], [], w.toBuffer(), { kind: 'password', ...(opts.ownerAuth ? { password: opts.ownerAuth } : {}) });
  }

  async nvWrite(authHandle: number, index: number, data: Uint8Array, offset: number, password?: Uint8Array): Promise<void> {
    const w = new ByteWriter();
    tpm2b(w, data, 4096, 'NV data');
    w.u16be(offset);
    await this.execAuth(TPM_CC.NV_Write, [authHandle, index], [], w.toBuffer(), { kind: 'password', ...(password ? { password } : {}) });
  }

  async nvUndefineSpace(index: number, ownerAuth?: Uint8Array): Promise<void> {
    await this.execAuth(TPM_CC.NV_UndefineSpace, [TPM_RH.OWNER, index], [], Buffer.alloc(0), { kind: 'password', ...(ownerAuth ? { password: ownerAuth } : {}) });
  }

  /** An unsalted, unbound session without parameter encryption (tpmKey = bind = TPM_RH_NULL, symmetric NULL). */
  async startAuthSession(type: 'policy' | 'trial', hash: TpmHash = 'sha256'): Promise<PolicySession> {
    const size = TPM_HASHES[ALG_OF[hash]]?.size ?? 32;
    const nonceCaller = randomBytes(size);
    const w = new ByteWriter();
    tpm2b(w, nonceCaller, 64, 'nonceCaller');
    w.u16be(0) // encryptedSalt: none
      .u8(type === 'policy' ? TPM_SE.POLICY : TPM_SE.TRIAL)
      .u16be(TPM_ALG.NULL)
      .u16be(ALG_OF[hash]);
    const resp = await this.exec(TPM_CC.StartAuthSession, [TPM_RH.NULL, TPM_RH.NULL], w.toBuffer(), [], 1);
    const handle = resp.handles[0] as number;
    let nonceTpm: Buffer;
    try {
      nonceTpm = parsed(resp.params, 'StartAuthSession response', (r) => readTpm2b(r, 64, 'nonceTPM'));
      // Policy sessions live in 0x03xxxxxx; nonceTPM is as long as nonceCaller.
      if (handle >>> 24 !== 0x03) throw inputError('TPM_BAD_RESPONSE', `StartAuthSession returned handle 0x${handle.toString(16)}, not a policy session handle`);
      if (nonceTpm.length !== size) throw inputError('TPM_BAD_RESPONSE', `StartAuthSession returned a ${nonceTpm.length}-byte nonceTPM`);
    } catch (e) {
      await this.flushContext(handle).catch(() => undefined);
      throw e;
    }
    return { handle, hash, nonceTpm };
  }

  /** PolicyPCR with an empty pcrDigest: the TPM uses the current values of the selected PCRs. */
  async policyPcr(session: PolicySession, sel: readonly Selection[], pcrDigest: Uint8Array = new Uint8Array(0)): Promise<void> {
    const w = new ByteWriter();
    tpm2b(w, pcrDigest, 64, 'pcrDigest');
    w.bytes(encodeSelection(sel));
    await this.exec(TPM_CC.PolicyPCR, [session.handle], w.toBuffer());
  }

  async policyGetDigest(session: PolicySession): Promise<Buffer> {
    const resp = await this.exec(TPM_CC.PolicyGetDigest, [session.handle], new Uint8Array(0));
    return parsed(resp.params, 'PolicyGetDigest response', (r) => readTpm2b(r, 64, 'policyDigest'));
  }

  /** Unseal authorised by a policy session; the session ends with the command (continueSession clear). */
  async unseal(item: LoadedObject, session: PolicySession): Promise<Buffer> {
    const resp = await this.execAuth(TPM_CC.Unseal, [item.handle], [item.name], Buffer.alloc(0), { kind: 'policy', session, continueSession: false });
    try {
      return parsed(resp.params, 'Unseal response', (r) => readTpm2b(r, 128, 'outData'));
    } finally {
      resp.params.fill(0);
    }
  }

  /** FlushContext takes its handle as a parameter, not in the handle area. */
  async flushContext(handle: number): Promise<void> {
    await this.exec(TPM_CC.FlushContext, [], u32(handle));
  }
}

const ALG_OF: Readonly<Record<TpmHash, number>> = { sha1: TPM_ALG.SHA1, sha256: TPM_ALG.SHA256, sha384: TPM_ALG.SHA384, sha512: TPM_ALG.SHA512 };
