import { inputError } from '../../errors.js';
import type { Certificate } from '../../pki/certificate.js';
import type { SnpProduct } from './report.js';

/** AMD's X.509 extensions on VCEK and VLEK certificates (OID arc 1.3.6.1.4.1.3704.1). */
export const AMD_OID = {
  structVersion: '1.3.6.1.4.1.3704.1.1',
  productName: '1.3.6.1.4.1.3704.1.2',
  blSpl: '1.3.6.1.4.1.3704.1.3.1',
  teeSpl: '1.3.6.1.4.1.3704.1.3.2',
  snpSpl: '1.3.6.1.4.1.3704.1.3.3',
  ucodeSpl: '1.3.6.1.4.1.3704.1.3.8',
  reservedSpls: ['1.3.6.1.4.1.3704.1.3.4', '1.3.6.1.4.1.3704.1.3.5', '1.3.6.1.4.1.3704.1.3.6', '1.3.6.1.4.1.3704.1.3.7'],
  fmcSpl: '1.3.6.1.4.1.3704.1.3.9',
  hwId: '1.3.6.1.4.1.3704.1.4',
  cspId: '1.3.6.1.4.1.3704.1.5',
} as const;

export interface EndorsementKeyInfo {
  kind: 'vcek' | 'vlek';
  productName: string | undefined;
  tcb: { fmc?: number; bootloader: number; tee: number; snp: number; microcode: number };
  /** VCEK only: the chip's hardware id (64 bytes; 8 bytes for Turin). */
  hwId: Buffer | undefined;
  /** VLEK only: the cloud provider the key was loaded for. */
  cspId: string | undefined;
}

function derInteger(v: Buffer, what: string): number {
  const len = v[1] ?? 0;
  if (v.length < 3 || v[0] !== 0x02 || len + 2 !== v.length || len > 5) throw inputError('SNP_BAD_ENDORSEMENT_KEY', `${what} is not a small DER INTEGER`);
  if (((v[2] ?? 0) & 0x80) !== 0) throw inputError('SNP_BAD_ENDORSEMENT_KEY', `${what} is negative`);
  let n = 0;
  for (let i = 2; i < v.length; i++) n = n * 256 + (v[i] ?? 0);
  if (n > 255) throw inputError('SNP_BAD_ENDORSEMENT_KEY', `${what} = ${n} does not fit a TCB byte`);
  return n;
}

function derIa5(v: Buffer, what: string): string {
  const len = v[1] ?? 0;
  if (v.length < 2 || v[0] !== 0x16 || len >= 0x80 || len + 2 !== v.length) throw inputError('SNP_BAD_ENDORSEMENT_KEY', `${what} is not a DER IA5String`);
  return v.subarray(2).toString('latin1');
}

/** Reads the AMD extensions of a VCEK or VLEK. Missing TCB extensions are refused. */
export function readEndorsementKey(cert: Certificate, kind: 'vcek' | 'vlek', product: SnpProduct): EndorsementKeyInfo {
  const spl = (oid: string, name: string): number => {
    const v = cert.extension(oid);
    if (!v) throw inputError('SNP_BAD_ENDORSEMENT_KEY', `${kind.toUpperCase()} certificate lacks the ${name} extension (${oid})`);
    return derInteger(v, `${kind.toUpperCase()} ${name}`);
  };
  const pn = cert.extension(AMD_OID.productName);
  const csp = cert.extension(AMD_OID.cspId);
  const tcb: EndorsementKeyInfo['tcb'] = {
    bootloader: spl(AMD_OID.blSpl, 'blSPL'),
    tee: spl(AMD_OID.teeSpl, 'teeSPL'),
    snp: spl(AMD_OID.snpSpl, 'snpSPL'),
    microcode: spl(AMD_OID.ucodeSpl, 'ucodeSPL'),
  };
  if (product === 'Turin') tcb.fmc = spl(AMD_OID.fmcSpl, 'fmcSPL');
  // spl_4..spl_7 stand for the reserved TCB bytes; a key certifying non-zero values there
  // certifies a TCB this code cannot compare, so it is refused.
  for (const oid of AMD_OID.reservedSpls) {
    const v = cert.extension(oid);
    if (v && derInteger(v, `${kind.toUpperCase()} reserved SPL ${oid}`) !== 0) {
      throw inputError('SNP_BAD_ENDORSEMENT_KEY', `${kind.toUpperCase()} certifies a non-zero reserved TCB component (${oid})`);
    }
  }
  return {
    kind,
    productName: pn ? derIa5(pn, 'productName') : undefined,
    tcb,
    hwId: kind === 'vcek' ? cert.extension(AMD_OID.hwId) : undefined,
    cspId: csp ? derIa5(csp, 'cspId') : undefined,
  };
}

/** The product an AMD signing key certifies, from its common name (SEV-Milan, SEV-VLEK-Genoa, ...). */
export function productFromSignerCn(cn: string): { product: SnpProduct; vlek: boolean } | undefined {
  const m = /^SEV-(VLEK-)?(Milan|Genoa|Turin)$/.exec(cn);
  return m ? { product: m[2] as SnpProduct, vlek: m[1] !== undefined } : undefined;
}
