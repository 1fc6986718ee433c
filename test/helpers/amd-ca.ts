/**
 * A test certificate authority that plays AMD: an ARK/ASK/ASVK hierarchy, VCEK and VLEK leaves
 * carrying AMD's extensions, CRLs, and SEV-SNP reports signed like the firmware signs them.
 *
 * Everything is built in-process (a small DER encoder plus node:crypto, which is OpenSSL) so that
 * issuing is synchronous and cheap; the certificates are byte-shaped like the ones AMD's KDS serves
 * (checked against real ones with `openssl` in amd-ca.test.ts). Deliberately independent of src/:
 * a helper that shared code with the verifier could not catch the verifier's mistakes.
 *
 * Shapes copied from real AMD certificates (see ../../../shared/vectors/amd-snp):
 * - Names: OU, C, L, ST, O, CN in that order; C is a PrintableString, the rest UTF8String.
 * - ARK: KeyUsage critical keyCertSign|cRLSign, SKI, BasicConstraints critical CA:TRUE, CRL DP.
 * - ASK/ASVK: SKI, AKI, BasicConstraints critical CA:TRUE pathlen:0, KeyUsage critical keyCertSign
 *   (the real ones carry no cRLSign, and encode it non-minimally as 03 02 01 04), CRL DP (vcek/...
 *   for the ASK, vlek/... for the ASVK).
 * - All signatures RSASSA-PSS SHA-384, MGF1-SHA-384, salt 48. AMD's CA certificates and its 2022-era
 *   VCEKs spell out the default trailerField [3] 1; VCEKs and VLEKs issued since 2024 omit it.
 * - VCEK/VLEK: serial 0, no AKI/SKI/KeyUsage, AMD extensions in KDS order:
 *   1.1, 1.2, 3.1, 3.2, 3.4, 3.5, 3.6, 3.7, 3.3, 3.8, (3.9 Turin), then 1.4 (VCEK) or 1.5 (VLEK).
 */
import { createHash, constants, generateKeyPairSync, sign as cryptoSign, createPublicKey } from 'node:crypto';
import type { KeyObject } from 'node:crypto';

export type SnpProduct = 'Milan' | 'Genoa' | 'Turin';

/** Security patch levels of one TCB. `fmc` exists only on Turin. */
export interface TcbParts {
  bl: number;
  tee: number;
  snp: number;
  ucode: number;
  fmc?: number;
}

export interface IssuedCert {
  der: Buffer;
  pem: string;
  key: KeyObject;
}

/** An extension spelled out by hand, for tests that need certificates AMD would not issue. */
export interface RawExtension {
  oid: string;
  /** The extnValue OCTET STRING's content. */
  value: Buffer;
  critical?: boolean;
}

/** Knobs shared by VCEK and VLEK issuance; the defaults give what AMD's KDS serves. */
export interface LeafTweaks {
  notBefore?: Date;
  notAfter?: Date;
  serial?: number | bigint;
  /** Reuse a P-384 private key (e.g. re-issue the same chip key at another TCB). */
  key?: KeyObject;
  /** structVersion extension value (default 0). */
  structVersion?: number;
  /** Spell out the PSS trailerField [3] 1 as AMD's 2022-era VCEKs do (default false). */
  pssTrailerField?: boolean;
  /** Drop AMD extensions by OID, e.g. '1.3.6.1.4.1.3704.1.4' for a VCEK without hwID. */
  omitExtensions?: string[];
  /** Appended after AMD's extensions. */
  extraExtensions?: RawExtension[];
}

export interface IssueVcekOptions extends LeafTweaks {
  chipId: Buffer;
  tcb: TcbParts;
  productName?: string;
  /** Raw hwID extension value; default chipId (64 bytes), or its first 8 bytes on Turin. */
  hwId?: Buffer;
}

export interface IssueVlekOptions extends LeafTweaks {
  tcb: TcbParts;
  cspId?: string;
  productName?: string;
}

export interface CrlOptions {
  revokedSerials: (number | bigint)[];
  thisUpdate?: Date;
  nextUpdate?: Date;
  /** Sign with this RSA key instead of the ARK's (the issuer name stays ARK-<product>). */
  signingKey?: KeyObject;
}

