import { createHash } from 'node:crypto';
import { inputError } from '../errors.js';
import { guidBytes } from './guid.js';
import { SEV_SECTION, sevEsResetEip, sevHashTableArea, sevMetadata, type SevMetadataSection } from './ovmf.js';

/**
 * The SEV-SNP launch measurement (AMD SEV-SNP firmware ABI, SNP_LAUNCH_UPDATE and the
 * PAGE_INFO structure) that a VMM produces when it launches a guest from an OVMF image:
 * every page added is folded in as `LD = SHA-384(PAGE_INFO)`, PAGE_INFO holding the previous
 * LD, the page's contents digest (NORMAL and VMSA pages only), its type and its GPA.
 * The order is QEMU's (and virtee/sev-snp-measure's): the OVMF image, the SEV metadata
 * sections in table order, then one VMSA per vCPU.
 */

const CODE = 'SNP_MEASURE_BAD_INPUT';
const PAGE = 4096;

export const SNP_PAGE_TYPE = { NORMAL: 1, VMSA: 2, ZERO: 3, UNMEASURED: 4, SECRETS: 5, CPUID: 6 } as const;
export type SnpPageTypeName = keyof typeof SNP_PAGE_TYPE;

/** CPUID Fn0000_0001 EAX of the vCPU models QEMU names (what the VMSA's RDX holds at reset). */
export const SNP_VCPU_SIGNATURES: Readonly<Record<string, number>> = {
  EPYC: 0x800f12,
  'EPYC-v1': 0x800f12,
  'EPYC-v2': 0x800f12,
  'EPYC-v3': 0x800f12,
  'EPYC-v4': 0x800f12,
  'EPYC-Rome': 0x830f10,
  'EPYC-Rome-v1': 0x830f10,
  'EPYC-Rome-v2': 0x830f10,
  'EPYC-Rome-v3': 0x830f10,
  'EPYC-Milan': 0xa00f11,
  'EPYC-Milan-v1': 0xa00f11,
  'EPYC-Milan-v2': 0xa00f11,
  'EPYC-Genoa': 0xa10f10,
  'EPYC-Genoa-v1': 0xa10f10,
  'EPYC-Turin': 0xb00f00,
};

export type SnpVmm = 'qemu' | 'ec2' | 'gce';
export const SNP_VMMS: readonly SnpVmm[] = ['qemu', 'ec2', 'gce'];

/** VMSA page GPA the firmware uses for every vCPU's save area. */
export const VMSA_GPA = 0xfffffffff000n;
const BSP_EIP = 0xfffffff0;

export interface SnpKernelInputs {
  kernel: Uint8Array;
  initrd?: Uint8Array;
  /** The kernel command line (measured with a terminating NUL). */
  append?: string;
}

export interface SnpMeasureOptions {
  vcpus?: number;
  /** A vCPU model name (SNP_VCPU_SIGNATURES) or the signature itself. */
  vcpuType?: string | number;
  guestFeatures?: bigint;
  vmm?: SnpVmm;
  kernel?: SnpKernelInputs;
  /** Record every page in `pages` (off by default: an OVMF image is hundreds of pages). */
  trace?: boolean;
}

export interface SnpPageRecord {
  gpa: bigint;
  type: SnpPageTypeName;
  contents: string;
}

export interface SnpMeasurement {
  /** The launch digest (MEASUREMENT of the attestation report), 48 bytes hex. */
  measurement: string;
  /** The digest after the OVMF pages only (sev-snp-measure's "OVMF hash"). */
  ovmfHash: string;
  ovmfGpa: bigint;
  ovmfSize: number;
  vcpus: number;
  vcpuSignature: number;
  guestFeatures: bigint;
  vmm: SnpVmm;
  apEip: number | undefined;
  sections: (SevMetadataSection & { measuredAs: SnpPageTypeName })[];
  pageCount: Record<SnpPageTypeName, number>;
  kernelHashes?: { cmdline: string; initrd: string; kernel: string; tableGpa: bigint };
  pages?: SnpPageRecord[];
}

const ZERO48 = Buffer.alloc(48);

/** The launch digest state: PAGE_INFO folding as SNP_LAUNCH_UPDATE does it. */
export class SnpLaunchDigest {
  private ld: Buffer = Buffer.alloc(48);
  readonly count: Record<SnpPageTypeName, number> = { NORMAL: 0, VMSA: 0, ZERO: 0, UNMEASURED: 0, SECRETS: 0, CPUID: 0 };
  readonly trace: SnpPageRecord[] | undefined;

