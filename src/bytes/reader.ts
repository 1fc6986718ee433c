import { inputError } from '../errors.js';

/**
 * A bounds-checked binary reader. Every parser in Coffer reads offsets through this class so
 * that a short or lying length field ends in a CofferError, never in an out-of-range read.
 * Offsets are relative to the start of the buffer given to the constructor.
 */
export class ByteReader {
  private readonly buf: Buffer;
  private pos: number;
  /** Name of the structure, used in error messages. */
  readonly what: string;

  constructor(data: Uint8Array, what = 'structure', offset = 0) {
    this.buf = Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    this.what = what;
    if (!Number.isInteger(offset) || offset < 0 || offset > this.buf.length) throw this.short(offset, 0);
    this.pos = offset;
  }

  get offset(): number {
    return this.pos;
  }

  get length(): number {
    return this.buf.length;
  }

  get remaining(): number {
    return this.buf.length - this.pos;
  }

  private short(at: number, n: number): Error {
    return inputError(
      'TRUNCATED',
      `${this.what} is truncated: needed ${n} byte(s) at offset 0x${at.toString(16)}, have ${Math.max(0, this.buf.length - at)}`,
    );
  }

  private need(n: number, at = this.pos): void {
    if (!Number.isInteger(n) || !Number.isInteger(at) || n < 0 || at < 0 || at + n > this.buf.length) throw this.short(at, n);
  }

  seek(offset: number): this {
    this.need(0, offset);
    this.pos = offset;
    return this;
  }

  skip(n: number): this {
    this.need(n);
    this.pos += n;
    return this;
  }

  u8(): number {
    this.need(1);
    return this.buf.readUInt8(this.pos++);
  }

  u16le(): number {
    this.need(2);
    const v = this.buf.readUInt16LE(this.pos);
    this.pos += 2;
    return v;
  }

  u32le(): number {
    this.need(4);
    const v = this.buf.readUInt32LE(this.pos);
    this.pos += 4;
    return v;
  }

  u64le(): bigint {
    this.need(8);
    const v = this.buf.readBigUInt64LE(this.pos);
    this.pos += 8;
    return v;
  }

  u16be(): number {
    this.need(2);
    const v = this.buf.readUInt16BE(this.pos);
    this.pos += 2;
    return v;
  }

  u32be(): number {
    this.need(4);
    const v = this.buf.readUInt32BE(this.pos);
    this.pos += 4;
    return v;
  }

  u64be(): bigint {
    this.need(8);
    const v = this.buf.readBigUInt64BE(this.pos);
    this.pos += 8;
    return v;
  }

  /** A copy of the next n bytes: parsed structures never alias the caller's buffer. */
  bytes(n: number): Buffer {
    this.need(n);
    const out = Buffer.from(this.buf.subarray(this.pos, this.pos + n));
    this.pos += n;
    return out;
  }

  /** A view (no copy) of the next n bytes, for hashing large regions. */
  view(n: number): Buffer {
    this.need(n);
    const out = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }

  /** Consume n bytes that the format says must be zero; refuse them otherwise. */
  zeros(n: number, field: string): this {
    this.need(n);
    for (let i = this.pos; i < this.pos + n; i++) {
      if (this.buf[i] !== 0) {
        throw inputError(
          'RESERVED_NOT_ZERO',
          `${this.what}: reserved field ${field} (offset 0x${this.pos.toString(16)}, ${n} bytes) must be zero, byte at 0x${i.toString(16)} is 0x${(this.buf[i] ?? 0).toString(16).padStart(2, '0')}`,
        );
      }
    }
    this.pos += n;
    return this;
  }

  /** Refuse trailing bytes after a structure that must be consumed whole. */
  end(): void {
    if (this.pos !== this.buf.length) {
      throw inputError('TRAILING_BYTES', `${this.what} has ${this.buf.length - this.pos} unexpected trailing byte(s)`);
    }
  }
}