export interface FakeAmd {
  product: SnpProduct;
  /** Self-signed, CN=ARK-<product>. */
  ark: IssuedCert;
  /** CN=SEV-<product>, signed by the ARK. */
  ask: IssuedCert;
  /** CN=SEV-VLEK-<product>, signed by the ARK (generated on first use). */
  asvk: IssuedCert;
  /** KDS `vcek/v1/<product>/cert_chain` body: ASK then ARK, PEM. */
  vcekChainPem: string;
  /** KDS `vlek/v1/<product>/cert_chain` body: ASVK then ARK, PEM. */
  vlekChainPem: string;
  /** VCEK: P-384 leaf signed by ASK, CN=SEV-VCEK, with AMD's extensions for this chip and TCB. */
  issueVcek(opts: IssueVcekOptions): IssuedCert;
  /** VLEK: P-384 leaf signed by ASVK, CN=SEV-VLEK, with the TCB extensions and csp id, no hwID. */
  issueVlek(opts: IssueVlekOptions): IssuedCert;
  /** CRL issued and signed by the ARK (RSA-PSS SHA-384), revoking the given certificate serials. */
  crl(opts: CrlOptions): { der: Buffer; pem: string };
}

// ---------------------------------------------------------------------------------------------
// Defaults. Every default validity window contains FAKE_AMD_AT, so a test that verifies "at"
// that instant needs no dates of its own.

/** An instant inside every default validity window (certificates and CRL). */
export const FAKE_AMD_AT = new Date('2025-06-01T00:00:00Z');
const CA_NOT_BEFORE = new Date('2020-01-01T00:00:00Z');
const CA_NOT_AFTER = new Date('2045-01-01T00:00:00Z');
const LEAF_NOT_BEFORE = new Date('2024-01-01T00:00:00Z');
const LEAF_NOT_AFTER = new Date('2031-01-01T00:00:00Z');
const CRL_THIS_UPDATE = new Date('2025-05-01T00:00:00Z');
const CRL_NEXT_UPDATE = new Date('2025-07-01T00:00:00Z');

export const AMD_OID = {
  structVersion: '1.3.6.1.4.1.3704.1.1',
  productName: '1.3.6.1.4.1.3704.1.2',
  blSpl: '1.3.6.1.4.1.3704.1.3.1',
  teeSpl: '1.3.6.1.4.1.3704.1.3.2',
  snpSpl: '1.3.6.1.4.1.3704.1.3.3',
  spl4: '1.3.6.1.4.1.3704.1.3.4',
  spl5: '1.3.6.1.4.1.3704.1.3.5',
  spl6: '1.3.6.1.4.1.3704.1.3.6',
  spl7: '1.3.6.1.4.1.3704.1.3.7',
  ucodeSpl: '1.3.6.1.4.1.3704.1.3.8',
  fmcSpl: '1.3.6.1.4.1.3704.1.3.9',
  hwId: '1.3.6.1.4.1.3704.1.4',
  cspId: '1.3.6.1.4.1.3704.1.5',
} as const;

const PRODUCT_INFO: Record<
  SnpProduct,
  { index: number; askSerial: number; vcekProductName: string; family: number; model: number; stepping: number; tcb: TcbParts }
> = {
  Milan: { index: 1, askSerial: 1, vcekProductName: 'Milan-B0', family: 0x19, model: 0x01, stepping: 0x01, tcb: { bl: 4, tee: 0, snp: 22, ucode: 213 } },
  Genoa: { index: 2, askSerial: 2, vcekProductName: 'Genoa', family: 0x19, model: 0x11, stepping: 0x01, tcb: { bl: 10, tee: 0, snp: 23, ucode: 84 } },
  Turin: { index: 3, askSerial: 1, vcekProductName: 'Turin', family: 0x1a, model: 0x02, stepping: 0x01, tcb: { fmc: 1, bl: 1, tee: 1, snp: 3, ucode: 76 } },
};

/** A plausible current TCB for the product (what buildReport uses when given none). */
export function defaultTcb(product: SnpProduct): TcbParts {
  return { ...PRODUCT_INFO[product].tcb };
}

/** CPUID family/model/stepping that buildReport writes for the product in v3+ reports. */
export function productCpuid(product: SnpProduct): { family: number; model: number; stepping: number } {
  const p = PRODUCT_INFO[product];
  return { family: p.family, model: p.model, stepping: p.stepping };
}

/** A fixed 64-byte chip id per product; Turin's has 8 significant bytes and 56 zero bytes. */
export function defaultChipId(product: SnpProduct): Buffer {
  const id = createHash('sha512').update(`coffer fake chip ${product}`).digest();
  if (product === 'Turin') id.fill(0, 8);
  return id;
}

