// The fake AMD is only worth something if it looks like the real one to a real tool: these tests
// hold it against `openssl` and against the real AMD certificates and reports in shared/vectors.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { X509Certificate, generateKeyPairSync, verify as cryptoVerify } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  AMD_OID,
  FAKE_AMD_AT,
  REPORT_SIZE,
  SIGNED_LENGTH,
  buildReport,
  defaultChipId,
  defaultTcb,
  encodeTcb,
  makeFakeAmd,
  reportSignatureP1363,
  signReport,
} from './amd-ca.js';
import type { ReportFields, SnpProduct, TcbParts } from './amd-ca.js';

const VECTORS = new URL('../../../shared/vectors/amd-snp/', import.meta.url).pathname;
const vector = (rel: string): Buffer => readFileSync(join(VECTORS, rel));
const PRODUCTS: SnpProduct[] = ['Milan', 'Genoa', 'Turin'];

const work = mkdtempSync(join(tmpdir(), 'coffer-amd-ca-'));
after(() => rmSync(work, { recursive: true, force: true }));
let fileCounter = 0;
function tmpFile(name: string, data: Buffer | string): string {
  const p = join(work, `${fileCounter++}-${name}`);
  writeFileSync(p, data);
  return p;
}

function openssl(args: string[]): { status: number; out: string } {
  const r = spawnSync('openssl', args, { encoding: 'utf8' });
  if (r.error) throw new Error(`cannot run openssl (install the Debian package "openssl"): ${r.error.message}`);
  return { status: r.status ?? -1, out: `${r.stdout}${r.stderr}` };
}

const attime = (d: Date): string => String(Math.floor(d.getTime() / 1000));

interface Asn1Line {
  offset: number;
  depth: number;
  headerLength: number;
  length: number;
  kind: 'prim' | 'cons';
  text: string;
}

function asn1parse(der: Buffer): Asn1Line[] {
  const r = openssl(['asn1parse', '-inform', 'DER', '-in', tmpFile('x.der', der)]);
  assert.equal(r.status, 0, r.out);
  const lines: Asn1Line[] = [];
  for (const line of r.out.split('\n')) {
    const m = /^\s*(\d+):d=(\d+)\s+hl=\s*(\d+)\s+l=\s*(\d+)\s+(prim|cons):\s*(.*?)\s*$/.exec(line);
    if (!m) continue;
    lines.push({
      offset: Number(m[1]),
      depth: Number(m[2]),
      headerLength: Number(m[3]),
      length: Number(m[4]),
      kind: m[5] as 'prim' | 'cons',
      text: (m[6] ?? '').replace(/\s+:/, ':'),
    });
  }
  return lines;
}

/** The structure openssl sees, with the values that legitimately differ (times, key ids) blanked. */
function shape(der: Buffer): string[] {
  const lines = asn1parse(der);
  return lines.map((l, i) => {
    let text = l.text;
    if (/^(UTCTIME|GENERALIZEDTIME):/.test(text)) text = text.replace(/:.*/, ':<time>');
    const prev = lines[i - 1]?.text ?? '';
    if (/Key Identifier$/.test(prev) && text.startsWith('OCTET STRING')) text = 'OCTET STRING <key id>';
    return `${l.depth} ${l.kind} ${text}`;
  });
}

/** The tbsCertificate's [3] extensions element, byte for byte. */
function extensionsBlock(der: Buffer): Buffer {
  const ext = asn1parse(der).find((l) => l.depth === 2 && l.text === 'cont [ 3 ]');
  assert.ok(ext, 'certificate has no extensions');
  return der.subarray(ext.offset, ext.offset + ext.headerLength + ext.length);
}

