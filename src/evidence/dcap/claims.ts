import { toHex } from '../../bytes/hex.js';
import type { DcapQuote, EnclaveReport } from './quote.js';
import { bit, SGX_ATTR, TD_ATTR } from './validate.js';
import type { DcapVerified } from './verify.js';

interface CommonClaims {
  version: number;
  teeType: 'sgx' | 'tdx';
  qeSvn: number;
  pceSvn: number;
  qeVendorId: string;
  userData: string;
  fmspc: string | null;
  pceId: string | null;
  pckCa: 'platform' | 'processor' | null;
  pckTcb: { components: number[]; pceSvn: number; cpuSvn: string } | null;
  tcbStatus: string | null;
  advisoryIds: string[];
  tdxModuleStatus: string | null;
  qeStatus: string | null;
  /** The quoting enclave's identity from its (PCK-signed) report. */
  qe: { mrSigner: string; isvProdId: number; isvSvn: number };
  /** Whether any TCB info or QE identity was given (false: the TCB was not checked at all). */
  collateralGiven: boolean;
}

export interface TdxClaims extends CommonClaims {
  teeType: 'tdx';
  body: 'td10' | 'td15';
  bodyType: number | null;
  teeTcbSvn: string;
  teeTcbSvn2: string | null;
  mrSeam: string;
  mrSignerSeam: string;
  seamAttributes: string;
  tdAttributes: string;
  tdAttributesDecoded: { debug: boolean; septVeDisable: boolean; pks: boolean; kl: boolean; perfmon: boolean };
  xfam: string;
  mrTd: string;
  mrConfigId: string;
  mrOwner: string;
  mrOwnerConfig: string;
  rtmr0: string;
  rtmr1: string;
  rtmr2: string;
  rtmr3: string;
  reportData: string;
  mrServiceTd: string | null;
}

export interface SgxClaims extends CommonClaims {
  teeType: 'sgx';
  cpuSvn: string;
  miscSelect: number;
  attributes: string;
  debug: boolean;
  mrEnclave: string;
  mrSigner: string;
  isvProdId: number;
  isvSvn: number;
  configId: string;
  configSvn: number;
  isvExtProdId: string;
  isvFamilyId: string;
  reportData: string;
}

function common(q: DcapQuote, v: DcapVerified | undefined): CommonClaims {
  const h = q.header;
  return {
    version: h.version,
    teeType: h.teeType,
    qeSvn: h.qeSvn,
    pceSvn: h.pceSvn,
    qeVendorId: toHex(h.qeVendorId),
    userData: toHex(h.userData),
    fmspc: v ? toHex(v.pck.fmspc) : null,
    pceId: v ? toHex(v.pck.pceId) : null,
    pckCa: v?.pck.ca ?? null,
    pckTcb: v ? { components: v.pck.tcb.components, pceSvn: v.pck.tcb.pceSvn, cpuSvn: toHex(v.pck.tcb.cpuSvn) } : null,
    tcbStatus: v?.tcb?.status ?? null,
    advisoryIds: v?.tcb?.advisoryIds ?? [],
    tdxModuleStatus: v?.tcb?.tdxModule?.status ?? null,
    qeStatus: v?.qe?.status ?? null,
    qe: { mrSigner: toHex(q.signatureData.qeReport.mrSigner), isvProdId: q.signatureData.qeReport.isvProdId, isvSvn: q.signatureData.qeReport.isvSvn },
    collateralGiven: v?.collateralGiven ?? false,
  };
}

/** A TDX quote as claims, every binary value lowercase hex. `v` adds what verification learned (PCK, TCB). */
export function tdxClaims(q: DcapQuote, v?: DcapVerified): TdxClaims | undefined {
  const td = q.td;
  if (!td) return undefined;
  return {
    ...common(q, v),
    teeType: 'tdx',
    body: td.kind,
    bodyType: q.bodyType ?? null,
    teeTcbSvn: toHex(td.teeTcbSvn),
    teeTcbSvn2: td.teeTcbSvn2 ? toHex(td.teeTcbSvn2) : null,
    mrSeam: toHex(td.mrSeam),
    mrSignerSeam: toHex(td.mrSignerSeam),
    seamAttributes: toHex(td.seamAttributes),
    tdAttributes: toHex(td.tdAttributes),
    tdAttributesDecoded: {
      debug: bit(td.tdAttributes, TD_ATTR.debug),
      septVeDisable: bit(td.tdAttributes, TD_ATTR.septVeDisable),
      pks: bit(td.tdAttributes, TD_ATTR.pks),
      kl: bit(td.tdAttributes, TD_ATTR.kl),
      perfmon: bit(td.tdAttributes, TD_ATTR.perfmon),
    },
    xfam: toHex(td.xfam),
    mrTd: toHex(td.mrTd),
    mrConfigId: toHex(td.mrConfigId),
    mrOwner: toHex(td.mrOwner),
    mrOwnerConfig: toHex(td.mrOwnerConfig),
    rtmr0: toHex(td.rtmrs[0]),
    rtmr1: toHex(td.rtmrs[1]),
    rtmr2: toHex(td.rtmrs[2]),
    rtmr3: toHex(td.rtmrs[3]),
    reportData: toHex(td.reportData),
    mrServiceTd: td.mrServiceTd ? toHex(td.mrServiceTd) : null,
  };
}

function enclaveClaims(r: EnclaveReport) {
  return {
    cpuSvn: toHex(r.cpuSvn),
    miscSelect: r.miscSelect,
    attributes: toHex(r.attributes),
    debug: bit(r.attributes, SGX_ATTR.debug),
    mrEnclave: toHex(r.mrEnclave),
    mrSigner: toHex(r.mrSigner),
    isvProdId: r.isvProdId,
    isvSvn: r.isvSvn,
    configId: toHex(r.configId),
    configSvn: r.configSvn,
    isvExtProdId: toHex(r.isvExtProdId),
    isvFamilyId: toHex(r.isvFamilyId),
    reportData: toHex(r.reportData),
  };
}

/** An SGX quote as claims. */
export function sgxClaims(q: DcapQuote, v?: DcapVerified): SgxClaims | undefined {
  if (!q.sgx) return undefined;
  return { ...common(q, v), teeType: 'sgx', ...enclaveClaims(q.sgx) };
}
