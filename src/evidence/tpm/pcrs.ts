import { createHash } from 'node:crypto';
import { ByteReader } from '../../bytes/reader.js';
import { fromHex, toHex } from '../../bytes/hex.js';
import { inputError } from '../../errors.js';
import { HASH_NAMES, MAX_DIGEST_SIZE, MAX_PCR_BANKS, PCR_SELECT_MAX, TPM_HASHES, type TpmHash } from './constants.js';
import { readPcrSelection, type PcrSelection } from './structures.js';

/**
 * PCR values per bank, as a verifier receives them next to a quote: from JSON (Coffer's own
 * `{"sha256": {"0": "hex", ...}}`, the shape `coffer eventlog replay --json` prints under "pcrs"),
 * or from the file `tpm2_quote -o` writes (tpm2-tools 5.x "serialized" format).
 */
export type PcrBanks = Map<TpmHash, Map<number, Buffer>>;

const SIZE_TO_HASH: Readonly<Record<number, TpmHash>> = { 20: 'sha1', 32: 'sha256', 48: 'sha384', 64: 'sha512' };
const MAX_PCR_INDEX = PCR_SELECT_MAX * 8 - 1;

function hashSizeOf(h: TpmHash): number {
  return Object.values(TPM_HASHES).find((x) => x.name === h)?.size ?? 0;
}

function badFile(what: string, why: string): never {
  throw inputError('TPM_BAD_PCR_FILE', `${what}: ${why}`);
}

function put(banks: PcrBanks, bank: TpmHash, index: number, value: Buffer, what: string): void {
  if (value.length !== hashSizeOf(bank)) badFile(what, `PCR ${bank}:${index} is ${value.length} bytes, a ${bank} value is ${hashSizeOf(bank)}`);
  let m = banks.get(bank);
  if (!m) banks.set(bank, (m = new Map()));
  const prev = m.get(index);
  if (prev && !prev.equals(value)) badFile(what, `PCR ${bank}:${index} is given twice with different values`);
  m.set(index, value);
}

function pcrIndex(key: string, what: string): number {
  if (!/^(0|[1-9]\d?)$/.test(key) || Number(key) > MAX_PCR_INDEX) badFile(what, `"${key}" is not a PCR index (0-${MAX_PCR_INDEX})`);
  return Number(key);
}

function hexValue(v: unknown, what: string, where: string): Buffer {
  if (typeof v !== 'string') badFile(what, `${where} is not a hex string`);
  try {
    return fromHex(v.replace(/^0x/i, ''), `${what} ${where}`);
  } catch {
    return badFile(what, `${where} is not valid hex`);
  }
}

/** One bank's values: {"0": "hex", ...} or an array indexed by PCR number. `bank` undefined: infer from the value size. */
function readBank(banks: PcrBanks, bank: TpmHash | undefined, values: unknown, what: string): void {
  const entries: [number, Buffer][] = [];
  if (Array.isArray(values)) {
    if (values.length > MAX_PCR_INDEX + 1) badFile(what, `${values.length} PCR values, more than ${MAX_PCR_INDEX + 1}`);
    values.forEach((v, i) => entries.push([i, hexValue(v, what, `PCR ${i}`)]));
  } else if (values !== null && typeof values === 'object') {
    for (const [k, v] of Object.entries(values)) entries.push([pcrIndex(k, what), hexValue(v, what, `PCR ${k}`)]);
  } else {
    badFile(what, 'PCR values must be an object {"index": "hex"} or an array of hex strings');
  }
  for (const [i, v] of entries) {
    const b = bank ?? SIZE_TO_HASH[v.length];
    if (!b) badFile(what, `PCR ${i} is ${v.length} bytes, the size of no supported bank (20, 32, 48, 64)`);
    put(banks, b, i, v, what);
  }
}

function isBankName(k: string): k is TpmHash {
  return (HASH_NAMES as readonly string[]).includes(k);
}

