// parseCertificates on AMD's real certificates (DER, PEM bundles), checked against openssl's
// reading of the same files; garbage is refused with PKI_BAD_CERTIFICATE or PKI_BAD_PEM.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { parseCertificates, type Certificate } from '../../src/pki/certificate.js';
import { CofferError } from '../../src/errors.js';
import { AMD, AMD_BUNDLES, VECTORS, expected, openssl, tempDir } from './tools.js';

const scratch = tempDir('cert');

function throwsCode(fn: () => unknown, code: string): CofferError {
  let caught: unknown;
  try {
    fn();
  } catch (e) {
    caught = e;
  }
  assert.ok(caught instanceof CofferError, `expected CofferError ${code}, got ${String(caught)}`);
  assert.equal(caught.code, code, caught.message);
  assert.equal(caught.kind, 'input');
  return caught;
}

/** openssl's view of a certificate file: subject CN, issuer CN, serial, dates, SHA-256 of the DER. */
function opensslFacts(path: string, inform: 'PEM' | 'DER' = 'PEM'): { cn: string; issuerCn: string; serial: string; notBefore: Date; notAfter: Date; sha256: string } {
  const out = openssl(['x509', '-inform', inform, '-in', path, '-noout', '-subject', '-issuer', '-serial', '-startdate', '-enddate', '-fingerprint', '-sha256', '-nameopt', 'RFC2253']).out;
  const get = (re: RegExp): string => {
    const m = re.exec(out);
    assert.ok(m?.[1], `openssl output lacks ${re}: ${out}`);
    return m[1];
  };
  return {
    cn: get(/^subject=.*?CN=([^,\n]+)/m),
    issuerCn: get(/^issuer=.*?CN=([^,\n]+)/m),
    serial: get(/^serial=([0-9A-F]+)/m).toLowerCase().replace(/^0+(?=.)/, ''),
    notBefore: new Date(get(/^notBefore=(.+)$/m)),
    notAfter: new Date(get(/^notAfter=(.+)$/m)),
    sha256: get(/Fingerprint=([0-9A-F:]+)/).replace(/:/g, '').toLowerCase(),
  };
}

/** Splits a PEM bundle into its blocks with plain string handling (no src code). */
function pemBlocks(text: string): string[] {
  return text.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----\n?/g) ?? [];
}

describe('the real AMD KDS cert_chain bundles', () => {
  for (const name of AMD_BUNDLES) {
    test(`${name}: two certificates, ASK/ASVK then ARK, names as the manifest gives`, () => {
      const file = `amd-snp/amd-certs/${name}`;
      const exp = expected(file);
      const path = join(AMD, 'amd-certs', name);
      const certs = parseCertificates(readFileSync(path), name);
      assert.equal(certs.length, 2);
      const [ask, ark] = certs as [Certificate, Certificate];
      assert.equal(ask.subjectCn, exp.ask_cn);
      assert.equal(ark.subjectCn, exp.ark_cn);
      assert.equal(ask.issuerCn, exp.ark_cn);
      assert.equal(ark.issuerCn, exp.ark_cn);
      assert.ok(ark.isSelfIssued);
      assert.ok(!ask.isSelfIssued);
      assert.equal(ask.issuer, ark.subject);
      assert.match(ark.subject, /O=Advanced Micro Devices/);
      for (const c of certs) {
        assert.equal(c.isCa, true, `${c.subjectCn} is a CA`);
        assert.equal(c.canSignCertificates, true);
        assert.equal(c.publicKey.asymmetricKeyType, 'rsa');
        assert.equal(c.publicKey.asymmetricKeyDetails?.modulusLength, 4096);
        assert.deepEqual(c.signed.algorithm, { kind: 'rsa-pss', hash: 'sha384', saltLength: 48, oid: '1.2.840.113549.1.1.10' });
        assert.deepEqual(c.unknownCriticalExtensions(), []);
      }
      // AMD's ASKs carry keyCertSign only; its ARKs add cRLSign.
      assert.equal(ask.canSignCrls, false);
      assert.equal(ark.canSignCrls, true);

      // Each block agrees with openssl: names, serial, dates, and the DER's SHA-256.
      const blocks = pemBlocks(readFileSync(path, 'latin1'));
      assert.equal(blocks.length, 2);
      certs.forEach((c, i) => {
        const facts = opensslFactsFromText(blocks[i] as string);
        assert.equal(c.subjectCn, facts.cn);
        assert.equal(c.issuerCn, facts.issuerCn);
        assert.equal(c.serial, facts.serial);
        assert.equal(c.notBefore.getTime(), facts.notBefore.getTime());
        assert.equal(c.notAfter.getTime(), facts.notAfter.getTime());
        assert.equal(c.sha256, facts.sha256);
      });
    });
  }

  test('the VCEK and VLEK bundles of one product share the same ARK', () => {
    for (const p of ['milan', 'genoa', 'turin']) {
      const vcekFile = p === 'turin' ? 'ask_ark_turin_vcek.pem' : `ask_ark_${p}.pem`;
      const a = parseCertificates(readFileSync(join(AMD, 'amd-certs', vcekFile)))[1];
      const b = parseCertificates(readFileSync(join(AMD, 'amd-certs', `ask_ark_${p}_vlek.pem`)))[1];
      assert.equal(a?.sha256, b?.sha256, p);
    }
  });
});

