// `coffer evidence verify`, in-process: a commander program with only this command registered.
// Kind detection for every vector family, exit codes (0 verified, 1 failed, 2 bad input), the
// --json shape {ok, kind, claims, checks}, and one-line failures.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { Command, CommanderError } from 'commander';
import { registerEvidence } from '../../src/cli/evidence.js';
import type { CliContext } from '../../src/cli/main.js';
import { detectEvidenceKind } from '../../src/evidence/detect.js';
import { CofferError } from '../../src/errors.js';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { forgeGceAttestation } from '../evidence/gcp/forge.js';
import { VECTORS, expected, vec } from '../evidence/nitro/vectors.js';

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

async function cli(args: string[]): Promise<Run> {
  let stdout = '';
  let stderr = '';
  let code = 0;
  const nl = (t: string): string => (t.endsWith('\n') ? t : `${t}\n`);
  const ctx: CliContext = { io: { out: (t) => void (stdout += nl(t)), err: (t) => void (stderr += nl(t)) }, setExit: (c) => (code = c) };
  const program = new Command('coffer').exitOverride().configureOutput({ writeOut: (s) => ctx.io.out(s), writeErr: (s) => ctx.io.err(s) });
  registerEvidence(program, ctx);
  try {
    await program.parseAsync(['evidence', 'verify', ...args], { from: 'user' });
  } catch (e) {
    if (!(e instanceof CommanderError)) throw e;
    code = 2;
  }
  return { code, stdout, stderr };
}

const V = (p: string): string => join(VECTORS, p);
const AT = ['--at', '2025-06-01T00:00:00Z'];
const CHALLENGE = ['--nonce', Buffer.from('challenge').toString('hex')];

interface JsonOut {
  ok: boolean;
  kind: string;
  form: string;
  claims: { platforms: { tee: string; product: string | null }[]; launch: { snp?: string; tdx?: { mrtd: string } }; runtime: { pcrs?: Record<string, Record<string, string>> }; freshness: { nonce?: string; reportData?: string }; debug: { debug?: boolean }; signingKeys: { kind: string; cspId?: string }[] } | null;
  details: Record<string, unknown>;
  checks: { name: string; ok: boolean; notChecked?: boolean; code?: string }[];
  error?: { code: string; message: string };
}

describe('kind detection', () => {
  const cases: [string, string][] = [
    ['amd-snp/trustee/test-vlek-report.bin', 'snp'],
    ['amd-snp/veraison/sevsnp-tsm-report.cbor', 'snp'],
    ['intel-tdx/go-tdx-guest/cos-113-tdx-quote.dat', 'tdx'],
    ['intel-tdx/trustee/sgx_occlum_quote_v3.dat', 'sgx'],
    ['azure-cvm/trustee-az-snp-vtpm/hcl-report.bin', 'azure-snp'],
    ['azure-cvm/trustee-az-snp-vtpm/evidence-v0.json', 'azure-snp'],
    ['azure-cvm/trustee-az-snp-vtpm/evidence-v2.json', 'azure-snp'],
    ['azure-cvm/trustee-az-tdx-vtpm/hcl-report.bin', 'azure-tdx'],
    ['azure-cvm/trustee-az-tdx-vtpm/evidence-v0.json', 'azure-tdx'],
    ['azure-cvm/trustee-az-tdx-vtpm/td-quote.bin', 'tdx'],
    ['azure-cvm/trustee-az-snp-vtpm/tpm-quote-v1.json', 'tpm'],
    ['tpm-quote/gce-shielded-vm-cos85/gce-cos-85-no-nonce.pb', 'gcp'],
    ['aws-nitro/evervault/valid-attestation-doc-bytes.cbor', 'nitro'],
    ['aws-nitro/evervault/valid-attestation-doc.b64', 'nitro'],
    ['aws-nitro/nitrotpm-vaportpm/test-nitro-fixture.json', 'nitro'],
  ];
  for (const [file, kind] of cases) test(`${file} → ${kind}`, () => assert.equal(detectEvidenceKind(vec(file)).kind, kind));
  test('a bare TPMS_ATTEST (no signature) is not a kind of evidence: EVIDENCE_UNKNOWN_KIND', () => {
    assert.throws(() => detectEvidenceKind(vec('tpm-quote/gce-shielded-vm-cos85/gce-cos-85-nonce9009/quote_sha256.attest')), (e: unknown) => e instanceof CofferError && e.code === 'EVIDENCE_UNKNOWN_KIND' && /bare TPMS_ATTEST/.test(e.message));
  });
});