/**
 * PCR values from JSON. Accepted shapes:
 * - `{"sha256": {"0": "hex", ...}, "sha1": {...}}` (banks by name; values as an object or an array);
 * - the same under a top-level `"pcrs"` key (`coffer eventlog replay --json`);
 * - `{"0": "hex", ...}` or `["hex", ...]` without a bank: the bank follows from the value size;
 * - `{"quotes": [{"bank": "sha1", "pcrs": {...}}, ...]}` (the GCE vectors' extracted.json).
 */
export function parsePcrJson(text: string, what = 'PCR file'): PcrBanks {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    badFile(what, 'is not valid JSON');
  }
  const banks: PcrBanks = new Map();
  const visit = (node: unknown, depth: number): void => {
    if (depth > 2) badFile(what, 'PCR values are nested too deeply');
    if (Array.isArray(node)) return readBank(banks, undefined, node, what);
    if (node === null || typeof node !== 'object') badFile(what, 'holds no PCR values');
    const obj = node as Record<string, unknown>;
    if (Array.isArray(obj.quotes)) {
      for (const [i, q] of obj.quotes.entries()) {
        const { bank, pcrs } = (q ?? {}) as { bank?: unknown; pcrs?: unknown };
        if (typeof bank !== 'string' || !isBankName(bank)) badFile(what, `quotes[${i}].bank is not one of ${HASH_NAMES.join(', ')}`);
        readBank(banks, bank, pcrs, what);
      }
      return;
    }
    if ('pcrs' in obj) return visit(obj.pcrs, depth + 1);
    const keys = Object.keys(obj);
    if (keys.length > 0 && keys.every(isBankName)) {
      for (const k of keys) readBank(banks, k as TpmHash, obj[k], what);
      return;
    }
    if (keys.length > 0 && keys.every((k) => /^\d+$/.test(k))) return readBank(banks, undefined, obj, what);
    badFile(what, `has neither bank names (${HASH_NAMES.join(', ')}) nor PCR indices as keys`);
  };
  visit(doc, 0);
  if (banks.size === 0) badFile(what, 'holds no PCR values');
  return banks;
}

// tpm2-tools 5.x `-o` file: the in-memory TSS2 structures with integers in little-endian order:
// TPML_PCR_SELECTION {u32 count; TPMS_PCR_SELECTION[16], each u16 hash, u8 sizeofSelect, u8[4], 1 pad}
// (132 bytes), u32 number of TPML_DIGEST, then that many TPML_DIGEST {u32 count; TPM2B_DIGEST[8],
// each u16 size + 64 bytes} (532 bytes). The digests, in order, are the selected PCRs, bank by bank,
// indices ascending.
const TSS_SELECTION_SLOTS = 16;
const TSS_SELECTION_SIZE = 4 + TSS_SELECTION_SLOTS * 8;
const TSS_DIGESTS_PER_LIST = 8;