let n = 0;
/** opensslFacts for one PEM block of a bundle. */
function opensslFactsFromText(pem: string): ReturnType<typeof opensslFacts> {
  const p = join(scratch, `c${n++}.pem`);
  writeFileSync(p, pem);
  return opensslFacts(p);
}

describe('DER and PEM leaves', () => {
  const leaves = [
    ['amd-snp/go-sev-guest/vcek.der', 'DER', 'SEV-VCEK', 'SEV-Milan'],
    ['amd-snp/trustee/test-vcek.der', 'DER', 'SEV-VCEK', 'SEV-Milan'],
    ['amd-snp/trustee/test-vlek.der', 'DER', 'SEV-VLEK', 'SEV-VLEK-Milan'],
    ['amd-snp/trustee/e2e-vcek.der', 'DER', 'SEV-VCEK', 'SEV-Genoa'],
    ['amd-snp/veraison/sevsnp-tsm-report.vcek.pem', 'PEM', 'SEV-VCEK', 'SEV-Genoa'],
  ] as const;
  for (const [file, form, cn, issuer] of leaves) {
    test(`${file} (${form}) parses like openssl reads it`, () => {
      const path = join(VECTORS, file);
      const [c, ...rest] = parseCertificates(readFileSync(path), file);
      assert.equal(rest.length, 0);
      assert.ok(c);
      const facts = opensslFacts(path, form);
      assert.equal(c.subjectCn, cn);
      assert.equal(c.issuerCn, issuer);
      assert.equal(c.subjectCn, facts.cn);
      assert.equal(c.issuerCn, facts.issuerCn);
      assert.equal(c.serial, facts.serial);
      assert.equal(c.notBefore.getTime(), facts.notBefore.getTime());
      assert.equal(c.notAfter.getTime(), facts.notAfter.getTime());
      assert.equal(c.sha256, facts.sha256);
      assert.equal(c.isCa, false);
      assert.equal(c.publicKey.asymmetricKeyType, 'ec');
      assert.equal(c.publicKey.asymmetricKeyDetails?.namedCurve, 'secp384r1');
    });
  }

  test('go-sev-guest VCEK: manifest dates, hwID and productName extensions', () => {
    const file = 'amd-snp/go-sev-guest/vcek.der';
    const exp = expected(file);
    const [c] = parseCertificates(readFileSync(join(VECTORS, file)));
    assert.ok(c);
    assert.equal(c.notBefore.toISOString().slice(0, 10), exp.not_before);
    assert.equal(c.notAfter.toISOString().slice(0, 10), exp.not_after);
    const hw = c.extension('1.3.6.1.4.1.3704.1.4');
    assert.ok(hw);
    const chip = expected('amd-snp/go-sev-guest/attestation.bin').chip_id as string;
    assert.equal(hw.toString('hex'), chip);
    const [head, tail] = String(exp['hwid_ext_1.3.6.1.4.1.3704.1.4']).split('…');
    assert.ok(chip.startsWith(head as string) && chip.endsWith(tail as string));
    const pn = c.extension('1.3.6.1.4.1.3704.1.2');
    assert.ok(pn);
    assert.match(pn.toString('latin1'), new RegExp(String(exp.productName_ext)));
  });

  test('the same certificate as DER, PEM text and PEM bytes gives the same (cached) object', () => {
    const der = readFileSync(join(AMD, 'go-sev-guest/vcek.der'));
    const pemText = openssl(['x509', '-inform', 'DER', '-in', join(AMD, 'go-sev-guest/vcek.der')]).out;
    const a = parseCertificates(der)[0];
    const b = parseCertificates(pemText)[0];
    const c = parseCertificates(Buffer.from(pemText, 'latin1'))[0];
    assert.ok(a && b && c);
    assert.equal(a.sha256, b.sha256);
    assert.ok(a === b && b === c, 'fromDer caches by content hash');
    assert.equal(a.toPem().replace(/\s+/g, ''), pemText.replace(/\s+/g, ''));
  });

  test('a PEM bundle with CRLF line ends, comments and a non-certificate block keeps just the certificates', () => {
    const bundle = readFileSync(join(AMD, 'amd-certs/ask_ark_genoa.pem'), 'latin1');
    const noisy = `subject=whatever\r\n${bundle.replace(/\n/g, '\r\n')}\r\n-----BEGIN PUBLIC KEY-----\r\nAAAA\r\n-----END PUBLIC KEY-----\r\n`;
    const certs = parseCertificates(noisy);
    assert.deepEqual(certs.map((c) => c.subjectCn), ['SEV-Genoa', 'ARK-Genoa']);
  });

  test('the 3-certificate Azure bundle (VCEK, ASK, ARK) parses in order', () => {
    const certs = parseCertificates(readFileSync(join(VECTORS, 'azure-cvm/trustee-az-snp-vtpm/vcek.pem')));
    assert.deepEqual(certs.map((c) => c.subjectCn), ['SEV-VCEK', 'SEV-Milan', 'ARK-Milan']);
  });
});

