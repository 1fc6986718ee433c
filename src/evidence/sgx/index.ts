/**
 * Intel SGX ECDSA quotes (v3, and v5 with an SGX body). The DCAP machinery is shared with TDX and
 * lives in `../dcap/`; this is the SGX face of it.
 */
export {
  parseDcapQuote,
  parseEnclaveReport,
  verifyDcapQuote,
  validateEnclaveReport,
  sgxClaims,
  loadCollateral,
  mergeCollateral,
  parseTcbInfo,
  parseQeIdentity,
  SGX_ATTR,
  type DcapQuote,
  type EnclaveReport,
  type DcapVerified,
  type DcapVerifyOptions,
  type DcapCollateral,
  type SgxExpectations,
  type SgxClaims,
  type TcbStatus,
  type CollateralBundle,
} from '../dcap/index.js';
