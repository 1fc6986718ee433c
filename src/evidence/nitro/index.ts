export * from './cose.js';
export * from './document.js';
export * from './verify.js';
export * from './validate.js';
export * from './claims.js';
export * from './nitrotpm.js';
