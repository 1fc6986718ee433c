import { createHash, createPublicKey, type KeyObject } from 'node:crypto';
import { ByteReader } from '../../bytes/reader.js';
import { ByteWriter } from '../../bytes/writer.js';
import { inputError } from '../../errors.js';
import {
  MAX_DATA_SIZE,
  MAX_DIGEST_SIZE,
  MAX_ECC_KEY_BYTES,
  MAX_NAME_SIZE,
  MAX_PCR_BANKS,
  MAX_RSA_KEY_BYTES,
  OTHER_HASH_SIZES,
  PCR_SELECT_MAX,
  PCR_SELECT_MIN,
  TPM_ALG,
  TPM_ECC_CURVES,
  TPM_GENERATED_VALUE,
  TPM_HASHES,
  TPM_ST_ATTEST,
  TPM_ST_ATTEST_QUOTE,
  algName,
  type TpmHash,
} from './constants.js';

/**
 * Strict parsers for the TPM 2.0 structures of a quote (TCG TPM 2.0 Library Part 2): TPMS_ATTEST
 * with TPMS_QUOTE_INFO, TPMT_SIGNATURE, TPMT_PUBLIC / TPM2B_PUBLIC. All integers are big-endian;
 * every TPM2B size is checked against the bound of its type, every selector against the values
 * the spec allows, and a structure that does not end where its last field ends is refused.
 */

// ---------------------------------------------------------------------------------------------
// Shared pieces

function tpm2b(r: ByteReader, max: number, field: string): Buffer {
  const size = r.u16be();
  if (size > max) throw inputError('TPM_BAD_SIZE', `${r.what}: ${field} claims ${size} bytes, more than the ${max} its type allows`);
  return r.bytes(size);
}

function unsupported(what: string, field: string, id: number, allowed: string): never {
  throw inputError('TPM_UNSUPPORTED_ALG', `${what}: ${field} ${algName(id)} (0x${id.toString(16).padStart(4, '0')}) is not supported (accepted: ${allowed})`);
}

/** TPMI_ALG_HASH that Coffer can compute. */
function hashAlg(r: ByteReader, field: string): { id: number; name: TpmHash; size: number } {
  const id = r.u16be();
  const h = TPM_HASHES[id];
  if (!h) unsupported(r.what, field, id, 'sha1, sha256, sha384, sha512');
  return { id, ...h };
}

export function hashSize(id: number): number | undefined {
  return TPM_HASHES[id]?.size ?? OTHER_HASH_SIZES[id];
}

// ---------------------------------------------------------------------------------------------
// TPML_PCR_SELECTION

export interface PcrSelection {
  /** TPM_ALG_ID of the bank. */
  hash: number;
  hashName: TpmHash;
  /** sizeofSelect as encoded (octets of the bitmap). */
  sizeofSelect: number;
  /** Selected PCR indices, ascending. */
  pcrs: number[];
}

/**
 * TPML_PCR_SELECTION: u32 count (at most HASH_COUNT; 16 here), then per bank TPMI_ALG_HASH,
 * u8 sizeofSelect (at most PCR_SELECT_MAX = 4 octets, 32 PCRs), the bitmap (bit n of octet i is
 * PCR 8i+n). A bank may appear once. `littleEndian` reads tpm2-tools' host-order file dumps.
 */
