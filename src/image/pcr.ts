import { createHash } from 'node:crypto';
import { inputError } from '../errors.js';
import { guidBytes, EFI_GLOBAL_VARIABLE, EFI_IMAGE_SECURITY_DATABASE } from './guid.js';
import { UKI_MEASURED_SECTIONS, ukiSections, type UkiSectionName } from './uki.js';

/**
 * Predicted TPM PCR values for a boot: PCR 11 as systemd-stub (252) and systemd's boot phases
 * extend it, PCR 4 as UEFI firmware measures boot applications, PCR 7 as it measures the
 * Secure Boot configuration (TCG PC Client Platform Firmware Profile, section 3.3.4).
 * Every register starts at zero; extend is `pcr = H(pcr || digest)`.
 */

export type PcrBank = 'sha1' | 'sha256' | 'sha384' | 'sha512';
export const PCR_BANKS: readonly PcrBank[] = ['sha1', 'sha256', 'sha384', 'sha512'];

const SIZES: Record<PcrBank, number> = { sha1: 20, sha256: 32, sha384: 48, sha512: 64 };

export function checkBank(b: string): PcrBank {
  if (!(PCR_BANKS as readonly string[]).includes(b)) throw inputError('PCR_BAD_BANK', `unknown PCR bank "${b}": one of ${PCR_BANKS.join(', ')}`);
  return b as PcrBank;
}

/** A register being extended from zero. */
export class PcrRegister {
  private value: Buffer;
  readonly bank: PcrBank;

  constructor(bank: PcrBank = 'sha256') {
    this.bank = checkBank(bank);
    this.value = Buffer.alloc(SIZES[bank]);
  }

  digest(data: Uint8Array): Buffer {
    return createHash(this.bank).update(data).digest();
  }

  extend(digest: Uint8Array): this {
    if (digest.length !== SIZES[this.bank]) throw inputError('PCR_BAD_DIGEST', `a ${this.bank} digest is ${SIZES[this.bank]} bytes, got ${digest.length}`);
    this.value = createHash(this.bank).update(this.value).update(digest).digest();
    return this;
  }

  /** Extends H(data). */
  measure(data: Uint8Array): this {
    return this.extend(this.digest(data));
  }

  get current(): Buffer {
    return Buffer.from(this.value);
  }
}

// ---------------------------------------------------------------------------------------------
// PCR 11

/** The phases systemd-pcrphase extends, in boot order (systemd-measure's defaults). */
export const BOOT_PHASES = ['enter-initrd', 'leave-initrd', 'sysinit', 'ready'] as const;

/** Parses "enter-initrd:leave-initrd" into its words (the empty string: the stub's value, no phase). */
export function parsePhase(phase: string): string[] {
  if (phase === '') return [];
  const words = phase.split(':');
  for (const w of words) if (!/^[A-Za-z0-9_.-]+$/.test(w)) throw inputError('PCR_BAD_PHASE', `boot phase word "${w}" in "${phase}" is not valid`);
  return words;
}

/**
 * PCR 11 after systemd-stub and the given phase words: for each present section in the stub's
 * order, extend H(name + NUL) then H(contents); then H(word) (no NUL) for each phase word.
 * systemd-stub 252 measures each section's VirtualSize bytes at its load address
 * (pe.c: sizes[] = Misc.VirtualSize), which is exactly the input file when the UKI is built
 * with VirtualSize = file length.
 */
export function predictPcr11(sections: Partial<Record<UkiSectionName, Uint8Array>>, opts: { bank?: PcrBank; phase?: readonly string[] } = {}): Buffer {
  const pcr = new PcrRegister(opts.bank ?? 'sha256');
  for (const name of UKI_MEASURED_SECTIONS) {
    const data = sections[name];
    if (data === undefined) continue;
    pcr.measure(Buffer.from(`${name}\0`, 'latin1'));
    pcr.measure(data);
  }
  for (const w of opts.phase ?? []) pcr.measure(Buffer.from(w, 'utf8'));
  return pcr.current;
}

/** PCR 11 for a built UKI, reading its sections as systemd-stub does. */
export function predictUkiPcr11(uki: Uint8Array, opts: { bank?: PcrBank; phase?: readonly string[] } = {}): Buffer {
  const s = ukiSections(uki);
  if (!s['.linux']) throw inputError('UKI_NO_KERNEL', 'the image has no .linux section: it is not a UKI');
  return predictPcr11(s, opts);
}