// ---------------------------------------------------------------------------------------------
// DER, just what certificates and CRLs need.

function derLength(n: number): Buffer {
  if (n < 0x80) return Buffer.from([n]);
  const bytes: number[] = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff);
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}

function tlv(tag: number, ...content: Buffer[]): Buffer {
  const body = Buffer.concat(content);
  return Buffer.concat([Buffer.from([tag]), derLength(body.length), body]);
}

const seq = (...c: Buffer[]): Buffer => tlv(0x30, ...c);
const set = (...c: Buffer[]): Buffer => tlv(0x31, ...c);
const explicit = (n: number, ...c: Buffer[]): Buffer => tlv(0xa0 | n, ...c);
const octets = (b: Buffer): Buffer => tlv(0x04, b);
const derNull = (): Buffer => Buffer.from([0x05, 0x00]);
const derTrue = (): Buffer => Buffer.from([0x01, 0x01, 0xff]);
const utf8 = (s: string): Buffer => tlv(0x0c, Buffer.from(s, 'utf8'));
const printable = (s: string): Buffer => tlv(0x13, Buffer.from(s, 'ascii'));
const ia5 = (s: string): Buffer => tlv(0x16, Buffer.from(s, 'ascii'));
const bitString = (b: Buffer, unusedBits = 0): Buffer => tlv(0x03, Buffer.from([unusedBits]), b);

function derInteger(value: number | bigint): Buffer {
  let v = BigInt(value);
  if (v < 0n) throw new RangeError(`negative INTEGER ${v} not supported`);
  const bytes: number[] = [];
  do {
    bytes.unshift(Number(v & 0xffn));
    v >>= 8n;
  } while (v > 0n);
  if ((bytes[0] ?? 0) & 0x80) bytes.unshift(0);
  return tlv(0x02, Buffer.from(bytes));
}

function derOid(dotted: string): Buffer {
  const arcs = dotted.split('.').map((a) => BigInt(a));
  const [a0, a1, ...rest] = arcs;
  if (a0 === undefined || a1 === undefined) throw new RangeError(`bad OID ${dotted}`);
  const out: number[] = [];
  for (const arc of [a0 * 40n + a1, ...rest]) {
    const chunk: number[] = [];
    let v = arc;
    do {
      chunk.unshift(Number(v & 0x7fn) | (chunk.length ? 0x80 : 0));
      v >>= 7n;
    } while (v > 0n);
    out.push(...chunk);
  }
  return tlv(0x06, Buffer.from(out));
}

/** RFC 5280: UTCTime through 2049, GeneralizedTime from 2050. */
function derTime(d: Date): Buffer {
  if (Number.isNaN(d.getTime())) throw new RangeError('invalid Date');
  const iso = d.toISOString(); // YYYY-MM-DDTHH:MM:SS.sssZ
  const digits = iso.slice(0, 4) + iso.slice(5, 7) + iso.slice(8, 10) + iso.slice(11, 13) + iso.slice(14, 16) + iso.slice(17, 19);
  const year = d.getUTCFullYear();
  if (year >= 1950 && year < 2050) return tlv(0x17, Buffer.from(`${digits.slice(2)}Z`, 'ascii'));
  return tlv(0x18, Buffer.from(`${digits}Z`, 'ascii'));
}

function pem(label: string, der: Buffer): string {
  const b64 = der.toString('base64').replace(/.{64}/g, '$&\n').replace(/\n$/, '');
  return `-----BEGIN ${label}-----\n${b64}\n-----END ${label}-----\n`;
}

const OID_RSASSA_PSS = '1.2.840.113549.1.1.10';
const OID_SHA384 = '2.16.840.1.101.3.4.2.2';
const OID_MGF1 = '1.2.840.113549.1.1.8';

function pssSha384AlgorithmId(explicitTrailer: boolean): Buffer {
  const sha384 = seq(derOid(OID_SHA384), derNull());
  return seq(
    derOid(OID_RSASSA_PSS),
    seq(
      explicit(0, sha384),
      explicit(1, seq(derOid(OID_MGF1), sha384)),
      explicit(2, derInteger(48)),
      ...(explicitTrailer ? [explicit(3, derInteger(1))] : []),
    ),
  );
}

function pssSign(data: Buffer, key: KeyObject): Buffer {
  return cryptoSign('sha384', data, { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 48 });
}