/** (extension OID, extnValue hex) pairs in order. */
function extensionValues(der: Buffer): [string, string][] {
  const lines = asn1parse(der);
  const out: [string, string][] = [];
  lines.forEach((l, i) => {
    const next = lines[i + 1];
    if (l.depth === 5 && l.text.startsWith('OBJECT:1.3.6.1.4.1.3704.') && next) {
      out.push([l.text.slice('OBJECT:'.length), der.subarray(next.offset + next.headerLength, next.offset + next.headerLength + next.length).toString('hex')]);
    }
  });
  return out;
}

function pemCerts(pem: string): Buffer[] {
  return [...pem.matchAll(/-----BEGIN CERTIFICATE-----([\s\S]*?)-----END CERTIFICATE-----/g)].map((m) => Buffer.from(m[1] ?? '', 'base64'));
}

function verifyReport(report: Buffer, vcekDer: Buffer): boolean {
  const key = new X509Certificate(vcekDer).publicKey;
  return cryptoVerify('sha384', report.subarray(0, SIGNED_LENGTH), { key, dsaEncoding: 'ieee-p1363' }, reportSignatureP1363(report));
}

// Real go-sev-guest vector: Milan-B0 chip 3ac3fe21…, TCB bl2 tee0 snp5 ucode68 (manifest).
const REAL_MILAN_TCB: TcbParts = { bl: 2, tee: 0, snp: 5, ucode: 68 };
const REAL_MILAN_CHIP = Buffer.from(
  '3ac3fe21e13fb0990eb28a802e3fb6a29483a6b0753590c951bdd3b8e53786184ca39e359669a2b76a1936776b564ea464cdce40c05f63c9b610c5068b006b5d',
  'hex',
);

test('generation is cached per product and reports how long it takes', (t) => {
  for (const product of PRODUCTS) {
    const start = performance.now();
    const amd = makeFakeAmd(product);
    const first = performance.now() - start;
    assert.equal(makeFakeAmd(product), amd);
    t.diagnostic(`${product}: ARK+ASK ${first.toFixed(0)} ms`);
  }
});

for (const product of PRODUCTS) {
  test(`${product}: openssl verify accepts ARK -> ASK -> VCEK and ARK -> ASVK -> VLEK inside the validity window`, () => {
    const amd = makeFakeAmd(product);
    const vcek = amd.issueVcek({ chipId: defaultChipId(product), tcb: defaultTcb(product) });
    const vlek = amd.issueVlek({ tcb: defaultTcb(product) });
    const ark = tmpFile('ark.pem', amd.ark.pem);
    const ask = tmpFile('ask.pem', amd.ask.pem);
    const asvk = tmpFile('asvk.pem', amd.asvk.pem);
    const vcekFile = tmpFile('vcek.pem', vcek.pem);
    const vlekFile = tmpFile('vlek.pem', vlek.pem);
    const at = attime(FAKE_AMD_AT);

    let r = openssl(['verify', '-attime', at, '-CAfile', ark, '-untrusted', ask, vcekFile]);
    assert.equal(r.status, 0, r.out);
    r = openssl(['verify', '-attime', at, '-CAfile', ark, '-untrusted', asvk, vlekFile]);
    assert.equal(r.status, 0, r.out);
    // The KDS cert_chain bundles work as the untrusted set too.
    r = openssl(['verify', '-attime', at, '-CAfile', ark, '-untrusted', tmpFile('chain.pem', amd.vcekChainPem), vcekFile]);
    assert.equal(r.status, 0, r.out);

    // Negative controls: the same tool rejects the wrong intermediate and a time outside the window.
    r = openssl(['verify', '-attime', at, '-CAfile', ark, '-untrusted', asvk, vcekFile]);
    assert.notEqual(r.status, 0, r.out);
    r = openssl(['verify', '-attime', attime(new Date('2032-01-01T00:00:00Z')), '-CAfile', ark, '-untrusted', ask, vcekFile]);
    assert.notEqual(r.status, 0, r.out);
    assert.match(r.out, /expired/);
    const otherArk = tmpFile('other-ark.pem', makeFakeAmd(product === 'Milan' ? 'Genoa' : 'Milan').ark.pem);
    r = openssl(['verify', '-attime', at, '-CAfile', otherArk, '-untrusted', ask, vcekFile]);
    assert.notEqual(r.status, 0, r.out);
  });
}

