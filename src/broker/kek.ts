import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';
import { closeSync, fstatSync, lstatSync, readSync } from 'node:fs';
import { CofferError, inputError } from '../errors.js';
import { openPrivate, writePrivateFile } from './files.js';

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
export class FileKekProvider implements KekProvider {
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
