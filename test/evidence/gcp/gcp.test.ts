// GCE Shielded VM vTPM attestations (go-tpm-tools protobufs): parsed, every quote verified with
// the AK from its TPMT_PUBLIC and Google-issued certificate chained to Google's root, the event log
// replayed into the quoted PCRs; and the gce-ek-ak-certs chain to the root and intermediate the
// manifest names.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseCertificates, type Certificate } from '../../../src/pki/certificate.js';
import type { TrustAnchor } from '../../../src/pki/chain.js';
import { gcePcrBanks, parseGceAttestation, verifyGceAttestation, verifyGceCertificate } from '../../../src/evidence/gcp/index.js';
import { claimsFromTpm } from '../../../src/appraisal/from-tpm.js';
import { coffer, expected, vec, VECTORS } from '../nitro/vectors.js';
import { forgeGceAttestation, replaceAkCert } from './forge.js';

const G = 'tpm-quote/gce-shielded-vm-cos85/';
const cert = (p: string): Certificate => parseCertificates(vec(p))[0] as Certificate;
const anchor = (f: string): TrustAnchor => ({ cert: cert(`gcp/ca/${f}`), label: f });
const ROOTS = [anchor('tpm_ek_root_1.cer'), anchor('gcp_ek_ak_ca_root.crt')];
const INTERMEDIATES = ['tpm_ek_intermediate_2.crt', 'tpm_ek_intermediate_3.crt', 'gcp_ek_ak_ca_intermediate_v3.crt'].map((f) => cert(`gcp/ca/${f}`));
const AT = new Date('2025-06-01T00:00:00Z');

interface Extracted {
  ak_name: string;
  quotes: { bank: string; extra_data: string; pcr_digest: string; pcrs: Record<string, string> }[];
}

describe('GCE vTPM attestation protobufs', () => {
  for (const [name, nonce] of [['gce-cos-85-nonce9009', '9009'], ['gce-cos-85-no-nonce', '']] as const) {
    test(`${name}.pb: 3 quotes verify with the AK (certificate to tpm_ek_root_1), PCRs and event log as extracted.json`, () => {
      const ex = JSON.parse(vec(`${G}${name}/extracted.json`).toString('utf8')) as Extracted;
      const att = parseGceAttestation(vec(`${G}${name}.pb`));
      assert.ok(att.akPub.equals(vec(`${G}${name}/ak_pub.tpmt`)));
      assert.ok(att.akCert?.equals(vec(`${G}${name}/ak_cert.der`)));
      assert.ok(att.eventLog?.equals(vec(`${G}${name}/event_log.bin`)));
      assert.deepEqual(att.quotes.map((q) => q.bank), ['sha1', 'sha256', 'sha384']);
      for (const q of att.quotes) assert.ok(q.attest.equals(vec(`${G}${name}/quote_${q.bank}.attest`)));
      const banks = gcePcrBanks(att);
      for (const q of ex.quotes) for (const [i, v] of Object.entries(q.pcrs)) assert.equal(banks.get(q.bank as 'sha1')?.get(Number(i))?.toString('hex'), v);
      const v = verifyGceAttestation(att, { at: AT, roots: ROOTS, intermediates: INTERMEDIATES, ...(nonce ? { nonce: Buffer.from(nonce, 'hex') } : {}) });
      assert.equal(v.ak.public?.name.toString('hex'), ex.ak_name);
      assert.equal(v.quotes.length, 3);
      for (const [i, q] of v.quotes.entries()) {
        assert.equal(q.quote.pcrDigest.toString('hex'), ex.quotes[i]?.pcr_digest);
        assert.equal(q.quote.extraData.toString('hex'), nonce);
        assert.equal(q.akChain?.at(-1)?.sha256, ROOTS[0]?.cert.sha256);
      }
      assert.equal(v.instance?.zone, 'us-central1-a');
      assert.equal(v.instance?.projectId, 'google.com:wuale-gcp-testing');
      assert.equal(v.instance?.instanceName, 'cos-test');
      // The log replays into every bank's quoted PCRs.
      for (const q of v.quotes) {
        const claims = claimsFromTpm(q, v.eventLog);
        assert.equal(claims.verification[0]?.verified, true, claims.verification[0]?.error?.message);
        assert.ok(claims.verification[0]?.checks.some((c) => c.name === 'eventlog.replay' && c.ok));
      }
      if (!nonce) assert.ok(v.checks.find((c) => c.name === 'gcp.nonce')?.notChecked);
    });
  }

  test('negatives: a wrong nonce, a missing root (GCP_ROOT_REQUIRED), a root that is not the issuer', () => {
    const att = parseGceAttestation(vec(`${G}gce-cos-85-nonce9009.pb`));
    assert.equal(coffer(() => verifyGceAttestation(att, { at: AT, roots: ROOTS, intermediates: INTERMEDIATES, nonce: Buffer.from('9010', 'hex') })).code, 'TPM_NONCE_MISMATCH');
    assert.equal(coffer(() => verifyGceAttestation(att, { at: AT, nonce: Buffer.from('9009', 'hex') })).code, 'GCP_ROOT_REQUIRED');
    assert.equal(coffer(() => verifyGceAttestation(att, { at: AT, roots: [anchor('gcp_ek_ak_ca_root.crt')], intermediates: INTERMEDIATES, nonce: Buffer.from('9009', 'hex') })).code, 'PKI_CHAIN_INCOMPLETE');
    // Another attestation's AK certificate onto this AK: TPM_AK_MISMATCH.
    const other = cert('gcp/gce-ek-ak-certs/uca_tpm_rsa_sign_cert.pem');
    const swapped = { ...att, akCert: other.der };
    assert.equal(coffer(() => verifyGceAttestation(swapped, { at: AT, roots: ROOTS, intermediates: INTERMEDIATES, nonce: Buffer.from('9009', 'hex') })).code, 'TPM_AK_MISMATCH');
  });

  test('single-byte flips of a quote or its signature fail as TPM errors; a truncated protobuf is GCP_BAD_ATTESTATION', () => {
    const raw = vec(`${G}gce-cos-85-nonce9009.pb`);
    const att = parseGceAttestation(raw);
    const q = att.quotes[1]!;
    for (const [what, buf] of [['quote', q.attest], ['signature', q.signature]] as const) {
      for (let i = 0; i < buf.length; i += 17) {
        const b = Buffer.from(buf);
        b[i] = (b[i] as number) ^ 1;
        const edited = { ...att, quotes: [{ ...q, ...(what === 'quote' ? { attest: b } : { signature: b }) }] };
        const e = coffer(() => verifyGceAttestation(edited, { at: AT, roots: ROOTS, intermediates: INTERMEDIATES, nonce: Buffer.from('9009', 'hex') }));
        assert.match(e.code, /^TPM_/, `${what} byte ${i}`);
      }
    }
    assert.equal(coffer(() => parseGceAttestation(raw.subarray(0, 300))).code, 'GCP_BAD_ATTESTATION');
  });
});

