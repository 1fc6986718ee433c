import { ByteReader } from '../../bytes/reader.js';
import { ByteWriter } from '../../bytes/writer.js';
import { CofferError, inputError } from '../../errors.js';
import { TPM_ALG } from '../../evidence/tpm/constants.js';
import { readPcrSelection } from '../../evidence/tpm/structures.js';
import { encodeSelection, PCR_COUNT, type Selection } from './policy.js';
import { SEALED_OBJECT_ATTRIBUTES, type SrkKind } from './templates.js';

/**
 * The sealed blob: everything needed to load a sealed object again under the same SRK, nothing
 * secret in the clear (TPM2B_PRIVATE is encrypted and integrity-protected by the SRK's seed).
 *
 *   "COFFSEAL" (8) || u8 version (1) || u8 SRK kind (1 ECC P-256, 2 RSA-2048) || u8 hierarchy (1 owner)
 *   || u8 0 || TPML_PCR_SELECTION || TPM2B (TPMT_PUBLIC of the sealed object) || TPM2B (TPM2B_PRIVATE contents)
 *
 * All integers big-endian. The parser refuses any other version, a public area that is not a
 * policy-only KEYEDHASH data object with a SHA-256 policy, and trailing bytes.
 */
export const SEALED_BLOB_MAGIC = Buffer.from('COFFSEAL', 'latin1');
export const SEALED_BLOB_VERSION = 1;

export interface SealedBlob {
  version: number;
  srk: SrkKind;
  hierarchy: 'owner';
  selection: Selection[];
  /** TPMT_PUBLIC of the sealed object. */
  public: Buffer;
  /** TPM2B_PRIVATE contents. */
  private: Buffer;
  /** The authPolicy inside `public`. */
  authPolicy: Buffer;
}

const SRK_CODES: Readonly<Record<SrkKind, number>> = { ecc: 1, rsa: 2 };
const MAX_PART = 1024;

function bad(why: string): never {
  throw inputError('TPM_BAD_SEALED_BLOB', `sealed blob: ${why}`);
}

export function encodeSealedBlob(b: Omit<SealedBlob, 'version' | 'authPolicy' | 'hierarchy'>): Buffer {
  const w = new ByteWriter().bytes(SEALED_BLOB_MAGIC).u8(SEALED_BLOB_VERSION).u8(SRK_CODES[b.srk]).u8(1).u8(0).bytes(encodeSelection(b.selection));
  w.u16be(b.public.length).bytes(b.public);
  w.u16be(b.private.length).bytes(b.private);
  const out = w.toBuffer();
  parseSealedBlob(out); // what is written must read back
  return out;
}

/** The KEYEDHASH public area seal() creates: returns its authPolicy. */
function checkSealedPublic(pub: Buffer): Buffer {
  const r = new ByteReader(pub, 'sealed object public area');
  if (r.u16be() !== TPM_ALG.KEYEDHASH) bad('the object is not a KEYEDHASH data object');
  if (r.u16be() !== TPM_ALG.SHA256) bad('the object\'s nameAlg is not SHA-256');
  const attrs = r.u32be();
  if (attrs !== SEALED_OBJECT_ATTRIBUTES) bad(`object attributes 0x${attrs.toString(16)} are not those of a policy-only sealed object (0x${SEALED_OBJECT_ATTRIBUTES.toString(16)})`);
  const n = r.u16be();
  if (n !== 32) bad(`the authPolicy is ${n} bytes, not a SHA-256 digest`);
  const policy = r.bytes(32);
  if (r.u16be() !== TPM_ALG.NULL) bad('the keyed-hash scheme is not NULL (a data object has none)');
  if (r.u16be() !== 32) bad('the unique field is not a SHA-256 digest');
  r.skip(32);
  if (r.remaining !== 0) bad(`${r.remaining} trailing byte(s) in the public area`);
  return policy;
}

export function parseSealedBlob(data: Uint8Array): SealedBlob {
  try {
    const r = new ByteReader(data, 'sealed blob');
    if (data.length < SEALED_BLOB_MAGIC.length || !r.bytes(SEALED_BLOB_MAGIC.length).equals(SEALED_BLOB_MAGIC)) bad('not a Coffer sealed blob (magic "COFFSEAL" missing)');
    const version = r.u8();
    if (version !== SEALED_BLOB_VERSION) bad(`version ${version} is not supported (this build reads version ${SEALED_BLOB_VERSION})`);
    const srkCode = r.u8();
    const srk = (Object.keys(SRK_CODES) as SrkKind[]).find((k) => SRK_CODES[k] === srkCode);
    if (!srk) bad(`unknown SRK kind ${srkCode}`);
    if (r.u8() !== 1) bad('unknown hierarchy (only the owner hierarchy is used)');
    if (r.u8() !== 0) bad('reserved byte is not zero');
    const parsed = readPcrSelection(r);
    if (parsed.length === 0) bad('no PCR bank is selected');
    const selection: Selection[] = parsed.map((s) => {
      if (s.sizeofSelect !== 3) bad(`the ${s.hashName} bitmap is ${s.sizeofSelect} octets, not 3`);
      if (s.pcrs.length === 0) bad(`the ${s.hashName} bank selects no PCR`);
      if (s.pcrs.some((p) => p >= PCR_COUNT)) bad(`PCR index out of range in the ${s.hashName} bank`);
      return { hash: s.hash, hashName: s.hashName, pcrs: s.pcrs };
    });
    const pubLen = r.u16be();
    if (pubLen === 0 || pubLen > MAX_PART) bad(`public area size ${pubLen} is out of range`);
    const pub = r.bytes(pubLen);
    const privLen = r.u16be();
    if (privLen === 0 || privLen > MAX_PART) bad(`private area size ${privLen} is out of range`);
    const priv = r.bytes(privLen);
    if (r.remaining !== 0) bad(`${r.remaining} trailing byte(s)`);
    const authPolicy = checkSealedPublic(pub);
    return { version, srk, hierarchy: 'owner', selection, public: pub, private: priv, authPolicy };
  } catch (e) {
    if (e instanceof CofferError && e.code !== 'TPM_BAD_SEALED_BLOB') throw inputError('TPM_BAD_SEALED_BLOB', `sealed blob: ${e.message}`);
    throw e;
  }
}
