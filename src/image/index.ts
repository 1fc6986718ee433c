export { formatGuid, readGuid, guidBytes, normaliseGuid, randomGuid, EFI_GLOBAL_VARIABLE, EFI_IMAGE_SECURITY_DATABASE, EFI_CERT_X509, EFI_CERT_SHA256, EFI_CERT_TYPE_PKCS7, SHIM_LOCK_GUID } from './guid.js';
export { x509SignatureList, sha256SignatureList, encodeSignatureDatabase, parseSignatureDatabase, signatureDbEntries, type SignatureDbEntry } from './esl.js';
export {
  authSignedBytes,
  buildAuthVariable,
  parseAuthVariable,
  verifyAuthVariable,
  variableGuid,
  efiTime,
  efiTimeToDate,
  encodeEfiTime,
  SECURE_BOOT_ATTRIBUTES,
  SECURE_BOOT_VARIABLES,
  EFI_VARIABLE_APPEND_WRITE,
  EFI_VARIABLE_NON_VOLATILE,
  EFI_VARIABLE_BOOTSERVICE_ACCESS,
  EFI_VARIABLE_RUNTIME_ACCESS,
  EFI_VARIABLE_TIME_BASED_AUTHENTICATED_WRITE_ACCESS,
  type AuthTarget,
  type EfiTime,
  type ParsedAuthVariable,
  type VerifiedAuthVariable,
  type SecureBootVariable,
} from './auth.js';
export { buildSignedData, wrapContentInfo, parseSignedData, parseContentInfo, checkSignerInfo, trustPath, issuerAndSerial, type Signer, type DigestName, type ParsedSignedData, type ParsedSignerInfo, type SignerStatus } from './cms.js';
export { createCertificate, generateSecureBootKeys, keySetFiles, KEY_SIZES, type KeySize, type CertificateRequest, type SecureBootKey, type SecureBootKeySet, type KeygenOptions, type KeyFile } from './keys.js';
export { parsePe, attributeCertificates, authenticodeHash, peChecksum, prepareForSigning, appendAttributeCertificate, type PeImage, type PeSection, type PeAttributeCertificate, type AuthenticodeDigest } from './pe.js';
export { signPe, readAuthenticode, checkSignatures, verifyAuthenticode, spcIndirectDataContent, type AuthenticodeSignature, type AuthenticodeResult, type SignatureVerdict, type SignatureDatabase } from './authenticode.js';
export {
  formatVerity,
  formatVerityFile,
  verifyVerity,
  verifyVerityFile,
  verityLayout,
  buildVerityTree,
  hashLeaves,
  encodeVeritySuperblock,
  parseVeritySuperblock,
  VERITY_BLOCK_SIZE,
  type VerityLayout,
  type VerityLevel,
  type VerityOptions,
  type VerityResult,
  type VerityVerifyOptions,
  type VerityVerified,
  type VeritySuperblock,
} from './verity.js';