/** PCR 11 at the end of each of systemd-measure's default phases, plus the stub's own value. */
export function pcr11Phases(sections: Partial<Record<UkiSectionName, Uint8Array>>, bank: PcrBank = 'sha256'): { phase: string; value: string }[] {
  const out: { phase: string; value: string }[] = [{ phase: '', value: predictPcr11(sections, { bank }).toString('hex') }];
  for (let i = 1; i <= BOOT_PHASES.length; i++) {
    const words = BOOT_PHASES.slice(0, i);
    out.push({ phase: words.join(':'), value: predictPcr11(sections, { bank, phase: words }).toString('hex') });
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// PCR 4 and PCR 7

/** EV_SEPARATOR's data: a UINT32 0 (PFP spec: the normal, non-error separator). */
export const SEPARATOR = Buffer.alloc(4);
/** The EV_EFI_ACTION string firmware logs before starting the boot option (no NUL is measured). */
export const CALLING_EFI_APPLICATION = 'Calling EFI Application from Boot Option';

/**
 * PCR 4: EV_EFI_ACTION "Calling EFI Application from Boot Option", EV_SEPARATOR, then one
 * EV_EFI_BOOT_SERVICES_APPLICATION per image the firmware's LoadImage measured, whose digest
 * is the image's Authenticode hash in that bank. For a UKI booted directly by the firmware
 * the list is [UKI]; with shim it is [shim, systemd-boot or grub, UKI ...].
 */
export function predictPcr4(applicationDigests: readonly Uint8Array[], opts: { bank?: PcrBank } = {}): Buffer {
  const pcr = new PcrRegister(opts.bank ?? 'sha256');
  pcr.measure(Buffer.from(CALLING_EFI_APPLICATION, 'latin1'));
  pcr.measure(SEPARATOR);
  for (const d of applicationDigests) pcr.extend(d);
  return pcr.current;
}

/** UEFI_VARIABLE_DATA: VariableName GUID, u64 name length (chars), u64 data length, UTF-16LE name, data. */
export function uefiVariableData(name: string, guid: string, data: Uint8Array): Buffer {
  const n = Buffer.from(name, 'utf16le');
  const head = Buffer.alloc(32);
  guidBytes(guid).copy(head, 0);
  head.writeBigUInt64LE(BigInt(name.length), 16);
  head.writeBigUInt64LE(BigInt(data.length), 24);
  return Buffer.concat([head, n, data]);
}

export interface SecureBootState {
  /** SecureBoot variable (1 byte): true = 1. */
  secureBoot: boolean;
  /** Variable contents (EFI_SIGNATURE_LISTs); an absent variable is measured with no data. */
  pk?: Uint8Array;
  kek?: Uint8Array;
  db?: Uint8Array;
  dbx?: Uint8Array;
  /**
   * EV_EFI_VARIABLE_AUTHORITY entries after the separator, in order: the EFI_SIGNATURE_DATA
   * (owner GUID || certificate) of the db entry that verified each image, once per distinct
   * entry (EDK2 logs each authority once; shim logs its own). `name`/`guid` default to db.
   * `event` gives the logged UEFI_VARIABLE_DATA verbatim instead, for a measurer that writes it
   * inconsistently: shim 15 logs its own authority without the owner GUID, with a
   * VariableDataLength 6 bytes short of the data, and hashes all but the last byte
   * (`hashedLength`; go-attestation issue 157).
   */
  authorities?: readonly ({ data: Uint8Array; name?: string; guid?: string } | { event: Uint8Array; hashedLength?: number })[];
}

/** The EV_EFI_VARIABLE_DRIVER_CONFIG and authority events PCR 7 gets, as (digest input) event data. */
export function pcr7Events(state: SecureBootState): { type: 'EV_EFI_VARIABLE_DRIVER_CONFIG' | 'EV_SEPARATOR' | 'EV_EFI_VARIABLE_AUTHORITY'; data: Buffer; hashed?: Buffer }[] {
  const cfg = (name: string, guid: string, data: Uint8Array | undefined) => ({ type: 'EV_EFI_VARIABLE_DRIVER_CONFIG' as const, data: uefiVariableData(name, guid, data ?? Buffer.alloc(0)) });
  return [
    cfg('SecureBoot', EFI_GLOBAL_VARIABLE, Buffer.from([state.secureBoot ? 1 : 0])),
    cfg('PK', EFI_GLOBAL_VARIABLE, state.pk),
    cfg('KEK', EFI_GLOBAL_VARIABLE, state.kek),
    cfg('db', EFI_IMAGE_SECURITY_DATABASE, state.db),
    cfg('dbx', EFI_IMAGE_SECURITY_DATABASE, state.dbx),
    { type: 'EV_SEPARATOR', data: Buffer.from(SEPARATOR) },
    ...(state.authorities ?? []).map((a) => ({
      type: 'EV_EFI_VARIABLE_AUTHORITY' as const,
      ...('event' in a
        ? { data: Buffer.from(a.event), hashed: Buffer.from(a.event).subarray(0, a.hashedLength ?? a.event.length) }
        : { data: uefiVariableData(a.name ?? 'db', a.guid ?? EFI_IMAGE_SECURITY_DATABASE, a.data) }),
    })),
  ];
}

/** PCR 7 from the Secure Boot variables and the authorities used (EDK2/OVMF order). */
export function predictPcr7(state: SecureBootState, opts: { bank?: PcrBank } = {}): Buffer {
  const pcr = new PcrRegister(opts.bank ?? 'sha256');
  for (const e of pcr7Events(state)) pcr.measure(e.hashed ?? e.data);
  return pcr.current;
}

/** EFI_SIGNATURE_DATA for a db certificate entry: owner GUID || DER. */
export function signatureData(owner: string, der: Uint8Array): Buffer {
  return Buffer.concat([guidBytes(owner), der]);
}
