// SEV-SNP launch measurement of Debian's OVMF.fd (package ovmf), checked against a separate,
// minimal, straight-line derivation written from the AMD SEV-SNP firmware ABI (PAGE_INFO,
// SNP_LAUNCH_UPDATE page types) and the OVMF reset-vector sources: it shares no code with
// src/image (docs/image.md writes the derivation down).
import { test, describe, before } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { CofferError } from '../../src/errors.js';
import { snpLaunchMeasurement, sevMetadata, SnpLaunchDigest } from '../../src/image/index.js';
import { ovmfPath } from './measure-tools.js';

// The value docs/image.md derives: Debian 12 OVMF.fd (2 MiB, ovmf 2022.11-6+deb12u2), 1 vCPU, EPYC-v4, QEMU, guest features 0x1.
const EXPECTED_1_EPYC_V4 = '11570979c77a0adb515761a702527c8b9e11554e730552621d950988613a3a75c6ff1703f540bd22a9beede8fe7a97e3';

/** Independent derivation. Everything by hand: GUID bytes, offsets, the fold. */
function independent(fw: Buffer, vcpus: number, cpuSig: number): string {
  const sha384 = (b: Buffer) => createHash('sha384').update(b).digest();
  // OVMF footer table: ends 32 bytes before the image end; walk entries backwards.
  const guid = (hex: string) => {
    const b = Buffer.from(hex.replace(/-/g, ''), 'hex');
    return Buffer.concat([Buffer.from(b.subarray(0, 4)).reverse(), Buffer.from(b.subarray(4, 6)).reverse(), Buffer.from(b.subarray(6, 8)).reverse(), b.subarray(8)]);
  };
  const tableEnd = fw.length - 32;
  assert.ok(fw.subarray(tableEnd - 16, tableEnd).equals(guid('96b582de-1fb2-45f7-baea-a366c55a082d')));
  const tableLen = fw.readUInt16LE(tableEnd - 18);
  const entries = new Map<string, Buffer>();
  for (let end = tableEnd - 18; end > tableEnd - tableLen; ) {
    const len = fw.readUInt16LE(end - 18);
    entries.set(fw.subarray(end - 16, end).toString('hex'), fw.subarray(end - len, end - 18));
    end -= len;
  }
  const sevMeta = entries.get(guid('dc886566-984a-4798-a75e-5585a7bf67cc').toString('hex')) as Buffer;
  const apEip = (entries.get(guid('00f771de-1a7e-4fcb-890e-68c77e2fb44e').toString('hex')) as Buffer).readUInt32LE(0);
  const meta = fw.length - sevMeta.readUInt32LE(0);
  assert.equal(fw.toString('latin1', meta, meta + 4), 'ASEV');
  const n = fw.readUInt32LE(meta + 12);

  let ld = Buffer.alloc(48);
  const update = (gpa: number, type: number, contents: Buffer) => {
    const pi = Buffer.alloc(112);
    ld.copy(pi, 0);
    contents.copy(pi, 48);
    pi.writeUInt16LE(112, 96);
    pi[98] = type;
    pi.writeBigUInt64LE(BigInt(gpa), 104);
    ld = sha384(pi);
  };
  const base = 2 ** 32 - fw.length;
  for (let off = 0; off < fw.length; off += 4096) update(base + off, 1, sha384(fw.subarray(off, off + 4096)));
  for (let i = 0; i < n; i++) {
    const at = meta + 16 + 12 * i;
    const gpa = fw.readUInt32LE(at);
    const size = fw.readUInt32LE(at + 4);
    const kind = fw.readUInt32LE(at + 8);
    const pageType = kind === 1 ? 3 : kind === 2 ? 5 : kind === 3 ? 6 : -1;
    assert.notEqual(pageType, -1, `unexpected SEV section type ${kind} in Debian's OVMF`);
    for (let p = 0; p < size; p += 4096) update(gpa + p, pageType, Buffer.alloc(48));
  }
  const vmsa = (eip: number) => {
    const v = Buffer.alloc(4096);
    const seg = (i: number, sel: number, attr: number, base: number) => {
      v.writeUInt16LE(sel, i * 16);
      v.writeUInt16LE(attr, i * 16 + 2);
      v.writeUInt32LE(0xffff, i * 16 + 4);
      v.writeBigUInt64LE(BigInt(base), i * 16 + 8);
    };
    [0x93, 0x9b, 0x93, 0x93, 0x93, 0x93, 0, 0x82, 0, 0x8b].forEach((attr, i) => seg(i, i === 1 ? 0xf000 : 0, attr, i === 1 ? Math.floor(eip / 65536) * 65536 : 0));
    const q = (off: number, val: number) => v.writeBigUInt64LE(BigInt(val), off);
    q(0xd0, 0x1000);
    q(0x148, 0x40);
    q(0x158, 0x10);
    q(0x160, 0x400);
    q(0x168, 0xffff0ff0);
    q(0x170, 2);
    q(0x178, eip % 65536);
    v.writeBigUInt64LE(0x0007040600070406n, 0x268);
    q(0x310, cpuSig);
    q(0x3b0, 1);
    q(0x3e8, 1);
    v.writeUInt32LE(0x1f80, 0x408);
    v.writeUInt16LE(0x37f, 0x410);
    return v;
  };
  for (let i = 0; i < vcpus; i++) update(0xfffffffff000, 2, sha384(vmsa(i === 0 ? 0xfffffff0 : apEip)));
  return ld.toString('hex');
}

