export * from './report.js';
export * from './tcb.js';
export * from './vcek.js';
export * from './verify.js';
export * from './validate.js';
export * from './claims.js';
export * from './input.js';
export { fetchVcek, fetchCertChain, fetchCrl, vcekUrl, certChainUrl, crlUrl, KDS_BASE_URL, type KdsOptions, type KeyKind, type TcbParts } from './kds.js';