describe('garbage is refused with a CofferError', () => {
  test('random bytes, empty input, truncated DER → PKI_BAD_CERTIFICATE', () => {
    const der = readFileSync(join(AMD, 'go-sev-guest/vcek.der'));
    throwsCode(() => parseCertificates(Buffer.from('this is not a certificate at all')), 'PKI_BAD_CERTIFICATE');
    throwsCode(() => parseCertificates(new Uint8Array(0)), 'PKI_BAD_CERTIFICATE');
    throwsCode(() => parseCertificates(der.subarray(0, der.length - 1)), 'PKI_BAD_CERTIFICATE');
    throwsCode(() => parseCertificates(der.subarray(0, 100)), 'PKI_BAD_CERTIFICATE');
    throwsCode(() => parseCertificates(Buffer.from([0x30, 0x00])), 'PKI_BAD_CERTIFICATE');
  });

  test('PEM without a certificate block, or with a body that is not base64 → PKI_BAD_PEM', () => {
    throwsCode(() => parseCertificates(''), 'PKI_BAD_PEM');
    throwsCode(() => parseCertificates('-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n'), 'PKI_BAD_PEM');
    throwsCode(() => parseCertificates(Buffer.from('-----BEGIN CERTIFICATE-----\n')), 'PKI_BAD_PEM');
    const e = throwsCode(() => parseCertificates('-----BEGIN CERTIFICATE-----\nnot*base64!\n-----END CERTIFICATE-----\n', 'chain file'), 'PKI_BAD_PEM');
    assert.match(e.message, /chain file/);
  });

  test('PEM whose base64 decodes to garbage → PKI_BAD_CERTIFICATE', () => {
    throwsCode(() => parseCertificates(`-----BEGIN CERTIFICATE-----\n${Buffer.from('garbage garbage').toString('base64')}\n-----END CERTIFICATE-----\n`), 'PKI_BAD_CERTIFICATE');
  });

  test('one bad block in a bundle spoils the bundle', () => {
    const bundle = readFileSync(join(AMD, 'amd-certs/ask_ark_milan.pem'), 'latin1');
    const bad = `${bundle}-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n`;
    throwsCode(() => parseCertificates(bad), 'PKI_BAD_CERTIFICATE');
  });

  test('property: arbitrary bytes give certificates or a CofferError, nothing else', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (b) => {
        try {
          parseCertificates(b);
        } catch (e) {
          if (!(e instanceof CofferError)) throw e;
        }
      }),
      { numRuns: 200 },
    );
  });

  // Offsets found by flipping the low bit of every byte of the real certificates: the damaged
  // structure passes node's and @peculiar/x509's constructors but used to blow up in a getter
  // read outside Certificate's try/catch (publicKey, extensions) with a raw Error, TypeError or
  // AsnSchemaValidationError; fixed in 5f31bba. Kept as regression tests.
  const damaged: [string, number, string][] = [
    ['go-sev-guest/vcek.der', 375, 'SubjectPublicKeyInfo: node publicKey "decode error"'],
    ['ask (ask_ark_milan.pem)', 380, 'SubjectPublicKeyInfo: node publicKey "decode error"'],
    ['ask (ask_ark_milan.pem)', 934, 'SKI extension: TypeError from @peculiar/x509'],
    ['ask (ask_ark_milan.pem)', 968, 'AKI extension: AsnSchemaValidationError'],
    ['ask (ask_ark_milan.pem)', 1004, 'basicConstraints: AsnSchemaValidationError'],
    ['ask (ask_ark_milan.pem)', 1037, 'CRL distribution points: AsnSchemaValidationError'],
  ];
  const realVcek = (): Buffer => readFileSync(join(AMD, 'go-sev-guest/vcek.der'));
  const realAsk = (): Buffer => (parseCertificates(readFileSync(join(AMD, 'amd-certs/ask_ark_milan.pem')))[0] as Certificate).der;
  for (const [which, offset, where] of damaged) {
    test(`a one-bit flip at ${which} byte ${offset} (${where}) is PKI_BAD_CERTIFICATE`, () => {
      const d = Buffer.from(which.startsWith('go-sev-guest') ? realVcek() : realAsk());
      d[offset] = (d[offset] as number) ^ 1;
      throwsCode(() => parseCertificates(d), 'PKI_BAD_CERTIFICATE');
    });
  }

  test('one-bit flips across the real VCEK and ASK: certificates or a CofferError, never another exception', () => {
    const bad: string[] = [];
    let parsed = 0;
    for (const base of [realVcek(), realAsk()]) {
      // Every third byte (a full sweep takes ~6 s); the offsets above are covered separately.
      for (let i = 0; i < base.length; i += 3) {
        const d = Buffer.from(base);
        d[i] = (d[i] as number) ^ 1;
        try {
          parseCertificates(d);
          parsed++;
        } catch (e) {
          if (!(e instanceof CofferError)) bad.push(`${i}: ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}`);
        }
      }
    }
    assert.deepEqual(bad, []);
    assert.ok(parsed > 100, 'many flips still parse (and are left to the signature check)');
  });

  test(
    'a DER certificate followed by trailing bytes is refused',
    () => {
      const der = readFileSync(join(AMD, 'go-sev-guest/vcek.der'));
      throwsCode(() => parseCertificates(Buffer.concat([der, Buffer.from([0])])), 'PKI_BAD_CERTIFICATE');
    },
  );
});
