import { inputError } from '../../errors.js';
import { TPM_HASHES, type TpmHash } from '../tpm/constants.js';
import type { PcrBanks } from '../tpm/pcrs.js';

/**
 * google/go-tpm-tools' `attest.Attestation` protobuf (proto/attest.proto), as a GCE VM's
 * `gotpm attest` emits it: field 1 ak_pub (TPMT_PUBLIC), 2 quotes (tpm.Quote: 1 quote
 * TPMS_ATTEST, 2 raw_sig TPMT_SIGNATURE, 3 pcrs tpm.PCRs {1 hash (TPM_ALG_ID), 2 map<uint32,
 * bytes>}), 3 event_log (TCG crypto-agile), 4 canonical_event_log, 6 ak_cert (DER), 7
 * intermediate_certs. Other fields (the confidential-VM TEE attestations among them) are kept as
 * unknown and reported, never silently trusted. A minimal wire-format reader: only varint and
 * length-delimited fields, lengths checked.
 */

export interface GceQuote {
  attest: Buffer;
  signature: Buffer;
  bank: TpmHash;
  pcrs: Map<number, Buffer>;
}

export interface GceAttestation {
  akPub: Buffer;
  quotes: GceQuote[];
  eventLog: Buffer | undefined;
  canonicalEventLog: Buffer | undefined;
  akCert: Buffer | undefined;
  intermediateCerts: Buffer[];
  /** Field numbers present that Coffer does not interpret. */
  unknownFields: number[];
}

const MAX_FIELDS = 4096;

interface Field {
  no: number;
  wire: number;
  value: bigint | Buffer;
}

function bad(why: string): never {
  throw inputError('GCP_BAD_ATTESTATION', `go-tpm-tools Attestation protobuf: ${why}`);
}

function readVarint(b: Buffer, pos: number): [bigint, number] {
  let v = 0n;
  for (let i = 0; i < 10; i++) {
    if (pos >= b.length) bad('truncated varint');
    const c = b[pos++] as number;
    v |= BigInt(c & 0x7f) << BigInt(7 * i);
    if (c < 0x80) return [v, pos];
  }
  return bad('varint longer than 10 bytes');
}

/** Splits one message into its fields (wire types 0, 1, 2, 5; groups refused). */
export function readFields(b: Buffer, what: string): Field[] {
  const out: Field[] = [];
  let pos = 0;
  while (pos < b.length) {
    if (out.length >= MAX_FIELDS) bad(`${what} has more than ${MAX_FIELDS} fields`);
    const [key, p1] = readVarint(b, pos);
    pos = p1;
    const no = Number(key >> 3n);
    const wire = Number(key & 7n);
    if (no === 0 || no > 536870911) bad(`${what}: field number ${no} is invalid`);
    if (wire === 0) {
      const [v, p2] = readVarint(b, pos);
      pos = p2;
      out.push({ no, wire, value: v });
    } else if (wire === 2) {
      const [len, p2] = readVarint(b, pos);
      if (len > BigInt(b.length - p2)) bad(`${what}: field ${no} claims ${len} bytes, ${b.length - p2} remain`);
      out.push({ no, wire, value: Buffer.from(b.subarray(p2, p2 + Number(len))) });
      pos = p2 + Number(len);
    } else if (wire === 1 || wire === 5) {
      const n = wire === 1 ? 8 : 4;
      if (pos + n > b.length) bad(`${what}: field ${no} is truncated`);
      out.push({ no, wire, value: Buffer.from(b.subarray(pos, pos + n)) });
      pos += n;
    } else {
      bad(`${what}: wire type ${wire} (field ${no}) is not supported`);
    }
  }
  return out;
}

function bytesField(f: Field, what: string): Buffer {
  if (f.wire !== 2 || !Buffer.isBuffer(f.value)) bad(`${what} is not a length-delimited field`);
  return f.value;
}

