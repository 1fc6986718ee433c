import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';
import { closeSync, fstatSync, lstatSync, readSync } from 'node:fs';
import { resolve } from 'node:path';
import { CofferError, inputError } from '../errors.js';
import { openPrivate, writePrivateFile } from './files.js';
import { Pkcs11KekProvider } from './kek-pkcs11.js';
import type { AuditInput, KekRecord, Store } from './store/types.js';

function existsNoFollow(path: string): boolean {
  try {
    lstatSync(path);
    return true;
  } catch {
    return false;
  }
}

/**
 * Key-encryption keys. A KEK never leaves its provider: the broker hands it a data key to wrap
 * or a wrapped key to unwrap. The wrapping is AES-256 Key Wrap (RFC 3394, `id-aes256-wrap`):
 * deterministic, integrity-protected, and the mechanism HSMs offer (PKCS#11 CKM_AES_KEY_WRAP),
 * so that a PKCS#11 provider can produce the same wrapped keys. Each wrapped key records the id
 * of the KEK that wrapped it, so a rotation can re-wrap under a new KEK while old ids unwrap.
 */
export interface KekProvider {
  /** `file`, `pkcs11`, ... */
  readonly kind: string;
  /** Identifier of the KEK new data keys are wrapped with (not secret). */
  readonly currentId: string;
  /** Wraps a 32-byte data key with the current KEK. */
  wrap(dataKey: Buffer): Promise<{ kekId: string; wrapped: Buffer }>;
  /** Unwraps with the KEK named `kekId`; fails with KEK_UNKNOWN or KEK_UNWRAP_FAILED. */
  unwrap(wrapped: Buffer, kekId: string): Promise<Buffer>;
  close(): Promise<void>;
}

/** A provider of one KEK, opened from a spec that the store can record and reopen. */
export interface SingleKek extends KekProvider {
  /** `file:/abs/path` or a canonical `pkcs11:...` spec: where the key is, never the key or a PIN. */
  readonly spec: string;
  /** Whether opening it created the key. */
  readonly created: boolean;
}

export const KEK_WRAP_ALG = 'A256KW';
const RFC3394_IV = Buffer.from('a6a6a6a6a6a6a6a6', 'hex');

/** RFC 3394 AES-256 key wrap. */
export function aesKeyWrap(kek: Buffer, key: Buffer): Buffer {
  if (kek.length !== 32) throw new CofferError('KEK_BAD_KEY', 'the KEK must be 32 bytes');
  if (key.length < 16 || key.length % 8 !== 0) throw new CofferError('KEK_BAD_KEY', 'a wrapped key must be a multiple of 8 bytes, at least 16');
  const c = createCipheriv('id-aes256-wrap', kek, RFC3394_IV);
  return Buffer.concat([c.update(key), c.final()]);
}

/** RFC 3394 AES-256 key unwrap; throws KEK_UNWRAP_FAILED when the integrity check fails. */
export function aesKeyUnwrap(kek: Buffer, wrapped: Buffer): Buffer {
  try {
    const d = createDecipheriv('id-aes256-wrap', kek, RFC3394_IV);
    return Buffer.concat([d.update(wrapped), d.final()]);
  } catch {
    throw new CofferError('KEK_UNWRAP_FAILED', 'the wrapped data key does not unwrap with this KEK (wrong KEK, or the stored key was altered)');
  }
}

/** A KEK's public identifier: a hash of the key under a label (reveals nothing about the key). */
export function kekId(kek: Buffer): string {
  return `file:${createHash('sha256').update('coffer kek id v1\0').update(kek).digest('hex').slice(0, 16)}`;
}

/**
 * The default provider: 32 random bytes in a local file, created with mode 0600 on first use.
 * A file the group or other users have any permission on, a file another user owns, and a
 * symbolic link are refused: the KEK guards every secret in the store.
 */
export class FileKekProvider implements SingleKek {
  readonly kind = 'file';
  readonly currentId: string;
  readonly path: string;
  readonly created: boolean;
  private key: Buffer;

  private constructor(path: string, key: Buffer, created: boolean) {
    this.path = path;
    this.key = key;
    this.created = created;
    this.currentId = kekId(key);
  }

