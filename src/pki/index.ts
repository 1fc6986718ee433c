export { Certificate, parseCertificates, normaliseSerial } from './certificate.js';
export { Crl, parseCrl } from './crl.js';
export { verifyChain, type TrustAnchor, type ChainOptions, type VerifiedChain } from './chain.js';
export { PINNED_ROOTS, loadPinnedRoot, amdRoots, type PinnedRoot, type ProductAnchor } from './roots.js';
export { verifyWith, splitSignedDer, parseSignatureAlgorithm, sha256Hex, type SignatureAlgorithm } from './signature.js';