test('Milan VCEK has the same ASN.1 as the real go-sev-guest VCEK; its extensions are byte-identical for the same chip and TCB', () => {
  const real = vector('go-sev-guest/vcek.der');
  // That 2022 VCEK spells out the PSS trailerField; ask for the same.
  const fake = makeFakeAmd('Milan').issueVcek({ chipId: REAL_MILAN_CHIP, tcb: REAL_MILAN_TCB, pssTrailerField: true });
  assert.deepEqual(shape(fake.der), shape(real));
  assert.deepEqual(extensionsBlock(fake.der), extensionsBlock(real));
});

test('Genoa VCEK matches the real 2025 trustee VCEK (no explicit PSS trailer, productName "Genoa")', () => {
  const real = vector('trustee/e2e-vcek.der');
  const chipId = Buffer.from(
    '371c55d6d15cb50f16dc31d39a24e300caaabff4431e841111429b73ec45ad67ea6e687ffae7bf84b54a5d0e6d79b3ef6ff0bd8b4cff94c2163af5c5de8718e8',
    'hex',
  );
  const fake = makeFakeAmd('Genoa').issueVcek({ chipId, tcb: { bl: 10, tee: 0, snp: 23, ucode: 25 } });
  assert.deepEqual(shape(fake.der), shape(real));
  assert.deepEqual(extensionsBlock(fake.der), extensionsBlock(real));
});

test('Milan VLEK matches the real AWS VLEK (csp id, no hwID)', () => {
  const real = vector('trustee/test-vlek.der');
  const fake = makeFakeAmd('Milan').issueVlek({ tcb: { bl: 4, tee: 0, snp: 24, ucode: 217 }, cspId: 'CN=cc-us-east-2.amazonaws.com' });
  assert.deepEqual(shape(fake.der), shape(real));
  assert.deepEqual(extensionsBlock(fake.der), extensionsBlock(real));
});

test('ARK, ASK and ASVK have the same ASN.1 as AMD’s (bar key size)', () => {
  for (const product of PRODUCTS) {
    const amd = makeFakeAmd(product);
    const lower = product.toLowerCase();
    const [realAsk, realArk] = pemCerts(readFileSync(join(VECTORS, `amd-certs/ask_ark_${lower}${product === 'Turin' ? '_vcek' : ''}.pem`), 'utf8'));
    const [realAsvk] = pemCerts(readFileSync(join(VECTORS, `amd-certs/ask_ark_${lower}_vlek.pem`), 'utf8'));
    assert.ok(realAsk && realArk && realAsvk);
    assert.deepEqual(shape(amd.ark.der), shape(realArk), `${product} ARK`);
    assert.deepEqual(shape(amd.ask.der), shape(realAsk), `${product} ASK`);
    assert.deepEqual(shape(amd.asvk.der), shape(realAsvk), `${product} ASVK`);
  }
});

test('Turin VCEK: fmcSPL extension, 8-byte hwID, TCB extensions in KDS order', () => {
  const chipId = defaultChipId('Turin');
  const vcek = makeFakeAmd('Turin').issueVcek({ chipId, tcb: { fmc: 3, bl: 1, tee: 2, snp: 4, ucode: 0x4c } });
  const exts = extensionValues(vcek.der);
  assert.deepEqual(exts, [
    [AMD_OID.structVersion, '020100'],
    [AMD_OID.productName, Buffer.concat([Buffer.from([0x16, 5]), Buffer.from('Turin')]).toString('hex')],
    [AMD_OID.blSpl, '020101'],
    [AMD_OID.teeSpl, '020102'],
    [AMD_OID.spl4, '020100'],
    [AMD_OID.spl5, '020100'],
    [AMD_OID.spl6, '020100'],
    [AMD_OID.spl7, '020100'],
    [AMD_OID.snpSpl, '020104'],
    [AMD_OID.ucodeSpl, '02014c'],
    [AMD_OID.fmcSpl, '020103'],
    [AMD_OID.hwId, chipId.subarray(0, 8).toString('hex')],
  ]);
});

