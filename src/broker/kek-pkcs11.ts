import { randomBytes } from 'node:crypto';
import { createRequire } from 'node:module';
import { isAbsolute } from 'node:path';
import type * as Pkcs11Types from 'pkcs11js';
import { CofferError, inputError } from '../errors.js';
import { readPrivateFile } from './files.js';
import type { KekProvider } from './kek.js';

/**
 * A KEK inside a PKCS#11 token (an HSM, or SoftHSM2 in tests): an AES-256 secret key object
 * created CKA_SENSITIVE and non-extractable, so its value never leaves the token; the broker only
 * asks the token to wrap and unwrap data keys.
 *
 * Mechanism: CKM_AES_KEY_WRAP (RFC 3394, no padding). Data keys are always 32 bytes, a multiple
 * of 8, so padding (KWP) buys nothing, and the output is byte-for-byte what the file provider
 * (kek.ts, OpenSSL `id-aes256-wrap`) produces with the same key, which the tests check. The padded
 * variant is a trap across tokens: SoftHSM2 2.6 implements RFC 5649 under CKM_AES_KEY_WRAP_PAD
 * (0x210A) and refuses CKM_AES_KEY_WRAP_KWP (0x210B), while PKCS#11 2.40 defines 0x210A as RFC
 * 3394 with PKCS#7 padding and 0x210B as RFC 5649, so the same number means different bytes in
 * different HSMs. CKM_AES_GCM would need an IV the host chooses and store a longer blob; key wrap
 * is deterministic, integrity-protected, and what every token offers for C_WrapKey.
 *
 * The spec (`--kek`): `pkcs11:module=PATH;token=LABEL;label=KEYLABEL[;id=HEX][;pin-env=VAR |
 * pin-file=PATH]`. The user PIN comes from the environment variable (default COFFER_PKCS11_PIN)
 * or a 0600 file, never from the spec, a flag or a log.
 */

type Pkcs11Module = typeof Pkcs11Types;
type Lib = Pkcs11Types.PKCS11;

const require = createRequire(import.meta.url);
let pkcs11Module: Pkcs11Module | undefined;
function pk(): Pkcs11Module {
  pkcs11Module ??= require('pkcs11js') as Pkcs11Module;
  return pkcs11Module;
}

export const DEFAULT_PIN_ENV = 'COFFER_PKCS11_PIN';
/** CKM_AES_KEY_WRAP: RFC 3394 with its default IV. */
export const CKM_AES_KEY_WRAP = 0x2109;

export interface Pkcs11Spec {
  module: string;
  token: string;
  label: string;
  /** CKA_ID in hex: picks one key when several share a label. */
  id?: string;
  pinEnv?: string;
  pinFile?: string;
}

const LABEL = /^[A-Za-z0-9._-]{1,64}$/;
const ALIASES: Readonly<Record<string, keyof Pkcs11Spec>> = { module: 'module', 'module-path': 'module', token: 'token', label: 'label', object: 'label', id: 'id', 'pin-env': 'pinEnv', 'pin-file': 'pinFile' };

