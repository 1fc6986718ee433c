// `coffer policy check|test` and `coffer result verify|jwks|keygen`, run in-process through a
// commander program that registers the two command groups the way src/cli/main.ts does: real
// vectors, the case folder test/appraisal/cases, exit statuses, one-line errors, --json.
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CASES, POLICY_FILE, VECTORS, caseFile } from '../appraisal/helpers.js';
import { bin, ensureBuilt } from '../appraisal/bin.js';
import { runCli as cli } from '../helpers/cli.js';

const work = mkdtempSync(join(tmpdir(), 'coffer-policycli-'));
after(() => rmSync(work, { recursive: true, force: true }));



const check = (name: string, ...extra: string[]) => ['policy', 'check', '--policy', POLICY_FILE, '--evidence', caseFile(name), ...extra];

test('policy test: every case of the folder meets its expected verdict', async () => {
  const r = await cli(['policy', 'test', '--policy', POLICY_FILE, '--cases', CASES]);
  assert.equal(r.code, 0, r.stdout + r.stderr);
  const lines = r.stdout.trim().split('\n');
  assert.match(lines[0] ?? '', /^CASE\s+EXPECTED\s+GOT\s+RESULT$/);
  const row = (name: string) => lines.find((l) => l.startsWith(`${name} `)) ?? '';
  assert.match(row('snp-trustee-milan'), /\spass\s+pass\s+ok$/);
  assert.match(row('snp-go-sev-guest-debug'), /fail \(debug\)\s+fail \(debug, measurement, tcb\.minimum\)\s+ok$/);
  assert.match(row('tpm-gce-cos85'), /\spass\s+pass\s+ok$/);
  assert.match(row('tpm-gce-cos85-wrong-nonce'), /fail \(evidence\.verified\)\s+fail \(evidence\.verified\)\s+ok$/);
  assert.equal(lines.at(-1), '8 case(s): 8 as expected, 0 differ');

  const j = await cli(['policy', 'test', '--policy', POLICY_FILE, '--cases', CASES, '--json']);
  const doc = JSON.parse(j.stdout) as { ok: boolean; cases: { name: string; ok: boolean; failed: string[] }[] };
  assert.equal(doc.ok, true);
  assert.equal(doc.cases.length, 8);
  assert.deepEqual(doc.cases.find((c) => c.name === 'snp-veraison-genoa-tsm')?.failed, ['measurement']);
});

test('policy test: a case whose verdict differs, or that cannot be read, makes it exit 1', async () => {
  const dir = join(work, 'cases');
  mkdirSync(join(dir, 'debug-expected-pass'), { recursive: true });
  const debugCase = readFileSync(caseFile('snp-go-sev-guest-debug'), 'utf8').replaceAll('../../../../../shared/vectors', VECTORS).replace('expect: { verdict: fail, rule: debug }', 'expect: { verdict: pass }');
  writeFileSync(join(dir, 'debug-expected-pass', 'case.yaml'), debugCase);
  writeFileSync(join(dir, 'wrong-rule.yaml'), debugCase.replace('expect: { verdict: pass }', 'expect: { verdict: fail, rule: secure-boot }'));
  writeFileSync(join(dir, 'broken.json'), '{"kind": "snp"}');
  const r = await cli(['policy', 'test', '--policy', POLICY_FILE, '--cases', dir]);
  assert.equal(r.code, 1);
  assert.match(r.stdout, /debug-expected-pass\s+pass\s+fail \(debug, measurement, tcb\.minimum\)\s+DIFFERS/);
  assert.match(r.stdout, /wrong-rule\s+fail \(secure-boot\)\s+fail \(debug, measurement, tcb\.minimum\)\s+DIFFERS/);
  assert.match(r.stdout, /broken\s+\?\s+error EVIDENCE_DESCRIPTION_INVALID\s+DIFFERS/);
  assert.match(r.stdout, /3 case\(s\): 0 as expected, 3 differ\n$/);
  const empty = join(work, 'empty');
  mkdirSync(empty);
  const e = await cli(['policy', 'test', '--policy', POLICY_FILE, '--cases', empty]);
  assert.equal(e.code, 2);
  assert.match(e.stderr, /^coffer: POLICY_NO_CASES: /);
});