/** Parses the PCR file `tpm2_quote -o FILE` writes (tpm2-tools 5.x, `-F serialized`, the default). */
export function parseTpm2ToolsPcrs(data: Uint8Array, what = 'tpm2-tools PCR file'): { selection: PcrSelection[]; banks: PcrBanks } {
  const r = new ByteReader(data, what);
  const slots = new ByteReader(r.bytes(TSS_SELECTION_SIZE), `${what} (TPML_PCR_SELECTION)`);
  const count = slots.u32le();
  if (count > MAX_PCR_BANKS) badFile(what, `selection lists ${count} banks, more than ${MAX_PCR_BANKS}`);
  const selection: PcrSelection[] = [];
  for (let i = 0; i < count; i++) {
    const slot = slots.bytes(8);
    // Re-encode the slot as a one-bank wire selection so the same strict reader applies.
    const wire = Buffer.alloc(4 + 3 + PCR_SELECT_MAX);
    wire.writeUInt32LE(1, 0);
    slot.copy(wire, 4, 0, 7);
    const sizeofSelect = slot[2] as number;
    const one = readPcrSelection(new ByteReader(wire.subarray(0, 7 + Math.min(sizeofSelect, PCR_SELECT_MAX)), `${what} (bank ${i})`), 'le');
    const s = one[0] as PcrSelection;
    if (selection.some((x) => x.hash === s.hash)) badFile(what, `bank ${s.hashName} is selected twice`);
    selection.push(s);
  }
  const lists = r.u32le();
  if (lists > 32) badFile(what, `${lists} digest lists, more than the 32 a selection of 16 banks could need`);
  const digests: Buffer[] = [];
  for (let l = 0; l < lists; l++) {
    const n = r.u32le();
    if (n > TSS_DIGESTS_PER_LIST) badFile(what, `digest list ${l} holds ${n} digests, more than ${TSS_DIGESTS_PER_LIST}`);
    for (let d = 0; d < TSS_DIGESTS_PER_LIST; d++) {
      const size = r.u16le();
      const buf = r.bytes(MAX_DIGEST_SIZE);
      if (d >= n) continue;
      if (size > MAX_DIGEST_SIZE) badFile(what, `digest ${l}.${d} claims ${size} bytes`);
      digests.push(buf.subarray(0, size));
    }
  }
  r.end();
  const expected = selection.reduce((n, s) => n + s.pcrs.length, 0);
  if (digests.length !== expected) badFile(what, `the selection names ${expected} PCR(s) but the file holds ${digests.length} value(s)`);
  const banks: PcrBanks = new Map();
  let k = 0;
  for (const s of selection) for (const p of s.pcrs) put(banks, s.hashName, p, Buffer.from(digests[k++] as Buffer), what);
  return { selection, banks };
}

/** A PCR file in any accepted form: JSON (by its first character) or the tpm2-tools binary. */
export function parsePcrFile(data: Uint8Array, what = 'PCR file'): PcrBanks {
  const head = Buffer.from(data.subarray(0, 64)).toString('latin1').trimStart();
  if (head.startsWith('{') || head.startsWith('[')) return parsePcrJson(Buffer.from(data).toString('utf8'), what);
  return parseTpm2ToolsPcrs(data, what).banks;
}

/** Merges several sources; the same PCR given with two different values is refused. */
export function mergePcrBanks(sources: readonly PcrBanks[], what = 'PCR values'): PcrBanks {
  const out: PcrBanks = new Map();
  for (const s of sources) for (const [bank, m] of s) for (const [i, v] of m) put(out, bank, i, v, what);
  return out;
}

/** The selected values, bank by bank in selection order, indices ascending; a missing one → TPM_PCR_MISSING. */
export function selectedPcrValues(selection: readonly PcrSelection[], banks: PcrBanks): Buffer[] {
  const out: Buffer[] = [];
  const missing: string[] = [];
  for (const s of selection) {
    const bank = banks.get(s.hashName);
    for (const p of s.pcrs) {
      const v = bank?.get(p);
      if (v) out.push(v);
      else missing.push(`${s.hashName}:${p}`);
    }
  }
  if (missing.length > 0) {
    throw inputError('TPM_PCR_MISSING', `the quote selects PCR(s) for which no value was supplied: ${missing.slice(0, 8).join(', ')}${missing.length > 8 ? ` and ${missing.length - 8} more` : ''}`, { missing });
  }
  return out;
}

/** pcrDigest as the TPM computes it: H_hash(concatenation of the selected PCR values). */
export function computePcrDigest(selection: readonly PcrSelection[], banks: PcrBanks, hash: TpmHash): Buffer {
  const h = createHash(hash);
  for (const v of selectedPcrValues(selection, banks)) h.update(v);
  return h.digest();
}

/** JSON form: {"sha256": {"0": "hex", ...}}, banks and indices in ascending order. */
export function pcrBanksToJson(banks: PcrBanks): Record<string, Record<string, string>> {
  const out: Record<string, Record<string, string>> = {};
  for (const bank of HASH_NAMES) {
    const m = banks.get(bank);
    if (!m) continue;
    out[bank] = Object.fromEntries([...m].sort(([a], [b]) => a - b).map(([i, v]) => [String(i), toHex(v)]));
  }
  return out;
}