  /**
   * Loads the key file, creating it (0600 set explicitly, exclusive, never through a symbolic link)
   * when it does not exist and `create` is set. An existing file must be a regular file owned by
   * the broker's user with no group or other permission bits (files.ts).
   */
  static open(path: string, opts: { create?: boolean } = {}): FileKekProvider {
    let created = false;
    if (opts.create && !existsNoFollow(path)) {
      const fresh = randomBytes(32);
      try {
        writePrivateFile(path, fresh);
        created = true;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw inputError('KEK_UNWRITABLE', `cannot create the KEK file ${path}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`);
      } finally {
        fresh.fill(0);
      }
    }
    let fd: number;
    try {
      fd = openPrivate(path, 'the KEK file', 'KEK_INSECURE_FILE');
    } catch (e) {
      if (e instanceof CofferError && e.code === 'FILE_MISSING') throw inputError('KEK_MISSING', `the KEK file ${path} does not exist`);
      if (e instanceof CofferError && e.code === 'FILE_UNREADABLE') throw inputError('KEK_UNREADABLE', e.message);
      throw e;
    }
    try {
      const st = fstatSync(fd);
      if (st.size !== 32) throw inputError('KEK_BAD_FILE', `the KEK file ${path} must hold exactly 32 bytes, it holds ${st.size}`);
      const key = Buffer.alloc(32);
      if (readSync(fd, key, 0, 32, 0) !== 32) throw inputError('KEK_BAD_FILE', `short read from the KEK file ${path}`);
      return new FileKekProvider(path, key, created);
    } finally {
      closeSync(fd);
    }
  }

  get spec(): string {
    return `file:${resolve(this.path)}`;
  }

  async wrap(dataKey: Buffer): Promise<{ kekId: string; wrapped: Buffer }> {
    this.live();
    return { kekId: this.currentId, wrapped: aesKeyWrap(this.key, dataKey) };
  }

  async unwrap(wrapped: Buffer, id: string): Promise<Buffer> {
    this.live();
    if (id !== this.currentId) throw new CofferError('KEK_UNKNOWN', `the data key was wrapped by KEK ${id}, which this broker does not hold (it holds ${this.currentId})`);
    return aesKeyUnwrap(this.key, wrapped);
  }

  async close(): Promise<void> {
    this.key.fill(0);
    this.key = Buffer.alloc(0);
  }

  private live(): void {
    if (this.key.length !== 32) throw new CofferError('KEK_CLOSED', 'the KEK provider is closed');
  }
}

/**
 * Opens one KEK from its spec: `pkcs11:...` (kek-pkcs11.ts), `file:PATH`, or a bare file path.
 * `create` makes a missing key (a 0600 file, or a non-extractable key in the token).
 */
export function openKek(spec: string, opts: { create?: boolean; env?: NodeJS.ProcessEnv } = {}): SingleKek {
  if (spec.startsWith('pkcs11:')) return Pkcs11KekProvider.open(spec, opts);
  const path = spec.startsWith('file:') ? spec.slice(5) : spec;
  if (path === '') throw inputError('KEK_BAD_SPEC', 'file: needs the path of the KEK file');
  return FileKekProvider.open(path, { create: opts.create === true });
}

/** The part of the store a ring reads: which KEK is current, and where each KEK lives. */
export type KekRegistry = Pick<Store, 'listKeks' | 'getKek'>;

/**
 * Every KEK the store names, opened on demand: new data keys are wrapped by the store's current
 * KEK (read at each wrap, so a rotation started by another process takes effect at once), and a
 * data key is unwrapped by the KEK its secret records, opened from the registry's spec the first
 * time it is needed. This is what lets a broker keep serving while `rotate-kek` runs elsewhere.
 */
export class KekRing implements KekProvider {
  readonly kind = 'ring';
  private readonly opened = new Map<string, Promise<KekProvider>>();
  private current: string;
  private closed = false;

  constructor(
    private readonly registry: KekRegistry,
    first: SingleKek,
    private readonly opts: { env?: NodeJS.ProcessEnv } = {},
  ) {
    this.current = first.currentId;
    this.opened.set(first.currentId, Promise.resolve(first));
  }

  /** The current KEK as last seen (wrap reads the store). */
  get currentId(): string {
    return this.current;
  }

  async wrap(dataKey: Buffer): Promise<{ kekId: string; wrapped: Buffer }> {
    this.live();
    const cur = (await this.registry.listKeks()).find((k) => k.state === 'current');
    if (!cur) throw new CofferError('KEK_NO_CURRENT', 'the store names no current KEK');
    this.current = cur.id;
    return (await this.provider(cur)).wrap(dataKey);
  }

