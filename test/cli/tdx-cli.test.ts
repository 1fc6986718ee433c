// `coffer tdx verify` and `coffer sgx verify`, in-process: a commander program with only these
// commands registered, output captured. Exit codes, the VERIFIED headline, NOT CHECKED lines, the
// --json shape and values against the manifest, collateral directories and the dcap-qvl JSON form,
// the CCEL, and one-line failures.
import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CCEL, FIXTURES, Q, T, expected } from '../evidence/tdx/dcap-vectors.js';
import { runCli as cli } from '../helpers/cli.js';



const work = mkdtempSync(join(tmpdir(), 'coffer-tdxcli-'));
after(() => rmSync(work, { recursive: true, force: true }));

// A collateral directory as an operator would keep it: PCS responses and the issuer chain as served.
const DIR_2025 = join(work, 'col-2025');
{
  const { mkdirSync } = await import('node:fs');
  mkdirSync(DIR_2025);
  copyFileSync(join(T, 'teekit/tcbInfo-tdx-00806f050000.json'), join(DIR_2025, 'tcbInfo-00806f050000.json'));
  copyFileSync(join(T, 'teekit/tcbInfo-tdx-50806f000000.json'), join(DIR_2025, 'tcbInfo-50806f000000.json'));
  copyFileSync(join(T, 'trustee/qeIdentity_TD_QE_2025-10-28.json'), join(DIR_2025, 'qeIdentity.json'));
  copyFileSync(join(FIXTURES, 'intel-tcb-signing-2025.pem'), join(DIR_2025, 'tcb-info-issuer-chain.pem'));
}
const DIR_2023 = join(T, 'go-tdx-guest/collateral');
const AT_2025 = ['--at', '2025-10-29T00:00:00Z'];
const lines = (s: string): string[] => s.split('\n').filter((l) => l.trim() !== '');

