// The SNP parsers against arbitrary input: a value or a CofferError, never another exception,
// never a hang. Then the deterministic refusals, each with its code.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { valueOrCoffer as anyValueOrCoffer } from '../../helpers/property.js';
import { decode as cborDecode, encode as cborEncode } from 'cbor2';
import { CofferError } from '../../../src/errors.js';
import { parseSnpReport, SNP_REPORT_SIZE } from '../../../src/evidence/snp/report.js';
import { verifySnpReport } from '../../../src/evidence/snp/verify.js';
import { certificatesFromTable, decodeSnpEvidence, fromTsm, parseCertTable } from '../../../src/evidence/snp/input.js';
import { parseCertificates } from '../../../src/pki/certificate.js';
import { buildReport, encodeTcb } from '../../helpers/amd-ca.js';
import { MILAN_CHAIN, REAL_AT, certs, expectCoffer, vector } from './real-vectors.js';

const REAL_REPORTS = [
  'amd-snp/go-sev-guest/attestation.bin',
  'amd-snp/trustee/test-report.bin',
  'amd-snp/trustee/test-vlek-report.bin',
  'amd-snp/trustee/e2e-report.bin',
  'amd-snp/azure-derived/az-milan-hcl-report.snp.bin',
  'amd-snp/azure-derived/az-genoa-hcl-report.snp.bin',
  'amd-snp/veraison/sevsnp-tsm-report.outblob.bin',
].map((f) => vector(f));
const SYNTHETIC = [2, 3, 5].map((version) => buildReport({ version }));
const TSM = cborDecode(vector('amd-snp/veraison/sevsnp-tsm-report.cbor')) as { outblob: Uint8Array; auxblob: Uint8Array; provider: string };
const AUXBLOB = new Uint8Array(TSM.auxblob);
const REAL_CERT_DERS = [
  vector('amd-snp/go-sev-guest/vcek.der'),
  vector('amd-snp/trustee/test-vlek.der'),
  ...parseCertificates(vector(MILAN_CHAIN)).map((c) => c.der),
];

const GUIDS = {
  ARK: 'c0b406a4a803495297433fb6014cd0ae',
  ASK: '4ab7b379bbac4fe4a02f05aef327c782',
  VCEK: '63da758de6644564adc5f4b93be8accd',
  VLEK: 'a8074bc2a25a483eaae639c045a0b8a1',
};

/** A value or a CofferError of kind input or verify, within the time budget. */
const valueOrCoffer = (what: string, fn: () => unknown): void => anyValueOrCoffer(what, fn, { kinds: ['input', 'verify'] });

function allParsers(bytes: Uint8Array): void {
  valueOrCoffer('parseSnpReport', () => parseSnpReport(bytes));
  valueOrCoffer('decodeSnpEvidence', () => decodeSnpEvidence(bytes));
  valueOrCoffer('parseCertTable', () => certificatesFromTable(parseCertTable(bytes)));
}

/** A GHCB certificate table: headers, terminator, then the payloads, laid out honestly. */
function certTable(entries: { guid: string | Buffer; data: Buffer }[], terminate = true): Buffer {
  const headerLen = 24 * (entries.length + (terminate ? 1 : 0));
  const headers: Buffer[] = [];
  let off = headerLen;
  for (const e of entries) {
    const h = Buffer.alloc(24);
    (typeof e.guid === 'string' ? Buffer.from(e.guid, 'hex') : e.guid).copy(h, 0);
    h.writeUInt32LE(off, 16);
    h.writeUInt32LE(e.data.length, 20);
    headers.push(h);
    off += e.data.length;
  }
  if (terminate) headers.push(Buffer.alloc(24));
  return Buffer.concat([...headers, ...entries.map((e) => e.data)]);
}

