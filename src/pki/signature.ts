import { constants, createHash, verify as cryptoVerify, type KeyObject } from 'node:crypto';
import * as asn1js from 'asn1js';
import { fromBerSafe } from './ber.js';
import { inputError } from '../errors.js';

/**
 * Verification of X.509-style signed data (certificates and CRLs): the signed TBS bytes,
 * the AlgorithmIdentifier and the signature BIT STRING, checked with OpenSSL through node:crypto.
 * RSA-PSS parameters are read from the AlgorithmIdentifier and enforced, as AMD's ARK and ASK use
 * RSASSA-PSS with SHA-384, MGF1-SHA-384 and a 48-byte salt.
 */

const HASH_OIDS: Record<string, string> = {
  '2.16.840.1.101.3.4.2.1': 'sha256',
  '2.16.840.1.101.3.4.2.2': 'sha384',
  '2.16.840.1.101.3.4.2.3': 'sha512',
};

// SHA-1 is deliberately absent: no signature over SHA-1 is accepted, by any scheme.
const SHA1 = '1.3.14.3.2.26';

const RSA_PKCS1: Record<string, string> = {
  '1.2.840.113549.1.1.11': 'sha256',
  '1.2.840.113549.1.1.12': 'sha384',
  '1.2.840.113549.1.1.13': 'sha512',
};

const ECDSA: Record<string, string> = {
  '1.2.840.10045.4.3.2': 'sha256',
  '1.2.840.10045.4.3.3': 'sha384',
  '1.2.840.10045.4.3.4': 'sha512',
};

const RSA_PSS = '1.2.840.113549.1.1.10';
const MGF1 = '1.2.840.113549.1.1.8';

export interface SignatureAlgorithm {
  kind: 'rsa-pkcs1' | 'rsa-pss' | 'ecdsa';
  hash: string;
  /** For RSA-PSS: the salt length the parameters demand. */
  saltLength?: number;
  oid: string;
}

export interface SignedData {
  tbs: Buffer;
  algorithm: SignatureAlgorithm;
  signature: Buffer;
}

function oidOf(block: asn1js.AsnType | undefined): string | undefined {
  return block instanceof asn1js.ObjectIdentifier ? block.valueBlock.toString() : undefined;
}

function hashFromAlgId(block: asn1js.AsnType | undefined, what: string): string {
  if (!(block instanceof asn1js.Sequence)) throw inputError('PKI_BAD_ALGORITHM', `${what}: malformed hash AlgorithmIdentifier`);
  const oid = oidOf(block.valueBlock.value[0]);
  const hash = oid ? HASH_OIDS[oid] : undefined;
  if (oid === SHA1) throw inputError('PKI_BAD_ALGORITHM', `${what}: SHA-1 signatures are not accepted`);
  if (!hash) throw inputError('PKI_BAD_ALGORITHM', `${what}: unsupported hash algorithm ${oid ?? '?'}`);
  return hash;
}

function contextChild(seq: asn1js.Sequence, tag: number): asn1js.AsnType | undefined {
  for (const el of seq.valueBlock.value) {
    if (el.idBlock.tagClass === 3 && el.idBlock.tagNumber === tag) {
      const inner = (el as asn1js.Constructed).valueBlock.value;
      return inner?.[0];
    }
  }
  return undefined;
}