describe('SEV-SNP launch measurement', () => {
  let fw: Buffer;
  before(() => {
    fw = readFileSync(ovmfPath());
  });

  test("Debian's OVMF.fd, 1 vCPU, EPYC-v4: Coffer = the independent derivation = the documented value", () => {
    assert.equal(fw.length, 2 * 1024 * 1024, 'the 2 MiB OVMF.fd with SEV metadata');
    const m = snpLaunchMeasurement(fw, { vcpus: 1, vcpuType: 'EPYC-v4' });
    assert.equal(m.measurement, independent(fw, 1, 0x800f12));
    assert.equal(m.measurement, EXPECTED_1_EPYC_V4);
    assert.deepEqual(m.pageCount, { NORMAL: 512, VMSA: 1, ZERO: 29, UNMEASURED: 0, SECRETS: 1, CPUID: 1 });
    assert.equal(m.apEip, 0x80b004);
    assert.deepEqual(m.sections.map((s) => [s.typeName, s.measuredAs]), [
      ['SNP_SEC_MEM', 'ZERO'],
      ['SNP_SEC_MEM', 'ZERO'],
      ['SNP_SECRETS', 'SECRETS'],
      ['CPUID', 'CPUID'],
      ['SNP_SEC_MEM', 'ZERO'],
    ]);
  });

  test('more vCPUs (AP VMSAs from the SEV-ES reset block) and other CPU models agree with the derivation', () => {
    for (const [vcpus, type, sig] of [
      [4, 'EPYC-v4', 0x800f12],
      [2, 'EPYC-Milan', 0xa00f11],
      [1, 'EPYC-Genoa', 0xa10f10],
    ] as const) {
      assert.equal(snpLaunchMeasurement(fw, { vcpus, vcpuType: type }).measurement, independent(fw, vcpus, sig), `${vcpus} x ${type}`);
    }
  });

  test('the OVMF hash prefix, other VMMs and guest features change the digest; the ovmfHash restarts the fold', () => {
    const base = snpLaunchMeasurement(fw);
    assert.notEqual(snpLaunchMeasurement(fw, { vmm: 'gce' }).measurement, base.measurement);
    assert.notEqual(snpLaunchMeasurement(fw, { vmm: 'ec2' }).measurement, base.measurement);
    assert.notEqual(snpLaunchMeasurement(fw, { guestFeatures: 0x21n }).measurement, base.measurement);
    assert.equal(snpLaunchMeasurement(fw, { vmm: 'gce' }).pageCount.UNMEASURED, 29);
    const d = new SnpLaunchDigest({ start: Buffer.from(base.ovmfHash, 'hex') });
    assert.equal(d.digest.toString('hex'), base.ovmfHash);
  });

  test('refusals: a kernel without SNP_KERNEL_HASHES, no SEV metadata, bad vCPU type', () => {
    const code = (fn: () => unknown) => {
      try {
        fn();
        return 'OK';
      } catch (e) {
        assert.ok(e instanceof CofferError, String(e));
        return e.code;
      }
    };
    assert.ok(sevMetadata(fw)?.every((s) => s.typeName !== 'SNP_KERNEL_HASHES'));
    assert.equal(code(() => snpLaunchMeasurement(fw, { kernel: { kernel: Buffer.alloc(10) } })), 'OVMF_NO_KERNEL_HASHES');
    assert.equal(code(() => snpLaunchMeasurement(Buffer.alloc(8192))), 'OVMF_NO_SEV_METADATA');
    assert.equal(code(() => snpLaunchMeasurement(fw, { vcpuType: 'Pentium' })), 'SNP_MEASURE_BAD_INPUT');
    assert.equal(code(() => snpLaunchMeasurement(fw, { vcpus: 0 })), 'SNP_MEASURE_BAD_INPUT');
  });
});