/** Parses `pkcs11:module=...;token=...;label=...`; refuses unknown attributes and any PIN value. */
export function parsePkcs11Spec(s: string): Pkcs11Spec {
  if (!s.startsWith('pkcs11:')) throw inputError('KEK_BAD_SPEC', `a PKCS#11 KEK is given as pkcs11:module=PATH;token=LABEL;label=KEYLABEL, not ${JSON.stringify(s.slice(0, 60))}`);
  const out: Partial<Record<keyof Pkcs11Spec, string>> = {};
  for (const part of s.slice(7).split(';')) {
    if (part.trim() === '') continue;
    const i = part.indexOf('=');
    const k = (i > 0 ? part.slice(0, i) : part).trim().toLowerCase();
    let v = '';
    try {
      v = i > 0 ? decodeURIComponent(part.slice(i + 1).trim()) : '';
    } catch {
      throw inputError('KEK_BAD_SPEC', `PKCS#11 KEK attribute ${k}: a % must start a percent-encoded byte (%25 for % itself)`);
    }
    if (k === 'pin' || k === 'pin-value' || k === 'pin-source') throw inputError('KEK_BAD_SPEC', 'a PIN is never part of the KEK spec (it would show in the process list and the store): use pin-env=VAR or pin-file=PATH');
    const key = ALIASES[k];
    if (!key) throw inputError('KEK_BAD_SPEC', `unknown PKCS#11 KEK attribute ${JSON.stringify(k)} (known: module, token, label, id, pin-env, pin-file)`);
    if (out[key] !== undefined) throw inputError('KEK_BAD_SPEC', `PKCS#11 KEK attribute ${k} is given twice`);
    out[key] = v;
  }
  for (const need of ['module', 'token', 'label'] as const) if (!out[need]) throw inputError('KEK_BAD_SPEC', `the PKCS#11 KEK spec needs ${need}=...`);
  if (!isAbsolute(out.module as string)) throw inputError('KEK_BAD_SPEC', `module=${out.module} must be an absolute path to the PKCS#11 library`);
  if (!LABEL.test(out.label as string)) throw inputError('KEK_BAD_SPEC', `label=${out.label} must be 1 to 64 of A-Z a-z 0-9 . _ -`);
  if (out.id !== undefined && !/^(?:[0-9a-f]{2}){1,32}$/i.test(out.id)) throw inputError('KEK_BAD_SPEC', 'id= must be the key\'s CKA_ID in hex');
  if (out.pinEnv !== undefined && !/^[A-Za-z_][A-Za-z0-9_]*$/.test(out.pinEnv)) throw inputError('KEK_BAD_SPEC', 'pin-env= must name an environment variable');
  if (out.pinEnv !== undefined && out.pinFile !== undefined) throw inputError('KEK_BAD_SPEC', 'give pin-env or pin-file, not both');
  return {
    module: out.module as string,
    token: out.token as string,
    label: out.label as string,
    ...(out.id ? { id: out.id.toLowerCase() } : {}),
    ...(out.pinEnv ? { pinEnv: out.pinEnv } : {}),
    ...(out.pinFile ? { pinFile: out.pinFile } : {}),
  };
}

/** The canonical spec string (what the store records: no PIN, the key's CKA_ID pinned). */
export function formatPkcs11Spec(s: Pkcs11Spec): string {
  const e = (v: string) => v.replace(/[%;]/g, (c) => encodeURIComponent(c));
  return `pkcs11:module=${e(s.module)};token=${e(s.token)};label=${s.label}${s.id ? `;id=${s.id}` : ''}${s.pinEnv ? `;pin-env=${s.pinEnv}` : ''}${s.pinFile ? `;pin-file=${e(s.pinFile)}` : ''}`;
}

/** One loaded library per module path in this process: C_Initialize may run only once. */
const modules = new Map<string, { lib: Lib; refs: number }>();

function rv(e: unknown): string {
  const m = /CKR_[A-Z_]+/.exec((e as Error)?.message ?? '');
  return m ? m[0] : 'error';
}

function acquire(path: string): Lib {
  const hit = modules.get(path);
  if (hit) {
    hit.refs++;
    return hit.lib;
  }
  const p = pk();
  const lib = new p.PKCS11();
  try {
    lib.load(path);
  } catch (e) {
    throw inputError('KEK_PKCS11_MODULE', `cannot load the PKCS#11 module ${path}: ${((e as Error).message ?? 'error').split('\n')[0]}`);
  }
  try {
    lib.C_Initialize();
  } catch (e) {
    if (rv(e) !== 'CKR_CRYPTOKI_ALREADY_INITIALIZED') {
      try {
        lib.close();
      } catch {
        // the library failed to initialise: nothing more to release
      }
      throw inputError('KEK_PKCS11_MODULE', `the PKCS#11 module ${path} does not initialise (${rv(e)})`);
    }
  }
  modules.set(path, { lib, refs: 1 });
  return lib;
}

function release(path: string): void {
  const hit = modules.get(path);
  if (!hit || --hit.refs > 0) return;
  modules.delete(path);
  try {
    hit.lib.C_Finalize();
  } catch {
    // finalising is best effort: the process may be exiting
  }
  try {
    hit.lib.close();
  } catch {
    // as above
  }
}