test('leaf tweaks: omitted and extra extensions, a reused key, a high-bit SPL value', () => {
  const amd = makeFakeAmd('Milan');
  const first = amd.issueVcek({ chipId: defaultChipId('Milan'), tcb: defaultTcb('Milan') });
  const again = amd.issueVcek({
    chipId: defaultChipId('Milan'),
    tcb: { bl: 0x80, tee: 0, snp: 1, ucode: 0xff },
    key: first.key,
    omitExtensions: [AMD_OID.hwId],
    extraExtensions: [{ oid: '1.2.3.4', value: Buffer.from([5, 0]) }],
  });
  assert.equal(new X509Certificate(first.der).publicKey.export({ format: 'jwk' }).x, new X509Certificate(again.der).publicKey.export({ format: 'jwk' }).x);
  const exts = new Map(extensionValues(again.der));
  assert.equal(exts.has(AMD_OID.hwId), false);
  assert.equal(exts.get(AMD_OID.blSpl), '02020080'); // DER INTEGER keeps 0x80 positive
  assert.equal(exts.get(AMD_OID.ucodeSpl), '020200ff');
  assert.match(openssl(['x509', '-inform', 'DER', '-in', tmpFile('t.der', again.der), '-noout', '-text']).out, /1\.2\.3\.4:/);
});

test('CRL verifies against the ARK with openssl and lists the revoked serials; openssl honours it', () => {
  const amd = makeFakeAmd('Milan');
  const askSerial = new X509Certificate(amd.ask.der).serialNumber; // hex
  const crl = amd.crl({ revokedSerials: [BigInt(`0x${askSerial}`), 0xdeadbeefn] });
  const ark = tmpFile('ark.pem', amd.ark.pem);
  const crlFile = tmpFile('crl.pem', crl.pem);

  let r = openssl(['crl', '-in', crlFile, '-CAfile', ark, '-noout']);
  assert.equal(r.status, 0, r.out);
  assert.match(r.out, /verify OK/);
  r = openssl(['crl', '-inform', 'DER', '-in', tmpFile('crl.der', crl.der), '-noout', '-text']);
  assert.equal(r.status, 0, r.out);
  assert.match(r.out, new RegExp(`Serial Number: 0*${askSerial}\\b`, 'i'));
  assert.match(r.out, /Serial Number: DEADBEEF/i);
  assert.match(r.out, /Issuer: .*CN = ARK-Milan/);
  assert.match(r.out, /rsassaPss[\s\S]*Hash Algorithm: sha384[\s\S]*Salt Length: 0x30/);

  // The CRL revokes the ASK as openssl reads it; without the ASK's serial it does not.
  const at = attime(FAKE_AMD_AT);
  const ask = tmpFile('ask.pem', amd.ask.pem);
  r = openssl(['verify', '-attime', at, '-crl_check', '-CRLfile', crlFile, '-CAfile', ark, ask]);
  assert.notEqual(r.status, 0, r.out);
  assert.match(r.out, /revoked/);
  const clean = tmpFile('clean.pem', amd.crl({ revokedSerials: [] }).pem);
  r = openssl(['verify', '-attime', at, '-crl_check', '-CRLfile', clean, '-CAfile', ark, ask]);
  assert.equal(r.status, 0, r.out);

  // A CRL under the ARK's name but signed by another key fails openssl's check. (`openssl crl`
  // 3.0 prints "verify failure" yet exits 0, so the message is what tells.)
  const forgedKey = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
  const forged = tmpFile('forged.pem', amd.crl({ revokedSerials: [1], signingKey: forgedKey }).pem);
  r = openssl(['crl', '-in', forged, '-CAfile', ark, '-noout']);
  assert.match(r.out, /verify failure/);
  assert.doesNotMatch(r.out, /verify OK/);
});