test('policy check: pass exits 0, a denial exits 1 naming the rule and the value', async () => {
  const ok = await cli(check('snp-trustee-milan'));
  assert.equal(ok.code, 0, ok.stderr);
  assert.match(ok.stdout, /^PASS {2}policy coffer-example-cvm@1: EAR status affirming/);
  assert.match(ok.stdout, /NOT CHECKED: pki\.revocation/);
  const denied = await cli(check('snp-go-sev-guest-debug'));
  assert.equal(denied.code, 1);
  assert.match(denied.stdout, /^DENIED {2}policy coffer-example-cvm@1: EAR status contraindicated\n {2}denied by rule debug: .*found DEBUG=1, expected forbidden/);
  const j = await cli([...check('tpm-gce-cos85'), '--json']);
  assert.equal(j.code, 0);
  const doc = JSON.parse(j.stdout) as { ok: boolean; verdict: string; status: string; rules: { id: string; status: string; found?: string }[]; verification: { kind: string; checks: unknown[] }[] };
  assert.equal(doc.ok, true);
  assert.equal(doc.status, 'affirming');
  assert.equal(doc.rules.find((x) => x.id === 'secure-boot.db')?.status, 'pass');
  assert.equal(doc.verification[0]?.kind, 'tpm');
  assert.ok((doc.verification[0]?.checks.length ?? 0) > 5);
  const m = await cli([...check('snp-go-sev-guest-debug'), '--json']);
  assert.equal(m.code, 1);
  assert.equal((JSON.parse(m.stdout) as { error: { code: string } }).error.code, 'POLICY_DENIED');
});

test('policy check: bad policies and descriptions exit 2 with one line that names the line', async () => {
  const bad = join(work, 'bad.yaml');
  writeFileSync(bad, 'id: x\nversion: 1\nsecureboot:\n  required: true\n');
  const r = await cli(['policy', 'check', '--policy', bad, '--evidence', caseFile('snp-trustee-milan')]);
  assert.equal(r.code, 2);
  assert.equal(r.stderr, `coffer: POLICY_INVALID: ${bad}:3:1: secureboot: unknown field\n`);
  assert.equal(r.stdout, '');
  const missing = await cli(['policy', 'check', '--policy', POLICY_FILE, '--evidence', join(work, 'nope.yaml')]);
  assert.equal(missing.code, 2);
  assert.match(missing.stderr, /^coffer: FILE_UNREADABLE: evidence description .*nope\.yaml does not exist\n$/);
  const refNoKey = await cli([...check('snp-trustee-milan'), '--reference', POLICY_FILE]);
  assert.equal(refNoKey.code, 2);
  assert.match(refNoKey.stderr, /^coffer: REFERENCE_NO_TRUSTED_KEY: /);
});