export function readPcrSelection(r: ByteReader, order: 'be' | 'le' = 'be'): PcrSelection[] {
  const count = order === 'be' ? r.u32be() : r.u32le();
  if (count > MAX_PCR_BANKS) throw inputError('TPM_BAD_PCR_SELECTION', `${r.what}: PCR selection lists ${count} banks, more than ${MAX_PCR_BANKS}`);
  const out: PcrSelection[] = [];
  for (let i = 0; i < count; i++) {
    const id = order === 'be' ? r.u16be() : r.u16le();
    const h = TPM_HASHES[id];
    if (!h) unsupported(r.what, `PCR bank ${i} hash`, id, 'sha1, sha256, sha384, sha512');
    const sizeofSelect = r.u8();
    if (sizeofSelect > PCR_SELECT_MAX) {
      throw inputError('TPM_BAD_PCR_SELECTION', `${r.what}: PCR bank ${h.name} has a ${sizeofSelect}-octet bitmap, more than PCR_SELECT_MAX (${PCR_SELECT_MAX})`);
    }
    // A TPM never encodes a bitmap shorter than PCR_SELECT_MIN (TPM 2.0 Part 2, TPMS_PCR_SELECT):
    // a 0-octet "selection" selects nothing while looking like a bank.
    if (sizeofSelect < PCR_SELECT_MIN) {
      throw inputError('TPM_BAD_PCR_SELECTION', `${r.what}: PCR bank ${h.name} has a ${sizeofSelect}-octet bitmap, less than PCR_SELECT_MIN (${PCR_SELECT_MIN})`);
    }
    const bitmap = r.bytes(sizeofSelect);
    if (out.some((s) => s.hash === id)) throw inputError('TPM_BAD_PCR_SELECTION', `${r.what}: PCR bank ${h.name} is selected twice`);
    const pcrs: number[] = [];
    for (let octet = 0; octet < sizeofSelect; octet++) {
      for (let bit = 0; bit < 8; bit++) if (((bitmap[octet] as number) >> bit) & 1) pcrs.push(octet * 8 + bit);
    }
    out.push({ hash: id, hashName: h.name, sizeofSelect, pcrs });
  }
  return out;
}

/** Encodes a selection (big-endian, as in TPMS_QUOTE_INFO). */
export function encodePcrSelection(sel: readonly { hash: number; pcrs: readonly number[]; sizeofSelect?: number }[]): Buffer {
  const w = new ByteWriter().u32be(sel.length);
  for (const s of sel) {
    const size = s.sizeofSelect ?? Math.max(3, Math.ceil((Math.max(-1, ...s.pcrs) + 1) / 8));
    const bitmap = Buffer.alloc(size);
    for (const p of s.pcrs) bitmap[p >> 3] = (bitmap[p >> 3] as number) | (1 << (p & 7));
    w.u16be(s.hash).u8(size).bytes(bitmap);
  }
  return w.toBuffer();
}

// ---------------------------------------------------------------------------------------------
// TPMS_ATTEST (quote)

export interface ClockInfo {
  /** Milliseconds the TPM has been powered (TPMS_CLOCK_INFO.clock). */
  clock: bigint;
  resetCount: number;
  restartCount: number;
  /** TPMI_YES_NO: no clock value was ever reported that could be lower than a later one. */
  safe: boolean;
}

export interface TpmQuote {
  /** The TPMS_ATTEST bytes exactly as signed (a private copy). */
  readonly raw: Buffer;
  readonly type: 'quote';
  /** TPM2B_NAME: the signing key's qualified name, H(parent QN || name), not its name. */
  readonly qualifiedSigner: Buffer;
  /** TPM2B_DATA: the caller's qualifying data (the nonce). */
  readonly extraData: Buffer;
  readonly clockInfo: ClockInfo;
  /** Vendor-specific firmware version. */
  readonly firmwareVersion: bigint;
  readonly pcrSelection: readonly PcrSelection[];
  /** H_scheme(selected PCR values, in selection order). */
  readonly pcrDigest: Buffer;
}

/** A TPM2B_NAME: empty, a 4-byte handle, or a known hash algorithm followed by a digest of its size. */
function checkName(name: Buffer, what: string, field: string): void {
  if (name.length === 0 || name.length === 4) return;
  const alg = name.length >= 2 ? name.readUInt16BE(0) : -1;
  const size = hashSize(alg);
  if (size === undefined || name.length !== 2 + size) {
    throw inputError('TPM_BAD_NAME', `${what}: ${field} (${name.length} bytes) is neither a handle nor a hash algorithm followed by a digest of its size`);
  }
}

/**
 * Parses a TPMS_ATTEST that must be a quote: magic TPM_GENERATED_VALUE, type TPM_ST_ATTEST_QUOTE,
 * qualified signer, extraData, clock info, firmware version, TPMS_QUOTE_INFO. Other attestation
 * types are refused with TPM_NOT_A_QUOTE; trailing bytes with TRAILING_BYTES.
 */
