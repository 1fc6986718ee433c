// The real SGX quote (trustee's Occlum v3 quote) verified to the pinned root with the manifest
// values, and the SGX TCB algorithm (TCB info v2 and v3, QE identity, convergence) on TCB infos
// built here: the vectors hold no SGX TCB info or QE identity for this FMSPC (00606a000000), so
// its TCB status cannot be computed from real collateral.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { convergeTcbStatus, parseDcapQuote, platformTcb, qeTcb, sgxClaims, tcbInfoFromParts, qeIdentityFromParts, validateEnclaveReport, verifyDcapQuote, type TcbProblem } from '../../../src/evidence/dcap/index.js';
import { AT_2025, Q, collateral2025, expectCoffer, expected, vec } from '../tdx/dcap-vectors.js';

const SIG = '00'.repeat(64);

describe('sgx_occlum_quote_v3.dat', () => {
  const e = expected(`intel-tdx/${Q.sgx}`);
  test('verifies to the production root with the manifest values', () => {
    const v = verifyDcapQuote(vec(Q.sgx), { at: AT_2025, tee: 'sgx' });
    const c = sgxClaims(v.quote, v);
    assert.ok(c);
    assert.equal(c.version, e.version);
    assert.equal(c.mrEnclave, e.mr_enclave);
    assert.equal(`${c.reportData} ("test")`, e.report_data);
    assert.equal(c.qeSvn, e.qe_svn);
    assert.equal(c.pceSvn, e.pce_svn);
    assert.equal(c.fmspc, '00606a000000');
    // The Occlum sample enclave is a DEBUG enclave (ATTRIBUTES.FLAGS bit 1).
    assert.equal(c.debug, true);
    assert.equal(c.attributes.slice(0, 2), '07');
    assert.equal(v.chain[2]?.sha256, '44a0196b2b99f889b8e149e95b807a350e7424964399e885a7cbb8ccfab674d3');
    assert.equal(v.quote.signatureData.qeReport.isvSvn, 8);
  });

  test('the TDX collateral does not apply to it: TCB and QE identity are reported NOT CHECKED', () => {
    const v = verifyDcapQuote(vec(Q.sgx), { at: AT_2025, collateral: collateral2025() });
    const tcb = v.checks.find((k) => k.name === 'dcap.tcb');
    assert.ok(tcb?.notChecked);
    assert.match(tcb.description, /no SGX TCB info for FMSPC 00606a000000/);
    assert.ok(v.checks.find((k) => k.name === 'dcap.qe-identity')?.notChecked, 'a TD_QE identity is not the SGX QE identity');
  });

  test('validation: MRENCLAVE, MRSIGNER, ISVPRODID, ISVSVN, report data, debug', () => {
    const v = verifyDcapQuote(vec(Q.sgx), { at: AT_2025 });
    const r = v.quote.sgx;
    assert.ok(r);
    const strict = validateEnclaveReport(r, v, {});
    assert.deepEqual(strict.filter((c) => !c.ok).map((c) => [c.code, c.found]), [['SGX_DEBUG_ALLOWED', 'DEBUG = 1']]);
    const ok = validateEnclaveReport(r, v, { allowDebug: true, mrEnclave: [Buffer.from(String(e.mr_enclave), 'hex')], mrSigner: [r.mrSigner], isvProdId: r.isvProdId, minimumIsvSvn: r.isvSvn, reportData: Buffer.from('test') });
    assert.deepEqual(ok.filter((c) => !c.ok), []);
    assert.ok(ok.find((c) => c.name === 'sgx.tcb-status')?.notChecked);
    const bad = validateEnclaveReport(r, v, { allowDebug: true, mrEnclave: [Buffer.alloc(32)], mrSigner: [Buffer.alloc(32)], isvProdId: r.isvProdId + 1, minimumIsvSvn: r.isvSvn + 1, reportData: Buffer.from('tesT') });
    assert.deepEqual(bad.filter((c) => !c.ok).map((c) => c.code), ['SGX_MRENCLAVE_MISMATCH', 'SGX_MRSIGNER_MISMATCH', 'SGX_ISVPRODID_MISMATCH', 'SGX_ISVSVN_TOO_LOW', 'SGX_REPORT_DATA_MISMATCH']);
    assert.equal(bad[0]?.found, e.mr_enclave);
  });

  test('a TDX verifier refuses it, an SGX verifier refuses a TDX quote', () => {
    expectCoffer(() => verifyDcapQuote(vec(Q.sgx), { at: AT_2025, tee: 'tdx' }), 'DCAP_WRONG_TEE', 'input');
    expectCoffer(() => verifyDcapQuote(vec(Q.trustee), { at: AT_2025, tee: 'sgx' }), 'DCAP_WRONG_TEE', 'input');
  });
});

function comps(svns: number[]): { svn: number }[] {
  return Array.from({ length: 16 }, (_, i) => ({ svn: svns[i] ?? 0 }));
}

