import { inputError } from '../errors.js';

export function toHex(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');
}

/** Strict hex decoding: even length, hex digits only (an optional 0x prefix and whitespace allowed). */
export function fromHex(s: string, what = 'hex value'): Buffer {
  const clean = s.trim().replace(/^0x/i, '').replace(/\s+/g, '');
  if (clean.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(clean)) {
    throw inputError('BAD_HEX', `${what} is not valid hex`);
  }
  return Buffer.from(clean, 'hex');
}

export function isAllZero(b: Uint8Array): boolean {
  for (let i = 0; i < b.length; i++) if (b[i] !== 0) return false;
  return true;
}
