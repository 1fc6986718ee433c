// One policy, written once (test/appraisal/policy.yaml), over the real SEV-SNP reports and the
// real GCE vTPM quote + event log: what it accepts, what it refuses and with which rule, the
// claims each evidence kind maps to, and the AR4SI vector and EAR status of each verdict.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  ReferenceStore,
  evaluate,
  mergeClaims,
  tierOf,
  statusOf,
  verityFromCommandLine,
  type AppraisalResult,
  type Policy,
  type RuleOutcome,
} from '../../src/appraisal/index.js';
import { AT, COS_VERITY_ROOT, GOOGLE_DB_SHA256, MEASUREMENT_GENOA_E2E, MEASUREMENT_GO_SEV_GUEST, MEASUREMENT_MILAN, VECTORS, caseClaims, examplePolicy } from './helpers.js';

const none = new ReferenceStore();
const rule = (r: AppraisalResult, id: string): RuleOutcome => {
  const x = r.rules.find((y) => y.id === id);
  assert.ok(x, `no rule ${id} in ${r.rules.map((y) => y.id).join(', ')}`);
  return x;
};
const run = (name: string, policy: Policy = examplePolicy(), opts: { nonce?: string; at?: Date } = {}): AppraisalResult => {
  const g = caseClaims(name);
  const nonce = opts.nonce ?? g.nonce;
  return evaluate(g.claims, policy, none, { at: opts.at ?? AT, ...(nonce !== undefined ? { nonce } : {}) });
};

