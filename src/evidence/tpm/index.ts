export * from './constants.js';
export * from './structures.js';
export * from './pcrs.js';
export * from './ak.js';
export * from './verify.js';
export * from './validate.js';
export * from './claims.js';