  async unwrap(wrapped: Buffer, id: string): Promise<Buffer> {
    this.live();
    let p = this.opened.get(id);
    if (!p) {
      const rec = await this.registry.getKek(id);
      if (!rec) throw new CofferError('KEK_UNKNOWN', `the data key was wrapped by KEK ${id}, which the store does not know`);
      p = this.openRecord(rec);
    }
    return (await p).unwrap(wrapped, id);
  }

  private provider(rec: KekRecord): Promise<KekProvider> {
    return this.opened.get(rec.id) ?? this.openRecord(rec);
  }

  private openRecord(rec: KekRecord): Promise<KekProvider> {
    const p = (async () => {
      let k: SingleKek;
      try {
        k = openKek(rec.spec, this.opts.env ? { env: this.opts.env } : {});
      } catch (e) {
        throw new CofferError('KEK_UNAVAILABLE', `KEK ${rec.id} (${rec.spec}) cannot be opened: ${e instanceof CofferError ? `${e.code}: ${e.message}` : 'error'}`);
      }
      if (k.currentId !== rec.id) {
        await k.close();
        throw new CofferError('KEK_MISMATCH', `${rec.spec} now holds KEK ${k.currentId}, not ${rec.id} that the store recorded there`);
      }
      return k;
    })();
    this.opened.set(rec.id, p);
    // A failed open is retried next time (the operator may fix the PIN or the file meanwhile).
    p.catch(() => this.opened.delete(rec.id));
    return p;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const all = [...this.opened.values()];
    this.opened.clear();
    for (const p of all) await p.then((k) => k.close()).catch(() => undefined);
  }

  private live(): void {
    if (this.closed) throw new CofferError('KEK_CLOSED', 'the KEK provider is closed');
  }
}

/**
 * The KEKs of a starting broker. The store's registry decides: its current KEK is opened from
 * the spec it records (a `spec` given here must be that same KEK, or the start is refused:
 * after a rotation the old `--kek` is not the one to use). On a store without a registry (first
 * start, or a store from before migration 4), `spec` or `defaultFile` is opened, created when
 * missing unless the store already holds secrets sealed under another KEK, and recorded.
 */
export async function openBrokerKeks(store: Store, o: { spec?: string; defaultFile: string; at: number; actor?: string; env?: NodeJS.ProcessEnv }): Promise<{ ring: KekRing; created: boolean; current: KekRecord }> {
  const env = o.env ? { env: o.env } : {};
  const cur = (await store.listKeks()).find((k) => k.state === 'current');
  if (cur) {
    const k = openKek(o.spec ?? cur.spec, env);
    if (k.currentId !== cur.id) {
      await k.close();
      throw inputError(
        'KEK_NOT_CURRENT',
        o.spec !== undefined
          ? `--kek ${o.spec} is KEK ${k.currentId}, but the store's current KEK is ${cur.id} (${cur.spec}): start with that one, or without --kek`
          : `${cur.spec} now holds KEK ${k.currentId}, not ${cur.id} that the store recorded: restore the right key`,
      );
    }
    return { ring: new KekRing(store, k, env), created: false, current: cur };
  }
  const spec = o.spec ?? `file:${o.defaultFile}`;
  const sealed = [...new Set([...Object.keys(await store.countSecretsByKek()), ...Object.keys(await store.countVolumesByKek())])];
  let k: SingleKek;
  try {
    k = openKek(spec, { ...env, create: sealed.length === 0 });
  } catch (e) {
    if (e instanceof CofferError && sealed.length > 0 && (e.code === 'KEK_MISSING' || e.code === 'KEK_PKCS11_NO_KEY')) {
      throw inputError('KEK_MISSING', `${e.message}; the store holds secrets sealed under ${sealed.join(', ')}: give --kek for that KEK`);
    }
    throw e;
  }
  if (sealed.length > 0 && !sealed.includes(k.currentId)) {
    await k.close();
    throw inputError('KEK_NOT_CURRENT', `${k.spec} is KEK ${k.currentId}, but the store's secrets are sealed under ${sealed.join(', ')}: give --kek for that KEK`);
  }
  const audit: AuditInput = { at: o.at, actor: o.actor ?? 'broker', action: 'kek.init', verdict: 'allow', detail: `KEK ${k.currentId} at ${k.spec}${k.created ? ' (created)' : ''}` };
  const rec = await store.initKek({ id: k.currentId, spec: k.spec, at: o.at }, audit);
  if (rec.id !== k.currentId) {
    // Another replica recorded its KEK first: use that one.
    await k.close();
    return openBrokerKeks(store, { ...o, spec: rec.spec });
  }
  return { ring: new KekRing(store, k, env), created: k.created, current: rec };
}