function amdName(cn: string): Buffer {
  const rdn = (oid: string, value: Buffer): Buffer => set(seq(derOid(oid), value));
  return seq(
    rdn('2.5.4.11', utf8('Engineering')),
    rdn('2.5.4.6', printable('US')),
    rdn('2.5.4.7', utf8('Santa Clara')),
    rdn('2.5.4.8', utf8('CA')),
    rdn('2.5.4.10', utf8('Advanced Micro Devices')),
    rdn('2.5.4.3', utf8(cn)),
  );
}

function extension(e: RawExtension): Buffer {
  return seq(derOid(e.oid), ...(e.critical ? [derTrue()] : []), octets(e.value));
}

function spkiDer(key: KeyObject): Buffer {
  const pub = key.type === 'private' ? createPublicKey(key) : key;
  return pub.export({ type: 'spki', format: 'der' });
}

/** RFC 5280 method 1: SHA-1 of the subjectPublicKey BIT STRING's bits. */
function keyIdentifier(spki: Buffer): Buffer {
  // SPKI = SEQ { AlgorithmIdentifier, BIT STRING }; walk past the outer header and the algorithm.
  const skipHeader = (buf: Buffer, at: number): { body: number; end: number } => {
    const first = buf[at + 1] ?? 0;
    if (first < 0x80) return { body: at + 2, end: at + 2 + first };
    const n = first & 0x7f;
    let len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + (buf[at + 2 + i] ?? 0);
    return { body: at + 2 + n, end: at + 2 + n + len };
  };
  const outer = skipHeader(spki, 0);
  const alg = skipHeader(spki, outer.body);
  const bits = skipHeader(spki, alg.end);
  return createHash('sha1').update(spki.subarray(bits.body + 1, bits.end)).digest();
}

interface CertSpec {
  serial: number | bigint;
  issuer: Buffer;
  subject: Buffer;
  notBefore: Date;
  notAfter: Date;
  spki: Buffer;
  extensions: RawExtension[];
  signer: KeyObject;
  explicitTrailer: boolean;
}

function buildCertificate(spec: CertSpec): Buffer {
  const alg = pssSha384AlgorithmId(spec.explicitTrailer);
  const tbs = seq(
    explicit(0, derInteger(2)),
    derInteger(spec.serial),
    alg,
    spec.issuer,
    seq(derTime(spec.notBefore), derTime(spec.notAfter)),
    spec.subject,
    spec.spki,
    ...(spec.extensions.length ? [explicit(3, seq(...spec.extensions.map(extension)))] : []),
  );
  return seq(tbs, alg, bitString(pssSign(tbs, spec.signer)));
}

const OID_SKI = '2.5.29.14';
const OID_KEY_USAGE = '2.5.29.15';
const OID_BASIC_CONSTRAINTS = '2.5.29.19';
const OID_CRL_DP = '2.5.29.31';
const OID_AKI = '2.5.29.35';
const OID_CRL_NUMBER = '2.5.29.20';

const crlDistributionPoint = (url: string): RawExtension => ({
  oid: OID_CRL_DP,
  // SEQ { DistributionPoint { [0] fullName { [0] GeneralNames { [6] URI } } } }
  value: seq(seq(explicit(0, explicit(0, tlv(0x86, Buffer.from(url, 'ascii')))))),
});
const akiKeyId = (keyId: Buffer): RawExtension => ({ oid: OID_AKI, value: seq(tlv(0x80, keyId)) });

// ---------------------------------------------------------------------------------------------
// TCB encoding.

function checkByte(name: string, v: number): number {
  if (!Number.isInteger(v) || v < 0 || v > 255) throw new RangeError(`TCB ${name} must be a byte, got ${v}`);
  return v;
}

/** The 64-bit TCB_VERSION of the product's layout (Turin moved fmc into byte 0). */
export function encodeTcb(product: SnpProduct, parts: TcbParts): bigint {
  const b = new Uint8Array(8);
  if (product === 'Turin') {
    b[0] = checkByte('fmc', parts.fmc ?? 0);
    b[1] = checkByte('bl', parts.bl);
    b[2] = checkByte('tee', parts.tee);
    b[3] = checkByte('snp', parts.snp);
  } else {
    if (parts.fmc !== undefined) throw new RangeError(`${product} TCB has no fmc field`);
    b[0] = checkByte('bl', parts.bl);
    b[1] = checkByte('tee', parts.tee);
    b[6] = checkByte('snp', parts.snp);
  }
  b[7] = checkByte('ucode', parts.ucode);
  return Buffer.from(b).readBigUInt64LE(0);
}