describe('coffer evidence verify', () => {
  test('SEV-SNP on EC2 with a VLEK: auto-detected, verified at a time inside the VLEK window, CSP in the claims', async () => {
    const e = expected('amd-snp/trustee/test-vlek-report.bin');
    const r = await cli([V('amd-snp/trustee/test-vlek-report.bin'), '--cert', V('amd-snp/trustee/test-vlek.der'), '--cert', V('amd-snp/amd-certs/ask_ark_milan_vlek.pem'), ...AT, '--json']);
    assert.equal(r.code, 0, r.stdout);
    const j = JSON.parse(r.stdout) as JsonOut;
    assert.equal(j.kind, 'snp');
    assert.equal(j.claims?.launch.snp, e.measurement);
    assert.equal(j.claims?.signingKeys[0]?.kind, 'vlek');
    assert.equal(j.claims?.signingKeys[0]?.cspId, 'CN=cc-us-east-2.amazonaws.com');
    const forced = await cli([V('amd-snp/trustee/test-vlek-report.bin'), '--kind', 'snp', '--cert', V('amd-snp/trustee/test-vlek.der'), '--cert', V('amd-snp/amd-certs/ask_ark_milan_vlek.pem'), ...AT]);
    assert.equal(forced.code, 0);
    assert.match(forced.stdout, /^VERIFIED {2}snp: SEV-SNP report v3, Milan, signed by VLEK \(CN=cc-us-east-2\.amazonaws\.com\)/);
    const expired = await cli([V('amd-snp/trustee/test-vlek-report.bin'), '--cert', V('amd-snp/trustee/test-vlek.der'), '--cert', V('amd-snp/amd-certs/ask_ark_milan_vlek.pem'), '--at', '2026-06-01']);
    assert.equal(expired.code, 1);
    assert.match(expired.stderr, /^coffer: PKI_EXPIRED: /);
  });

  test('Azure SNP evidence v1 with the Milan ASK/ARK and nonce "challenge": claims from the SNP report and the vTPM', async () => {
    const r = await cli([V('azure-cvm/trustee-az-snp-vtpm/evidence-v1.json'), '--cert', V('amd-snp/amd-certs/ask_ark_milan.pem'), ...CHALLENGE, ...AT, '--json']);
    assert.equal(r.code, 0, r.stdout);
    const j = JSON.parse(r.stdout) as JsonOut;
    assert.equal(j.kind, 'azure-snp');
    assert.deepEqual(j.claims?.platforms.map((p) => p.tee), ['sev-snp', 'tpm']);
    assert.equal(j.claims?.runtime.pcrs?.sha256?.['0'], expected('azure-cvm/trustee-az-snp-vtpm/evidence-v1.json')['tpm.pcr00']);
    assert.equal(j.claims?.freshness.nonce, '6368616c6c656e6765');
    assert.ok(j.checks.some((c) => c.name === 'azure.report-data' && c.ok));
  });

  test('Azure SNP HCL report with --tpm-quote; a wrong nonce exits 1 with one line', async () => {
    const args = [V('azure-cvm/trustee-az-snp-vtpm/hcl-report.bin'), '--cert', V('azure-cvm/trustee-az-snp-vtpm/vcek.pem'), '--tpm-quote', V('azure-cvm/trustee-az-snp-vtpm/tpm-quote-v1.json'), ...AT];
    const ok = await cli([...args, ...CHALLENGE]);
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(ok.stdout, /^VERIFIED {2}azure-snp: Azure CVM \(SEV-SNP, HCL report\)/);
    const bad = await cli([...args, '--nonce', '01020304']);
    assert.equal(bad.code, 1);
    assert.equal(bad.stderr.trim().split('\n').length, 1);
    assert.match(bad.stderr, /^coffer: TPM_NONCE_MISMATCH: /);
  });

  test('Azure SNP v2: user data expected; 123abc fails AZURE_USER_DATA_MISMATCH', async () => {
    const rd = expected('azure-cvm/trustee-az-snp-vtpm/evidence-v2.json').report_data ?? '';
    const base = [V('azure-cvm/trustee-az-snp-vtpm/evidence-v2.json'), '--cert', V('amd-snp/amd-certs/ask_ark_milan.pem'), '--nonce', rd, ...AT];
    assert.equal((await cli([...base, '--expect-user-data', rd])).code, 0);
    const r = await cli([...base, '--expect-user-data', '123abc', '--json']);
    assert.equal(r.code, 1);
    assert.equal((JSON.parse(r.stdout) as JsonOut).error?.code, 'AZURE_USER_DATA_MISMATCH');
  });

  test('Azure TDX evidence: TD quote to the Intel root, TCB NOT CHECKED without collateral, MRTD in the claims', async () => {
    const r = await cli([V('azure-cvm/trustee-az-tdx-vtpm/evidence-v0.json'), ...CHALLENGE, ...AT, '--json']);
    assert.equal(r.code, 0, r.stdout);
    const j = JSON.parse(r.stdout) as JsonOut;
    assert.equal(j.kind, 'azure-tdx');
    assert.equal(j.claims?.launch.tdx?.mrtd, expected('azure-cvm/trustee-az-tdx-vtpm/td-quote.bin').mr_td);
    assert.ok(j.checks.find((c) => c.name === 'dcap.tcb')?.notChecked);
    const hcl = await cli([V('azure-cvm/trustee-az-tdx-vtpm/hcl-report.bin'), ...AT]);
    assert.equal(hcl.code, 2);
    assert.match(hcl.stderr, /^coffer: AZURE_NO_TD_QUOTE: /);
  });

  test('GCE: the nonce9009 attestation with Google\'s root and intermediate; the event log replays', async () => {
    const r = await cli([V('tpm-quote/gce-shielded-vm-cos85/gce-cos-85-nonce9009.pb'), '--root', V('gcp/ca/tpm_ek_root_1.cer'), '--chain', V('gcp/ca/tpm_ek_intermediate_2.crt'), '--nonce', '9009', ...AT, '--json']);
    assert.equal(r.code, 0, r.stdout);
    const j = JSON.parse(r.stdout) as JsonOut;
    assert.equal(j.kind, 'gcp');
    assert.deepEqual(Object.keys(j.claims?.runtime.pcrs ?? {}).sort(), ['sha1', 'sha256', 'sha384']);
    assert.ok(j.checks.some((c) => c.name === 'eventlog.replay' && c.ok));
    assert.equal((j.details.instance as { instanceName: string }).instanceName, 'cos-test');
  });

  test('Nitro: valid document exit 0; debug document exit 1 NITRO_DEBUG_MODE; bad signature exit 1; NitroTPM bundle exit 0', async () => {
    const ok = await cli([V('aws-nitro/evervault/valid-attestation-doc-bytes.cbor'), '--at', '2022-10-13T09:00:00Z', '--json']);
    assert.equal(ok.code, 0);
    const j = JSON.parse(ok.stdout) as JsonOut;
    assert.equal(j.kind, 'nitro');
    assert.equal(j.claims?.runtime.pcrs?.nitro?.['0'], expected('aws-nitro/evervault/valid-attestation-doc-bytes.cbor').pcr0);
    assert.equal(j.claims?.debug.debug, false);
    const dbg = await cli([V('aws-nitro/evervault/debug-mode-attestation-doc-bytes.cbor'), '--at', '2022-10-12T14:00:00Z']);
    assert.equal(dbg.code, 1);
    assert.match(dbg.stderr, /^coffer: NITRO_DEBUG_MODE: /);
    assert.equal((await cli([V('aws-nitro/evervault/debug-mode-attestation-doc-bytes.cbor'), '--at', '2022-10-12T14:00:00Z', '--allow-debug'])).code, 0);
    const bad = await cli([V('aws-nitro/veracruz/aws_nitro_document_bad_sig.cbor'), '--json']);
    assert.equal(bad.code, 1);
    assert.equal((JSON.parse(bad.stdout) as JsonOut).error?.code, 'NITRO_BAD_SIGNATURE');
    const tpm = await cli([V('aws-nitro/nitrotpm-vaportpm/test-nitro-fixture.json'), '--at', '2026-02-03T11:00:00Z', '--nonce', expected('aws-nitro/nitrotpm-vaportpm/test-nitro-fixture.json').nonce ?? '']);
    assert.equal(tpm.code, 0, tpm.stderr);
    assert.match(tpm.stdout, /^VERIFIED {2}nitro: AWS NitroTPM \(i-01cfb383223e42522-tpm0000000000000000\)/);
  });

  test('a TPM quote JSON with --ak (the HCLAkPub is not a file, so an Azure AK PEM from elsewhere fails the signature)', async () => {
    const r = await cli([V('azure-cvm/trustee-az-snp-vtpm/tpm-quote-v1.json'), '--ak', V('tpm-quote/azure-vtpm-kinvolk/akpub.pem'), ...AT]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /^coffer: TPM_BAD_SIGNATURE: /);
    const noAk = await cli([V('azure-cvm/trustee-az-snp-vtpm/tpm-quote-v1.json'), ...AT]);
    assert.equal(noAk.code, 2);
  });

  test('unknown input exits 2 with one line; a bad --kind exits 2; --kind forces the parser', async () => {
    const r = await cli([V('README.md')]);
    assert.equal(r.code, 2);
    assert.equal(r.stderr.trim().split('\n').length, 1);
    assert.match(r.stderr, /^coffer: EVIDENCE_UNKNOWN_KIND: /);
    const j = await cli([V('README.md'), '--json']);
    assert.equal(j.code, 2);
    assert.equal((JSON.parse(j.stdout) as JsonOut).error?.code, 'EVIDENCE_UNKNOWN_KIND');
    assert.equal((await cli([V('README.md'), '--kind', 'azure'])).code, 2);
    const forced = await cli([V('aws-nitro/evervault/valid-attestation-doc-bytes.cbor'), '--kind', 'gcp']);
    assert.equal(forced.code, 2);
    assert.match(forced.stderr, /^coffer: GCP_BAD_ATTESTATION: /);
    assert.equal((await cli([V('README.md'), '--at', 'yesterday'])).code, 2);
  });
});

