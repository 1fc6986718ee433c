export { parseEventLog, parseSpecIdEvent, detectEventLogKind, MAX_EVENT_DATA, MAX_PCR_INDEX, type EventLog, type TcgEvent, type SpecIdEvent, type ParseOptions, type EventLogKind, type EventLogFormat } from './log.js';
export { replayEventLog, compareReplay, startupLocality, isExtended, type Replayed, type Divergence, type ExpectedRegisters, type ComparedRegisters } from './replay.js';
export { decodeEvent, describeEvent, decodeLog, type EventDetail } from './decode.js';
export { checkDigests, checkEventDigest, digestRule, type DigestCheck, type DigestReport, type DigestRule, type DigestStatus } from './digests.js';
export { bootState, grubCommandLineArgs, type BootState, type BootFlag, type BootApplication, type SignatureDb, type BootStateOptions } from './bootstate.js';
export { parseCcelTable, CCEL_TABLE_SIZE, type CcelTable } from './ccel.js';
export { EV, eventTypeName, isKnownEventType, HASH_ALGORITHMS, hashById, type HashAlgorithm, type HashName } from './types.js';
export {
  formatGuid,
  parseUefiVariable,
  parseSignatureLists,
  parseDevicePath,
  formatDevicePath,
  parseImageLoad,
  parseGpt,
  parseAuthority,
  EFI_GLOBAL_VARIABLE,
  EFI_IMAGE_SECURITY_DATABASE,
  type UefiVariable,
  type SignatureEntry,
  type DevicePathNode,
  type ImageLoad,
  type GptData,
  type GptPartition,
  type AuthorityData,
} from './efi.js';
