// Single-byte changes to a real quote fail at the check they break, each with its own code:
// the signed region and the quote signature (DCAP_QUOTE_BAD_SIGNATURE), the QE report and its
// signature (DCAP_QE_REPORT_BAD_SIGNATURE), the QE authentication data (DCAP_QE_BINDING_MISMATCH),
// the PCK certificates (PKI_*), the framing (DCAP_* input errors), and the collateral JSON.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { parseDcapQuote, parseTcbInfo, verifyDcapQuote, type DcapQuote } from '../../../src/evidence/dcap/index.js';
import { AT_2023, AT_2025, Q, collateral2025, expectCoffer, vec } from './dcap-vectors.js';

const REAL = vec(Q.trustee);
const parsed: DcapQuote = parseDcapQuote(REAL);

function flip(buf: Buffer, at: number, to?: number): Buffer {
  const b = Buffer.from(buf);
  b[at] = to ?? (b[at] as number) ^ 0x01;
  return b;
}

/** Offsets of the parts of the v4 signature data (4-byte length at signedLength). */
const SIG = parsed.signedLength + 4;
const ATT_KEY = SIG + 64;
const OUTER = ATT_KEY + 64; // u16 type, u32 size
const QE_REPORT = OUTER + 6;
const QE_SIG = QE_REPORT + 384;
const QE_AUTH = QE_SIG + 64 + 2;
const CERTS = QE_AUTH + parsed.signatureData.qeAuthData.length + 6;

describe('single-byte flips of tdx_quote_4.dat', () => {
  test('the layout computed here is the parser\'s', () => {
    assert.ok(REAL.subarray(QE_REPORT, QE_REPORT + 384).equals(parsed.signatureData.qeReport.raw));
    assert.ok(REAL.subarray(QE_AUTH, QE_AUTH + 32).equals(parsed.signatureData.qeAuthData));
    assert.equal(REAL.subarray(CERTS, CERTS + 27).toString('latin1'), '-----BEGIN CERTIFICATE-----');
  });

  test('every 7th byte of header and body (0x0C..end of body) → DCAP_QUOTE_BAD_SIGNATURE', () => {
    for (let at = 12; at < parsed.signedLength; at += 7) {
      expectCoffer(() => verifyDcapQuote(flip(REAL, at), { at: AT_2023 }), 'DCAP_QUOTE_BAD_SIGNATURE', 'verify');
    }
  });

  test('go-tdx-guest\'s flips [0x1E]=0x32 and [0x3C]=0x32 → DCAP_QUOTE_BAD_SIGNATURE', () => {
    for (const at of [0x1e, 0x3c]) expectCoffer(() => verifyDcapQuote(flip(REAL, at, 0x32), { at: AT_2023 }), 'DCAP_QUOTE_BAD_SIGNATURE');
  });

  test('every byte of the signature and every 5th of the attestation key → DCAP_QUOTE_BAD_SIGNATURE', () => {
    for (let at = SIG; at < SIG + 64; at++) expectCoffer(() => verifyDcapQuote(flip(REAL, at), { at: AT_2023 }), 'DCAP_QUOTE_BAD_SIGNATURE');
    for (let at = ATT_KEY; at < ATT_KEY + 64; at += 5) expectCoffer(() => verifyDcapQuote(flip(REAL, at), { at: AT_2023 }), 'DCAP_QUOTE_BAD_SIGNATURE');
  });

  test('the QE report (every 11th non-reserved byte) and its signature → DCAP_QE_REPORT_BAD_SIGNATURE', () => {
    const reserved = (o: number) => (o >= 20 && o < 32) || (o >= 96 && o < 128) || (o >= 160 && o < 192) || (o >= 262 + 2 && o < 262 + 2 + 42);
    let n = 0;
    for (let o = 0; o < 384; o += 11) {
      if (reserved(o)) continue;
      expectCoffer(() => verifyDcapQuote(flip(REAL, QE_REPORT + o), { at: AT_2023 }), 'DCAP_QE_REPORT_BAD_SIGNATURE');
      n++;
    }
    assert.ok(n > 20);
    for (let at = QE_SIG; at < QE_SIG + 64; at += 3) expectCoffer(() => verifyDcapQuote(flip(REAL, at), { at: AT_2023 }), 'DCAP_QE_REPORT_BAD_SIGNATURE');
  });

  test('the QE authentication data → DCAP_QE_BINDING_MISMATCH with expected and found', () => {
    for (let at = QE_AUTH; at < QE_AUTH + 32; at += 4) {
      const e = expectCoffer(() => verifyDcapQuote(flip(REAL, at), { at: AT_2023 }), 'DCAP_QE_BINDING_MISMATCH', 'verify');
      const check = (e.details?.checks as { name: string; expected?: string; found?: string }[]).at(-1);
      assert.equal(check?.name, 'dcap.qe-binding');
      assert.equal(check?.found, parsed.signatureData.qeReport.reportData.toString('hex'));
      assert.notEqual(check?.expected, check?.found);
    }
  });

  test('a reserved byte of the QE report → the QE report signature fails first (signature-first: parsing does not judge reserved fields)', () => {
    expectCoffer(() => verifyDcapQuote(flip(REAL, QE_REPORT + 100), { at: AT_2023 }), 'DCAP_QE_REPORT_BAD_SIGNATURE', 'verify');
    assert.deepEqual(parseDcapQuote(flip(REAL, QE_REPORT + 100)).signatureData.qeReport.reservedNonZero, ['RESERVED2']);
  });

  test('the PCK chain: leaf signature, intermediate signature → PKI_BAD_SIGNATURE; the quote\'s own copy of the root is never trusted', () => {
    const pem = REAL.subarray(CERTS).toString('latin1');
    const ends = [...pem.matchAll(/-----END CERTIFICATE-----/g)].map((m) => CERTS + (m.index ?? 0));
    // A base64 character in the signature of each certificate, just before its END line.
    const inSig = (i: number) => (ends[i] as number) - 10;
    const leaf = Buffer.from(REAL);
    leaf[inSig(0)] = leaf[inSig(0)] === 0x41 ? 0x42 : 0x41;
    const le = expectCoffer(() => verifyDcapQuote(leaf, { at: AT_2023 }), 'PKI_BAD_SIGNATURE');
    assert.match(le.message, /Intel SGX PCK Certificate does not verify/);
    const inter = Buffer.from(REAL);
    inter[inSig(1)] = inter[inSig(1)] === 0x41 ? 0x42 : 0x41;
    const ie = expectCoffer(() => verifyDcapQuote(inter, { at: AT_2023 }), 'PKI_BAD_SIGNATURE');
    assert.match(ie.message, /Intel SGX PCK Platform CA does not verify with the key of Intel SGX Root CA \(pinned\)/);
    const root = Buffer.from(REAL);
    root[inSig(2)] = root[inSig(2)] === 0x41 ? 0x42 : 0x41;
    const v = verifyDcapQuote(root, { at: AT_2023 });
    assert.equal(v.chain[2]?.sha256, '44a0196b2b99f889b8e149e95b807a350e7424964399e885a7cbb8ccfab674d3', 'the pinned root, not the altered copy');
  });

  test('framing: version 3 with a TDX TEE, wrong key type, overlong signature data, unknown body type', () => {
    expectCoffer(() => verifyDcapQuote(flip(REAL, 0, 3), { at: AT_2023 }), 'DCAP_UNSUPPORTED_TEE', 'input');
    expectCoffer(() => verifyDcapQuote(flip(REAL, 0, 6), { at: AT_2023 }), 'DCAP_UNSUPPORTED_VERSION', 'input');
    expectCoffer(() => verifyDcapQuote(flip(REAL, 2, 3), { at: AT_2023 }), 'DCAP_UNSUPPORTED_KEY_TYPE', 'input');
    expectCoffer(() => verifyDcapQuote(flip(REAL, 4, 0x82), { at: AT_2023 }), 'DCAP_UNSUPPORTED_TEE', 'input');
    expectCoffer(() => verifyDcapQuote(flip(REAL, parsed.signedLength + 1, 0x20), { at: AT_2023 }), 'DCAP_BAD_LENGTH', 'input');
    const v5 = vec(Q.v5);
    expectCoffer(() => parseDcapQuote(flip(v5, 48, 9)), 'DCAP_UNSUPPORTED_BODY', 'input');
    expectCoffer(() => parseDcapQuote(flip(v5, 48, 1)), 'DCAP_UNSUPPORTED_BODY', 'input');
    expectCoffer(() => parseDcapQuote(REAL.subarray(0, REAL.length - 1)), 'DCAP_BAD_LENGTH', 'input');
  });
});

