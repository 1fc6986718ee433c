import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { CofferError } from '../errors.js';
import type { KekProvider } from './kek.js';

/**
 * Envelope encryption of one secret: a fresh 256-bit data key per write, AES-256-GCM with a
 * 96-bit random IV and the resource path (UTF-8) as associated data, so a ciphertext moved to
 * another path does not decrypt; the data key wrapped by the KEK (kek.ts). Plaintext data keys
 * are zeroed as soon as they are used.
 */
export const ENVELOPE_ALG = 'A256GCM+A256KW';

export interface Sealed {
  kekId: string;
  wrappedKey: Buffer;
  iv: Buffer;
  ciphertext: Buffer;
  tag: Buffer;
  alg: string;
}

export async function seal(kek: KekProvider, path: string, plaintext: Buffer): Promise<Sealed> {
  const dataKey = randomBytes(32);
  try {
    const iv = randomBytes(12);
    const c = createCipheriv('aes-256-gcm', dataKey, iv);
    c.setAAD(Buffer.from(path, 'utf8'));
    const ciphertext = Buffer.concat([c.update(plaintext), c.final()]);
    const tag = c.getAuthTag();
    const { kekId, wrapped } = await kek.wrap(dataKey);
    return { kekId, wrappedKey: wrapped, iv, ciphertext, tag, alg: ENVELOPE_ALG };
  } finally {
    dataKey.fill(0);
  }
}

/** Decrypts a sealed secret; the caller zeroes the returned buffer when done. */
export async function open(kek: KekProvider, path: string, s: Sealed): Promise<Buffer> {
  if (s.alg !== ENVELOPE_ALG) throw new CofferError('SECRET_BAD_ALG', `secret ${path} is sealed with ${s.alg}, which this broker does not know`);
  const dataKey = await kek.unwrap(s.wrappedKey, s.kekId);
  try {
    const d = createDecipheriv('aes-256-gcm', dataKey, s.iv);
    d.setAAD(Buffer.from(path, 'utf8'));
    d.setAuthTag(s.tag);
    const head = d.update(s.ciphertext);
    const tail = d.final();
    const out = Buffer.concat([head, tail]);
    head.fill(0);
    tail.fill(0);
    return out;
  } catch {
    throw new CofferError('SECRET_CORRUPT', `secret ${path} does not decrypt: the stored ciphertext was altered or moved from another path`);
  } finally {
    dataKey.fill(0);
  }
}