// ---------------------------------------------------------------------------------------------
// The hierarchy.

function amdTcbExtensions(product: SnpProduct, tcb: TcbParts, productName: string, structVersion: number): RawExtension[] {
  const int = (oid: string, v: number): RawExtension => ({ oid, value: derInteger(v) });
  const exts: RawExtension[] = [
    int(AMD_OID.structVersion, structVersion),
    { oid: AMD_OID.productName, value: ia5(productName) },
    int(AMD_OID.blSpl, checkByte('bl', tcb.bl)),
    int(AMD_OID.teeSpl, checkByte('tee', tcb.tee)),
    int(AMD_OID.spl4, 0),
    int(AMD_OID.spl5, 0),
    int(AMD_OID.spl6, 0),
    int(AMD_OID.spl7, 0),
    int(AMD_OID.snpSpl, checkByte('snp', tcb.snp)),
    int(AMD_OID.ucodeSpl, checkByte('ucode', tcb.ucode)),
  ];
  if (product === 'Turin') exts.push(int(AMD_OID.fmcSpl, checkByte('fmc', tcb.fmc ?? 0)));
  else if (tcb.fmc !== undefined) throw new RangeError(`${product} TCB has no fmc field`);
  return exts;
}

function newP384(): KeyObject {
  return generateKeyPairSync('ec', { namedCurve: 'P-384' }).privateKey;
}

function ensureP384Private(key: KeyObject): KeyObject {
  if (key.type !== 'private' || key.asymmetricKeyType !== 'ec' || key.asymmetricKeyDetails?.namedCurve !== 'secp384r1') {
    throw new TypeError('expected a private P-384 key');
  }
  return key;
}

