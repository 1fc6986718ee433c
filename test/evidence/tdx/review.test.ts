// Findings of the security review of the DCAP verifier, each reproduced: the built-in minimum QE
// identity (enforced without collateral), the QE vendor ID, reserved fields judged only after the
// signature, every collateral document's signature checked before it is selected, the newest
// current collateral preferred, and a TDX module with a major version but no module identities.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync, sign } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { CofferError } from '../../../src/errors.js';
import {
  INTEL_QE_SIGNERS,
  convergeTcbStatus,
  parseDcapQuote,
  parseQeIdentity,
  parseTcbInfo,
  platformTcb,
  sgxClaims,
  tcbInfoFromParts,
  tdxClaims,
  tdxModuleTcb,
  verifyDcapQuote,
} from '../../../src/evidence/dcap/index.js';
import { AT_2023, AT_2025, AT_2026, Q, T, collateral2023, collateral2025, collateral2026, expectCoffer, vec } from './dcap-vectors.js';

const INTEL_QE = '8c4f5775d796503e96137f77c68a829a0056ac8ded70140b081b094490c57bff';
const INTEL_TD_QE = 'dc9e2a7c6f948f17474e34a7fc43ed030f7c1563f1babddf6340c82e0e54a8c5';

/**
 * Re-signs the quote's header and body with a fresh attestation key placed in the quote: the quote
 * signature then verifies, so whatever was changed in the signed region is judged by the checks
 * that come after it (the QE binding would catch the new key, but only later).
 */
function resign(quote: Buffer, edit: (b: Buffer) => void): Buffer {
  const q = parseDcapQuote(quote, { allowTrailingBytes: true });
  const b = Buffer.from(q.raw);
  edit(b);
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const jwk = publicKey.export({ format: 'jwk' }) as { x: string; y: string };
  const sig = sign('sha256', b.subarray(0, q.signedLength), { key: privateKey, dsaEncoding: 'ieee-p1363' });
  const sd = q.signedLength + 4;
  sig.copy(b, sd);
  Buffer.concat([Buffer.from(jwk.x, 'base64url'), Buffer.from(jwk.y, 'base64url')]).copy(b, sd + 64);
  return b;
}

describe('finding 3: a minimum QE identity is enforced even without collateral', () => {
  test('the TD_QE MRSIGNER and ISVPRODID are those of Intel\'s TD_QE identity collateral in the vectors', () => {
    for (const f of ['go-tdx-guest/collateral/qeIdentity_TD_QE_2023-06-08.json', 'trustee/qeIdentity_TD_QE_2025-10-28.json']) {
      const id = parseQeIdentity(vec(f));
      assert.equal(id.id, 'TD_QE');
      assert.equal(id.mrSigner.toString('hex'), INTEL_QE_SIGNERS.tdx.mrSigner.toString('hex'));
      assert.equal(id.isvProdId, INTEL_QE_SIGNERS.tdx.isvProdId);
    }
    assert.equal(INTEL_QE_SIGNERS.tdx.mrSigner.toString('hex'), INTEL_TD_QE);
    assert.equal(INTEL_QE_SIGNERS.sgx.mrSigner.toString('hex'), INTEL_QE);
    assert.equal(INTEL_QE_SIGNERS.sgx.isvProdId, 1);
  });

  test('without collateral the check passes for every real quote and the claims carry the QE identity', () => {
    for (const [name, at, tee] of [[Q.cos, AT_2025, 'tdx'], [Q.trustee, AT_2023, 'tdx'], [Q.sgx, AT_2025, 'sgx']] as const) {
      const v = verifyDcapQuote(vec(name), { at, allowTrailingBytes: true });
      const check = v.checks.find((c) => c.name === 'dcap.qe-identity.minimum');
      assert.ok(check?.ok && !check.notChecked, name);
      assert.equal(v.collateralGiven, false);
      const c = tee === 'tdx' ? tdxClaims(v.quote, v) : sgxClaims(v.quote, v);
      assert.equal(c?.qe.mrSigner, tee === 'tdx' ? INTEL_TD_QE : INTEL_QE);
      assert.equal(c?.qe.isvProdId, tee === 'tdx' ? 2 : 1);
      assert.equal(c?.qe.isvSvn, v.quote.signatureData.qeReport.isvSvn);
      assert.equal(c?.collateralGiven, false);
    }
  });

  test('another signer, another product, or a debug QE fails DCAP_QE_IDENTITY_MISMATCH (the real TD_QE judged as if it had to be the SGX QE, and vice versa)', () => {
    const e = expectCoffer(() => verifyDcapQuote(vec(Q.cos), { at: AT_2025, allowTrailingBytes: true, qeSigner: INTEL_QE_SIGNERS.sgx }), 'DCAP_QE_IDENTITY_MISMATCH', 'verify');
    assert.equal((e.details?.checks as { name: string }[]).at(-1)?.name, 'dcap.qe-identity.minimum');
    expectCoffer(() => verifyDcapQuote(vec(Q.cos), { at: AT_2025, allowTrailingBytes: true, qeSigner: { mrSigner: INTEL_QE_SIGNERS.tdx.mrSigner, isvProdId: 1 } }), 'DCAP_QE_IDENTITY_MISMATCH');
    expectCoffer(() => verifyDcapQuote(vec(Q.sgx), { at: AT_2025, qeSigner: INTEL_QE_SIGNERS.tdx }), 'DCAP_QE_IDENTITY_MISMATCH');
  });
});

