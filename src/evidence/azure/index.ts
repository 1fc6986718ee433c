export * from './hcl.js';
export * from './tdreport.js';
export * from './bundle.js';
export * from './verify.js';
