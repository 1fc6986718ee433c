// The attestation record the console shows: its trust report states the nonce binding the broker
// itself checked (REPORT_DATA = hash(JCS(runtime-data))), VERIFIED when it held and FAILED when it
// did not, even though the built-in attestation policy names no freshness.nonce rule.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TrustReport } from '../../src/appraisal/index.js';
import { parsePolicy } from '../../src/appraisal/index.js';
import { DEFAULT_ATTESTATION_POLICY } from '../../src/broker/broker.js';
import { Attester, http, sessionCookie, startTestBroker, type TestBroker } from './helpers.js';

const work = mkdtempSync(join(tmpdir(), 'coffer-attrec-'));
let tb: TestBroker;

before(async () => {
  tb = await startTestBroker(join(work, 'broker'));
});
after(async () => {
  await tb?.cleanup();
  rmSync(work, { recursive: true, force: true });
});

/** One attestation; with `bindOther` the evidence's REPORT_DATA hashes another runtime-data than the one sent. */
async function attestOnce(b: TestBroker, bindOther = false): Promise<{ status: number; report: TrustReport; rule?: string; verdict: string; stored: string; token?: string; cookie: string }> {
  const a = await http(`${b.url}/kbs/v0/auth`, { body: { version: '0.1.0', tee: 'snp' } });
  assert.equal(a.status, 200, a.text);
  const vm = new Attester();
  const rd = await vm.runtimeData(a.json.nonce as string);
  const evidence = vm.evidence(bindOther ? { ...rd, nonce: `${rd.nonce as string}x` } : rd);
  const cookie = sessionCookie(a);
  const r = await http(`${b.url}/kbs/v0/attest`, { body: { 'runtime-data': rd, 'tee-evidence': evidence }, cookie });
  const [summary] = await b.running.broker.store.listAttestations({ limit: 1 });
  assert.ok(summary, 'the attempt is recorded');
  const rec = await b.running.broker.store.getAttestation(summary.id);
  assert.ok(rec?.report, 'with a trust report');
  const token = typeof r.json?.token === 'string' ? r.json.token : undefined;
  return { status: r.status, report: JSON.parse(rec.report) as TrustReport, ...(rec.rule ? { rule: rec.rule } : {}), verdict: rec.verdict, stored: JSON.stringify(rec), ...(token ? { token } : {}), cookie };
}

const link = (report: TrustReport, id: string) => report.chains.flatMap((c) => c.links).find((l) => l.id === id);

test('the built-in attestation policy names no freshness.nonce rule (why the broker adds its own check)', () => {
  assert.equal(parsePolicy(DEFAULT_ATTESTATION_POLICY, 'built-in').freshness, undefined);
});

test('bound evidence: "Report data bound to the nonce" is VERIFIED by the broker\'s own check', async () => {
  const r = await attestOnce(tb);
  assert.equal(r.status, 200);
  assert.equal(r.verdict, 'allow');
  const l = link(r.report, 'snp.report-data');
  assert.equal(l?.state, 'verified', JSON.stringify(l));
  assert.match(l?.reason ?? '', /REPORT_DATA is bound to the nonce: the broker checked that it is SHA384 of the JCS-canonical runtime-data/);
  const basis = l?.basis.find((b) => b.name === 'freshness.nonce');
  assert.equal(basis?.status, 'pass');
  assert.equal(basis?.found, `REPORT_DATA ${basis?.expected ?? ''}`, 'found is the binding the broker computed');
  assert.equal(r.report.counts.failed, 0);
  // The record the console reads holds neither the attestation token (nor its signature) nor the session cookie.
  assert.ok(r.token, 'an EAR was issued');
  for (const part of [r.token, ...r.token.split('.').filter((x) => x.length > 20)]) assert.ok(!r.stored.includes(part), 'no EAR in the record');
  assert.ok(!r.stored.includes(r.cookie), 'no KBS session cookie in the record');
});

test('unbound evidence: the same link is FAILED with both values, and the refusal names freshness.binding', async () => {
  const r = await attestOnce(tb, true);
  assert.notEqual(r.status, 200);
  assert.equal(r.verdict, 'deny');
  assert.equal(r.rule, 'freshness.binding');
  const l = link(r.report, 'snp.report-data');
  assert.equal(l?.state, 'failed', JSON.stringify(l));
  assert.match(l?.reason ?? '', /REPORT_DATA is not bound to the nonce/);
  const basis = l?.basis.find((b) => b.name === 'freshness.nonce');
  assert.ok(basis?.expected && basis.found && !basis.found.endsWith(basis.expected), 'expected and found differ');
});

test('a policy with its own freshness.nonce rule keeps the policy\'s outcome', async () => {
  const file = join(work, 'strict.yaml');
  writeFileSync(file, 'id: strict\nversion: 1\ndebug: forbidden\nmigration: forbidden\nfreshness:\n  nonce: required\n');
  const b = await startTestBroker(join(work, 'strict'), { attestationPolicyFile: file });
  try {
    const r = await attestOnce(b);
    assert.equal(r.status, 200);
    const l = link(r.report, 'snp.report-data');
    assert.equal(l?.state, 'verified');
    const rules = l?.basis.filter((x) => x.name === 'freshness.nonce') ?? [];
    assert.equal(rules.length, 1, 'one rule, not the policy\'s and the broker\'s');
    assert.doesNotMatch(rules[0]?.description ?? '', /the broker checked/, 'the policy\'s own rule');
  } finally {
    await b.cleanup();
  }
});