export function parseTpmQuote(data: Uint8Array): TpmQuote {
  const raw = Buffer.from(data);
  const r = new ByteReader(raw, 'TPMS_ATTEST');
  const magic = r.u32be();
  if (magic !== TPM_GENERATED_VALUE) {
    throw inputError('TPM_BAD_MAGIC', `TPMS_ATTEST magic is 0x${magic.toString(16).padStart(8, '0')}, not TPM_GENERATED_VALUE 0xff544347: this was not produced by a TPM`);
  }
  const type = r.u16be();
  if (type !== TPM_ST_ATTEST_QUOTE) {
    const known = TPM_ST_ATTEST[type];
    throw inputError('TPM_NOT_A_QUOTE', `TPMS_ATTEST type is 0x${type.toString(16)} (${known ? `an attestation of kind "${known}"` : 'not a TPM_ST_ATTEST value'}), not TPM_ST_ATTEST_QUOTE 0x8018`);
  }
  const qualifiedSigner = tpm2b(r, MAX_NAME_SIZE, 'qualifiedSigner');
  checkName(qualifiedSigner, r.what, 'qualifiedSigner');
  const extraData = tpm2b(r, MAX_DATA_SIZE, 'extraData');
  const clock = r.u64be();
  const resetCount = r.u32be();
  const restartCount = r.u32be();
  const safe = r.u8();
  if (safe > 1) throw inputError('TPM_BAD_VALUE', `TPMS_ATTEST: clockInfo.safe is ${safe}, a TPMI_YES_NO must be 0 or 1`);
  const firmwareVersion = r.u64be();
  const pcrSelection = readPcrSelection(r);
  const pcrDigest = tpm2b(r, MAX_DIGEST_SIZE, 'pcrDigest');
  if (![20, 32, 48, 64].includes(pcrDigest.length)) {
    throw inputError('TPM_BAD_SIZE', `TPMS_ATTEST: pcrDigest is ${pcrDigest.length} bytes, not the size of any hash algorithm`);
  }
  r.end();
  return { raw, type: 'quote', qualifiedSigner, extraData, clockInfo: { clock, resetCount, restartCount, safe: safe === 1 }, firmwareVersion, pcrSelection, pcrDigest };
}

// ---------------------------------------------------------------------------------------------
// TPMT_SIGNATURE

export type TpmSignatureAlg = 'rsassa' | 'rsapss' | 'ecdsa';

export interface TpmSignature {
  readonly raw: Buffer;
  readonly alg: TpmSignatureAlg;
  readonly algId: number;
  readonly hash: number;
  readonly hashName: TpmHash;
  /** RSA: the signature octets (TPM2B_PUBLIC_KEY_RSA). */
  readonly rsa?: Buffer;
  /** ECDSA: r and s as the TPM gave them (big-endian, possibly without leading zeros). */
  readonly ecdsa?: { r: Buffer; s: Buffer };
}

const SIG_ALGS: Readonly<Record<number, TpmSignatureAlg>> = { [TPM_ALG.RSASSA]: 'rsassa', [TPM_ALG.RSAPSS]: 'rsapss', [TPM_ALG.ECDSA]: 'ecdsa' };

/** Parses a TPMT_SIGNATURE: RSASSA, RSAPSS (TPMS_SIGNATURE_RSA) or ECDSA (TPMS_SIGNATURE_ECC). */
export function parseTpmSignature(data: Uint8Array): TpmSignature {
  const raw = Buffer.from(data);
  const r = new ByteReader(raw, 'TPMT_SIGNATURE');
  const algId = r.u16be();
  const alg = SIG_ALGS[algId];
  if (!alg) unsupported(r.what, 'sigAlg', algId, 'rsassa, rsapss, ecdsa');
  const h = hashAlg(r, 'hash');
  let sig: TpmSignature;
  if (alg === 'ecdsa') {
    const sr = tpm2b(r, MAX_ECC_KEY_BYTES, 'signatureR');
    const ss = tpm2b(r, MAX_ECC_KEY_BYTES, 'signatureS');
    sig = { raw, alg, algId, hash: h.id, hashName: h.name, ecdsa: { r: sr, s: ss } };
  } else {
    const s = tpm2b(r, MAX_RSA_KEY_BYTES, 'sig');
    sig = { raw, alg, algId, hash: h.id, hashName: h.name, rsa: s };
  }
  r.end();
  return sig;
}

// ---------------------------------------------------------------------------------------------
// TPMT_PUBLIC

export interface ObjectAttributes {
  raw: number;
  fixedTPM: boolean;
  stClear: boolean;
  fixedParent: boolean;
  sensitiveDataOrigin: boolean;
  userWithAuth: boolean;
  adminWithPolicy: boolean;
  noDA: boolean;
  encryptedDuplication: boolean;
  restricted: boolean;
  decrypt: boolean;
  sign: boolean;
  x509sign: boolean;
}