function createFakeAmd(product: SnpProduct, notBefore: Date, notAfter: Date): FakeAmd {
  const info = PRODUCT_INFO[product];
  // AMD's serials: ARK 0xN0000, ASK 0xN0001 (0x20002 for Genoa's reissued ASK), ASVK 0xN0101.
  const serialBase = BigInt(info.index) << 16n;
  const rsa = (): KeyObject => generateKeyPairSync('rsa', { modulusLength: 2048, publicExponent: 65537 }).privateKey;
  const arkKey = rsa();
  const askKey = rsa();

  const arkName = amdName(`ARK-${product}`);
  const askName = amdName(`SEV-${product}`);
  const asvkName = amdName(`SEV-VLEK-${product}`);
  const arkSpki = spkiDer(arkKey);
  const arkKeyId = keyIdentifier(arkSpki);

  const arkDer = buildCertificate({
    serial: serialBase,
    issuer: arkName,
    subject: arkName,
    notBefore,
    notAfter,
    spki: arkSpki,
    signer: arkKey,
    explicitTrailer: true,
    extensions: [
      // keyCertSign (bit 5) | cRLSign (bit 6): 0b0000_0110, one unused bit.
      { oid: OID_KEY_USAGE, critical: true, value: bitString(Buffer.from([0x06]), 1) },
      { oid: OID_SKI, value: octets(arkKeyId) },
      { oid: OID_BASIC_CONSTRAINTS, critical: true, value: seq(derTrue()) },
      crlDistributionPoint(`https://kdsintf.amd.com/vcek/v1/${product}/crl`),
    ],
  });

  const intermediate = (key: KeyObject, name: Buffer, serial: bigint, kind: 'vcek' | 'vlek'): Buffer => {
    const spki = spkiDer(key);
    return buildCertificate({
      serial,
      issuer: arkName,
      subject: name,
      notBefore,
      notAfter,
      spki,
      signer: arkKey,
      explicitTrailer: true,
      extensions: [
        { oid: OID_SKI, value: octets(keyIdentifier(spki)) },
        akiKeyId(arkKeyId),
        { oid: OID_BASIC_CONSTRAINTS, critical: true, value: seq(derTrue(), derInteger(0)) },
        // keyCertSign only, encoded as AMD does: 03 02 01 04 (one unused bit, where strict DER says two).
        { oid: OID_KEY_USAGE, critical: true, value: bitString(Buffer.from([0x04]), 1) },
        crlDistributionPoint(`https://kdsintf.amd.com/${kind}/v1/${product}/crl`),
      ],
    });
  };
  const issued = (der: Buffer, key: KeyObject): IssuedCert => ({ der, pem: pem('CERTIFICATE', der), key });
  const ark = issued(arkDer, arkKey);
  const ask = issued(intermediate(askKey, askName, serialBase + BigInt(info.askSerial), 'vcek'), askKey);
  // Most tests never touch the VLEK side, and its RSA key would be a third of the set-up time.
  let asvkCache: IssuedCert | undefined;
  const asvk = (): IssuedCert => {
    if (!asvkCache) {
      const key = rsa();
      asvkCache = issued(intermediate(key, asvkName, serialBase + 0x101n, 'vlek'), key);
    }
    return asvkCache;
  };

  const issueLeaf = (
    opts: LeafTweaks,
    issuerName: Buffer,
    issuerKey: KeyObject,
    cn: string,
    amdExts: RawExtension[],
  ): IssuedCert => {
    const key = opts.key ? ensureP384Private(opts.key) : newP384();
    const omit = new Set(opts.omitExtensions ?? []);
    const der = buildCertificate({
      serial: opts.serial ?? 0,
      issuer: issuerName,
      subject: amdName(cn),
      notBefore: opts.notBefore ?? LEAF_NOT_BEFORE,
      notAfter: opts.notAfter ?? LEAF_NOT_AFTER,
      spki: spkiDer(key),
      signer: issuerKey,
      explicitTrailer: opts.pssTrailerField ?? false,
      extensions: [...amdExts.filter((e) => !omit.has(e.oid)), ...(opts.extraExtensions ?? [])],
    });
    return issued(der, key);
  };

  return {
    product,
    ark,
    ask,
    get asvk(): IssuedCert {
      return asvk();
    },
    vcekChainPem: ask.pem + ark.pem,
    get vlekChainPem(): string {
      return asvk().pem + ark.pem;
    },

    issueVcek(opts: IssueVcekOptions): IssuedCert {
      if (opts.hwId === undefined && opts.chipId.length !== 64) {
        throw new RangeError(`chipId must be 64 bytes, got ${opts.chipId.length}`);
      }
      const hwId = opts.hwId ?? Buffer.from(product === 'Turin' ? opts.chipId.subarray(0, 8) : opts.chipId);
      const exts = amdTcbExtensions(product, opts.tcb, opts.productName ?? info.vcekProductName, opts.structVersion ?? 0);
      exts.push({ oid: AMD_OID.hwId, value: hwId });
      return issueLeaf(opts, askName, askKey, 'SEV-VCEK', exts);
    },

    issueVlek(opts: IssueVlekOptions): IssuedCert {
      const exts = amdTcbExtensions(product, opts.tcb, opts.productName ?? product, opts.structVersion ?? 0);
      exts.push({ oid: AMD_OID.cspId, value: ia5(opts.cspId ?? 'CN=cc-us-east-2.amazonaws.com') });
      return issueLeaf(opts, asvkName, asvk().key, 'SEV-VLEK', exts);
    },

    crl(opts: CrlOptions): { der: Buffer; pem: string } {
      const thisUpdate = opts.thisUpdate ?? CRL_THIS_UPDATE;
      const nextUpdate = opts.nextUpdate ?? CRL_NEXT_UPDATE;
      const alg = pssSha384AlgorithmId(true);
      const revoked = opts.revokedSerials.map((s) => seq(derInteger(s), derTime(thisUpdate)));
      const tbs = seq(
        derInteger(1), // v2
        alg,
        arkName,
        derTime(thisUpdate),
        derTime(nextUpdate),
        ...(revoked.length ? [seq(...revoked)] : []),
        explicit(0, seq(extension(akiKeyId(arkKeyId)), extension({ oid: OID_CRL_NUMBER, value: derInteger(1) }))),
      );
      const der = seq(tbs, alg, bitString(pssSign(tbs, opts.signingKey ?? arkKey)));
      return { der, pem: pem('X509 CRL', der) };
    },
  };
}

const cache = new Map<string, FakeAmd>();

/**
 * The fake AMD hierarchy for a product. Cached per product and validity within the process:
 * RSA-2048 key generation dominates (~150 ms a key: ARK and ASK up front, the ASVK on first use);
 * issuing a leaf or a CRL takes a few ms.
 */
