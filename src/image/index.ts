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
export { ovmfFooterTable, sevMetadata, sevEsResetEip, sevHashTableArea, SEV_SECTION, OVMF_TABLE_FOOTER_GUID, SEV_METADATA_GUID, TDVF_METADATA_GUID, SEV_ES_RESET_BLOCK_GUID, type OvmfTableEntry, type SevMetadataSection } from './ovmf.js';
export { addPeSections, buildUki, ukiSections, ukiSectionsOf, UKI_MEASURED_SECTIONS, type UkiSectionName, type UkiInputs, type UkiBuildResult, type NewSection, type AddedSection } from './uki.js';
export {
  PcrRegister,
  predictPcr11,
  predictUkiPcr11,
  pcr11Phases,
  predictPcr4,
  predictPcr7,
  pcr7Events,
  uefiVariableData,
  signatureData,
  parsePhase,
  checkBank,
  BOOT_PHASES,
  PCR_BANKS,
  CALLING_EFI_APPLICATION,
  type PcrBank,
  type SecureBootState,
} from './pcr.js';
export { snpLaunchMeasurement, SnpLaunchDigest, buildVmsa, sevHashesTable, vcpuSignature, SNP_VCPU_SIGNATURES, SNP_PAGE_TYPE, SNP_VMMS, VMSA_GPA, type SnpMeasurement, type SnpMeasureOptions, type SnpKernelInputs, type SnpVmm, type SnpPageRecord, type SnpPageTypeName } from './snp-measure.js';
export { tdvfMetadata, tdxMrtd, tdxMeasurement, TDVF_SECTION_TYPES, TDVF_ATTR_MR_EXTEND, TDVF_ATTR_PAGE_AUG, type TdvfMetadata, type TdvfSection, type TdxPageOrder, type TdxMeasurement } from './tdx-measure.js';
export { buildReferenceValues, signedReferenceValues, dbAuthority, type ReferenceInputs, type ReferenceBuild } from './reference.js';
export {
  gcpFiles,
  gcpCommand,
  azureUefiSettings,
  AZURE_SIGNATURE_TEMPLATES,
  type ExportInputs,
  type GcpFile,
  type AzureUefiSettings,
  type AzureUefiKey,
  type AzureSignatureTemplate,
} from './export.js';
export {
  encodeAwsUefiData,
  encodeAwsUefiDataBase64,
  encodeAwsVarStore,
  frameAwsUefiData,
  decodeAwsUefiData,
  parseAwsVarStore,
  awsSecureBootVariables,
  crc32c,
  adler32,
  awsV0Dictionary,
  AWS_MAGIC,
  AWS_VERSION,
  AWS_EMPTY_DIGEST,
  AWS_EMPTY_TIMESTAMP,
  AWS_V0_DICT_ADLER32,
  type AwsVariable,
  type AwsSecureBootValues,
} from './aws-varstore.js';
export { zlibDeflateLevel9 } from './zlib-deflate.js';