  constructor(opts: { trace?: boolean; start?: Uint8Array } = {}) {
    if (opts.start) {
      if (opts.start.length !== 48) throw inputError(CODE, 'a launch digest is 48 bytes');
      this.ld = Buffer.from(opts.start);
    }
    this.trace = opts.trace ? [] : undefined;
  }

  get digest(): Buffer {
    return Buffer.from(this.ld);
  }

  /** Folds one page: PAGE_INFO = LD || CONTENTS || u16 0x70 || type || IMI 0 || VMPL3..1 perms 0 || 0 || u64 GPA. */
  page(gpa: bigint, type: SnpPageTypeName, contents: Uint8Array = ZERO48): void {
    const info = Buffer.alloc(0x70);
    this.ld.copy(info, 0);
    Buffer.from(contents).copy(info, 48);
    info.writeUInt16LE(0x70, 96);
    info.writeUInt8(SNP_PAGE_TYPE[type], 98);
    info.writeBigUInt64LE(gpa, 104);
    this.ld = createHash('sha384').update(info).digest();
    this.count[type]++;
    this.trace?.push({ gpa, type, contents: Buffer.from(contents).toString('hex') });
  }

  normalPages(gpa: bigint, data: Uint8Array): void {
    if (data.length % PAGE !== 0) throw inputError(CODE, `${data.length} bytes is not whole 4 KiB pages`);
    for (let off = 0; off < data.length; off += PAGE) this.page(gpa + BigInt(off), 'NORMAL', createHash('sha384').update(data.subarray(off, off + PAGE)).digest());
  }

  emptyPages(gpa: bigint, size: number, type: 'ZERO' | 'UNMEASURED' | 'SECRETS' | 'CPUID'): void {
    for (let off = 0; off < size; off += PAGE) this.page(gpa + BigInt(off), type);
  }

  vmsaPage(vmsa: Uint8Array): void {
    this.page(VMSA_GPA, 'VMSA', createHash('sha384').update(vmsa).digest());
  }
}

export function vcpuSignature(t: string | number | undefined): number {
  if (t === undefined) return SNP_VCPU_SIGNATURES['EPYC-v4'] as number;
  if (typeof t === 'number') return t;
  const sig = SNP_VCPU_SIGNATURES[t];
  if (sig === undefined) {
    if (/^0x[0-9a-f]+$/i.test(t)) return Number.parseInt(t.slice(2), 16);
    throw inputError(CODE, `unknown vCPU type "${t}": one of ${Object.keys(SNP_VCPU_SIGNATURES).join(', ')}, or a CPUID signature in hex`);
  }
  return sig;
}

function segment(b: Buffer, at: number, selector: number, attrib: number, limit: number, base: bigint): void {
  b.writeUInt16LE(selector, at);
  b.writeUInt16LE(attrib, at + 2);
  b.writeUInt32LE(limit, at + 4);
  b.writeBigUInt64LE(base, at + 8);
}

/**
 * The VMSA page (AMD64 APM vol. 2, VMCB save area with SEV-ES fields) a VMM sets for a vCPU at
 * reset with SEV-SNP: real mode at `eip`, everything else zero. Per-VMM differences as
 * formats.md lists them (EC2 and GCE set some reset values differently from QEMU).
 */