export function makeFakeAmd(product: SnpProduct, opts: { notBefore?: Date; notAfter?: Date } = {}): FakeAmd {
  if (!(product in PRODUCT_INFO)) throw new RangeError(`unknown SNP product ${String(product)}`);
  const notBefore = opts.notBefore ?? CA_NOT_BEFORE;
  const notAfter = opts.notAfter ?? CA_NOT_AFTER;
  const cacheKey = `${product}|${notBefore.toISOString()}|${notAfter.toISOString()}`;
  let amd = cache.get(cacheKey);
  if (!amd) {
    amd = createFakeAmd(product, notBefore, notAfter);
    cache.set(cacheKey, amd);
  }
  return amd;
}

// ---------------------------------------------------------------------------------------------
// Reports.

export const REPORT_SIZE = 0x4a0;
export const SIGNED_LENGTH = 0x2a0;
const SIG_R = 0x2a0;
const SIG_S = 0x2e8;

/**
 * Sign an SNP report in place as the firmware does: ECDSA P-384 SHA-384 over [0, 0x2A0), r at
 * 0x2A0 and s at 0x2E8, each 72 bytes little-endian (48 significant), the rest of the field zero.
 */
export function signReport(report: Buffer, key: KeyObject): Buffer {
  if (report.length !== REPORT_SIZE) throw new RangeError(`report must be ${REPORT_SIZE} bytes, got ${report.length}`);
  ensureP384Private(key);
  const rs = cryptoSign('sha384', report.subarray(0, SIGNED_LENGTH), { key, dsaEncoding: 'ieee-p1363' });
  report.fill(0, SIGNED_LENGTH);
  Buffer.from(rs.subarray(0, 48)).reverse().copy(report, SIG_R);
  Buffer.from(rs.subarray(48, 96)).reverse().copy(report, SIG_S);
  return report;
}

/** The report's r||s as big-endian 96 bytes (IEEE P1363), the form node's crypto.verify takes. */
export function reportSignatureP1363(report: Buffer): Buffer {
  if (report.length !== REPORT_SIZE) throw new RangeError(`report must be ${REPORT_SIZE} bytes, got ${report.length}`);
  const r = Buffer.from(report.subarray(SIG_R, SIG_R + 48)).reverse();
  const s = Buffer.from(report.subarray(SIG_S, SIG_S + 48)).reverse();
  return Buffer.concat([r, s]);
}

export interface FirmwareVersion {
  major: number;
  minor: number;
  build: number;
}

/** Report fields; a TCB may be given as parts (encoded with `product`'s layout) or as the raw u64. */
export interface ReportFields {
  /** Chooses the TCB layout and the CPUID defaults (default 'Milan'). */
  product?: SnpProduct;
  /** 2, 3 or 5 (default 3). */
  version?: number;
  guestSvn?: number;
  /** Default 0x30000 (bit 17 must-be-one, SMT allowed). */
  policy?: bigint;
  familyId?: Buffer;
  imageId?: Buffer;
  vmpl?: number;
  /** Default 1 (ECDSA P-384 SHA-384). */
  signatureAlgo?: number;
  /** Shorthand for reported, current, committed and launch TCB (default defaultTcb(product)). */
  tcb?: TcbParts | bigint;
  currentTcb?: TcbParts | bigint;
  reportedTcb?: TcbParts | bigint;
  committedTcb?: TcbParts | bigint;
  launchTcb?: TcbParts | bigint;
  /** Default 1 (SMT enabled). */
  platformInfo?: bigint;
  authorKeyEn?: boolean;
  maskChipKey?: boolean;
  /** 0 VCEK (default), 1 VLEK, 7 none. */
  signingKey?: number;
  reportData?: Buffer;
  measurement?: Buffer;
  hostData?: Buffer;
  idKeyDigest?: Buffer;
  authorKeyDigest?: Buffer;
  reportId?: Buffer;
  /** Default all 0xFF (no migration agent). */
  reportIdMa?: Buffer;
  /** v3+ only; defaults from productCpuid(product). */
  cpuidFamily?: number;
  cpuidModel?: number;
  cpuidStepping?: number;
  /** Default defaultChipId(product), or zero when maskChipKey is set or the signer is a VLEK. */
  chipId?: Buffer;
  /** Default 1.55 build 0. */
  currentVersion?: FirmwareVersion;
  committedVersion?: FirmwareVersion;
  /** v5 only. */
  launchMitVector?: bigint;
  currentMitVector?: bigint;
}

function putBytes(out: Buffer, offset: number, size: number, name: string, value: Buffer | undefined): void {
  if (value === undefined) return;
  if (value.length !== size) throw new RangeError(`${name} must be ${size} bytes, got ${value.length}`);
  value.copy(out, offset);
}

