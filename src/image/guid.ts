import { randomUUID } from 'node:crypto';
import { inputError } from '../errors.js';

/**
 * EFI GUIDs as text and as the 16 "mixed-endian" bytes UEFI stores (first three fields
 * little-endian, last eight bytes as written). Reading and formatting are shared with the
 * event-log decoder (evidence/eventlog/efi.ts); this adds the other direction.
 */

export { formatGuid, readGuid, EFI_GLOBAL_VARIABLE, EFI_IMAGE_SECURITY_DATABASE, EFI_CERT_X509, EFI_CERT_SHA256, SHIM_LOCK_GUID } from '../evidence/eventlog/efi.js';

/** WIN_CERT_TYPE_EFI_GUID's CertType for a PKCS#7 SignedData (UEFI 2.10 8.2.2). */
export const EFI_CERT_TYPE_PKCS7 = '4aafd29d-68df-49ee-8aa9-347d375665a7';

const GUID_TEXT = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** Lower-case canonical form, or a BAD_GUID input error. */
export function normaliseGuid(s: string, what = 'GUID'): string {
  const g = s.trim().toLowerCase().replace(/^\{(.*)\}$/, '$1');
  if (!GUID_TEXT.test(g)) throw inputError('BAD_GUID', `${what} "${s}" is not a GUID (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)`);
  return g;
}

export function guidBytes(s: string, what = 'GUID'): Buffer {
  const g = normaliseGuid(s, what);
  const hex = g.replace(/-/g, '');
  const b = Buffer.from(hex, 'hex');
  b.subarray(0, 4).reverse();
  b.subarray(4, 6).reverse();
  b.subarray(6, 8).reverse();
  return b;
}

/** A random (version 4) GUID, as an owner GUID for the keys of one machine owner. */
export function randomGuid(): string {
  return randomUUID();
}
