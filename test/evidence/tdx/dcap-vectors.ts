// The real Intel DCAP vectors (../shared/vectors/intel-tdx) and their manifest values, shared by the
// TDX and SGX tests. Collateral sets are grouped by the date at which every piece of them is valid.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { CofferError } from '../../../src/errors.js';
import { parseCertificates, type Certificate } from '../../../src/pki/certificate.js';
import { parseCrl } from '../../../src/pki/crl.js';
import { parseQeIdentity, parseTcbInfo, type DcapCollateral } from '../../../src/evidence/dcap/index.js';

export const REPO = fileURLToPath(new URL('../../../', import.meta.url));
export const VECTORS = join(REPO, '../shared/vectors');
export const T = join(VECTORS, 'intel-tdx');
export const FIXTURES = fileURLToPath(new URL('./fixtures/', import.meta.url));

export const vec = (p: string): Buffer => readFileSync(join(T, p));

const manifest = JSON.parse(readFileSync(join(VECTORS, 'manifest.json'), 'utf8')) as { files: { file: string; expected?: Record<string, unknown> }[] };
export function expected(file: string): Record<string, string | number | boolean> {
  const e = manifest.files.find((f) => f.file === file);
  assert.ok(e, `${file} in manifest`);
  return (e.expected ?? {}) as Record<string, string | number | boolean>;
}

export const Q = {
  spr: 'go-tdx-guest/tdx_prod_quote_SPR_E4.dat',
  v5: 'go-tdx-guest/quote_v5_sample.dat',
  cos: 'go-tdx-guest/cos-113-tdx-quote.dat',
  trustee: 'trustee/tdx_quote_4.dat',
  sgx: 'trustee/sgx_occlum_quote_v3.dat',
  nonprod: 'intel-dcap-sample-NONPROD/quote.dat',
} as const;

export const CCEL = join(VECTORS, 'tpm-eventlog/ccel/go-eventlog/cos-113-intel-tdx.bin');

/** 2023-07-01T01:00Z: go-tdx-guest's collateral (TCB info, TD_QE identity, PCK CRL, root CRL) all current. */
export const AT_2023 = new Date('2023-07-01T01:00:00Z');
/** 2025-10-29T00:00Z: teekit's TCB infos (09-29..10-29) and trustee's TD_QE identity (10-28..11-27) overlap. */
export const AT_2025 = new Date('2025-10-29T00:00:00Z');
/** 2026-02-03: the v5 TCB info (02-01..03-03); the v5 PCK certificate starts 2026-01-27. */
export const AT_2026 = new Date('2026-02-03T00:00:00Z');

/** The TCB-Info-Issuer-Chain of go-tdx-guest: Intel SGX TCB Signing (2018-05-21..2025-05-21) + root. */
export const SIGNING_2018 = (): Certificate[] => parseCertificates(vec('go-tdx-guest/collateral/tcb_signing_chain.pem'));
/** Intel's re-issued TCB Signing certificate (same key, 2025-05-06..2032-05-06); see fixtures/README.md. */
export const SIGNING_2025 = (): Certificate[] => parseCertificates(readFileSync(join(FIXTURES, 'intel-tcb-signing-2025.pem')));

export function collateral2023(): DcapCollateral {
  return {
    tcbInfos: [parseTcbInfo(vec('go-tdx-guest/collateral/tcbInfo_fmspc50806f000000_2023-06-18.json'))],
    qeIdentities: [parseQeIdentity(vec('go-tdx-guest/collateral/qeIdentity_TD_QE_2023-06-08.json'))],
    certificates: [...SIGNING_2018(), ...parseCertificates(vec('go-tdx-guest/collateral/pck_crl_issuer_chain.pem'))],
    crls: [parseCrl(vec('go-tdx-guest/collateral/pck_platform_crl_2023-06-08.der')), parseCrl(vec('go-tdx-guest/collateral/IntelSGXRootCA_crl_2023-04-03.der'))],
  };
}

export function collateral2025(): DcapCollateral {
  return {
    tcbInfos: ['00806f050000', '50806f000000', '90c06f000000', 'b0c06f000000'].map((f) => parseTcbInfo(vec(`teekit/tcbInfo-tdx-${f}.json`))),
    qeIdentities: [parseQeIdentity(vec('trustee/qeIdentity_TD_QE_2025-10-28.json'))],
    certificates: [...SIGNING_2025(), ...SIGNING_2018()],
  };
}

export function collateral2026(): DcapCollateral {
  return {
    tcbInfos: [parseTcbInfo(vec('go-tdx-guest/collateral/tcbInfo_fmspc90c06f000000_2026-02-01.json'))],
    certificates: SIGNING_2025(),
  };
}

/** Runs fn, expects a CofferError with `code`, returns it. */
export function expectCoffer(fn: () => unknown, code: string, kind?: 'input' | 'verify'): CofferError {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof CofferError, `expected CofferError ${code}, got ${String(e)}`);
    assert.equal(e.code, code, e.message);
    if (kind) assert.equal(e.kind, kind);
    return e;
  }
  assert.fail(`expected CofferError ${code}, got a value`);
}

export const hex = (b: Buffer | undefined): string => (b ?? Buffer.alloc(0)).toString('hex');