describe('coffer tdx verify', () => {
  const cos = expected(`intel-tdx/${Q.cos}`);
  test('the COS quote with its CCEL and a collateral directory: VERIFIED, TCB UpToDate, RTMRs from the log', async () => {
    const r = await cli(['tdx', 'verify', join(T, Q.cos), '--collateral', DIR_2025, ...AT_2025, '--ccel', CCEL, '--expect-mrtd', String(cos.mr_td), '--expect-report-data', '00']);
    assert.equal(r.code, 0, r.stderr);
    const out = lines(r.stdout);
    assert.equal(out[0], 'VERIFIED  TDX quote v4 (TDX 1.0), PCK chain to Intel SGX Root CA (pinned), TCB UpToDate, QE ISVPRODID 2 ISVSVN 6 UpToDate');
    assert.match(r.stdout, /NOT CHECKED: pki\.revocation\.pck, pki\.revocation\.root/);
    assert.ok(out.includes(`  mrtd        ${cos.mr_td}`));
    for (let i = 0; i < 4; i++) assert.match(r.stdout, new RegExp(`ok {3}tdx\\.ccel\\.rtmr${i} +RTMR${i} equals the replay of \\d+ CCEL event`));
    assert.match(r.stdout, /ok {3}dcap\.tcb\.level +TCB level 0 \(\d{4}-\d\d-\d\d\) is UpToDate, TDX module UpToDate, QE UpToDate → UpToDate/);
  });

  test('--json: {ok, claims, checks} with the manifest values', async () => {
    const r = await cli(['tdx', 'verify', join(T, Q.cos), '--collateral', DIR_2025, ...AT_2025, '--json']);
    assert.equal(r.code, 0);
    const j = JSON.parse(r.stdout) as { ok: boolean; claims: Record<string, unknown>; checks: { name: string; ok: boolean; notChecked?: boolean }[] };
    assert.equal(j.ok, true);
    assert.equal(j.claims.mrTd, cos.mr_td);
    assert.equal(j.claims.rtmr2, cos.rtmr2);
    assert.equal(j.claims.fmspc, cos.fmspc);
    assert.equal(j.claims.teeTcbSvn, cos.tee_tcb_svn);
    assert.equal(j.claims.tcbStatus, 'UpToDate');
    assert.equal(j.claims.tdxModuleStatus, 'UpToDate');
    assert.ok(j.checks.find((c) => c.name === 'tdx.mrtd')?.notChecked);
    assert.ok(j.checks.find((c) => c.name === 'tdx.report-data')?.notChecked);
  });

  test('the dcap-qvl collateral JSON form (inner JSON text + hex signature + issuer chain) works the same', async () => {
    const text = readFileSync(join(T, 'teekit/tcbInfo-tdx-00806f050000.json'), 'latin1');
    const qe = readFileSync(join(T, 'trustee/qeIdentity_TD_QE_2025-10-28.json'), 'latin1');
    const inner = (s: string) => s.slice(s.indexOf(':') + 1, s.lastIndexOf(',"signature"'));
    const sig = (s: string) => (JSON.parse(s) as { signature: string }).signature;
    const file = join(work, 'collateral.json');
    writeFileSync(file, JSON.stringify({ tcb_info: inner(text), tcb_info_signature: sig(text), qe_identity: inner(qe), qe_identity_signature: sig(qe), tcb_info_issuer_chain: readFileSync(join(FIXTURES, 'intel-tcb-signing-2025.pem'), 'latin1') }));
    const r = await cli(['tdx', 'verify', join(T, Q.cos), '--collateral', file, ...AT_2025, '--json']);
    assert.equal(r.code, 0, r.stdout);
    assert.equal((JSON.parse(r.stdout) as { claims: { tcbStatus: string } }).claims.tcbStatus, 'UpToDate');
  });

  test('the trustee debug TD: refused (exit 1, one line per failed rule) unless --allow-debug, and OutOfDate needs --accept-tcb', async () => {
    const r = await cli(['tdx', 'verify', join(T, Q.trustee), '--collateral', DIR_2025, ...AT_2025]);
    assert.equal(r.code, 1);
    assert.equal(r.stdout, '');
    assert.deepEqual(lines(r.stderr).map((l) => l.split(':').slice(0, 2).join(':')), ['coffer: TDX_DEBUG_ALLOWED', 'coffer: DCAP_TCB_STATUS_NOT_ACCEPTED']);
    const ok = await cli(['tdx', 'verify', join(T, Q.trustee), '--collateral', DIR_2025, ...AT_2025, '--allow-debug', '--accept-tcb', 'OutOfDate']);
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(ok.stdout, /TCB OutOfDate/);
    assert.match(ok.stdout, /advisories INTEL-SA-00837, INTEL-SA-00960, INTEL-SA-00982, INTEL-SA-00986/);
  });

  test('2023 collateral directory (with CRLs) at 2023-07-01: revocation checked, UpToDate; a wrong RTMR names the register', async () => {
    const tr = expected(`intel-tdx/${Q.trustee}`);
    const r = await cli(['tdx', 'verify', join(T, Q.trustee), '--collateral', DIR_2023, '--at', '2023-07-01T01:00:00Z', '--allow-debug', '--expect-rtmr', `0=${String(tr.rtmr0)}`, '--json']);
    assert.equal(r.code, 0, r.stdout);
    const j = JSON.parse(r.stdout) as { claims: { tcbStatus: string }; checks: { name: string; ok: boolean; notChecked?: boolean }[] };
    assert.equal(j.claims.tcbStatus, 'UpToDate');
    assert.equal(j.checks.filter((c) => c.name === 'pki.revocation' && c.ok && !c.notChecked).length, 2);
    const bad = await cli(['tdx', 'verify', join(T, Q.trustee), '--at', '2023-07-01T01:00:00Z', '--allow-debug', '--expect-rtmr', `1=${'00'.repeat(48)}`]);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, new RegExp(`^coffer: TDX_RTMR_MISMATCH: RTMR1 is not an accepted value \\(expected ${'0'.repeat(96)}, found ${String(tr.rtmr1)}\\)`));
  });

  test('failures are one line: NONPROD root (exit 1), trailing bytes (exit 2), SGX quote to tdx (exit 2), bad flags (exit 2)', async () => {
    const np = await cli(['tdx', 'verify', join(T, Q.nonprod), ...AT_2025]);
    assert.equal(np.code, 2, 'an SGX quote given to tdx verify is a usage error');
    assert.match(np.stderr, /^coffer: DCAP_WRONG_TEE: /);
    const root = await cli(['sgx', 'verify', join(T, Q.nonprod), ...AT_2025]);
    assert.equal(root.code, 1);
    assert.equal(lines(root.stderr).length, 1);
    assert.match(root.stderr, /^coffer: PKI_UNTRUSTED_ROOT: Intel SGX PCK Processor CA chains to Intel SGX Root CA, which is not a trusted root/);
    const spr = await cli(['tdx', 'verify', join(T, Q.spr), '--at', '2023-07-01']);
    assert.equal(spr.code, 2);
    assert.match(spr.stderr, /^coffer: DCAP_TRAILING_BYTES: 39 non-zero byte/);
    const sprOk = await cli(['tdx', 'verify', join(T, Q.spr), '--at', '2023-07-01', '--allow-trailing-bytes']);
    assert.equal(sprOk.code, 0);
    const flag = await cli(['tdx', 'verify', join(T, Q.cos), '--expect-rtmr', '4=00']);
    assert.equal(flag.code, 2);
    assert.match(flag.stderr, /^coffer: USAGE: --expect-rtmr takes N=HEX/);
    const acc = await cli(['tdx', 'verify', join(T, Q.cos), '--accept-tcb', 'Revoked']);
    assert.equal(acc.code, 2);
    const json = await cli(['tdx', 'verify', join(T, Q.trustee), '--at', '2053-01-01', '--json']);
    assert.equal(json.code, 1);
    const j = JSON.parse(json.stdout) as { ok: boolean; error: { code: string }; claims: { mrTd: string } };
    assert.equal(j.ok, false);
    assert.equal(j.error.code, 'PKI_EXPIRED');
    assert.equal(j.claims.mrTd, expected(`intel-tdx/${Q.trustee}`).mr_td, 'claims decoded (unverified) even on failure');
  });
});

