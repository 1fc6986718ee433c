export { ByteReader } from './reader.js';
export { ByteWriter } from './writer.js';
export { toHex, fromHex, isAllZero } from './hex.js';