const ATTRIBUTE_BITS: readonly [keyof Omit<ObjectAttributes, 'raw'>, number][] = [
  ['fixedTPM', 1],
  ['stClear', 2],
  ['fixedParent', 4],
  ['sensitiveDataOrigin', 5],
  ['userWithAuth', 6],
  ['adminWithPolicy', 7],
  ['noDA', 10],
  ['encryptedDuplication', 11],
  ['restricted', 16],
  ['decrypt', 17],
  ['sign', 18],
  ['x509sign', 19],
];
const ATTRIBUTES_KNOWN = ATTRIBUTE_BITS.reduce((m, [, b]) => m | (1 << b), 0) >>> 0;

export function decodeObjectAttributes(raw: number): ObjectAttributes {
  const out = { raw } as ObjectAttributes;
  for (const [name, bit] of ATTRIBUTE_BITS) out[name] = ((raw >>> bit) & 1) === 1;
  return out;
}

/** The names of the attributes that are set, in bit order ("fixedTPM|fixedParent|..."). */
export function attributeNames(a: ObjectAttributes): string[] {
  return ATTRIBUTE_BITS.filter(([n]) => a[n]).map(([n]) => n);
}

export interface TpmAlgorithmChoice {
  alg: number;
  algName: string;
  /** Hash of a scheme or KDF, when it has one. */
  hash?: number;
  hashName?: string;
  /** Symmetric key size and mode, for a symmetric definition. */
  keyBits?: number;
  mode?: number;
  modeName?: string;
  /** ECDAA commit count. */
  count?: number;
}

export interface TpmPublic {
  /** The TPMT_PUBLIC bytes (the Name is computed over exactly these). */
  readonly raw: Buffer;
  readonly type: 'rsa' | 'ecc';
  readonly nameAlg: number;
  readonly nameAlgName: TpmHash;
  readonly attributes: ObjectAttributes;
  readonly authPolicy: Buffer;
  readonly symmetric: TpmAlgorithmChoice;
  readonly scheme: TpmAlgorithmChoice;
  readonly rsa?: { keyBits: number; exponent: number; modulus: Buffer };
  readonly ecc?: { curve: number; curveName: string; kdf: TpmAlgorithmChoice; x: Buffer; y: Buffer };
  /** nameAlg || H_nameAlg(TPMT_PUBLIC). */
  readonly name: Buffer;
  /** The public key, usable with node:crypto. */
  readonly key: KeyObject;
}

const SYM_MODES = new Set<number>([TPM_ALG.CTR, TPM_ALG.OFB, TPM_ALG.CBC, TPM_ALG.CFB, TPM_ALG.ECB, TPM_ALG.NULL]);

/** TPMT_SYM_DEF_OBJECT: NULL, or AES/SM4/CAMELLIA with u16 keyBits and a mode. */
function symDefObject(r: ByteReader): TpmAlgorithmChoice {
  const alg = r.u16be();
  if (alg === TPM_ALG.NULL) return { alg, algName: 'null' };
  if (alg !== TPM_ALG.AES && alg !== TPM_ALG.SM4 && alg !== TPM_ALG.CAMELLIA) unsupported(r.what, 'symmetric algorithm', alg, 'null, aes, sm4, camellia');
  const keyBits = r.u16be();
  const mode = r.u16be();
  if (!SYM_MODES.has(mode)) unsupported(r.what, 'symmetric mode', mode, 'ctr, ofb, cbc, cfb, ecb, null');
  return { alg, algName: algName(alg), keyBits, mode, modeName: algName(mode) };
}

/** A scheme selector followed, for the schemes that have one, by its hash (ECDAA adds a count). */
function scheme(r: ByteReader, field: string, allowed: readonly number[], hashless: readonly number[] = []): TpmAlgorithmChoice {
  const alg = r.u16be();
  if (alg === TPM_ALG.NULL) return { alg, algName: 'null' };
  if (!allowed.includes(alg)) unsupported(r.what, field, alg, ['null', ...allowed.map(algName)].join(', '));
  if (hashless.includes(alg)) return { alg, algName: algName(alg) };
  const h = hashAlg(r, `${field} hash`);
  const out: TpmAlgorithmChoice = { alg, algName: algName(alg), hash: h.id, hashName: h.name };
  if (alg === TPM_ALG.ECDAA) out.count = r.u16be();
  return out;
}