/** A syntactically valid, unsigned 1184-byte report; reserved fields are zero. */
export function buildReport(fields: ReportFields = {}): Buffer {
  const product = fields.product ?? 'Milan';
  const version = fields.version ?? 3;
  if (version !== 2 && version !== 3 && version !== 5) throw new RangeError(`report version must be 2, 3 or 5, got ${version}`);
  const r = Buffer.alloc(REPORT_SIZE);
  const tcb = (v: TcbParts | bigint | undefined): bigint => {
    const t = v ?? fields.tcb ?? defaultTcb(product);
    return typeof t === 'bigint' ? t : encodeTcb(product, t);
  };

  r.writeUInt32LE(version, 0x00);
  r.writeUInt32LE(fields.guestSvn ?? 0, 0x04);
  r.writeBigUInt64LE(fields.policy ?? 0x30000n, 0x08);
  putBytes(r, 0x10, 16, 'familyId', fields.familyId);
  putBytes(r, 0x20, 16, 'imageId', fields.imageId);
  r.writeUInt32LE(fields.vmpl ?? 0, 0x30);
  r.writeUInt32LE(fields.signatureAlgo ?? 1, 0x34);
  r.writeBigUInt64LE(tcb(fields.currentTcb), 0x38);
  r.writeBigUInt64LE(fields.platformInfo ?? 1n, 0x40);

  const signingKey = fields.signingKey ?? 0;
  if (!Number.isInteger(signingKey) || signingKey < 0 || signingKey > 7) throw new RangeError(`signingKey must be 0..7, got ${signingKey}`);
  r.writeUInt32LE((fields.authorKeyEn ? 1 : 0) | (fields.maskChipKey ? 2 : 0) | (signingKey << 2), 0x48);

  putBytes(r, 0x50, 64, 'reportData', fields.reportData);
  putBytes(r, 0x90, 48, 'measurement', fields.measurement);
  putBytes(r, 0xc0, 32, 'hostData', fields.hostData);
  putBytes(r, 0xe0, 48, 'idKeyDigest', fields.idKeyDigest);
  putBytes(r, 0x110, 48, 'authorKeyDigest', fields.authorKeyDigest);
  putBytes(r, 0x140, 32, 'reportId', fields.reportId ?? createHash('sha256').update(`coffer fake report id ${product}`).digest());
  putBytes(r, 0x160, 32, 'reportIdMa', fields.reportIdMa ?? Buffer.alloc(32, 0xff));
  r.writeBigUInt64LE(tcb(fields.reportedTcb), 0x180);

  const cpuidGiven = fields.cpuidFamily !== undefined || fields.cpuidModel !== undefined || fields.cpuidStepping !== undefined;
  if (version >= 3) {
    const cpu = productCpuid(product);
    r.writeUInt8(fields.cpuidFamily ?? cpu.family, 0x188);
    r.writeUInt8(fields.cpuidModel ?? cpu.model, 0x189);
    r.writeUInt8(fields.cpuidStepping ?? cpu.stepping, 0x18a);
  } else if (cpuidGiven) {
    throw new RangeError('version 2 reports have no CPUID fields');
  }

  const chipIdMasked = fields.maskChipKey === true || signingKey === 1;
  putBytes(r, 0x1a0, 64, 'chipId', fields.chipId ?? (chipIdMasked ? Buffer.alloc(64) : defaultChipId(product)));
  r.writeBigUInt64LE(tcb(fields.committedTcb), 0x1e0);
  const fw = (v: FirmwareVersion | undefined, at: number): void => {
    const { major, minor, build } = v ?? { major: 1, minor: 55, build: 0 };
    r.writeUInt8(build, at);
    r.writeUInt8(minor, at + 1);
    r.writeUInt8(major, at + 2);
  };
  fw(fields.currentVersion, 0x1e8);
  fw(fields.committedVersion, 0x1ec);
  r.writeBigUInt64LE(tcb(fields.launchTcb), 0x1f0);

  if (version >= 5) {
    r.writeBigUInt64LE(fields.launchMitVector ?? 0n, 0x1f8);
    r.writeBigUInt64LE(fields.currentMitVector ?? 0n, 0x200);
  } else if (fields.launchMitVector !== undefined || fields.currentMitVector !== undefined) {
    throw new RangeError(`version ${version} reports have no mitigation vectors`);
  }
  return r;
}