describe('GCE vTPM EK/AK certificates (gce-ek-ak-certs)', () => {
  const dir = join(VECTORS, 'gcp/gce-ek-ak-certs');
  for (const f of readdirSync(dir).sort()) {
    test(`${f} chains to the intermediate and root the manifest names, with its instance information`, () => {
      const e = expected(`gcp/gce-ek-ak-certs/${f}`);
      assert.ok(e.tests);
      const r = verifyGceCertificate(cert(`gcp/gce-ek-ak-certs/${f}`), { at: AT, roots: ROOTS, intermediates: INTERMEDIATES });
      if (f.startsWith('pca_')) {
        assert.equal(r.intermediate, 'EK/AK CA Intermediate');
        assert.equal(r.root, 'EK/AK CA Root');
      } else {
        assert.match(r.intermediate, /^tpm_ek_v1_cloud_host-signer-0-2021-10-12/);
        assert.match(r.root, /^tpm_ek_v1_cloud_host_root-signer-0-2018-04-06/);
      }
      assert.equal(r.instance?.projectId, 'google.com:wuale-gcp-testing');
      assert.equal(r.instance?.zone, 'us-central1-a');
      // Without its intermediate, or with only the other family's root, it does not chain.
      assert.match(coffer(() => verifyGceCertificate(cert(`gcp/gce-ek-ak-certs/${f}`), { at: AT, roots: ROOTS, intermediates: [] })).code, /^PKI_CHAIN_INCOMPLETE$/);
    });
  }
  test('no root is an input error (Coffer pins no Google root)', () => {
    const e = coffer(() => verifyGceCertificate(cert('gcp/gce-ek-ak-certs/pca_tpm_rsa_sign_cert.pem'), { at: AT, roots: [], intermediates: INTERMEDIATES }));
    assert.equal(e.code, 'GCP_ROOT_REQUIRED');
  });
});

describe('security review: evidence that nothing vouches for', () => {
  const NONCE = Buffer.from('9009', 'hex');
  test('a GCE attestation forged in software (own RSA AK, no certificate) fails without a root (GCP_ROOT_REQUIRED) and with one (GCP_NO_AK_CERTIFICATE)', () => {
    const att = parseGceAttestation(forgeGceAttestation(NONCE));
    const e = coffer(() => verifyGceAttestation(att, { at: AT, nonce: NONCE }));
    assert.equal(e.code, 'GCP_ROOT_REQUIRED');
    assert.equal(e.kind, 'input');
    const withRoot = coffer(() => verifyGceAttestation(att, { at: AT, roots: ROOTS, intermediates: INTERMEDIATES, nonce: NONCE }));
    assert.equal(withRoot.code, 'GCP_NO_AK_CERTIFICATE');
    assert.equal(withRoot.kind, 'verify');
  });

  test('the real attestation without a root is GCP_ROOT_REQUIRED, not a pass with the AK taken on trust', () => {
    const att = parseGceAttestation(vec(`${G}gce-cos-85-nonce9009.pb`));
    assert.equal(coffer(() => verifyGceAttestation(att, { at: AT, nonce: NONCE })).code, 'GCP_ROOT_REQUIRED');
  });

  test('a spoofed AK certificate (self-signed, instance-info naming a victim) never yields instance information', () => {
    const spoof = readFileSync(new URL('./fixtures/not-google-instance-info.der', import.meta.url));
    const pb = replaceAkCert(vec(`${G}gce-cos-85-nonce9009.pb`), spoof);
    const att = parseGceAttestation(pb);
    assert.ok(att.akCert?.equals(spoof));
    assert.equal(coffer(() => verifyGceAttestation(att, { at: AT, nonce: NONCE })).code, 'GCP_ROOT_REQUIRED');
    // With Google's roots it is refused (its key is not the AK; nor does it chain).
    assert.match(coffer(() => verifyGceAttestation(att, { at: AT, roots: ROOTS, intermediates: INTERMEDIATES, nonce: NONCE })).code, /^(TPM_AK_MISMATCH|PKI_)/);
    // A forged attestation carrying it, whose ak_pub is another key, is refused the same way.
    const forged = parseGceAttestation(forgeGceAttestation(NONCE, spoof));
    assert.match(coffer(() => verifyGceAttestation(forged, { at: AT, roots: ROOTS, intermediates: INTERMEDIATES, nonce: NONCE })).code, /^(TPM_AK_MISMATCH|PKI_)/);
  });
});