const mutations = (max: number) => fc.array(fc.tuple(fc.nat({ max: 1_000_000 }), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: max });
function mutate(base: Uint8Array, muts: [number, number][], region?: [number, number]): Buffer {
  const out = Buffer.from(base);
  const [lo, hi] = region ?? [0, out.length];
  for (const [o, v] of muts) out[lo + (o % (hi - lo))] = v;
  return out;
}

/** Regions where a parse decision is made (header, CPUID and reserved, TCB/version fields, r/s high bytes, tail). */
const INTERESTING: [number, number][] = [
  [0x00, 0x50],
  [0x180, 0x1a0],
  [0x1e0, 0x2a0],
  [0x2d0, 0x2e8],
  [0x318, 0x4a0],
];

describe('property: arbitrary bytes produce a value or a CofferError', () => {
  test('arbitrary byte arrays of any length (0..4096)', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 4096 }), (b) => allParsers(b)), { numRuns: 400 });
  });

  test('arbitrary byte arrays of exactly 1184 bytes', () => {
    fc.assert(fc.property(fc.uint8Array({ minLength: SNP_REPORT_SIZE, maxLength: SNP_REPORT_SIZE }), (b) => allParsers(b)), { numRuns: 400 });
  });

  test('lengths around 1184 and twice it', () => {
    const len = fc.constantFrom(1183, 1185, 2367, 2368, 2369, 1580, 1579);
    fc.assert(fc.property(len.chain((n) => fc.uint8Array({ minLength: n, maxLength: n })), (b) => allParsers(b)), { numRuns: 200 });
  });

  test('real and synthetic reports with random byte mutations anywhere', () => {
    fc.assert(
      fc.property(fc.constantFrom(...REAL_REPORTS, ...SYNTHETIC), mutations(16), (base, muts) => allParsers(mutate(base, muts))),
      { numRuns: 1500 },
    );
  });

  test('real and synthetic reports with mutations where parse decisions are made', () => {
    fc.assert(
      fc.property(fc.constantFrom(...REAL_REPORTS, ...SYNTHETIC), fc.constantFrom(...INTERESTING), mutations(4), (base, region, muts) => {
        const b = mutate(base, muts, region);
        allParsers(b);
        // A mutated report never verifies with the original certificate, and never throws a foreign exception.
        valueOrCoffer('verifySnpReport', () => verifySnpReport(b, { at: REAL_AT, certificates: certs('amd-snp/go-sev-guest/vcek.der', MILAN_CHAIN) }));
      }),
      { numRuns: 1500 },
    );
  });

  test('a parsed report is a faithful, private copy: raw equals the input and does not alias it', () => {
    fc.assert(
      fc.property(fc.constantFrom(...REAL_REPORTS, ...SYNTHETIC), mutations(3), (base, muts) => {
        const b = mutate(base, muts, [0x50, 0x180]); // payload fields only: always parses
        const r = parseSnpReport(b);
        assert.ok(r.raw.equals(b));
        b[0x90] = (b[0x90] as number) ^ 0xff;
        assert.notEqual(r.measurement[0], b[0x90]);
        assert.notEqual(r.raw[0x90], b[0x90]);
      }),
      { numRuns: 300 },
    );
  });

  test('text forms: random hex, base64 and base64url of random or real reports, with whitespace', () => {
    const body = fc.oneof(fc.uint8Array({ minLength: 0, maxLength: 1300 }), fc.constantFrom(...REAL_REPORTS));
    const text = fc.tuple(body, fc.constantFrom('hex', 'HEX', 'base64', 'base64url'), fc.nat({ max: 100 }), fc.constantFrom('', '\n', ' ', '\r\n', '\t')).map(([b, enc, wrap, ws]) => {
      let s = enc === 'HEX' ? Buffer.from(b).toString('hex').toUpperCase() : Buffer.from(b).toString(enc === 'hex' ? 'hex' : enc);
      if (wrap > 0 && ws) s = s.replace(new RegExp(`(.{${wrap}})`, 'g'), `$1${ws}`);
      return Buffer.from(`${ws}${s}${ws}`, 'latin1');
    });
    fc.assert(
      fc.property(text, (t) => {
        allParsers(t);
      }),
      { numRuns: 400 },
    );
  });

  test('CBOR maps with outblob/auxblob/provider of arbitrary shape', () => {
    const blob = fc.oneof(fc.uint8Array({ maxLength: 1300 }), fc.constantFrom(...REAL_REPORTS.map((r) => new Uint8Array(r))), fc.constant(AUXBLOB));
    const value = fc.oneof(blob, fc.string(), fc.integer(), fc.constant(null), fc.array(fc.integer(), { maxLength: 3 }));
    const map = fc.record(
      { outblob: value, auxblob: value, provider: fc.oneof(fc.constantFrom('sev_guest', 'sev_guest\n', 'tdx_guest', ''), fc.string(), fc.integer()) },
      { requiredKeys: [] },
    );
    fc.assert(
      fc.property(map, (m) => {
        allParsers(cborEncode(m));
      }),
      { numRuns: 400 },
    );
  });

  test('certificate tables of arbitrary layout (headers point anywhere) with real certificates as payloads', () => {
    const guid = fc.oneof(fc.constantFrom(...Object.values(GUIDS)).map((g) => Buffer.from(g, 'hex')), fc.uint8Array({ minLength: 16, maxLength: 16 }).map((u) => Buffer.from(u)));
    const payload = fc.oneof(fc.constantFrom(...REAL_CERT_DERS), fc.constantFrom(...REAL_CERT_DERS).map((d) => Buffer.from(parseCertificates(d)[0]?.toPem() ?? '')), fc.uint8Array({ maxLength: 64 }).map((u) => Buffer.from(u)));
    const table = fc.tuple(fc.array(fc.record({ guid, data: payload }), { maxLength: 5 }), fc.boolean(), fc.array(fc.tuple(fc.nat({ max: 200 }), fc.integer({ min: 0, max: 255 })), { maxLength: 3 })).map(([entries, term, muts]) => {
      const t = certTable(entries, term);
      // Mutate only the header part, so that offsets and lengths lie.
      const headerLen = Math.max(1, 24 * (entries.length + (term ? 1 : 0)));
      for (const [o, v] of muts) t[o % headerLen] = v;
      return t;
    });
    fc.assert(
      fc.property(table, (t) => {
        allParsers(t);
        valueOrCoffer('fromTsm', () => fromTsm(REAL_REPORTS[0] as Buffer, t));
        valueOrCoffer('decodeSnpEvidence(CBOR)', () => decodeSnpEvidence(cborEncode({ outblob: new Uint8Array(REAL_REPORTS[0] as Buffer), auxblob: new Uint8Array(t), provider: 'sev_guest' })));
      }),
      { numRuns: 400 },
    );
  });

  test(
    'TSM captures whose auxblob carries a damaged certificate',
    () => {
      fc.assert(
        fc.property(fc.constantFrom(...REAL_CERT_DERS), mutations(3), (der, muts) => {
          const aux = certTable([{ guid: GUIDS.VCEK, data: mutate(der, muts) }]);
          valueOrCoffer('decodeSnpEvidence(CBOR with damaged VCEK)', () => decodeSnpEvidence(cborEncode({ outblob: new Uint8Array(REAL_REPORTS[0] as Buffer), auxblob: new Uint8Array(aux) })));
        }),
        { numRuns: 1500, seed: 20250601 },
      );
    },
  );
});