test('policy check --sign-key --new-key --out, result jwks, result verify; a tampered token fails', async () => {
  const key = join(work, 'ear.pem');
  const out = join(work, 'result.jwt');
  const r = await cli([...check('tpm-gce-cos85'), '--sign-key', key, '--new-key', '--out', out]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(statSync(key).mode & 0o777, 0o600);
  assert.match(r.stderr, /generated a new ES384 signing key/);
  assert.match(r.stdout, /EAR token written to /);
  const again = await cli([...check('tpm-gce-cos85'), '--sign-key', key, '--new-key', '--out', out]);
  assert.equal(again.code, 2, 'an existing key is never overwritten');
  const jw = await cli(['result', 'jwks', '--key', key]);
  assert.equal(jw.code, 0);
  const jwksFile = join(work, 'jwks.json');
  writeFileSync(jwksFile, jw.stdout);
  assert.equal((JSON.parse(jw.stdout) as { keys: { alg: string }[] }).keys[0]?.alg, 'ES384');

  const v = await cli(['result', 'verify', out, '--jwks', jwksFile]);
  assert.equal(v.code, 0, v.stderr);
  assert.match(v.stdout, /^VERIFIED {2}EAR \(ES384\), issued 2025-06-01T00:00:00\.000Z by coffer \(coffer \d+\.\d+\.\d+\), nonce 9009\n {2}cvm: affirming, policy coffer-example-cvm@1, verdict pass\n {4}trustworthiness: instance-identity=2 configuration=2 file-system=2$/m);
  const vj = await cli(['result', 'verify', out, '--jwks', jwksFile, '--json']);
  assert.equal((JSON.parse(vj.stdout) as { ear: { submods: { cvm: { 'ear.status': string } } } }).ear.submods.cvm['ear.status'], 'affirming');

  const token = readFileSync(out, 'utf8').trim();
  const i = token.indexOf('.') + 30;
  const tampered = `${token.slice(0, i)}${token[i] === 'A' ? 'B' : 'A'}${token.slice(i + 1)}`;
  const t = await cli(['result', 'verify', tampered, '--jwks', jwksFile]);
  assert.equal(t.code, 1);
  assert.equal(t.stderr, 'coffer: EAR_BAD_SIGNATURE: the result signature does not verify with the JWKS key: altered or signed by another key\n');

  const other = join(work, 'other.pem');
  const kg = await cli(['result', 'keygen', '--out', other, '--jwks', join(work, 'other.jwks')]);
  assert.equal(kg.code, 0);
  assert.ok(existsSync(join(work, 'other.jwks')));
  const o = await cli(['result', 'verify', out, '--jwks', join(work, 'other.jwks')]);
  assert.equal(o.code, 1);
  assert.match(o.stderr, /^coffer: EAR_NO_KEY: /);

  // A denied appraisal is still signed (contraindicated), and the command exits 1.
  const denied = join(work, 'denied.jwt');
  assert.equal((await cli([...check('snp-go-sev-guest-debug'), '--sign-key', key, '--out', denied])).code, 1);
  const dv = await cli(['result', 'verify', denied, '--jwks', jwksFile]);
  assert.equal(dv.code, 0);
  assert.match(dv.stdout, /cvm: contraindicated, policy coffer-example-cvm@1, verdict fail\n.*\n {4}denied by rule debug/);
});

before(ensureBuilt);

test('bin/coffer policy check: CEL expressions pass and deny with the rule and value (exit 0 / 1), a bad one is file:line:col (exit 2)', async () => {
  const base = readFileSync(POLICY_FILE, 'utf8');
  const good = join(work, 'cel-good.yaml');
  writeFileSync(good, `${base}expressions:\n  - id: secure-boot-on\n    expr: "claims.boot.secureBoot && claims.evidence.all(e, e.verified)"\n    absent: not-applicable\n`);
  // In-process for the pass (bin/coffer starts slowly); the denial and the bad policy through bin/coffer.
  const ok = await cli(['policy', 'check', '--policy', good, '--evidence', caseFile('tpm-gce-cos85')]);
  assert.equal(ok.code, 0, ok.stdout + ok.stderr);
  assert.match(ok.stdout, /^PASS {2}policy coffer-example-cvm@1: EAR status affirming$/m);
  assert.match(ok.stdout, /^ {2}pass expression\.secure-boot-on +claims\.boot\.secureBoot && /m);

  const deny = join(work, 'cel-deny.yaml');
  writeFileSync(deny, `${base}expressions:\n  - id: lockdown\n    expr: "claims.boot.kernelCommandLine.contains('lockdown=')"\n    description: the kernel is locked down\n`);
  const no = await bin(['policy', 'check', '--policy', deny, '--evidence', caseFile('tpm-gce-cos85'), '--json'], work);
  assert.equal(no.code, 1, no.stderr);
  const j = JSON.parse(no.stdout) as { ok: boolean; verdict: string; error: { code: string; message: string } };
  assert.deepEqual([j.ok, j.verdict, j.error.code], [false, 'fail', 'POLICY_DENIED']);
  assert.match(j.error.message, /^denied by rule expression\.lockdown: the kernel is locked down: the expression is false \(found false \(claims\.boot\.kernelCommandLine = "\/syslinux\/vmlinuz\.A /);

  const bad = join(work, 'cel-bad.yaml');
  writeFileSync(bad, `${base}expressions:\n  - id: typo\n    expr: "claims.boot.secureBot"\n`);
  const e = await bin(['policy', 'check', '--policy', bad, '--evidence', caseFile('tpm-gce-cos85')], work);
  assert.equal(e.code, 2);
  const lines = e.stderr.trim().split('\n');
  assert.equal(lines.length, 1, e.stderr);
  const line = base.split('\n').length + 2;
  assert.match(lines[0] ?? '', new RegExp(`^coffer: .*cel-bad\\.yaml:${line}:24: expressions\\.0\\.expr \\(typo\\): claims\\.boot has no field "secureBot"`));
  assert.doesNotMatch(e.stderr, /\bat .*\.js:\d+/);
});
