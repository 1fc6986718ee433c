export * from './quote.js';
export * from './pck.js';
export * from './collateral.js';
export * from './tcb.js';
export * from './verify.js';
export * from './validate.js';
export * from './claims.js';
export * from './ccel.js';
export { loadCollateral, mergeCollateral, type CollateralBundle } from './bundle.js';
