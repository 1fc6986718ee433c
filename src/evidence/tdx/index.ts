/**
 * Intel TDX quotes (v4, v5). The DCAP machinery (quote format, PCK certificates, collateral, TCB
 * status) is shared with SGX and lives in `../dcap/`; this is the TDX face of it.
 */
export {
  parseDcapQuote,
  verifyDcapQuote,
  validateTdReport,
  tdxClaims,
  checkCcelAgainstTd,
  loadCollateral,
  mergeCollateral,
  parseTcbInfo,
  parseQeIdentity,
  TD_ATTR,
  type DcapQuote,
  type TdReport,
  type DcapVerified,
  type DcapVerifyOptions,
  type DcapCollateral,
  type TdxExpectations,
  type TdxClaims,
  type TcbStatus,
  type CollateralBundle,
} from '../dcap/index.js';