/** Parses an AlgorithmIdentifier for a signature; unknown algorithms are refused. */
export function parseSignatureAlgorithm(algId: asn1js.AsnType | undefined, what: string): SignatureAlgorithm {
  if (!(algId instanceof asn1js.Sequence)) throw inputError('PKI_BAD_ALGORITHM', `${what}: malformed signature AlgorithmIdentifier`);
  const oid = oidOf(algId.valueBlock.value[0]);
  if (!oid) throw inputError('PKI_BAD_ALGORITHM', `${what}: missing signature algorithm OID`);
  const pkcs1 = RSA_PKCS1[oid];
  if (pkcs1) return { kind: 'rsa-pkcs1', hash: pkcs1, oid };
  const ec = ECDSA[oid];
  if (ec) return { kind: 'ecdsa', hash: ec, oid };
  if (oid === RSA_PSS) {
    const params = algId.valueBlock.value[1];
    if (!(params instanceof asn1js.Sequence)) throw inputError('PKI_BAD_ALGORITHM', `${what}: RSA-PSS without parameters`);
    const hashBlock = contextChild(params, 0);
    // Absent parameters mean SHA-1 (RFC 4055), which is refused.
    if (!hashBlock) throw inputError('PKI_BAD_ALGORITHM', `${what}: RSA-PSS with default (SHA-1) parameters is not accepted`);
    const hash = hashFromAlgId(hashBlock, what);
    const mgfBlock = contextChild(params, 1);
    if (mgfBlock) {
      if (!(mgfBlock instanceof asn1js.Sequence) || oidOf(mgfBlock.valueBlock.value[0]) !== MGF1) {
        throw inputError('PKI_BAD_ALGORITHM', `${what}: RSA-PSS mask generation function is not MGF1`);
      }
      const mgfHash = hashFromAlgId(mgfBlock.valueBlock.value[1], what);
      if (mgfHash !== hash) throw inputError('PKI_BAD_ALGORITHM', `${what}: RSA-PSS MGF1 hash ${mgfHash} differs from ${hash}`);
    } else {
      throw inputError('PKI_BAD_ALGORITHM', `${what}: RSA-PSS MGF1 hash sha1 differs from ${hash} (absent MGF parameters mean SHA-1)`);
    }
    const saltBlock = contextChild(params, 2);
    if (saltBlock !== undefined && !(saltBlock instanceof asn1js.Integer)) throw inputError('PKI_BAD_ALGORITHM', `${what}: RSA-PSS salt length is not an INTEGER`);
    const saltLength = saltBlock ? saltBlock.valueBlock.valueDec : 20;
    if (!Number.isSafeInteger(saltLength) || saltLength < 0 || saltLength > 1024) throw inputError('PKI_BAD_ALGORITHM', `${what}: RSA-PSS salt length ${saltLength} is out of range`);
    const trailer = contextChild(params, 3);
    if (trailer instanceof asn1js.Integer && trailer.valueBlock.valueDec !== 1) {
      throw inputError('PKI_BAD_ALGORITHM', `${what}: RSA-PSS trailer field must be 1`);
    }
    return { kind: 'rsa-pss', hash, saltLength, oid };
  }
  throw inputError('PKI_BAD_ALGORITHM', `${what}: unsupported signature algorithm ${oid}`);
}

/** Splits a DER certificate or CRL into its signed TBS bytes, algorithm and signature. */
export function splitSignedDer(der: Uint8Array, what: string): SignedData {
  const parsed = fromBerSafe(der);
  if (parsed.offset === -1 || !(parsed.result instanceof asn1js.Sequence)) {
    throw inputError('PKI_BAD_DER', `${what} is not valid DER`);
  }
  if (parsed.offset !== der.byteLength) {
    throw inputError('PKI_BAD_DER', `${what} has ${der.byteLength - parsed.offset} trailing byte(s) after its DER structure`);
  }
  const [tbs, alg, sig] = parsed.result.valueBlock.value;
  if (!(tbs instanceof asn1js.Sequence) || !alg || !(sig instanceof asn1js.BitString)) throw inputError('PKI_BAD_DER', `${what} is not a signed structure`);
  // RFC 5280 4.1.1.2 / 5.1.1.2: the algorithm inside the signed part must equal the outer one,
  // so the signer committed to the algorithm that is used to check it.
  const inner = tbs.valueBlock.value.find((el) => el instanceof asn1js.Sequence);
  if (!inner || !Buffer.from(inner.valueBeforeDecodeView).equals(Buffer.from(alg.valueBeforeDecodeView))) {
    throw inputError('PKI_BAD_ALGORITHM', `${what}: the signature algorithm inside the signed data differs from the outer one`);
  }
  return {
    tbs: Buffer.from(tbs.valueBeforeDecodeView),
    algorithm: parseSignatureAlgorithm(alg, what),
    signature: Buffer.from(sig.valueBlock.valueHexView),
  };
}

/** True when `signature` over `data` verifies with `key` under `alg`. Never throws for a bad signature. */
export function verifyWith(alg: SignatureAlgorithm, data: Uint8Array, signature: Uint8Array, key: KeyObject): boolean {
  try {
    if (alg.kind === 'rsa-pss') {
      if (key.asymmetricKeyType !== 'rsa' && key.asymmetricKeyType !== 'rsa-pss') return false;
      return cryptoVerify(alg.hash, data, { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: alg.saltLength ?? 20 }, signature);
    }
    if (alg.kind === 'rsa-pkcs1') {
      if (key.asymmetricKeyType !== 'rsa') return false;
      return cryptoVerify(alg.hash, data, { key, padding: constants.RSA_PKCS1_PADDING }, signature);
    }
    if (key.asymmetricKeyType !== 'ec') return false;
    return cryptoVerify(alg.hash, data, { key, dsaEncoding: 'der' }, signature);
  } catch {
    return false;
  }
}

export function sha256Hex(data: Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}