for (const product of PRODUCTS) {
  test(`${product}: signReport signs like the firmware; one flipped byte breaks it`, () => {
    const amd = makeFakeAmd(product);
    const vcek = amd.issueVcek({ chipId: defaultChipId(product), tcb: defaultTcb(product) });
    const report = signReport(buildReport({ product, reportData: Buffer.alloc(64, 7) }), vcek.key);
    assert.equal(report.length, REPORT_SIZE);
    // r and s: 48 significant bytes each inside 72-byte fields, everything else in the 512 zero.
    assert.ok(report.subarray(0x2a0 + 48, 0x2e8).equals(Buffer.alloc(72 - 48)));
    assert.ok(report.subarray(0x2e8 + 48).equals(Buffer.alloc(REPORT_SIZE - 0x2e8 - 48)));

    // Conversion done here independently of reportSignatureP1363: LE fields -> BE r || s.
    const r = Buffer.from(report.subarray(0x2a0, 0x2a0 + 48)).reverse();
    const s = Buffer.from(report.subarray(0x2e8, 0x2e8 + 48)).reverse();
    const key = new X509Certificate(vcek.der).publicKey;
    const ok = (buf: Buffer): boolean =>
      cryptoVerify('sha384', buf.subarray(0, 0x2a0), { key, dsaEncoding: 'ieee-p1363' }, Buffer.concat([r, s]));
    assert.equal(ok(report), true);
    for (const at of [0x00, 0x50, 0x1a0, 0x29f]) {
      const flipped = Buffer.from(report);
      flipped[at] = (flipped[at] ?? 0) ^ 0x01;
      assert.equal(ok(flipped), false, `flip at ${at.toString(16)}`);
    }
    const badSig = Buffer.from(report);
    badSig[0x2a0] = (badSig[0x2a0] ?? 0) ^ 0x01;
    assert.equal(verifyReport(badSig, vcek.der), false);
    assert.equal(verifyReport(report, vcek.der), true);
    // A different chip's VCEK does not verify it.
    const other = amd.issueVcek({ chipId: defaultChipId(product), tcb: defaultTcb(product) });
    assert.equal(verifyReport(report, other.der), false);
  });
}

test('real hardware: attestation.bin verifies with the real VCEK under the same r/s conversion; the fake VCEK does not', () => {
  const real = vector('go-sev-guest/attestation.bin');
  const realVcek = vector('go-sev-guest/vcek.der');
  const r = Buffer.from(real.subarray(0x2a0, 0x2a0 + 48)).reverse();
  const s = Buffer.from(real.subarray(0x2e8, 0x2e8 + 48)).reverse();
  const key = new X509Certificate(realVcek).publicKey;
  assert.equal(cryptoVerify('sha384', real.subarray(0, 0x2a0), { key, dsaEncoding: 'ieee-p1363' }, Buffer.concat([r, s])), true);
  assert.deepEqual(reportSignatureP1363(real), Buffer.concat([r, s]));

  const fake = makeFakeAmd('Milan').issueVcek({ chipId: REAL_MILAN_CHIP, tcb: REAL_MILAN_TCB });
  assert.equal(verifyReport(real, fake.der), false);
  // Re-signing with the fake key: same signed bytes, a different signature, which only the fake verifies.
  const resigned = signReport(Buffer.from(real), fake.key);
  assert.ok(resigned.subarray(0, SIGNED_LENGTH).equals(real.subarray(0, SIGNED_LENGTH)));
  assert.ok(!resigned.subarray(SIGNED_LENGTH).equals(real.subarray(SIGNED_LENGTH)));
  assert.equal(verifyReport(resigned, fake.der), true);
  assert.equal(verifyReport(resigned, realVcek), false);
  // And AMD's own chain accepts that VCEK, so the conversion is proven on a key AMD certified.
  const [realAsk, realArk] = pemCerts(readFileSync(join(VECTORS, 'amd-certs/ask_ark_milan.pem'), 'utf8'));
  assert.ok(realAsk && realArk);
  const toPem = (der: Buffer): string => new X509Certificate(der).toString();
  const v = openssl([
    'verify', '-attime', attime(new Date('2025-01-01T00:00:00Z')),
    '-CAfile', tmpFile('real-ark.pem', toPem(realArk)),
    '-untrusted', tmpFile('real-ask.pem', toPem(realAsk)),
    tmpFile('real-vcek.pem', toPem(realVcek)),
  ]);
  assert.equal(v.status, 0, v.out);
});

