// Shared pieces of the guest TPM tests: tpm2-tools output parsing and file formats.
import assert from 'node:assert/strict';
import { CofferError } from '../../../src/errors.js';
import type { PcrBanks } from '../../../src/evidence/tpm/pcrs.js';
import { HASH_IDS, type TpmHash } from '../../../src/evidence/tpm/constants.js';

/** Asserts that fn throws (or rejects with) a CofferError of the given code; returns it. */
export async function rejectsCoffer(fn: () => unknown, code: string, opts: { kind?: string; message?: RegExp } = {}): Promise<CofferError> {
  let err: unknown;
  try {
    await fn();
  } catch (e) {
    err = e;
  }
  assert.ok(err !== undefined, `expected ${code}, but nothing was thrown`);
  assert.ok(err instanceof CofferError, `expected a CofferError ${code}, got ${String(err)}`);
  assert.equal(err.code, code, err.message);
  if (opts.kind) assert.equal(err.kind, opts.kind);
  if (opts.message) assert.match(err.message, opts.message);
  return err;
}

/** Parses `tpm2_pcrread` YAML-ish output: "  sha256:\n    0 : 0xABC..." */
export function parsePcrRead(out: string): PcrBanks {
  const banks: PcrBanks = new Map();
  let bank: Map<number, Buffer> | undefined;
  for (const line of out.split('\n')) {
    const b = /^\s{2}(sha1|sha256|sha384|sha512):\s*$/.exec(line);
    if (b) {
      bank = new Map();
      banks.set(b[1] as TpmHash, bank);
      continue;
    }
    const v = /^\s{4}(\d+)\s*:\s*0x([0-9A-Fa-f]+)\s*$/.exec(line);
    if (v && bank) bank.set(Number(v[1]), Buffer.from(v[2] as string, 'hex'));
  }
  return banks;
}

/**
 * The PCR file tpm2_quote -o writes and tpm2_checkquote -f reads (tpm2-tools 5.x, little-endian TSS
 * structures): TPML_PCR_SELECTION with 16 8-byte slots, u32 list count, then TPML_DIGESTs of 8 slots.
 */
export function tpm2ToolsPcrFile(sel: readonly { hashName: TpmHash; pcrs: readonly number[] }[], banks: PcrBanks): Buffer {
  const head = Buffer.alloc(4 + 16 * 8);
  head.writeUInt32LE(sel.length, 0);
  const values: Buffer[] = [];
  sel.forEach((s, i) => {
    const o = 4 + i * 8;
    head.writeUInt16LE(HASH_IDS[s.hashName], o);
    head.writeUInt8(3, o + 2);
    for (const p of s.pcrs) {
      head[o + 3 + (p >> 3)] = (head[o + 3 + (p >> 3)] as number) | (1 << (p & 7));
      values.push(banks.get(s.hashName)?.get(p) as Buffer);
    }
  });
  const lists: Buffer[] = [];
  for (let i = 0; i < values.length; i += 8) {
    const l = Buffer.alloc(4 + 8 * 66);
    const chunk = values.slice(i, i + 8);
    l.writeUInt32LE(chunk.length, 0);
    chunk.forEach((v, j) => {
      l.writeUInt16LE(v.length, 4 + j * 66);
      v.copy(l, 4 + j * 66 + 2);
    });
    lists.push(l);
  }
  const n = Buffer.alloc(4);
  n.writeUInt32LE(lists.length, 0);
  return Buffer.concat([head, n, ...lists]);
}

export function tpm2b(x: Uint8Array): Buffer {
  const h = Buffer.alloc(2);
  h.writeUInt16BE(x.length);
  return Buffer.concat([h, Buffer.from(x)]);
}