describe('one policy across SEV-SNP and TPM evidence', () => {
  test('trustee Milan report: accepted, measurement and TCB pass, boot rules not applicable', () => {
    const r = run('snp-trustee-milan');
    assert.equal(r.verdict, 'pass');
    assert.equal(r.status, 'affirming');
    assert.equal(r.denial, undefined);
    assert.equal(rule(r, 'measurement').status, 'pass');
    assert.equal(rule(r, 'measurement').found, `SEV-SNP ${MEASUREMENT_MILAN}`);
    const tcb = rule(r, 'tcb.minimum');
    assert.equal(tcb.status, 'pass');
    assert.equal(tcb.expected, 'Milan: bootloader≥3 tee≥0 snp≥8 microcode≥115');
    assert.match(tcb.found ?? '', /reported bootloader=3 tee=0 snp=8 microcode=115; committed bootloader=3 tee=0 snp=8 microcode=115; current bootloader=3 tee=0 snp=8 microcode=206/);
    assert.equal(rule(r, 'debug').status, 'pass');
    assert.equal(rule(r, 'debug').found, 'DEBUG=0');
    assert.equal(rule(r, 'migration').status, 'pass');
    for (const id of ['secure-boot', 'secure-boot.db', 'kernel.verity']) assert.equal(rule(r, id).status, 'not-applicable', id);
    assert.deepEqual(r.trustworthiness, { 'instance-identity': 2, executables: 2, hardware: 2, 'runtime-opaque': 2 });
    // The verification checks travel with the result, NOT CHECKED links included.
    assert.equal(r.verification.length, 1);
    assert.equal(r.verification[0]?.label, 'SEV-SNP report v2 (Milan, VCEK)');
    assert.ok(r.verification[0]?.checks.some((c) => c.name === 'snp.signature' && c.ok && !c.notChecked));
    assert.ok(r.verification[0]?.checks.some((c) => c.name === 'pki.revocation' && c.notChecked));
  });

  test('a TCB minimum for a platform whose evidence carries no TCB values fails closed', () => {
    const g = caseClaims('snp-trustee-milan');
    const platforms = g.claims.platforms.map((p) => ({ ...p, tcb: undefined }));
    const r = evaluate({ ...g.claims, platforms } as typeof g.claims, examplePolicy(), none, { at: AT, ...(g.nonce !== undefined ? { nonce: g.nonce } : {}) });
    const tcb = rule(r, 'tcb.minimum');
    assert.equal(tcb.status, 'fail');
    assert.equal(tcb.found, 'no TCB values');
    assert.equal(r.verdict, 'fail');
  });

  test('trustee e2e Genoa report: accepted with the Genoa minimum', () => {
    const r = run('snp-trustee-genoa-e2e');
    assert.equal(r.verdict, 'pass');
    assert.equal(rule(r, 'measurement').found, `SEV-SNP ${MEASUREMENT_GENOA_E2E}`);
    assert.equal(rule(r, 'tcb.minimum').expected, 'Genoa: bootloader≥10 tee≥0 snp≥23 microcode≥25');
    assert.equal(r.claims.platforms[0]?.product, 'Genoa');
  });

  test('go-sev-guest attestation.bin: refused by the debug rule (and its measurement and TCB)', () => {
    const r = run('snp-go-sev-guest-debug');
    assert.equal(r.verdict, 'fail');
    const d = rule(r, 'debug');
    assert.equal(d.status, 'fail');
    assert.equal(d.expected, 'forbidden');
    assert.equal(d.found, 'DEBUG=1');
    assert.match(r.denial ?? '', /^denied by rule debug: .*found DEBUG=1, expected forbidden/);
    assert.equal(rule(r, 'measurement').status, 'fail');
    assert.equal(rule(r, 'measurement').found, `SEV-SNP ${MEASUREMENT_GO_SEV_GUEST}`);
    assert.match(rule(r, 'tcb.minimum').description, /reported bootloader 2 < 3, reported snp 5 < 8, reported microcode 68 < 115/);
    assert.equal(r.status, 'contraindicated');
    assert.equal(r.trustworthiness['runtime-opaque'], 96);
    assert.equal(r.trustworthiness.executables, 96);
    assert.equal(r.trustworthiness.hardware, 32);
  });

  test('the same report is accepted by the debug rule when the policy explicitly allows debugging (as a warning)', () => {
    const p = { ...examplePolicy(), debug: 'allowed' as const, measurements: { snp: [MEASUREMENT_GO_SEV_GUEST] }, tcb: undefined };
    const r = run('snp-go-sev-guest-debug', p);
    assert.equal(rule(r, 'debug').status, 'pass');
    assert.equal(r.verdict, 'pass');
    assert.equal(r.trustworthiness['runtime-opaque'], 32);
    assert.equal(r.status, 'warning');
  });

  test('Veraison configfs-tsm Genoa report and the AWS VLEK report: verified, refused by the measurement rule', () => {
    for (const name of ['snp-veraison-genoa-tsm', 'snp-aws-vlek']) {
      const r = run(name);
      assert.equal(r.verdict, 'fail', name);
      assert.deepEqual(r.rules.filter((x) => x.status === 'fail').map((x) => x.id), ['measurement'], name);
      assert.equal(rule(r, 'evidence.verified').status, 'pass', name);
    }
    const vlek = run('snp-aws-vlek');
    assert.equal(vlek.claims.signingKeys[0]?.kind, 'vlek');
    assert.equal(vlek.claims.signingKeys[0]?.cspId, 'CN=cc-us-east-2.amazonaws.com');
    assert.equal(rule(run('snp-veraison-genoa-tsm'), 'measurement').found, 'SEV-SNP 7699e6ac12ccdfd1dfac70e649ce1f046cb2afbb003438f4cdddfe2ccbe182fa5ffbe8dcdb930454324e10c52c788980');
  });

  test('a report whose chain does not verify fails evidence.verified with the verifier\'s error code', () => {
    const r = run('snp-milan-report-genoa-chain');
    assert.equal(r.verdict, 'fail');
    const v = rule(r, 'evidence.verified');
    assert.equal(v.status, 'fail');
    assert.equal(v.found, 'SNP_WRONG_PRODUCT');
    assert.equal(r.trustworthiness.hardware, 99);
    assert.equal(r.status, 'contraindicated');
    assert.equal(r.verification[0]?.verified, false);
    assert.equal(r.verification[0]?.checks.at(-1)?.ok, false);
  });

  test('GCE COS 85 vTPM quote + event log: Secure Boot on with Google\'s db key, verity root hash from the command line', () => {
    const r = run('tpm-gce-cos85');
    assert.equal(r.verdict, 'pass', r.denial);
    assert.equal(rule(r, 'secure-boot').found, 'on');
    const db = rule(r, 'secure-boot.db');
    assert.equal(db.status, 'pass');
    assert.equal(db.found, `"UEFI DB Key v10" sha256 ${GOOGLE_DB_SHA256}`);
    const verity = rule(r, 'kernel.verity');
    assert.equal(verity.status, 'pass');
    assert.equal(verity.found, COS_VERITY_ROOT);
    for (const id of ['measurement', 'tcb.minimum', 'debug', 'migration']) assert.equal(rule(r, id).status, 'not-applicable', id);
    assert.deepEqual(r.trustworthiness, { 'instance-identity': 2, configuration: 2, 'file-system': 2 });
    assert.equal(r.status, 'affirming');
    // Claims: the verified PCRs and the boot state.
    const extracted = JSON.parse(readFileSync(join(VECTORS, 'tpm-quote/gce-shielded-vm-cos85/gce-cos-85-nonce9009/extracted.json'), 'utf8')) as { quotes: { bank: string; pcrs: Record<string, string> }[] };
    const sha256 = extracted.quotes.find((q) => q.bank === 'sha256')?.pcrs;
    assert.equal(r.claims.runtime.pcrs?.sha256?.['0'], sha256?.['0']);
    assert.equal(r.claims.runtime.pcrs?.sha256?.['7'], sha256?.['7']);
    assert.equal(r.claims.boot?.secureBoot, true);
    assert.equal(r.claims.boot?.db?.certificates[0]?.subject, 'UEFI DB Key v10');
    assert.equal(r.claims.boot?.pk?.certificates[0]?.sha256, '7d75af8ed5cea65bf6f08f8e3cd52394bc18674e56772d86b32847aad84cb675');
    assert.deepEqual(r.claims.boot?.verity, { rootHash: COS_VERITY_ROOT, source: 'root_hexdigest' });
    assert.equal(r.claims.boot?.bootApplications[0]?.authenticode.sha256, 'dba8d69ffb244496ac8ab2950695d3da539d6ac5ec660fc6b4bdde245284cf23');
    assert.equal(r.claims.freshness.nonce, '9009');
    assert.equal(r.claims.freshness.nonceVerified, true);
    assert.equal(r.claims.signingKeys[0]?.kind, 'tpm-ak');
    assert.ok(r.verification[0]?.checks.some((c) => c.name === 'eventlog.replay' && c.ok));
  });

  test('the same quote is refused when the policy requires Microsoft\'s db certificate', () => {
    const p = examplePolicy();
    p.secureBoot = { required: true, db: [{ subject: 'Microsoft Windows Production PCA 2011' }] };
    const r = run('tpm-gce-cos85', p);
    assert.equal(r.verdict, 'fail');
    const db = rule(r, 'secure-boot.db');
    assert.equal(db.status, 'fail');
    assert.equal(db.expected, 'subject "Microsoft Windows Production PCA 2011"');
    assert.equal(db.found, `"UEFI DB Key v10" sha256 ${GOOGLE_DB_SHA256}`);
    assert.match(r.denial ?? '', /^denied by rule secure-boot\.db: db does not hold the expected certificate \(found "UEFI DB Key v10"/);
    assert.equal(r.trustworthiness.configuration, 96);
    // And when it asks for the right subject with the wrong hash.
    p.secureBoot = { required: true, db: [{ subject: 'UEFI DB Key v10', sha256: '00'.repeat(32) }] };
    assert.equal(rule(run('tpm-gce-cos85', p), 'secure-boot.db').status, 'fail');
  });

  test('a wrong nonce makes the TPM verification, and so the policy, fail', () => {
    const r = run('tpm-gce-cos85-wrong-nonce');
    assert.equal(r.verdict, 'fail');
    assert.equal(rule(r, 'evidence.verified').found, 'TPM_NONCE_MISMATCH');
  });

  test('SNP + vTPM claims combined: every rule applies (two unrelated real vectors, to exercise the merge)', () => {
    const claims = mergeClaims([caseClaims('snp-trustee-milan').claims, caseClaims('tpm-gce-cos85').claims]);
    const r = evaluate(claims, examplePolicy(), none, { at: AT });
    assert.equal(r.verdict, 'pass', r.denial);
    assert.equal(r.rules.filter((x) => x.status === 'not-applicable').length, 0);
    assert.deepEqual(r.verification.map((v) => v.kind), ['sev-snp', 'tpm']);
    assert.deepEqual(r.trustworthiness, { 'instance-identity': 2, configuration: 2, executables: 2, 'file-system': 2, hardware: 2, 'runtime-opaque': 2 });
  });
});

describe('evidence kinds, freshness and workload rules', () => {
  test('evidence.required: an event log is required, a bare SNP report lacks it', () => {
    const p = { ...examplePolicy(), evidence: { accepted: ['sev-snp', 'tpm'], required: ['eventlog'] } };
    const r = run('snp-trustee-milan', p);
    assert.equal(rule(r, 'evidence.required').status, 'fail');
    assert.equal(rule(r, 'evidence.required').found, 'sev-snp');
    assert.equal(run('tpm-gce-cos85', p).verdict, 'pass');
  });

  test('evidence.accepted: a TPM-only policy refuses an SNP report', () => {
    const r = run('snp-trustee-milan', { ...examplePolicy(), evidence: { accepted: ['tpm'] } });
    assert.equal(rule(r, 'evidence.accepted').status, 'fail');
    assert.equal(rule(r, 'evidence.accepted').found, 'sev-snp');
  });

  test('nonce binding: TPM extraData and SNP REPORT_DATA (nonce zero-padded)', () => {
    const p = { ...examplePolicy(), freshness: { nonce: 'required' as const } };
    const tpm = run('tpm-gce-cos85', p);
    assert.equal(rule(tpm, 'freshness.nonce').status, 'pass');
    assert.equal(rule(tpm, 'freshness.nonce').found, 'TPM extraData 9009');
    const snpP = { ...p, debug: 'allowed' as const, measurements: undefined, tcb: undefined };
    const bound = run('snp-go-sev-guest-debug', snpP, { nonce: '0102030405' });
    assert.equal(rule(bound, 'freshness.nonce').status, 'pass');
    const other = run('snp-go-sev-guest-debug', snpP, { nonce: '0102030406' });
    assert.equal(rule(other, 'freshness.nonce').status, 'fail');
    assert.match(rule(other, 'freshness.nonce').description, /REPORT_DATA is not bound to the nonce/);
    const missing = run('snp-trustee-milan', p);
    assert.equal(rule(missing, 'freshness.nonce').status, 'fail');
    assert.match(rule(missing, 'freshness.nonce').description, /given no nonce/);
  });

  test('maximum evidence age: needs the collection time, refuses stale evidence', () => {
    const p = { ...examplePolicy(), freshness: { maxAge: '5m' } };
    const g = caseClaims('snp-trustee-milan');
    assert.equal(rule(evaluate(g.claims, p, none, { at: AT }), 'freshness.max-age').status, 'fail');
    g.claims.freshness.collectedAt = '2025-05-31T23:58:00.000Z';
    const fresh = rule(evaluate(g.claims, p, none, { at: AT }), 'freshness.max-age');
    assert.equal(fresh.status, 'pass');
    assert.equal(fresh.description, 'the evidence is 120s old');
    const stale = rule(evaluate(g.claims, p, none, { at: new Date('2025-06-01T00:10:00Z') }), 'freshness.max-age');
    assert.equal(stale.status, 'fail');
    assert.equal(stale.description, 'the evidence is 720s old, more than 300s');
  });

  test('workload digest against SNP HOST_DATA; PCR values per register', () => {
    const p = { ...examplePolicy(), workload: { digest: ['00'.repeat(32)] } };
    assert.equal(rule(run('snp-trustee-genoa-e2e', p), 'workload.digest').status, 'pass');
    const w = rule(run('snp-trustee-genoa-e2e', { ...p, workload: { digest: ['ab'.repeat(32)] } }), 'workload.digest');
    assert.equal(w.status, 'fail');
    assert.equal(w.found, `HOST_DATA ${'00'.repeat(32)}`);
    // evidence that binds no workload identity cannot satisfy a policy that requires one
    const t = rule(run('tpm-gce-cos85', p), 'workload.digest');
    assert.equal(t.status, 'fail');
    assert.equal(t.found, 'no workload identity');
    const g = caseClaims('tpm-gce-cos85');
    const pcr7 = g.claims.runtime.pcrs?.sha256?.['7'] as string;
    const pp = { ...examplePolicy(), pcrs: { sha256: { '7': pcr7, '4': '11'.repeat(32) } } };
    const r = evaluate(g.claims, pp, none, { at: AT });
    assert.equal(rule(r, 'pcr.sha256.7').status, 'pass');
    assert.equal(rule(r, 'pcr.sha256.4').status, 'fail');
    assert.equal(rule(r, 'pcr.sha256.4').found, g.claims.runtime.pcrs?.sha256?.['4']);
    assert.equal(rule(run('snp-trustee-milan', pp), 'pcr.sha256.7').status, 'not-applicable');
  });
});

describe('claims helpers and AR4SI', () => {
  test('dm-verity root hash from a kernel command line', () => {
    const h = 'ab'.repeat(32);
    assert.deepEqual(verityFromCommandLine(`console=ttyS0 roothash=${h} ro`), { rootHash: h, source: 'roothash' });
    assert.deepEqual(verityFromCommandLine(`verity.roothash=${h.toUpperCase()}`), { rootHash: h, source: 'verity.roothash' });
    assert.deepEqual(verityFromCommandLine(`usrhash=${h} quiet`), { usrHash: h, source: 'usrhash' });
    assert.equal(verityFromCommandLine(`roothash=${h} roothash=${'cd'.repeat(32)}`), undefined);
    assert.equal(verityFromCommandLine('console=ttyS0 root=/dev/sda1'), undefined);
    assert.equal(verityFromCommandLine('roothash=xyz'), undefined);
  });

  test('AR4SI tiers and the EAR status of a vector', () => {
    assert.deepEqual([0, 1, -1, 2, 3, 31, 32, 33, 95, 96, 97, 99, -128].map(tierOf), ['none', 'none', 'none', 'affirming', 'affirming', 'affirming', 'warning', 'warning', 'warning', 'contraindicated', 'contraindicated', 'contraindicated', 'contraindicated']);
    assert.equal(statusOf({}), 'none');
    assert.equal(statusOf({ hardware: 2, executables: 3 }), 'affirming');
    assert.equal(statusOf({ hardware: 2, configuration: 32 }), 'warning');
    assert.equal(statusOf({ hardware: 32, executables: 96 }), 'contraindicated');
  });

  test('evaluation refuses an invalid time', () => {
    assert.throws(() => evaluate(caseClaims('snp-trustee-milan').claims, examplePolicy(), none, { at: new Date('x') }), /BAD_TIME|not a valid date/);
  });
});