function readPin(spec: Pkcs11Spec, env: NodeJS.ProcessEnv): string {
  if (spec.pinFile) {
    const b = readPrivateFile(spec.pinFile, 'the PKCS#11 PIN file', 'KEK_INSECURE_FILE');
    try {
      const pin = b.toString('utf8').replace(/\r?\n$/, '');
      if (pin === '') throw inputError('KEK_PKCS11_NO_PIN', `the PKCS#11 PIN file ${spec.pinFile} is empty`);
      return pin;
    } finally {
      b.fill(0);
    }
  }
  const name = spec.pinEnv ?? DEFAULT_PIN_ENV;
  const pin = env[name];
  if (!pin) throw inputError('KEK_PKCS11_NO_PIN', `no PIN for PKCS#11 token ${spec.token}: set ${name} (or give pin-file=PATH, a 0600 file, in the KEK spec)`);
  return pin;
}

/** Return values that say the session, login or device is gone, not that the wrapped key is bad. */
const TOKEN_STATE_ERROR = /^CKR_(?:SESSION_|USER_NOT_LOGGED_IN|DEVICE_|TOKEN_|CRYPTOKI_NOT_INITIALIZED|KEY_HANDLE_INVALID)/;

const bool = (b: Buffer | undefined) => b !== undefined && b.length > 0 && b[0] !== 0;
const ulong = (b: Buffer | undefined) => (b === undefined ? -1 : b.length >= 8 ? Number(b.readBigUInt64LE(0)) : b.readUInt32LE(0));

export class Pkcs11KekProvider implements KekProvider {
  readonly kind = 'pkcs11';
  readonly currentId: string;
  /** The canonical spec of this key, with its CKA_ID (no PIN). */
  readonly spec: string;
  readonly created: boolean;
  private lib: Lib | undefined;
  private readonly session: Pkcs11Types.Handle;
  private readonly key: Pkcs11Types.Handle;
  private readonly modulePath: string;

  private constructor(lib: Lib, modulePath: string, session: Pkcs11Types.Handle, key: Pkcs11Types.Handle, spec: Pkcs11Spec, created: boolean) {
    this.lib = lib;
    this.modulePath = modulePath;
    this.session = session;
    this.key = key;
    this.spec = formatPkcs11Spec(spec);
    this.currentId = `pkcs11:${spec.label}:${spec.id as string}`;
    this.created = created;
  }

