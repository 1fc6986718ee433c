export * from './attestation.js';
export * from './certs.js';
export * from './verify.js';