describe('finding 8: the QE vendor ID must be Intel\'s', () => {
  test('a signed header naming another vendor fails DCAP_UNSUPPORTED_QE_VENDOR right after the quote signature', () => {
    const q = resign(vec(Q.trustee), (b) => void b.fill(0x42, 12, 28));
    const e = expectCoffer(() => verifyDcapQuote(q, { at: AT_2023 }), 'DCAP_UNSUPPORTED_QE_VENDOR', 'verify');
    const names = (e.details?.checks as { name: string }[]).map((c) => c.name);
    assert.deepEqual(names.slice(-2), ['dcap.quote-signature', 'dcap.qe-vendor']);
    // The unchanged quote re-signed the same way gets past the vendor check (to the QE binding).
    expectCoffer(() => verifyDcapQuote(resign(vec(Q.trustee), () => undefined), { at: AT_2023 }), 'DCAP_QE_BINDING_MISMATCH');
  });
});

describe('finding 10: reserved fields are judged after the signature, and refused when not zero', () => {
  test('parsing accepts a non-zero reserved field (it is not yet signed); an unsigned change fails the quote signature', () => {
    const raw = Buffer.from(vec(Q.sgx));
    raw[48 + 30] = 1; // RESERVED1 of the SGX report body
    assert.deepEqual(parseDcapQuote(raw).sgx?.reservedNonZero, ['RESERVED1']);
    expectCoffer(() => verifyDcapQuote(raw, { at: AT_2025 }), 'DCAP_QUOTE_BAD_SIGNATURE', 'verify');
  });

  test('a signed non-zero reserved field fails DCAP_RESERVED_NONZERO', () => {
    const q = resign(vec(Q.sgx), (b) => void (b[48 + 30] = 1));
    const e = expectCoffer(() => verifyDcapQuote(q, { at: AT_2025 }), 'DCAP_RESERVED_NONZERO', 'verify');
    assert.match(e.message, /RESERVED1/);
  });
});