describe('coffer sgx verify', () => {
  const e = expected(`intel-tdx/${Q.sgx}`);
  test('the Occlum quote: VERIFIED with --allow-debug and the expected MRENCLAVE; debug refused otherwise', async () => {
    const r = await cli(['sgx', 'verify', join(T, Q.sgx), ...AT_2025, '--allow-debug', '--expect-mrenclave', String(e.mr_enclave), '--expect-report-data', '74657374']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(lines(r.stdout)[0], 'VERIFIED  SGX quote v3, PCK chain to Intel SGX Root CA (pinned), TCB NOT CHECKED (no collateral given), QE ISVPRODID 1 ISVSVN 8');
    assert.match(r.stdout, /NOT CHECKED: .*dcap\.tcb, dcap\.qe-identity, sgx\.mrsigner, sgx\.tcb-status/);
    assert.ok(lines(r.stdout).includes(`  mrenclave   ${String(e.mr_enclave)}`));
    const d = await cli(['sgx', 'verify', join(T, Q.sgx), ...AT_2025]);
    assert.equal(d.code, 1);
    assert.match(d.stderr, /^coffer: SGX_DEBUG_ALLOWED: /);
    const w = await cli(['sgx', 'verify', join(T, Q.sgx), ...AT_2025, '--allow-debug', '--expect-mrenclave', '11'.repeat(32), '--json']);
    assert.equal(w.code, 1);
    const j = JSON.parse(w.stdout) as { ok: boolean; error: { code: string }; claims: { mrEnclave: string; qeSvn: number; pceSvn: number } };
    assert.equal(j.error.code, 'SGX_MRENCLAVE_MISMATCH');
    assert.equal(j.claims.mrEnclave, e.mr_enclave);
    assert.equal(j.claims.qeSvn, e.qe_svn);
    assert.equal(j.claims.pceSvn, e.pce_svn);
  });
});
