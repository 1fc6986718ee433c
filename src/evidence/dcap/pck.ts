import * as asn1js from 'asn1js';
import { fromBerSafe } from '../../pki/ber.js';
import { inputError } from '../../errors.js';
import type { Certificate } from '../../pki/certificate.js';

/**
 * The Intel SGX extensions of a PCK certificate (OID 1.2.840.113741.1.13.1, "Intel SGX PCK
 * Certificate and CRL Profile"): a SEQUENCE of {OID, value} pairs naming the platform (PPID,
 * FMSPC, PCE-ID), the TCB the certificate was issued for (16 CPU SVN components, PCE SVN, CPUSVN)
 * and the SGX type. Every required entry must be present exactly once with its exact size.
 */

export const SGX_EXTENSION_OID = '1.2.840.113741.1.13.1';
const OID = {
  ppid: `${SGX_EXTENSION_OID}.1`,
  tcb: `${SGX_EXTENSION_OID}.2`,
  pceId: `${SGX_EXTENSION_OID}.3`,
  fmspc: `${SGX_EXTENSION_OID}.4`,
  sgxType: `${SGX_EXTENSION_OID}.5`,
  platformInstanceId: `${SGX_EXTENSION_OID}.6`,
  configuration: `${SGX_EXTENSION_OID}.7`,
};

export type SgxType = 'Standard' | 'Scalable' | 'ScalableWithIntegrity';
const SGX_TYPES: readonly SgxType[] = ['Standard', 'Scalable', 'ScalableWithIntegrity'];

export interface PckTcb {
  /** SGX TCB components 1..16 (index 0 is component 1). */
  components: number[];
  pceSvn: number;
  cpuSvn: Buffer;
}

export interface PckExtensions {
  ppid: Buffer;
  tcb: PckTcb;
  pceId: Buffer;
  fmspc: Buffer;
  sgxType: SgxType;
  /** Platform CA certificates only. */
  platformInstanceId?: Buffer;
  configuration?: { dynamicPlatform?: boolean; cachedKeys?: boolean; smtEnabled?: boolean };
  /** Which Intel CA issued the certificate, from its issuer name. */
  ca: 'platform' | 'processor';
}

function bad(msg: string): never {
  throw inputError('DCAP_BAD_PCK_EXTENSION', `PCK certificate SGX extension: ${msg}`);
}

function pairs(seq: asn1js.AsnType, what: string): Map<string, asn1js.AsnType> {
  if (!(seq instanceof asn1js.Sequence)) bad(`${what} is not a SEQUENCE`);
  const out = new Map<string, asn1js.AsnType>();
  for (const el of seq.valueBlock.value) {
    if (!(el instanceof asn1js.Sequence) || el.valueBlock.value.length !== 2) bad(`${what} holds an entry that is not an {OID, value} pair`);
    const [oid, value] = el.valueBlock.value;
    if (!(oid instanceof asn1js.ObjectIdentifier) || !value) bad(`${what} holds an entry without an OID`);
    const id = oid.valueBlock.toString();
    if (out.has(id)) bad(`${what} repeats ${id}`);
    out.set(id, value);
  }
  return out;
}

function octets(v: asn1js.AsnType | undefined, name: string, size: number): Buffer {
  if (!(v instanceof asn1js.OctetString)) bad(`${name} is missing or not an OCTET STRING`);
  const b = Buffer.from(v.valueBlock.valueHexView);
  if (b.length !== size) bad(`${name} is ${b.length} bytes, expected ${size}`);
  return b;
}

function smallInt(v: asn1js.AsnType | undefined, name: string, max: number): number {
  if (!(v instanceof asn1js.Integer) && !(v instanceof asn1js.Enumerated)) bad(`${name} is missing or not an INTEGER`);
  const n = v.valueBlock.valueDec;
  if (!Number.isSafeInteger(n) || n < 0 || n > max) bad(`${name} ${n} is out of range 0..${max}`);
  return n;
}

function bool(v: asn1js.AsnType | undefined, name: string): boolean | undefined {
  if (v === undefined) return undefined;
  if (!(v instanceof asn1js.Boolean)) bad(`${name} is not a BOOLEAN`);
  return v.valueBlock.value;
}

// Certificates are immutable and cached by content (Certificate.fromDer), so the decoded extension
// is too: a verifier that sees the same PCK certificate on every quote decodes its DER once.
const decoded = new WeakMap<Certificate, PckExtensions>();

/** Reads the SGX extension of a PCK certificate; a missing or malformed extension is refused. */
export function readPckExtensions(cert: Certificate): PckExtensions {
  const hit = decoded.get(cert);
  if (hit) return hit;
  const out = decodePckExtensions(cert);
  decoded.set(cert, out);
  return out;
}

function decodePckExtensions(cert: Certificate): PckExtensions {
  const raw = cert.extension(SGX_EXTENSION_OID);
  if (!raw) throw inputError('DCAP_BAD_PCK_EXTENSION', `${cert.subjectCn || 'the PCK certificate'} has no Intel SGX extension (${SGX_EXTENSION_OID})`);
  const parsed = fromBerSafe(raw);
  if (parsed.offset === -1 || parsed.offset !== raw.length) bad('not valid DER');
  const top = pairs(parsed.result, 'the extension');
  const tcbPairs = pairs(top.get(OID.tcb) ?? bad('TCB (…13.1.2) is missing'), 'TCB');
  const components: number[] = [];
  for (let i = 1; i <= 16; i++) components.push(smallInt(tcbPairs.get(`${OID.tcb}.${i}`), `TCB component ${i}`, 255));
  const tcb: PckTcb = {
    components,
    pceSvn: smallInt(tcbPairs.get(`${OID.tcb}.17`), 'PCESVN', 0xffff),
    cpuSvn: octets(tcbPairs.get(`${OID.tcb}.18`), 'CPUSVN', 16),
  };
  const typeIndex = smallInt(top.get(OID.sgxType), 'SGX type', SGX_TYPES.length - 1);
  const out: PckExtensions = {
    ppid: octets(top.get(OID.ppid), 'PPID', 16),
    tcb,
    pceId: octets(top.get(OID.pceId), 'PCE-ID', 2),
    fmspc: octets(top.get(OID.fmspc), 'FMSPC', 6),
    sgxType: SGX_TYPES[typeIndex] as SgxType,
    ca: cert.issuerCn === 'Intel SGX PCK Platform CA' ? 'platform' : cert.issuerCn === 'Intel SGX PCK Processor CA' ? 'processor' : bad(`issuer "${cert.issuerCn}" is neither the Intel SGX PCK Platform CA nor the Processor CA`),
  };
  const pid = top.get(OID.platformInstanceId);
  if (pid !== undefined) out.platformInstanceId = octets(pid, 'PlatformInstanceID', 16);
  const conf = top.get(OID.configuration);
  if (conf !== undefined) {
    const c = pairs(conf, 'Configuration');
    const dynamicPlatform = bool(c.get(`${OID.configuration}.1`), 'dynamicPlatform');
    const cachedKeys = bool(c.get(`${OID.configuration}.2`), 'cachedKeys');
    const smtEnabled = bool(c.get(`${OID.configuration}.3`), 'SMTEnabled');
    out.configuration = {
      ...(dynamicPlatform !== undefined ? { dynamicPlatform } : {}),
      ...(cachedKeys !== undefined ? { cachedKeys } : {}),
      ...(smtEnabled !== undefined ? { smtEnabled } : {}),
    };
  }
  return out;
}