  /**
   * Logs in to the token and finds the key by label (and CKA_ID when given). With `create`, a
   * missing key is generated in the token: AES-256, CKA_TOKEN, CKA_SENSITIVE, not extractable,
   * wrap and unwrap only, with a random CKA_ID. An existing key that is extractable, not
   * sensitive, not 256-bit AES or cannot wrap is refused.
   */
  static open(specText: string | Pkcs11Spec, opts: { create?: boolean; env?: NodeJS.ProcessEnv } = {}): Pkcs11KekProvider {
    const spec = typeof specText === 'string' ? parsePkcs11Spec(specText) : specText;
    const p = pk();
    const pin = readPin(spec, opts.env ?? process.env);
    const lib = acquire(spec.module);
    let session: Pkcs11Types.Handle | undefined;
    try {
      const slots = lib.C_GetSlotList(true);
      const labels: string[] = [];
      let slot: Pkcs11Types.Handle | undefined;
      for (const s of slots) {
        const label = lib.C_GetTokenInfo(s).label.trim();
        labels.push(label);
        if (label === spec.token) {
          if (slot !== undefined) throw inputError('KEK_PKCS11_NO_TOKEN', `two tokens are labelled ${spec.token} in ${spec.module}: relabel one`);
          slot = s;
        }
      }
      if (slot === undefined) throw inputError('KEK_PKCS11_NO_TOKEN', `no PKCS#11 token labelled ${spec.token} in ${spec.module} (tokens: ${labels.filter(Boolean).join(', ') || 'none'})`);
      session = lib.C_OpenSession(slot, p.CKF_SERIAL_SESSION | p.CKF_RW_SESSION);
      try {
        lib.C_Login(session, p.CKU_USER, pin);
      } catch (e) {
        const code = rv(e);
        if (code === 'CKR_PIN_INCORRECT') throw inputError('KEK_PKCS11_BAD_PIN', `the PIN for PKCS#11 token ${spec.token} is wrong`);
        if (code === 'CKR_PIN_LOCKED') throw inputError('KEK_PKCS11_PIN_LOCKED', `the user PIN of PKCS#11 token ${spec.token} is locked: the security officer must reset it`);
        if (code !== 'CKR_USER_ALREADY_LOGGED_IN') throw inputError('KEK_PKCS11_LOGIN', `cannot log in to PKCS#11 token ${spec.token} (${code})`);
      }
      const template: Pkcs11Types.Template = [
        { type: p.CKA_CLASS, value: p.CKO_SECRET_KEY },
        { type: p.CKA_KEY_TYPE, value: p.CKK_AES },
        { type: p.CKA_LABEL, value: spec.label },
        ...(spec.id ? [{ type: p.CKA_ID, value: Buffer.from(spec.id, 'hex') }] : []),
      ];
      lib.C_FindObjectsInit(session, template);
      const found = lib.C_FindObjects(session, 2);
      lib.C_FindObjectsFinal(session);
      let key: Pkcs11Types.Handle;
      let created = false;
      if (found.length > 1) throw inputError('KEK_PKCS11_AMBIGUOUS', `several keys are labelled ${spec.label} in token ${spec.token}: add id=<CKA_ID hex> to the KEK spec`);
      if (found.length === 0) {
        if (!opts.create) throw inputError('KEK_PKCS11_NO_KEY', `no AES key labelled ${spec.label}${spec.id ? ` with id ${spec.id}` : ''} in PKCS#11 token ${spec.token} (coffer broker rotate-kek --to <spec> creates one)`);
        const id = spec.id ? Buffer.from(spec.id, 'hex') : randomBytes(8);
        try {
          key = lib.C_GenerateKey(session, { mechanism: p.CKM_AES_KEY_GEN }, [
            { type: p.CKA_CLASS, value: p.CKO_SECRET_KEY },
            { type: p.CKA_KEY_TYPE, value: p.CKK_AES },
            { type: p.CKA_VALUE_LEN, value: 32 },
            { type: p.CKA_TOKEN, value: true },
            { type: p.CKA_PRIVATE, value: true },
            { type: p.CKA_SENSITIVE, value: true },
            { type: p.CKA_EXTRACTABLE, value: false },
            { type: p.CKA_WRAP, value: true },
            { type: p.CKA_UNWRAP, value: true },
            { type: p.CKA_ENCRYPT, value: false },
            { type: p.CKA_DECRYPT, value: false },
            { type: p.CKA_SIGN, value: false },
            { type: p.CKA_VERIFY, value: false },
            { type: p.CKA_DERIVE, value: false },
            { type: p.CKA_LABEL, value: spec.label },
            { type: p.CKA_ID, value: id },
          ]);
        } catch (e) {
          throw inputError('KEK_PKCS11_CREATE', `cannot create the KEK ${spec.label} in PKCS#11 token ${spec.token} (${rv(e)})`);
        }
        created = true;
      } else key = found[0] as Pkcs11Types.Handle;
      const a = lib.C_GetAttributeValue(session, key, [{ type: p.CKA_VALUE_LEN }, { type: p.CKA_SENSITIVE }, { type: p.CKA_EXTRACTABLE }, { type: p.CKA_WRAP }, { type: p.CKA_UNWRAP }, { type: p.CKA_ID }]);
      const v = (t: number) => a.find((x) => x.type === t)?.value as Buffer | undefined;
      if (ulong(v(p.CKA_VALUE_LEN)) !== 32) throw inputError('KEK_PKCS11_BAD_KEY', `key ${spec.label} in token ${spec.token} is not AES-256`);
      if (!bool(v(p.CKA_SENSITIVE)) || bool(v(p.CKA_EXTRACTABLE))) {
        throw inputError('KEK_PKCS11_INSECURE_KEY', `key ${spec.label} in token ${spec.token} can leave the token (CKA_SENSITIVE must be true, CKA_EXTRACTABLE false): a KEK must never be exported`);
      }
      if (!bool(v(p.CKA_WRAP)) || !bool(v(p.CKA_UNWRAP))) throw inputError('KEK_PKCS11_BAD_KEY', `key ${spec.label} in token ${spec.token} lacks CKA_WRAP or CKA_UNWRAP`);
      const idBytes = v(p.CKA_ID);
      if (!idBytes || idBytes.length === 0) throw inputError('KEK_PKCS11_BAD_KEY', `key ${spec.label} in token ${spec.token} has no CKA_ID: give it one (it names the KEK in the store)`);
      const provider = new Pkcs11KekProvider(lib, spec.module, session, key, { ...spec, id: idBytes.toString('hex') }, created);
      session = undefined;
      return provider;
    } catch (e) {
      if (session !== undefined) {
        try {
          lib.C_CloseSession(session);
        } catch {
          // the session is gone either way
        }
      }
      release(spec.module);
      if (e instanceof CofferError) throw e;
      throw inputError('KEK_PKCS11_ERROR', `PKCS#11 token ${spec.token}: ${rv(e)}`);
    }
  }