const RSA_SCHEMES = [TPM_ALG.RSASSA, TPM_ALG.RSAPSS, TPM_ALG.RSAES, TPM_ALG.OAEP];
const ECC_SCHEMES = [TPM_ALG.ECDSA, TPM_ALG.ECDH, TPM_ALG.ECDAA, TPM_ALG.SM2, TPM_ALG.ECSCHNORR, TPM_ALG.ECMQV];
const KDF_SCHEMES = [TPM_ALG.MGF1, TPM_ALG.KDF1_SP800_56A, TPM_ALG.KDF2, TPM_ALG.KDF1_SP800_108];
const RSA_KEY_BITS = [1024, 2048, 3072, 4096];

function unsignedBytes(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n >>> 0);
  let i = 0;
  while (i < 3 && b[i] === 0) i++;
  return b.subarray(i);
}

function leftPad(b: Buffer, n: number): Buffer {
  return b.length >= n ? b : Buffer.concat([Buffer.alloc(n - b.length), b]);
}

function toKey(jwk: Record<string, string>, what: string): KeyObject {
  try {
    return createPublicKey({ key: jwk, format: 'jwk' });
  } catch (e) {
    throw inputError('TPM_BAD_PUBLIC', `${what}: the public key is not valid (${e instanceof Error ? e.message.split('\n')[0] : 'rejected'})`);
  }
}

function readTpmtPublic(data: Uint8Array, r: ByteReader, start: number): TpmPublic {
  const typeId = r.u16be();
  if (typeId !== TPM_ALG.RSA && typeId !== TPM_ALG.ECC) unsupported(r.what, 'type', typeId, 'rsa, ecc');
  const name = hashAlg(r, 'nameAlg');
  const attrRaw = r.u32be();
  if ((attrRaw & ~ATTRIBUTES_KNOWN) >>> 0 !== 0) {
    throw inputError('RESERVED_NOT_ZERO', `${r.what}: objectAttributes 0x${attrRaw.toString(16).padStart(8, '0')} sets reserved bit(s) 0x${((attrRaw & ~ATTRIBUTES_KNOWN) >>> 0).toString(16)}`);
  }
  const attributes = decodeObjectAttributes(attrRaw);
  if (attributes.restricted && attributes.sign && attributes.decrypt) {
    throw inputError('TPM_BAD_PUBLIC', `${r.what}: a restricted key cannot both sign and decrypt`);
  }
  const authPolicy = tpm2b(r, MAX_DIGEST_SIZE, 'authPolicy');
  if (authPolicy.length !== 0 && authPolicy.length !== name.size) {
    throw inputError('TPM_BAD_PUBLIC', `${r.what}: authPolicy is ${authPolicy.length} bytes; it must be empty or a ${name.name} digest (${name.size} bytes)`);
  }
  const symmetric = symDefObject(r);
  const what = r.what;
  let rsa: TpmPublic['rsa'];
  let ecc: TpmPublic['ecc'];
  let sch: TpmAlgorithmChoice;
  let key: KeyObject;
  if (typeId === TPM_ALG.RSA) {
    sch = scheme(r, 'RSA scheme', RSA_SCHEMES, [TPM_ALG.RSAES]);
    const keyBits = r.u16be();
    if (!RSA_KEY_BITS.includes(keyBits)) throw inputError('TPM_UNSUPPORTED_ALG', `${what}: RSA key size ${keyBits} is not supported (accepted: ${RSA_KEY_BITS.join(', ')})`);
    const exponent = r.u32be();
    const modulus = tpm2b(r, MAX_RSA_KEY_BYTES, 'unique (RSA modulus)');
    if (modulus.length !== keyBits / 8) throw inputError('TPM_BAD_PUBLIC', `${what}: the RSA modulus is ${modulus.length} bytes, keyBits says ${keyBits / 8}`);
    const e = exponent === 0 ? 65537 : exponent;
    if (e % 2 === 0 || e < 3) throw inputError('TPM_BAD_PUBLIC', `${what}: RSA exponent ${e} is not an odd number above 1`);
    rsa = { keyBits, exponent: e, modulus };
    key = toKey({ kty: 'RSA', n: modulus.toString('base64url'), e: unsignedBytes(e).toString('base64url') }, what);
  } else {
    sch = scheme(r, 'ECC scheme', ECC_SCHEMES);
    const curve = r.u16be();
    const c = TPM_ECC_CURVES[curve];
    if (!c?.jwk) {
      throw inputError('TPM_UNSUPPORTED_ALG', `${what}: ECC curve 0x${curve.toString(16).padStart(4, '0')}${c ? ` (${c.name})` : ''} is not supported (accepted: nist-p256, nist-p384, nist-p521)`);
    }
    const kdf = scheme(r, 'KDF scheme', KDF_SCHEMES);
    const x = tpm2b(r, MAX_ECC_KEY_BYTES, 'unique.x');
    const y = tpm2b(r, MAX_ECC_KEY_BYTES, 'unique.y');
    if (x.length > c.bytes || y.length > c.bytes) throw inputError('TPM_BAD_PUBLIC', `${what}: an ECC point coordinate is longer than ${c.bytes} bytes (${c.name})`);
    ecc = { curve, curveName: c.name, kdf, x, y };
    key = toKey({ kty: 'EC', crv: c.jwk, x: leftPad(x, c.bytes).toString('base64url'), y: leftPad(y, c.bytes).toString('base64url') }, what);
  }
  const rawCopy = Buffer.from(data.subarray(start, r.offset));
  const nameBytes = tpmName({ raw: rawCopy, nameAlg: name.id });
  return {
    raw: rawCopy,
    type: typeId === TPM_ALG.RSA ? 'rsa' : 'ecc',
    nameAlg: name.id,
    nameAlgName: name.name,
    attributes,
    authPolicy,
    symmetric,
    scheme: sch,
    ...(rsa ? { rsa } : {}),
    ...(ecc ? { ecc } : {}),
    name: nameBytes,
    key,
  };
}