describe('finding 9: every supplied collateral document is verified before it is selected', () => {
  // The review's fuzz-col script: a byte flipped anywhere in a TCB info or QE identity must never
  // let the quote verify with that document silently dropped ("NOT CHECKED").
  test('single-byte changes of the TCB info or QE identity: each is an error, never a pass', () => {
    const tcb = vec('go-tdx-guest/collateral/tcbInfo_fmspc50806f000000_2023-06-18.json');
    const qe = vec('go-tdx-guest/collateral/qeIdentity_TD_QE_2023-06-08.json');
    const base = collateral2023();
    const passes: string[] = [];
    for (const [name, doc, parse] of [['tcb', tcb, parseTcbInfo], ['qe', qe, parseQeIdentity]] as const) {
      for (let i = 0; i < doc.length; i += 3) {
        for (const x of [0x01, 0x20]) {
          const m = Buffer.from(doc);
          m[i] = (m[i] as number) ^ x;
          try {
            const p = parse(m);
            // Changing the case of a hex digit of the signature leaves the same document.
            const orig = parse(doc);
            if (p.signed.equals(orig.signed) && p.signature.equals(orig.signature)) continue;
            const col = { ...base, ...(name === 'tcb' ? { tcbInfos: [p as ReturnType<typeof parseTcbInfo>] } : { qeIdentities: [p as ReturnType<typeof parseQeIdentity>] }) };
            verifyDcapQuote(vec(Q.trustee), { at: AT_2023, collateral: col });
            passes.push(`${name}@${i}^${x}`);
          } catch (e) {
            assert.ok(e instanceof CofferError, `${name}@${i}^${x}: ${String(e)}`);
          }
        }
      }
    }
    assert.deepEqual(passes, []);
  });

  test('a tampered TCB info for another platform is still an error (DCAP_COLLATERAL_BAD_SIGNATURE)', () => {
    const raw = vec('teekit/tcbInfo-tdx-b0c06f000000.json');
    const at = raw.indexOf('"pcesvn":') + 9;
    const bad = Buffer.from(raw);
    bad[at] = bad[at] === 0x31 ? 0x32 : 0x31;
    const col = collateral2025();
    const e = expectCoffer(() => verifyDcapQuote(vec(Q.cos), { at: AT_2025, allowTrailingBytes: true, collateral: { ...col, tcbInfos: [...(col.tcbInfos ?? []), parseTcbInfo(bad)] } }), 'DCAP_COLLATERAL_BAD_SIGNATURE', 'verify');
    assert.match(e.message, /TCB info #5 \(TDX, FMSPC b0c06f000000/);
  });

  test('of several current TCB infos for the platform, the highest tcbEvaluationDataNumber is used', () => {
    const col = collateral2025();
    const cos = (col.tcbInfos ?? []).find((t) => t.fmspc.toString('hex') === '00806f050000');
    assert.ok(cos);
    // An older evaluation of the same platform (a lower number), still current: it must not win
    // over the newer one however it is ordered.
    const older = { ...cos, tcbEvaluationDataNumber: cos.tcbEvaluationDataNumber - 1 };
    for (const infos of [[older, cos], [cos, older]]) {
      const v = verifyDcapQuote(vec(Q.cos), { at: AT_2025, allowTrailingBytes: true, collateral: { ...col, tcbInfos: infos } });
      assert.equal(v.tcb?.tcbInfo.tcbEvaluationDataNumber, cos.tcbEvaluationDataNumber);
    }
  });
});

describe('finding 4: a TDX module with a major version and no tdxModuleIdentities', () => {
  // The review's module script: the COS quote's TCB info with tdxModuleIdentities removed (as in a
  // pre-TDX-1.5 TCB info) and the module's SVN set to 0, below every TDX_01 level.
  test('is a TDX module mismatch, as QVL, not a silently skipped check', () => {
    const raw = JSON.parse(readFileSync(`${T}/teekit/tcbInfo-tdx-00806f050000.json`, 'utf8')) as { tcbInfo: { tdxModuleIdentities?: unknown } };
    delete raw.tcbInfo.tdxModuleIdentities;
    const info = tcbInfoFromParts(JSON.stringify(raw.tcbInfo), '00'.repeat(64));
    const q = parseDcapQuote(vec(Q.cos), { allowTrailingBytes: true });
    const v = verifyDcapQuote(vec(Q.cos), { at: AT_2025, allowTrailingBytes: true });
    const td = { ...q.td!, teeTcbSvn: Buffer.from(q.td!.teeTcbSvn) };
    td.teeTcbSvn[0] = 0;
    assert.ok((td.teeTcbSvn[1] ?? 0) > 0);
    const p = platformTcb(info, v.pck.tcb, td.teeTcbSvn);
    assert.ok('status' in p);
    const m = tdxModuleTcb(info, td);
    assert.equal(m && 'code' in m ? m.code : undefined, 'DCAP_TDX_MODULE_MISMATCH');
    assert.equal(convergeTcbStatus(p.status, undefined), 'UpToDate', 'without the module check the platform alone would say UpToDate');
  });

  test('the real v5 quote and its TCB info (with identities) still judge the module', () => {
    const v = verifyDcapQuote(vec(Q.v5), { at: AT_2026, collateral: collateral2026() });
    assert.equal(v.tcb?.tdxModule?.identity, 'TDX_01');
  });
});

test('the review\'s fuzz-dcap: single-byte flips of real quotes never verify, and only CofferErrors come out', () => {
  const cases = [
    [Q.trustee, AT_2023, collateral2023()],
    [Q.sgx, AT_2025, undefined],
  ] as const;
  for (const [name, at, col] of cases) {
    const q = parseDcapQuote(vec(name), { allowTrailingBytes: true }).raw;
    for (let i = 0; i < q.length; i += 13) {
      const m = Buffer.from(q);
      m[i] = (m[i] as number) ^ 0x80;
      try {
        verifyDcapQuote(m, { at, ...(col ? { collateral: col } : {}) });
      } catch (e) {
        assert.ok(e instanceof CofferError, `${name}@${i}: ${String(e)}`);
        continue;
      }
      assert.fail(`${name}: a flip at 0x${i.toString(16)} still verifies`);
    }
  }
});

test('headline material: the claims say whether collateral was given', () => {
  const v = verifyDcapQuote(vec(Q.trustee), { at: AT_2023, collateral: collateral2023() });
  assert.equal(v.collateralGiven, true);
  assert.equal(tdxClaims(v.quote, v)?.collateralGiven, true);
});