describe('SGX TCB status (QVL algorithm) on constructed TCB infos', () => {
  const pck = { components: [4, 4, 3, 3, 255, 255, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], pceSvn: 11, cpuSvn: Buffer.alloc(16) };
  const v3 = JSON.stringify({
    id: 'SGX', version: 3, issueDate: '2025-01-01T00:00:00Z', nextUpdate: '2025-02-01T00:00:00Z', fmspc: '00606a000000', pceId: '0000', tcbType: 0, tcbEvaluationDataNumber: 17,
    tcbLevels: [
      { tcb: { sgxtcbcomponents: comps([5, 5, 3, 3, 255, 255]), pcesvn: 13 }, tcbDate: '2024-03-13T00:00:00Z', tcbStatus: 'UpToDate' },
      { tcb: { sgxtcbcomponents: comps([4, 4, 3, 3, 255, 255]), pcesvn: 11 }, tcbDate: '2023-08-09T00:00:00Z', tcbStatus: 'SWHardeningNeeded', advisoryIDs: ['INTEL-SA-00615'] },
      { tcb: { sgxtcbcomponents: comps([1, 1]), pcesvn: 5 }, tcbDate: '2018-01-04T00:00:00Z', tcbStatus: 'OutOfDate', advisoryIDs: ['INTEL-SA-00106'] },
    ],
  });
  test('v3: the first level the PCK TCB meets, with its advisories', () => {
    const info = tcbInfoFromParts(v3, SIG);
    const r = platformTcb(info, pck);
    assert.ok(!('code' in r));
    assert.equal(r.levelIndex, 1);
    assert.equal(r.status, 'SWHardeningNeeded');
    assert.deepEqual(r.advisoryIds, ['INTEL-SA-00615']);
    const lowPce = platformTcb(info, { ...pck, pceSvn: 10 });
    assert.ok(!('code' in lowPce) && lowPce.status === 'OutOfDate');
    const none = platformTcb(info, { ...pck, components: pck.components.map(() => 0), pceSvn: 0 }) as TcbProblem;
    assert.equal(none.code, 'DCAP_TCB_NOT_SUPPORTED');
  });

  test('v2 (sgxtcbcompNNsvn fields) gives the same answer', () => {
    const doc = JSON.parse(v3) as { tcbLevels: { tcb: Record<string, unknown> }[] } & Record<string, unknown>;
    delete doc.id;
    doc.version = 2;
    for (const l of doc.tcbLevels) {
      const c = l.tcb.sgxtcbcomponents as { svn: number }[];
      const tcb: Record<string, number> = { pcesvn: l.tcb.pcesvn as number };
      c.forEach((x, i) => (tcb[`sgxtcbcomp${String(i + 1).padStart(2, '0')}svn`] = x.svn));
      l.tcb = tcb;
    }
    const info = tcbInfoFromParts(JSON.stringify(doc), SIG);
    assert.equal(info.version, 2);
    assert.equal(info.id, 'SGX');
    const r = platformTcb(info, pck);
    assert.ok(!('code' in r) && r.status === 'SWHardeningNeeded' && r.levelIndex === 1);
  });

  test('QE identity: masks, ISVSVN levels, and the convergence rules', () => {
    const q = parseDcapQuote(vec(Q.sgx)).signatureData.qeReport;
    const identity = (over: Record<string, unknown>) =>
      qeIdentityFromParts(
        JSON.stringify({
          id: 'QE', version: 2, issueDate: '2025-01-01T00:00:00Z', nextUpdate: '2025-02-01T00:00:00Z', tcbEvaluationDataNumber: 17,
          miscselect: '00000000', miscselectMask: 'FFFFFFFF', attributes: q.attributes.toString('hex'), attributesMask: 'FBFFFFFFFFFFFFFF0000000000000000',
          mrsigner: q.mrSigner.toString('hex'), isvprodid: q.isvProdId,
          tcbLevels: [{ tcb: { isvsvn: q.isvSvn + 1 }, tcbDate: '2024-03-13T00:00:00Z', tcbStatus: 'UpToDate' }, { tcb: { isvsvn: 0 }, tcbDate: '2018-01-04T00:00:00Z', tcbStatus: 'OutOfDate', advisoryIDs: ['INTEL-SA-00219'] }],
          ...over,
        }),
        SIG,
      );
    const r = qeTcb(identity({}), q);
    assert.ok(!('code' in r));
    assert.equal(r.status, 'OutOfDate');
    assert.deepEqual(r.advisoryIds, ['INTEL-SA-00219']);
    const wrong = qeTcb(identity({ isvprodid: q.isvProdId + 1 }), q) as TcbProblem;
    assert.equal(wrong.code, 'DCAP_QE_IDENTITY_MISMATCH');
    assert.equal(convergeTcbStatus('UpToDate', 'OutOfDate'), 'OutOfDate');
    assert.equal(convergeTcbStatus('SWHardeningNeeded', 'OutOfDate'), 'OutOfDate');
    assert.equal(convergeTcbStatus('ConfigurationNeeded', 'OutOfDate'), 'OutOfDateConfigurationNeeded');
    assert.equal(convergeTcbStatus('ConfigurationAndSWHardeningNeeded', 'OutOfDate'), 'OutOfDateConfigurationNeeded');
    assert.equal(convergeTcbStatus('UpToDate', 'Revoked'), 'Revoked');
    assert.equal(convergeTcbStatus('SWHardeningNeeded', 'UpToDate'), 'SWHardeningNeeded');
  });
});