/** Read the non-reserved fields of a real report at the documented offsets. */
function fieldsOf(report: Buffer, product: SnpProduct): ReportFields {
  const version = report.readUInt32LE(0);
  const keyInfo = report.readUInt32LE(0x48);
  const fw = (at: number): { build: number; minor: number; major: number } => ({
    build: report.readUInt8(at),
    minor: report.readUInt8(at + 1),
    major: report.readUInt8(at + 2),
  });
  const bytes = (at: number, n: number): Buffer => Buffer.from(report.subarray(at, at + n));
  return {
    product,
    version,
    guestSvn: report.readUInt32LE(0x04),
    policy: report.readBigUInt64LE(0x08),
    familyId: bytes(0x10, 16),
    imageId: bytes(0x20, 16),
    vmpl: report.readUInt32LE(0x30),
    signatureAlgo: report.readUInt32LE(0x34),
    currentTcb: report.readBigUInt64LE(0x38),
    platformInfo: report.readBigUInt64LE(0x40),
    authorKeyEn: (keyInfo & 1) !== 0,
    maskChipKey: (keyInfo & 2) !== 0,
    signingKey: (keyInfo >> 2) & 7,
    reportData: bytes(0x50, 64),
    measurement: bytes(0x90, 48),
    hostData: bytes(0xc0, 32),
    idKeyDigest: bytes(0xe0, 48),
    authorKeyDigest: bytes(0x110, 48),
    reportId: bytes(0x140, 32),
    reportIdMa: bytes(0x160, 32),
    reportedTcb: report.readBigUInt64LE(0x180),
    ...(version >= 3 ? { cpuidFamily: report[0x188], cpuidModel: report[0x189], cpuidStepping: report[0x18a] } : {}),
    chipId: bytes(0x1a0, 64),
    committedTcb: report.readBigUInt64LE(0x1e0),
    currentVersion: fw(0x1e8),
    committedVersion: fw(0x1ec),
    launchTcb: report.readBigUInt64LE(0x1f0),
  };
}

test('buildReport reproduces the signed region of real reports from their fields (every non-reserved byte is covered)', () => {
  const cases: [string, SnpProduct][] = [
    ['go-sev-guest/attestation.bin', 'Milan'],
    ['trustee/test-report.bin', 'Milan'],
    ['trustee/test-vlek-report.bin', 'Milan'],
    ['azure-derived/az-genoa-hcl-report.snp.bin', 'Genoa'],
    ['veraison/sevsnp-tsm-report.outblob.bin', 'Genoa'],
  ];
  for (const [file, product] of cases) {
    const real = vector(file);
    const rebuilt = buildReport(fieldsOf(real, product));
    assert.ok(rebuilt.subarray(0, SIGNED_LENGTH).equals(real.subarray(0, SIGNED_LENGTH)), file);
    assert.ok(rebuilt.subarray(SIGNED_LENGTH).equals(Buffer.alloc(REPORT_SIZE - SIGNED_LENGTH)), `${file}: unsigned`);
  }
});