describe('security review: the CLI never prints VERIFIED for what nothing vouches for, and bad input is one line', () => {
  const dir = mkdtempSync(join(tmpdir(), 'coffer-evidence-review-'));

  test('a GCE attestation forged in software: no --root → exit 2 GCP_ROOT_REQUIRED, never VERIFIED; with Google\'s root → exit 1', async () => {
    const file = join(dir, 'forged.pb');
    writeFileSync(file, forgeGceAttestation(Buffer.from('9009', 'hex')));
    const r = await cli([file, '--nonce', '9009', ...AT]);
    assert.equal(r.code, 2);
    assert.doesNotMatch(r.stdout, /VERIFIED/);
    assert.match(r.stderr, /^coffer: GCP_ROOT_REQUIRED: /);
    const rooted = await cli([file, '--root', V('gcp/ca/tpm_ek_root_1.cer'), '--chain', V('gcp/ca/tpm_ek_intermediate_2.crt'), '--nonce', '9009', ...AT, '--json']);
    assert.equal(rooted.code, 1);
    assert.equal((JSON.parse(rooted.stdout) as JsonOut).error?.code, 'GCP_NO_AK_CERTIFICATE');
    // The real attestation without --root is refused the same way.
    const real = await cli([V('tpm-quote/gce-shielded-vm-cos85/gce-cos-85-nonce9009.pb'), '--nonce', '9009', ...AT]);
    assert.equal(real.code, 2);
    assert.match(real.stderr, /^coffer: GCP_ROOT_REQUIRED: /);
  });

  test('Nitro: a document verified long after its three hours fails NITRO_DOCUMENT_EXPIRED; --historical verifies it; --max-age bounds it', async () => {
    const doc = V('aws-nitro/evervault/valid-attestation-doc-bytes.cbor');
    const old = await cli([doc, ...AT]);
    assert.equal(old.code, 1);
    assert.match(old.stderr, /^coffer: NITRO_DOCUMENT_EXPIRED: /);
    const hist = await cli([doc, ...AT, '--historical']);
    assert.equal(hist.code, 0, hist.stderr);
    assert.match(hist.stdout, /NOT CHECKED: .*nitro\.freshness/);
    const young = await cli([doc, '--at', '2022-10-13T09:10:00Z', '--max-age', '60']);
    assert.equal(young.code, 1);
    assert.match(young.stderr, /^coffer: NITRO_DOCUMENT_TOO_OLD: /);
    assert.equal((await cli([doc, '--at', '2022-10-13T09:10:00Z', '--max-age', '900'])).code, 0);
    assert.equal((await cli([doc, '--max-age', 'soon'])).code, 2);
  });

  test('a raw TPMS_ATTEST, even forced to --kind tpm, and a bad --tpm-quote JSON are one-line input errors (exit 2)', async () => {
    const attest = V('tpm-quote/gce-shielded-vm-cos85/gce-cos-85-nonce9009/quote_sha256.attest');
    const auto = await cli([attest, ...AT]);
    assert.equal(auto.code, 2);
    assert.match(auto.stderr, /^coffer: EVIDENCE_UNKNOWN_KIND: .*bare TPMS_ATTEST/);
    const forced = await cli([attest, '--kind', 'tpm', '--ak', V('tpm-quote/azure-vtpm-kinvolk/akpub.pem'), ...AT]);
    assert.equal(forced.code, 2);
    assert.equal(forced.stderr.trim().split('\n').length, 1);
    assert.match(forced.stderr, /^coffer: EVIDENCE_BAD_INPUT: /);
    const bad = join(dir, 'bad.json');
    writeFileSync(bad, '{not json');
    const hcl = await cli([V('azure-cvm/trustee-az-snp-vtpm/hcl-report.bin'), '--tpm-quote', bad, ...AT]);
    assert.equal(hcl.code, 2);
    assert.match(hcl.stderr, /^coffer: AZURE_BAD_EVIDENCE: --tpm-quote .* is not valid JSON/);
  });
});
