import { createHash } from 'node:crypto';
import { ByteWriter } from '../../bytes/writer.js';
import { inputError } from '../../errors.js';
import { HASH_IDS, HASH_NAMES, TPM_HASHES, type TpmHash } from '../../evidence/tpm/constants.js';
import { encodePcrSelection } from '../../evidence/tpm/structures.js';
import type { PcrBanks } from '../../evidence/tpm/pcrs.js';
import { TPM_CC } from './constants.js';

/** PCRs by bank, e.g. `{ sha256: [0, 4, 7] }`. Banks are ordered by algorithm id, PCRs ascending. */
export type PcrSelectionInput = Partial<Record<TpmHash, readonly number[]>>;

/** A normalised selection: what goes into a TPML_PCR_SELECTION (3-octet bitmaps, PCRs 0-23). */
export interface Selection {
  hash: number;
  hashName: TpmHash;
  pcrs: number[];
}

/** The PC Client platform's 24 PCRs: the bitmaps Coffer sends are 3 octets. */
export const PCR_COUNT = 24;

export function selectionFromInput(input: PcrSelectionInput, what = 'PCR selection'): Selection[] {
  if (input === null || typeof input !== 'object') throw inputError('TPM_BAD_PCR_SELECTION', `${what} must be an object such as { sha256: [0, 7] }`);
  const out: Selection[] = [];
  for (const key of Object.keys(input)) {
    if (!(HASH_NAMES as readonly string[]).includes(key)) throw inputError('TPM_BAD_PCR_SELECTION', `${what}: "${key}" is not a PCR bank (${HASH_NAMES.join(', ')})`);
  }
  for (const name of HASH_NAMES) {
    const list = input[name];
    if (list === undefined) continue;
    if (!Array.isArray(list)) throw inputError('TPM_BAD_PCR_SELECTION', `${what}: ${name} must be a list of PCR indices`);
    const pcrs = [...new Set(list)].sort((a, b) => a - b);
    for (const p of pcrs) {
      if (!Number.isInteger(p) || p < 0 || p >= PCR_COUNT) throw inputError('TPM_BAD_PCR_SELECTION', `${what}: ${String(p)} is not a PCR index (0-${PCR_COUNT - 1})`);
    }
    if (pcrs.length === 0) throw inputError('TPM_BAD_PCR_SELECTION', `${what}: the ${name} bank lists no PCR`);
    out.push({ hash: HASH_IDS[name], hashName: name, pcrs });
  }
  if (out.length === 0) throw inputError('TPM_BAD_PCR_SELECTION', `${what} selects no PCR`);
  return out;
}

/** TPML_PCR_SELECTION with 3-octet bitmaps. */
export function encodeSelection(sel: readonly Selection[]): Buffer {
  return encodePcrSelection(sel.map((s) => ({ hash: s.hash, pcrs: s.pcrs, sizeofSelect: 3 })));
}

/** H(selected PCR values concatenated in selection order), as PolicyPCR and Quote compute it. */
export function pcrCompositeDigest(sel: readonly Selection[], values: PcrBanks, hash: TpmHash = 'sha256'): Buffer {
  const h = createHash(hash);
  for (const s of sel) {
    const bank = values.get(s.hashName);
    const size = TPM_HASHES[s.hash]?.size;
    for (const p of s.pcrs) {
      const v = bank?.get(p);
      if (!v) throw inputError('TPM_PCR_VALUE_MISSING', `no value for PCR ${s.hashName}:${p}`);
      if (v.length !== size) throw inputError('TPM_BAD_PCR_VALUE', `PCR ${s.hashName}:${p} is ${v.length} bytes, a ${s.hashName} value is ${size}`);
      h.update(v);
    }
  }
  return h.digest();
}

/**
 * The policy digest after TPM2_PolicyPCR in a fresh SHA-256 policy session (Part 3, PolicyPCR):
 * H(0^32 || TPM_CC_PolicyPCR || TPML_PCR_SELECTION || H(selected values)).
 */
export function policyPcrDigest(sel: readonly Selection[], values: PcrBanks): Buffer {
  const pcrDigest = pcrCompositeDigest(sel, values, 'sha256');
  return createHash('sha256')
    .update(Buffer.alloc(32))
    .update(new ByteWriter().u32be(TPM_CC.PolicyPCR).toBuffer())
    .update(encodeSelection(sel))
    .update(pcrDigest)
    .digest();
}