export function buildVmsa(eip: number, vcpuSig: number, guestFeatures: bigint, vmm: SnpVmm = 'qemu'): Buffer {
  const v = Buffer.alloc(PAGE);
  const ec2 = vmm === 'ec2';
  const gce = vmm === 'gce';
  const csAttr = ec2 && eip === BSP_EIP ? 0x9a : 0x9b;
  const ssAttr = ec2 ? 0x92 : 0x93;
  const trAttr = ec2 ? 0x83 : 0x8b;
  segment(v, 0x00, 0, 0x93, 0xffff, 0n); // es
  segment(v, 0x10, 0xf000, csAttr, 0xffff, BigInt((eip & 0xffff0000) >>> 0)); // cs
  segment(v, 0x20, 0, ssAttr, 0xffff, 0n); // ss
  segment(v, 0x30, 0, 0x93, 0xffff, 0n); // ds
  segment(v, 0x40, 0, 0x93, 0xffff, 0n); // fs
  segment(v, 0x50, 0, 0x93, 0xffff, 0n); // gs
  segment(v, 0x60, 0, 0, 0xffff, 0n); // gdtr
  segment(v, 0x70, 0, 0x82, 0xffff, 0n); // ldtr
  segment(v, 0x80, 0, 0, 0xffff, 0n); // idtr
  segment(v, 0x90, 0, trAttr, 0xffff, 0n); // tr
  v.writeBigUInt64LE(0x1000n, 0xd0); // efer: SVME
  v.writeBigUInt64LE(0x40n, 0x148); // cr4: MCE
  v.writeBigUInt64LE(0x10n, 0x158); // cr0: ET
  v.writeBigUInt64LE(0x400n, 0x160); // dr7
  v.writeBigUInt64LE(0xffff0ff0n, 0x168); // dr6
  v.writeBigUInt64LE(0x2n, 0x170); // rflags
  v.writeBigUInt64LE(BigInt(eip & 0xffff), 0x178); // rip
  v.writeBigUInt64LE(gce ? 0x00070106n : 0x0007040600070406n, 0x268); // g_pat
  v.writeBigUInt64LE(BigInt(ec2 || gce ? 0x600 : vcpuSig), 0x310); // rdx
  v.writeBigUInt64LE(guestFeatures, 0x3b0); // sev_features
  v.writeBigUInt64LE(0x1n, 0x3e8); // xcr0
  if (!ec2 && !gce) {
    v.writeUInt32LE(0x1f80, 0x408); // mxcsr
    v.writeUInt16LE(0x37f, 0x410); // x87 fcw
  }
  return v;
}

const HASH_TABLE_GUID = '9438d606-4f22-4cc9-b479-a793d411fd21';
const CMDLINE_GUID = '97d02dd8-bd20-4c94-aa78-e7714d36ab2a';
const INITRD_GUID = '44baf731-3a2f-4bd7-9af1-41e29169781d';
const KERNEL_GUID = '4de79437-abd2-427f-b835-d5b172d2045b';

/** The SEV kernel hashes table (QEMU's SevHashTable), zero padded to 176 bytes. */
export function sevHashesTable(k: SnpKernelInputs): { table: Buffer; cmdline: Buffer; initrd: Buffer; kernel: Buffer } {
  const sha = (b: Uint8Array) => createHash('sha256').update(b).digest();
  const cmdline = sha(Buffer.concat([Buffer.from(k.append ?? '', 'utf8'), Buffer.alloc(1)]));
  const initrd = sha(k.initrd ?? Buffer.alloc(0));
  const kernel = sha(k.kernel);
  const entry = (guid: string, h: Buffer) => {
    const len = Buffer.alloc(2);
    len.writeUInt16LE(50);
    return Buffer.concat([guidBytes(guid), len, h]);
  };
  const len = Buffer.alloc(2);
  len.writeUInt16LE(168);
  const table = Buffer.concat([guidBytes(HASH_TABLE_GUID), len, entry(CMDLINE_GUID, cmdline), entry(INITRD_GUID, initrd), entry(KERNEL_GUID, kernel), Buffer.alloc(8)]);
  return { table, cmdline, initrd, kernel };
}

