import * as asn1js from 'asn1js';

/**
 * asn1js.fromBER, except that it never throws: asn1js reports most malformed input through
 * `offset === -1`, but some (a bad GeneralizedTime string, for one) escape as exceptions. Every
 * parser in Coffer reads DER through this, so a crafted structure always ends in the caller's
 * CofferError, never in a library exception.
 */
export function fromBerSafe(data: Uint8Array): ReturnType<typeof asn1js.fromBER> {
  try {
    return asn1js.fromBER(data);
  } catch (e) {
    const result = new asn1js.Primitive();
    result.error = e instanceof Error ? e.message : 'parse error';
    return { offset: -1, result };
  }
}