function single(fields: Field[], no: number, what: string): Buffer | undefined {
  const hits = fields.filter((f) => f.no === no);
  // Protobuf merges repeated scalars by taking the last; a verifier refuses the ambiguity.
  if (hits.length > 1) bad(`${what} appears ${hits.length} times`);
  return hits[0] ? bytesField(hits[0], what) : undefined;
}

function parsePcrs(b: Buffer, where: string): { bank: TpmHash; pcrs: Map<number, Buffer> } {
  const fields = readFields(b, where);
  const hashF = fields.filter((f) => f.no === 1);
  if (hashF.length !== 1 || hashF[0]?.wire !== 0) bad(`${where}.hash is missing or repeated`);
  const alg = Number(hashF[0].value as bigint);
  const h = TPM_HASHES[alg];
  if (!h) bad(`${where}.hash 0x${alg.toString(16)} is not a supported hash`);
  const pcrs = new Map<number, Buffer>();
  for (const f of fields.filter((x) => x.no === 2)) {
    const entry = readFields(bytesField(f, `${where}.pcrs entry`), `${where}.pcrs entry`);
    const k = entry.filter((e) => e.no === 1);
    const v = entry.filter((e) => e.no === 2);
    if (k.length > 1 || v.length !== 1 || (k[0] && k[0].wire !== 0)) bad(`${where}.pcrs entry is malformed`);
    const index = k[0] ? Number(k[0].value as bigint) : 0;
    if (index > 31) bad(`${where}.pcrs index ${index} is out of range`);
    const value = bytesField(v[0] as Field, `${where}.pcrs value`);
    if (value.length !== h.size) bad(`${where}.pcrs[${index}] is ${value.length} bytes, a ${h.name} PCR is ${h.size}`);
    if (pcrs.has(index)) bad(`${where}.pcrs[${index}] is given twice`);
    pcrs.set(index, value);
  }
  return { bank: h.name, pcrs };
}

/** Parses an `attest.Attestation` message. */
export function parseGceAttestation(data: Uint8Array): GceAttestation {
  const b = Buffer.from(data);
  if (b.length === 0) bad('is empty');
  if (b.length > 1 << 22) bad(`is ${b.length} bytes, more than 4 MiB`);
  const fields = readFields(b, 'Attestation');
  const akPub = single(fields, 1, 'ak_pub') ?? bad('has no ak_pub');
  const quotes = fields
    .filter((f) => f.no === 2)
    .map((f, i) => {
      const where = `quotes[${i}]`;
      const q = readFields(bytesField(f, where), where);
      const attest = single(q, 1, `${where}.quote`) ?? bad(`${where} has no quote`);
      const signature = single(q, 2, `${where}.raw_sig`) ?? bad(`${where} has no raw_sig`);
      const pcrBytes = single(q, 3, `${where}.pcrs`) ?? bad(`${where} has no pcrs`);
      return { attest, signature, ...parsePcrs(pcrBytes, `${where}.pcrs`) };
    });
  if (quotes.length === 0) bad('has no quotes');
  const known = new Set([1, 2, 3, 4, 6, 7]);
  return {
    akPub,
    quotes,
    eventLog: single(fields, 3, 'event_log'),
    canonicalEventLog: single(fields, 4, 'canonical_event_log'),
    akCert: single(fields, 6, 'ak_cert'),
    intermediateCerts: fields.filter((f) => f.no === 7).map((f) => bytesField(f, 'intermediate_certs')),
    unknownFields: [...new Set(fields.filter((f) => !known.has(f.no)).map((f) => f.no))].sort((x, y) => x - y),
  };
}

/** The quotes' PCR values as banks (each quote carries one bank). */
export function gcePcrBanks(att: GceAttestation): PcrBanks {
  const banks: PcrBanks = new Map();
  for (const q of att.quotes) banks.set(q.bank, q.pcrs);
  return banks;
}