describe('collateral changed by one byte', () => {
  const raw = vec('teekit/tcbInfo-tdx-50806f000000.json');
  test('the TCB info JSON (a digit inside "tcbInfo") → DCAP_COLLATERAL_BAD_SIGNATURE', () => {
    const text = raw.toString('latin1');
    const at = text.indexOf('"pcesvn":11') + 10;
    const changed = flip(raw, at, 0x30); // "pcesvn":10
    const col = { ...collateral2025(), tcbInfos: [parseTcbInfo(changed)] };
    expectCoffer(() => verifyDcapQuote(REAL, { at: AT_2025, collateral: col }), 'DCAP_COLLATERAL_BAD_SIGNATURE', 'verify');
  });

  test('the signature hex → DCAP_COLLATERAL_BAD_SIGNATURE; re-serialised JSON (whitespace added) → DCAP_COLLATERAL_BAD_SIGNATURE', () => {
    const text = raw.toString('latin1');
    const s = text.indexOf('"signature":"') + 13;
    const sig = flip(raw, s, raw[s] === 0x61 ? 0x62 : 0x61);
    expectCoffer(() => verifyDcapQuote(REAL, { at: AT_2025, collateral: { ...collateral2025(), tcbInfos: [parseTcbInfo(sig)] } }), 'DCAP_COLLATERAL_BAD_SIGNATURE');
    const pretty = Buffer.from(JSON.stringify(JSON.parse(text), null, 1));
    expectCoffer(() => verifyDcapQuote(REAL, { at: AT_2025, collateral: { ...collateral2025(), tcbInfos: [parseTcbInfo(pretty)] } }), 'DCAP_COLLATERAL_BAD_SIGNATURE');
  });

  test('a duplicated key (the signed text says one thing, JSON.parse would read another) is refused', () => {
    const text = raw.toString('latin1').replace('"tcbInfo":{"id":"TDX"', '"tcbInfo":{"id":"TDX","id":"SGX"');
    expectCoffer(() => parseTcbInfo(Buffer.from(text)), 'DCAP_BAD_COLLATERAL', 'input');
    const twice = `{"tcbInfo":${JSON.stringify({ id: 'SGX' })},${raw.toString('latin1').slice(1)}`;
    expectCoffer(() => parseTcbInfo(Buffer.from(twice)), 'DCAP_BAD_COLLATERAL', 'input');
  });
});