describe('damaged certificates in an auxblob', () => {
  test(
    'specific damaged real certificates are refused with a CofferError',
    () => {
      const ask = parseCertificates(vector(MILAN_CHAIN))[0]?.der as Buffer;
      const cases: [Buffer, number, number][] = [
        [vector('amd-snp/go-sev-guest/vcek.der'), 375, 0x00],
        [ask, 934, 0x0f],
        [ask, 968, 0x00],
      ];
      const wrong: string[] = [];
      for (const [der, off, v] of cases) {
        const d = Buffer.from(der);
        d[off] = v;
        const aux = certTable([{ guid: GUIDS.VCEK, data: d }]);
        for (const [what, fn] of [
          ['parseCertificates', () => parseCertificates(d)],
          ['fromTsm', () => fromTsm(REAL_REPORTS[0] as Buffer, aux)],
        ] as [string, () => unknown][]) {
          try {
            fn();
          } catch (e) {
            if (!(e instanceof CofferError)) wrong.push(`${what} byte ${off}→0x${v.toString(16)}: ${e instanceof Error ? e.message : String(e)}`);
          }
        }
      }
      assert.deepEqual(wrong, []);
    },
  );
});

// ---------------------------------------------------------------------------------------------

describe('deterministic refusals', () => {
  const base = buildReport({ version: 3 });

  test('wrong size → SNP_BAD_SIZE (parser and verifier); decodeSnpEvidence calls it no report at all', () => {
    for (const n of [0, 1, 1183, 1185, 2368]) {
      const b = Buffer.alloc(n);
      expectCoffer(() => parseSnpReport(b), 'SNP_BAD_SIZE', { kind: 'input', message: new RegExp(`got ${n}`) });
      expectCoffer(() => verifySnpReport(b, { at: REAL_AT, certificates: [] }), 'SNP_BAD_SIZE', { kind: 'input' });
    }
    expectCoffer(() => decodeSnpEvidence(Buffer.alloc(1183, 1)), 'SNP_BAD_INPUT', { kind: 'input' });
    expectCoffer(() => fromTsm(Buffer.alloc(1183)), 'SNP_BAD_SIZE', { kind: 'input' });
    expectCoffer(() => decodeSnpEvidence(cborEncode({ outblob: new Uint8Array(100) })), 'SNP_BAD_SIZE', { kind: 'input' });
  });

  test('versions 2, 3 and 5 parse; 0, 1, 6 and 0xFFFFFFFF → SNP_UNSUPPORTED_VERSION', () => {
    for (const v of [2, 3, 5]) assert.equal(parseSnpReport(buildReport({ version: v })).version, v);
    for (const v of [0, 1, 6, 0xffffffff]) {
      const b = Buffer.from(base);
      b.writeUInt32LE(v, 0);
      expectCoffer(() => parseSnpReport(b), 'SNP_UNSUPPORTED_VERSION', { kind: 'input', message: new RegExp(`version ${v} is not supported`) });
    }
  });

  test('every byte of every reserved region, set non-zero → RESERVED_NOT_ZERO naming the offset', () => {
    const regions: [number, [number, number]][] = [
      [2, [0x4c, 0x50]],
      [2, [0x188, 0x1a0]],
      [2, [0x1eb, 0x1ec]],
      [2, [0x1ef, 0x1f0]],
      [2, [0x1f8, 0x2a0]],
      [2, [0x330, 0x4a0]],
      [3, [0x4c, 0x50]],
      [3, [0x18b, 0x1a0]],
      [3, [0x1eb, 0x1ec]],
      [3, [0x1ef, 0x1f0]],
      [3, [0x1f8, 0x2a0]],
      [3, [0x330, 0x4a0]],
      [5, [0x18b, 0x1a0]],
      [5, [0x208, 0x2a0]],
      [5, [0x330, 0x4a0]],
    ];
    const wrong: string[] = [];
    for (const [version, [from, to]] of regions) {
      const r = buildReport({ version });
      for (let off = from; off < to; off++) {
        const b = Buffer.from(r);
        b[off] = 0x10;
        try {
          parseSnpReport(b);
          wrong.push(`v${version} 0x${off.toString(16)}: accepted`);
        } catch (e) {
          const ok = e instanceof CofferError && e.code === 'RESERVED_NOT_ZERO' && e.message.includes(`byte at 0x${off.toString(16)} is 0x10`) && e.message.includes(`offset 0x${from.toString(16)}`);
          if (!ok) wrong.push(`v${version} 0x${off.toString(16)}: ${e instanceof CofferError ? `${e.code}: ${e.message}` : String(e)}`);
        }
      }
    }
    assert.deepEqual(wrong, []);
  });

  test('what is reserved in one version is a field in another: v3 CPUID, v5 mitigation vectors', () => {
    const v3 = parseSnpReport(buildReport({ version: 3, cpuidFamily: 0x1a, cpuidModel: 0x11, cpuidStepping: 0 }));
    assert.deepEqual(v3.cpuid, { family: 0x1a, model: 0x11, stepping: 0 });
    const v5 = parseSnpReport(buildReport({ version: 5, launchMitVector: 0x0102030405060708n, currentMitVector: 0xffffffffffffffffn }));
    assert.equal(v5.launchMitVector, 0x0102030405060708n);
    assert.equal(v5.currentMitVector, 0xffffffffffffffffn);
    // The same bytes are reserved in a v3 report.
    const b = buildReport({ version: 3 });
    b[0x1f8] = 1;
    expectCoffer(() => parseSnpReport(b), 'RESERVED_NOT_ZERO', { message: /0x1f8/ });
  });

  test('key info: reserved bits 5-31 → RESERVED_NOT_ZERO; signing key 2-6 → SNP_BAD_KEY_INFO', () => {
    for (const bit of [5, 8, 16, 31]) {
      const b = Buffer.from(base);
      b.writeUInt32LE((1 << bit) >>> 0, 0x48);
      expectCoffer(() => parseSnpReport(b), 'RESERVED_NOT_ZERO', { kind: 'input', message: /key info/ });
    }
    for (const k of [2, 3, 4, 5, 6]) {
      expectCoffer(() => parseSnpReport(buildReport({ signingKey: k })), 'SNP_BAD_KEY_INFO', { kind: 'input', message: new RegExp(`signing key value ${k}`) });
    }
    assert.equal(parseSnpReport(buildReport({ signingKey: 7 })).keyInfo.signingKey, 'none');
    const k = parseSnpReport(buildReport({ signingKey: 1, authorKeyEn: true, maskChipKey: true })).keyInfo;
    assert.deepEqual(k, { raw: 0b111, authorKeyEn: true, maskChipKey: true, signingKey: 'vlek' });
  });

  test('policy bit 17 clear → SNP_BAD_POLICY; bits 26-63 → SNP_BAD_POLICY; every known bit decodes to its flag', () => {
    expectCoffer(() => parseSnpReport(buildReport({ policy: 0x10000n })), 'SNP_BAD_POLICY', { kind: 'input', message: /bit 17/ });
    expectCoffer(() => parseSnpReport(buildReport({ policy: 0n })), 'SNP_BAD_POLICY');
    for (const bit of [26n, 32n, 63n]) expectCoffer(() => parseSnpReport(buildReport({ policy: 0x20000n | (1n << bit) })), 'SNP_BAD_POLICY', { message: /reserved bits 26-63/ });
    const flags = ['smt', null, 'migrateMa', 'debug', 'singleSocket', 'cxlAllowed', 'memAes256Xts', 'raplDis', 'ciphertextHiding', 'pageSwapDisable'] as const;
    flags.forEach((flag, i) => {
      if (flag === null) return;
      const p = parseSnpReport(buildReport({ policy: 0x20000n | (1n << BigInt(16 + i)) })).policy;
      for (const f of flags) if (f) assert.equal(p[f], f === flag, `bit ${16 + i}: ${f}`);
    });
    const p = parseSnpReport(buildReport({ policy: 0x20000n | 0x0207n })).policy;
    assert.equal(p.abiMajor, 2);
    assert.equal(p.abiMinor, 7);
  });

  test('platform info: bits 0-5 and 7 decode; other bits are kept as unknownBits (validation refuses them)', () => {
    const unknown = parseSnpReport(buildReport({ platformInfo: (1n << 6n) | (1n << 40n) })).platformInfo;
    assert.equal(unknown.unknownBits, (1n << 6n) | (1n << 40n));
    const pi = parseSnpReport(buildReport({ platformInfo: 0xbfn })).platformInfo;
    assert.deepEqual(pi, { raw: 0xbfn, smtEnabled: true, tsmeEnabled: true, eccEnabled: true, raplDisabled: true, ciphertextHidingEnabled: true, aliasCheckComplete: true, tioEnabled: true, unknownBits: 0n });
  });

  test('VMPL above 3 → SNP_BAD_VMPL; signature algorithm other than 1 → SNP_UNSUPPORTED_SIGNATURE_ALGO', () => {
    assert.equal(parseSnpReport(buildReport({ vmpl: 3 })).vmpl, 3);
    expectCoffer(() => parseSnpReport(buildReport({ vmpl: 4 })), 'SNP_BAD_VMPL', { kind: 'input' });
    for (const a of [0, 2, 0xffffffff]) expectCoffer(() => parseSnpReport(buildReport({ signatureAlgo: a })), 'SNP_UNSUPPORTED_SIGNATURE_ALGO', { kind: 'input' });
  });

  test('r or s wider than 384 bits → SNP_BAD_SIGNATURE_FORMAT', () => {
    for (const off of [0x2a0 + 48, 0x2a0 + 71, 0x2e8 + 48, 0x2e8 + 71]) {
      const b = Buffer.from(base);
      b[off] = 1;
      expectCoffer(() => parseSnpReport(b), 'SNP_BAD_SIGNATURE_FORMAT', { kind: 'input' });
    }
  });

  test('every field is read from its ABI offset (against the independent report builder)', () => {
    const fill = (n: number, v: number) => Buffer.alloc(n, v);
    const tcb = (n: number) => ({ bl: n, tee: n + 1, snp: n + 2, ucode: n + 3 });
    const b = buildReport({
      version: 3, guestSvn: 0x01020304, policy: 0x3001fn, familyId: fill(16, 0xf1), imageId: fill(16, 0x11), vmpl: 2,
      currentTcb: tcb(10), reportedTcb: tcb(20), committedTcb: tcb(30), launchTcb: tcb(40), platformInfo: 0x25n,
      reportData: fill(64, 0xd0), measurement: fill(48, 0x3e), hostData: fill(32, 0x40), idKeyDigest: fill(48, 0x1d), authorKeyDigest: fill(48, 0xa0),
      reportId: fill(32, 0x1a), reportIdMa: fill(32, 0x3a), chipId: fill(64, 0xc1), cpuidFamily: 0x19, cpuidModel: 0x11, cpuidStepping: 2,
      currentVersion: { major: 1, minor: 55, build: 40 }, committedVersion: { major: 1, minor: 54, build: 3 },
    });
    b.fill(0x5e, 0x2a0, 0x2a0 + 48);
    b.fill(0x5f, 0x2e8, 0x2e8 + 48);
    b[0x2a0] = 0x01; // little-endian: the least significant byte of r
    const r = parseSnpReport(b);
    assert.equal(r.guestSvn, 0x01020304);
    assert.equal(r.policy.raw, 0x3001fn);
    assert.ok(r.familyId.equals(fill(16, 0xf1)) && r.imageId.equals(fill(16, 0x11)));
    assert.equal(r.vmpl, 2);
    assert.equal(r.signatureAlgo, 1);
    assert.equal(r.currentTcb, encodeTcb('Milan', tcb(10)));
    assert.equal(r.reportedTcb, encodeTcb('Milan', tcb(20)));
    assert.equal(r.committedTcb, encodeTcb('Milan', tcb(30)));
    assert.equal(r.launchTcb, encodeTcb('Milan', tcb(40)));
    assert.equal(r.platformInfo.raw, 0x25n);
    for (const [got, want] of [
      [r.reportData, fill(64, 0xd0)], [r.measurement, fill(48, 0x3e)], [r.hostData, fill(32, 0x40)], [r.idKeyDigest, fill(48, 0x1d)],
      [r.authorKeyDigest, fill(48, 0xa0)], [r.reportId, fill(32, 0x1a)], [r.reportIdMa, fill(32, 0x3a)], [r.chipId, fill(64, 0xc1)],
    ] as [Buffer, Buffer][]) assert.ok(got.equals(want), `${got.toString('hex').slice(0, 8)} ≠ ${want.toString('hex').slice(0, 8)}`);
    assert.deepEqual(r.cpuid, { family: 0x19, model: 0x11, stepping: 2 });
    assert.deepEqual(r.currentVersion, { major: 1, minor: 55, build: 40 });
    assert.deepEqual(r.committedVersion, { major: 1, minor: 54, build: 3 });
    assert.equal(r.launchMitVector, undefined);
    // r and s come out big-endian.
    assert.equal(r.signature.r[47], 0x01);
    assert.equal(r.signature.r[0], 0x5e);
    assert.ok(r.signature.s.equals(fill(48, 0x5f)));
  });

  test('hex, base64 and base64url forms decode to the same report as the raw bytes', () => {
    for (const raw of REAL_REPORTS) {
      const hex = raw.toString('hex');
      const b64 = raw.toString('base64');
      const forms: [string, string, 'hex' | 'base64'][] = [
        ['hex', hex, 'hex'],
        ['HEX', hex.toUpperCase(), 'hex'],
        ['hex, 64 a line, trailing newline', `${hex.replace(/(.{64})/g, '$1\n')}\n`, 'hex'],
        ['hex, spaces', hex.replace(/(..)/g, '$1 '), 'hex'],
        ['base64', b64, 'base64'],
        ['base64, PEM-like 76-column lines', `${b64.replace(/(.{76})/g, '$1\r\n')}\r\n`, 'base64'],
        ['base64url', raw.toString('base64url'), 'base64'],
        ['base64url, padded', raw.toString('base64').replace(/\+/g, '-').replace(/\//g, '_'), 'base64'],
      ];
      const parsed = parseSnpReport(raw);
      for (const [name, text, form] of forms) {
        const ev = decodeSnpEvidence(Buffer.from(text, 'latin1'));
        assert.equal(ev.form, form, name);
        assert.ok(ev.report.equals(raw), name);
        assert.deepEqual(parseSnpReport(ev.report), parsed, name);
        assert.deepEqual(ev.certificates, []);
      }
      assert.equal(decodeSnpEvidence(raw).form, 'raw');
    }
  });

  test('decodeSnpEvidence reads a Uint8Array view at a non-zero offset, and returns a copy', () => {
    const raw = REAL_REPORTS[0] as Buffer;
    const big = new Uint8Array(raw.length + 100);
    big.set(raw, 37);
    const view = big.subarray(37, 37 + raw.length);
    const ev = decodeSnpEvidence(view);
    assert.ok(ev.report.equals(raw));
    big[37] = 0xff;
    assert.equal(ev.report[0], raw[0]);
    const hexView = new Uint8Array(Buffer.concat([Buffer.from('xx'), Buffer.from(raw.toString('hex'))]));
    assert.ok(decodeSnpEvidence(hexView.subarray(2)).report.equals(raw));
  });

  test('text that is neither → SNP_BAD_INPUT', () => {
    for (const t of ['', 'hello', 'zz'.repeat(1184), 'ab'.repeat(1183), Buffer.alloc(1000, 0x41).toString('latin1')]) {
      expectCoffer(() => decodeSnpEvidence(Buffer.from(t, 'latin1')), 'SNP_BAD_INPUT', { kind: 'input' });
    }
  });

  test('certificate table: the real auxblob parses; an entry pointing outside the blob or into the table → SNP_BAD_CERT_TABLE', () => {
    const entries = parseCertTable(AUXBLOB);
    assert.deepEqual(entries.map((e) => e.role), ['ARK', 'ASK', 'VCEK']);

    const vcek = REAL_CERT_DERS[0] as Buffer;
    const good = certTable([{ guid: GUIDS.VCEK, data: vcek }]);
    assert.equal(certificatesFromTable(parseCertTable(good))[0]?.subjectCn, 'SEV-VCEK');

    const outside = Buffer.from(good);
    outside.writeUInt32LE(good.length - 10, 16); // offset near the end, the full length beyond it
    expectCoffer(() => parseCertTable(outside), 'SNP_BAD_CERT_TABLE', { kind: 'input', message: /points outside the blob/ });
    const tooLong = Buffer.from(good);
    tooLong.writeUInt32LE(vcek.length + 1, 20);
    expectCoffer(() => parseCertTable(tooLong), 'SNP_BAD_CERT_TABLE');
    const huge = Buffer.from(good);
    huge.writeUInt32LE(0xffffffff, 16);
    huge.writeUInt32LE(0xffffffff, 20);
    expectCoffer(() => parseCertTable(huge), 'SNP_BAD_CERT_TABLE');
    const intoHeader = Buffer.from(good);
    intoHeader.writeUInt32LE(0, 16);
    expectCoffer(() => parseCertTable(intoHeader), 'SNP_BAD_CERT_TABLE');
    // The same through the TSM paths.
    expectCoffer(() => fromTsm(REAL_REPORTS[0] as Buffer, outside), 'SNP_BAD_CERT_TABLE');
    expectCoffer(() => decodeSnpEvidence(cborEncode({ outblob: new Uint8Array(REAL_REPORTS[0] as Buffer), auxblob: new Uint8Array(outside) })), 'SNP_BAD_CERT_TABLE');
  });

  test('certificate table: no terminator → TRUNCATED; more than 64 entries → SNP_BAD_CERT_TABLE; only a terminator → no entries', () => {
    expectCoffer(() => parseCertTable(certTable([{ guid: GUIDS.VCEK, data: REAL_CERT_DERS[0] as Buffer }], false).subarray(0, 24)), 'TRUNCATED', { kind: 'input' });
    const many = Array.from({ length: 65 }, () => ({ guid: GUIDS.ASK, data: Buffer.alloc(1) }));
    expectCoffer(() => parseCertTable(certTable(many)), 'SNP_BAD_CERT_TABLE', { message: /more than 64/ });
    assert.deepEqual(parseCertTable(Buffer.alloc(24)), []);
    // An unknown GUID is kept as an entry but yields no certificate.
    const unknown = parseCertTable(certTable([{ guid: 'ff'.repeat(16), data: Buffer.from('not a cert') }]));
    assert.equal(unknown[0]?.role, undefined);
    assert.deepEqual(certificatesFromTable(unknown), []);
  });

  test('TSM CBOR: a provider other than sev_guest, or an outblob that is no byte string → SNP_BAD_INPUT', () => {
    const outblob = new Uint8Array(REAL_REPORTS[0] as Buffer);
    expectCoffer(() => decodeSnpEvidence(cborEncode({ outblob, provider: 'tdx_guest' })), 'SNP_BAD_INPUT', { kind: 'input', message: /tdx_guest/ });
    expectCoffer(() => decodeSnpEvidence(cborEncode({ outblob: 'abc', provider: 'sev_guest' })), 'SNP_BAD_INPUT', { message: /not a byte string/ });
    assert.equal(decodeSnpEvidence(cborEncode({ outblob, provider: 'sev_guest' })).form, 'tsm-cbor');
  });
});