  private live(): Lib {
    if (!this.lib) throw new CofferError('KEK_CLOSED', 'the KEK provider is closed');
    return this.lib;
  }

  /** A session object holding the data key, extractable so the KEK can wrap it; destroyed at once. */
  async wrap(dataKey: Buffer): Promise<{ kekId: string; wrapped: Buffer }> {
    const lib = this.live();
    const p = pk();
    if (dataKey.length !== 32) throw new CofferError('KEK_BAD_KEY', 'a data key is 32 bytes');
    let obj: Pkcs11Types.Handle | undefined;
    try {
      obj = lib.C_CreateObject(this.session, [
        { type: p.CKA_CLASS, value: p.CKO_SECRET_KEY },
        { type: p.CKA_KEY_TYPE, value: p.CKK_AES },
        { type: p.CKA_TOKEN, value: false },
        { type: p.CKA_SENSITIVE, value: false },
        { type: p.CKA_EXTRACTABLE, value: true },
        { type: p.CKA_VALUE, value: dataKey },
      ]);
      const wrapped = lib.C_WrapKey(this.session, { mechanism: CKM_AES_KEY_WRAP }, this.key, obj, Buffer.alloc(64));
      return { kekId: this.currentId, wrapped: Buffer.from(wrapped) };
    } catch (e) {
      throw new CofferError('KEK_PKCS11_ERROR', `the PKCS#11 token could not wrap a data key (${rv(e)})`);
    } finally {
      if (obj !== undefined) this.destroy(obj);
    }
  }

  async unwrap(wrapped: Buffer, id: string): Promise<Buffer> {
    const lib = this.live();
    const p = pk();
    if (id !== this.currentId) throw new CofferError('KEK_UNKNOWN', `the data key was wrapped by KEK ${id}, which this provider does not hold (it holds ${this.currentId})`);
    let obj: Pkcs11Types.Handle | undefined;
    try {
      obj = lib.C_UnwrapKey(this.session, { mechanism: CKM_AES_KEY_WRAP }, this.key, wrapped, [
        { type: p.CKA_CLASS, value: p.CKO_SECRET_KEY },
        { type: p.CKA_KEY_TYPE, value: p.CKK_AES },
        { type: p.CKA_TOKEN, value: false },
        { type: p.CKA_SENSITIVE, value: false },
        { type: p.CKA_EXTRACTABLE, value: true },
      ]);
    } catch (e) {
      // A lost session or token is not a bad key: say so, or the operator hunts for tampering.
      // (An integrity failure is not one code: SoftHSM2 answers CKR_GENERAL_ERROR.)
      const code = rv(e);
      if (TOKEN_STATE_ERROR.test(code)) throw new CofferError('KEK_PKCS11_ERROR', `the PKCS#11 token could not unwrap a data key (${code}): restart the broker once the token is back`);
      throw new CofferError('KEK_UNWRAP_FAILED', 'the wrapped data key does not unwrap with this KEK (wrong KEK, or the stored key was altered)');
    }
    try {
      let value: Buffer | undefined;
      try {
        value = lib.C_GetAttributeValue(this.session, obj, [{ type: p.CKA_VALUE }])[0]?.value as Buffer | undefined;
      } catch (e) {
        throw new CofferError('KEK_PKCS11_ERROR', `the PKCS#11 token did not return the unwrapped data key (${rv(e)})`);
      }
      if (!value || value.length !== 32) throw new CofferError('KEK_UNWRAP_FAILED', 'the unwrapped data key is not 32 bytes');
      const out = Buffer.from(value);
      value.fill(0);
      return out;
    } finally {
      this.destroy(obj);
    }
  }

  private destroy(obj: Pkcs11Types.Handle): void {
    try {
      this.lib?.C_DestroyObject(this.session, obj);
    } catch {
      // a session object dies with its session at the latest
    }
  }

  async close(): Promise<void> {
    const lib = this.lib;
    if (!lib) return;
    this.lib = undefined;
    try {
      lib.C_CloseSession(this.session);
    } catch {
      // already closed
    }
    release(this.modulePath);
  }
}
