/** A growable little/big-endian writer, the counterpart of ByteReader for building structures. */
export class ByteWriter {
  private chunks: Buffer[] = [];
  private size = 0;

  private push(b: Buffer): this {
    this.chunks.push(b);
    this.size += b.length;
    return this;
  }

  get length(): number {
    return this.size;
  }

  u8(v: number): this {
    const b = Buffer.alloc(1);
    b.writeUInt8(v);
    return this.push(b);
  }

  u16le(v: number): this {
    const b = Buffer.alloc(2);
    b.writeUInt16LE(v);
    return this.push(b);
  }

  u32le(v: number): this {
    const b = Buffer.alloc(4);
    b.writeUInt32LE(v);
    return this.push(b);
  }

  u64le(v: bigint): this {
    const b = Buffer.alloc(8);
    b.writeBigUInt64LE(v);
    return this.push(b);
  }

  u16be(v: number): this {
    const b = Buffer.alloc(2);
    b.writeUInt16BE(v);
    return this.push(b);
  }

  u32be(v: number): this {
    const b = Buffer.alloc(4);
    b.writeUInt32BE(v);
    return this.push(b);
  }

  bytes(b: Uint8Array): this {
    return this.push(Buffer.from(b));
  }

  zeros(n: number): this {
    return this.push(Buffer.alloc(n));
  }

  toBuffer(): Buffer {
    return Buffer.concat(this.chunks, this.size);
  }
}