/** Parses a TPMT_PUBLIC (RSA or ECC), exactly: nothing may follow it. */
export function parseTpmtPublic(data: Uint8Array): TpmPublic {
  const r = new ByteReader(data, 'TPMT_PUBLIC');
  const p = readTpmtPublic(data, r, 0);
  r.end();
  return p;
}

/** Parses a TPM2B_PUBLIC: u16 size, then a TPMT_PUBLIC of exactly that size. */
export function parseTpm2bPublic(data: Uint8Array): TpmPublic {
  const r = new ByteReader(data, 'TPM2B_PUBLIC');
  const size = r.u16be();
  if (size !== r.remaining) {
    throw inputError(size > r.remaining ? 'TRUNCATED' : 'TRAILING_BYTES', `TPM2B_PUBLIC says ${size} bytes follow, ${r.remaining} do`);
  }
  const p = readTpmtPublic(data, r, 2);
  r.end();
  return p;
}

/** A TPM name: nameAlg || H_nameAlg(TPMT_PUBLIC bytes). */
export function tpmName(pub: Pick<TpmPublic, 'raw' | 'nameAlg'>): Buffer {
  const h = TPM_HASHES[pub.nameAlg];
  if (!h) throw inputError('TPM_UNSUPPORTED_ALG', `nameAlg ${algName(pub.nameAlg)} is not supported`);
  const out = Buffer.alloc(2);
  out.writeUInt16BE(pub.nameAlg);
  return Buffer.concat([out, createHash(h.name).update(pub.raw).digest()]);
}

/**
 * The qualified name of an object: nameAlg || H_nameAlg(parent's qualified name || name). A primary
 * object's parent is its hierarchy, whose qualified name is its 4-byte handle (pass the number).
 * This is what TPMS_ATTEST.qualifiedSigner holds.
 */
export function qualifiedName(parent: Uint8Array | number, name: Uint8Array): Buffer {
  if (name.length < 2) throw inputError('TPM_BAD_NAME', 'a name must start with its hash algorithm');
  const alg = Buffer.from(name).readUInt16BE(0);
  const h = TPM_HASHES[alg];
  if (!h) throw inputError('TPM_UNSUPPORTED_ALG', `name algorithm ${algName(alg)} is not supported`);
  let parentQn: Buffer;
  if (typeof parent === 'number') {
    parentQn = Buffer.alloc(4);
    parentQn.writeUInt32BE(parent >>> 0);
  } else {
    parentQn = Buffer.from(parent);
  }
  return Buffer.concat([Buffer.from(name.subarray(0, 2)), createHash(h.name).update(parentQn).update(name).digest()]);
}