/** Predicts the SEV-SNP launch measurement of a guest started from `ovmf`. */
export function snpLaunchMeasurement(ovmf: Uint8Array, opts: SnpMeasureOptions = {}): SnpMeasurement {
  const vcpus = opts.vcpus ?? 1;
  if (!Number.isInteger(vcpus) || vcpus < 1 || vcpus > 512) throw inputError(CODE, `--vcpus must be 1 to 512, got ${vcpus}`);
  const vmm = opts.vmm ?? 'qemu';
  if (!SNP_VMMS.includes(vmm)) throw inputError(CODE, `unknown VMM "${String(vmm)}": one of ${SNP_VMMS.join(', ')}`);
  const sig = vcpuSignature(opts.vcpuType);
  const features = opts.guestFeatures ?? 1n;
  if (ovmf.length === 0 || ovmf.length % PAGE !== 0 || ovmf.length > 0x10000000) throw inputError(CODE, `an OVMF image of ${ovmf.length} bytes is not whole 4 KiB pages (at most 256 MiB)`);
  const sections = sevMetadata(ovmf);
  if (!sections) throw inputError('OVMF_NO_SEV_METADATA', 'the OVMF image carries no SEV metadata (footer-table entry dc886566-…): it is not an SEV-SNP-capable build (use OvmfPkg/AmdSev or a 2 MiB OVMF.fd with SEV support)');
  const hasHashes = sections.some((s) => s.type === SEV_SECTION.SNP_KERNEL_HASHES);
  if (opts.kernel && !hasHashes) throw inputError('OVMF_NO_KERNEL_HASHES', "a kernel was given but the OVMF metadata has no SNP_KERNEL_HASHES section: this firmware cannot measure a kernel, initrd and command line");
  const ovmfGpa = 0x100000000n - BigInt(ovmf.length);

  const d = new SnpLaunchDigest({ trace: opts.trace ?? false });
  d.normalPages(ovmfGpa, ovmf);
  const ovmfHash = d.digest.toString('hex');

  let kernelHashes: SnpMeasurement['kernelHashes'];
  const measured: SnpMeasurement['sections'] = [];
  for (const s of sections) {
    const gpa = BigInt(s.gpa);
    switch (s.type) {
      case SEV_SECTION.SNP_SEC_MEM: {
        const t = vmm === 'gce' ? 'UNMEASURED' : 'ZERO';
        d.emptyPages(gpa, s.size, t);
        measured.push({ ...s, measuredAs: t });
        break;
      }
      case SEV_SECTION.SNP_SECRETS:
        d.emptyPages(gpa, s.size, 'SECRETS');
        measured.push({ ...s, measuredAs: 'SECRETS' });
        break;
      case SEV_SECTION.CPUID:
        // EC2 adds the CPUID page after the other metadata sections.
        if (vmm !== 'ec2') d.emptyPages(gpa, s.size, 'CPUID');
        measured.push({ ...s, measuredAs: 'CPUID' });
        break;
      case SEV_SECTION.SVSM_CAA:
        d.emptyPages(gpa, s.size, 'ZERO');
        measured.push({ ...s, measuredAs: 'ZERO' });
        break;
      case SEV_SECTION.SNP_KERNEL_HASHES:
        if (opts.kernel) {
          const area = sevHashTableArea(ovmf);
          const tableGpa = area ? BigInt(area.gpa) : gpa;
          const offset = Number(tableGpa & 0xfffn);
          const h = sevHashesTable(opts.kernel);
          if (offset + h.table.length > PAGE) throw inputError(CODE, 'the kernel hashes table crosses a page boundary');
          const page = Buffer.alloc(PAGE);
          h.table.copy(page, offset);
          d.normalPages(gpa, page);
          kernelHashes = { cmdline: h.cmdline.toString('hex'), initrd: h.initrd.toString('hex'), kernel: h.kernel.toString('hex'), tableGpa };
          measured.push({ ...s, measuredAs: 'NORMAL' });
        } else {
          d.emptyPages(gpa, s.size, 'ZERO');
          measured.push({ ...s, measuredAs: 'ZERO' });
        }
        break;
      default:
        throw inputError('OVMF_BAD_IMAGE', `SEV metadata section type 0x${s.type.toString(16)} is unknown`);
    }
  }
  if (vmm === 'ec2') for (const s of sections) if (s.type === SEV_SECTION.CPUID) d.emptyPages(BigInt(s.gpa), s.size, 'CPUID');

  const apEip = sevEsResetEip(ovmf);
  if (vcpus > 1 && apEip === undefined) throw inputError('OVMF_BAD_IMAGE', 'the OVMF image has no SEV-ES reset block: cannot start application processors');
  const bsp = buildVmsa(BSP_EIP, sig, features, vmm);
  const ap = apEip !== undefined ? buildVmsa(apEip, sig, features, vmm) : undefined;
  for (let i = 0; i < vcpus; i++) d.vmsaPage(i === 0 ? bsp : (ap as Buffer));

  return {
    measurement: d.digest.toString('hex'),
    ovmfHash,
    ovmfGpa,
    ovmfSize: ovmf.length,
    vcpus,
    vcpuSignature: sig,
    guestFeatures: features,
    vmm,
    apEip,
    sections: measured,
    pageCount: { ...d.count },
    ...(kernelHashes ? { kernelHashes } : {}),
    ...(d.trace ? { pages: d.trace } : {}),
  };
}