test('encodeTcb matches the TCBs in real reports and the Turin layout', () => {
  // Manifest: go-sev-guest reported_tcb = 0x4405000000000002 (bl=2 tee=0 snp=5 ucode=68).
  assert.equal(encodeTcb('Milan', REAL_MILAN_TCB), 0x4405000000000002n);
  assert.equal(encodeTcb('Milan', REAL_MILAN_TCB), vector('go-sev-guest/attestation.bin').readBigUInt64LE(0x180));
  // Manifest: az-genoa reported_tcb bl=10 tee=0 snp=23 ucode=84.
  assert.equal(encodeTcb('Genoa', { bl: 10, tee: 0, snp: 23, ucode: 84 }), vector('azure-derived/az-genoa-hcl-report.snp.bin').readBigUInt64LE(0x180));
  const turin = Buffer.alloc(8);
  turin.writeBigUInt64LE(encodeTcb('Turin', { fmc: 1, bl: 2, tee: 3, snp: 4, ucode: 5 }));
  assert.equal(turin.toString('hex'), '0102030400000005');
  assert.throws(() => encodeTcb('Milan', { fmc: 1, bl: 0, tee: 0, snp: 0, ucode: 0 }), RangeError);
  assert.throws(() => encodeTcb('Genoa', { bl: 256, tee: 0, snp: 0, ucode: 0 }), RangeError);
});

test('buildReport: version-dependent fields, product defaults, key info bits', () => {
  const v2 = buildReport({ version: 2, product: 'Genoa' });
  assert.equal(v2.readUInt32LE(0), 2);
  assert.ok(v2.subarray(0x188, 0x1a0).equals(Buffer.alloc(0x18)), 'v2 has no CPUID');
  assert.ok(v2.subarray(0x1f8, SIGNED_LENGTH).equals(Buffer.alloc(SIGNED_LENGTH - 0x1f8)));
  assert.throws(() => buildReport({ version: 2, cpuidFamily: 0x19 }), RangeError);

  const expectCpuid: Record<SnpProduct, [number, number]> = { Milan: [0x19, 0x01], Genoa: [0x19, 0x11], Turin: [0x1a, 0x02] };
  for (const product of PRODUCTS) {
    const rep = buildReport({ product });
    assert.deepEqual([rep[0x188], rep[0x189]], expectCpuid[product]);
    assert.equal(rep.readBigUInt64LE(0x180), encodeTcb(product, defaultTcb(product)));
    assert.equal((rep.readBigUInt64LE(0x08) >> 17n) & 1n, 1n, 'policy bit 17');
  }

  const v5 = buildReport({ version: 5, product: 'Turin', launchMitVector: 0x11n, currentMitVector: 0x22n });
  assert.equal(v5.readBigUInt64LE(0x1f8), 0x11n);
  assert.equal(v5.readBigUInt64LE(0x200), 0x22n);
  assert.ok(v5.subarray(0x208, SIGNED_LENGTH).equals(Buffer.alloc(SIGNED_LENGTH - 0x208)));
  assert.throws(() => buildReport({ version: 3, launchMitVector: 1n }), RangeError);
  assert.throws(() => buildReport({ version: 4 }), RangeError);

  const vlek = buildReport({ signingKey: 1, authorKeyEn: true });
  assert.equal(vlek.readUInt32LE(0x48), 0b101);
  assert.ok(vlek.subarray(0x1a0, 0x1e0).equals(Buffer.alloc(64)), 'VLEK reports carry no chip id');
  assert.equal(buildReport({ maskChipKey: true, signingKey: 7 }).readUInt32LE(0x48), 0b11110);
  assert.throws(() => buildReport({ measurement: Buffer.alloc(47) }), RangeError);
  assert.throws(() => signReport(Buffer.alloc(100), makeFakeAmd('Milan').ask.key), RangeError);
  const rsaKey: KeyObject = makeFakeAmd('Milan').ask.key;
  assert.throws(() => signReport(buildReport(), rsaKey), TypeError);
});
