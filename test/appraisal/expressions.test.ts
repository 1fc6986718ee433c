// CEL expressions in policies: the documented `claims` object, pass/fail/not-applicable over the
// real vectors' claims, compile errors at the policy's line and column, and the bounds on size,
// shape and evaluation time.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  MAX_EXPRESSION_LENGTH,
  ReferenceStore,
  celClaims,
  compileExpression,
  emptyClaims,
  evaluate,
  parsePolicy,
  runExpression,
  type AppraisalResult,
  type Claims,
  type Policy,
  type RuleOutcome,
} from '../../src/appraisal/index.js';
import { CofferError } from '../../src/errors.js';
import { AT, COS_VERITY_ROOT, GOOGLE_DB_SHA256, MEASUREMENT_MILAN, caseClaims, examplePolicy } from './helpers.js';

const none = new ReferenceStore();
const policyWith = (expressions: string, base = 'id: cel\nversion: 1\n'): Policy => parsePolicy(`${base}expressions:\n${expressions}`, 'cel.yaml');
const run = (claims: Claims, policy: Policy, nonce?: string): AppraisalResult => evaluate(claims, policy, none, { at: AT, ...(nonce !== undefined ? { nonce } : {}) });
const rule = (r: AppraisalResult, id: string): RuleOutcome => {
  const x = r.rules.find((y) => y.id === id);
  assert.ok(x, `no rule ${id} in ${r.rules.map((y) => y.id).join(', ')}`);
  return x;
};
const policyError = (text: string): CofferError => {
  try {
    parsePolicy(text, 'cel.yaml');
  } catch (e) {
    assert.ok(e instanceof CofferError, String(e));
    assert.equal(e.code, 'POLICY_INVALID');
    assert.equal(e.kind, 'input');
    assert.doesNotMatch(e.message, /\n/);
    return e;
  }
  assert.fail('the policy was accepted');
};

const tpm = caseClaims('tpm-gce-cos85');
const milan = caseClaims('snp-trustee-milan');

describe('the claims object CEL sees', () => {
  test('the GCE vTPM claims: hex strings in lowercase, integers as CEL int, evidence without checks, authorities for the boot', () => {
    const c = celClaims(tpm.claims);
    assert.deepEqual(Object.keys(c), ['evidence', 'platforms', 'launch', 'runtime', 'boot', 'workload', 'freshness', 'debug', 'signingKeys']);
    assert.deepEqual(c.evidence, [{ kind: 'tpm', label: 'TPM 2.0 quote (RSASSA/SHA256) with event log', verified: true }]);
    const boot = c.boot as Record<string, unknown>;
    assert.equal(boot.secureBoot, true);
    const pcrs = (c.runtime as { pcrs: Record<string, Record<string, string>> }).pcrs;
    for (const v of Object.values(pcrs.sha256 ?? {})) assert.match(v, /^[0-9a-f]{64}$/);
    assert.equal((boot.db as { certificates: { sha256: string }[] }).certificates[0]?.sha256, GOOGLE_DB_SHA256);
    // Per-application authorities are gone: which key verified which application is not authenticated.
    for (const a of boot.bootApplications as Record<string, unknown>[]) assert.deepEqual(Object.keys(a), ['path', 'authenticode']);
    assert.deepEqual(
      (boot.authorities as { variable: string; subject: string }[]).map((a) => `${a.variable}:${a.subject}`),
      ['db:UEFI DB Key v10', 'db:UEFI DB Key v10', 'db:UEFI DB Key v10'],
    );
  });

  test('the Milan claims: TCB components are CEL ints, the measurement is lowercase hex', () => {
    const c = celClaims(milan.claims);
    const p = (c.platforms as { tcb: { reported: { components: Record<string, unknown> } } }[])[0];
    assert.deepEqual(p?.tcb.reported.components, { bootloader: 3n, tee: 0n, snp: 8n, microcode: 115n });
    assert.equal((c.launch as { snp: string }).snp, MEASUREMENT_MILAN);
    assert.equal('boot' in c, false);
  });
});

describe('expressions as rules over the real vectors', () => {
  const policy = policyWith(`  - id: cos-verity
    expr: "claims.boot.kernelCommandLine.contains('root_hexdigest=${COS_VERITY_ROOT}')"
    description: the COS dm-verity root is on the command line
  - id: lockdown
    expr: "claims.boot.kernelCommandLine.contains('lockdown=')"
    absent: not-applicable
  - id: google-db
    expr: claims.boot.secureBoot && claims.boot.authorities.all(a, a.sha256 == '${GOOGLE_DB_SHA256}')
    absent: not-applicable
  - id: snp-tcb
    expr: claims.platforms.all(p, p.tee != 'sev-snp' || p.tcb.reported.components.snp >= 8)
    category: hardware
  - id: no-debug
    expr: "!claims.debug.debug"
`);

  test('GCE vTPM: the verity root passes, lockdown= is missing (fail, with the value found), the db key passes', () => {
    const r = run(tpm.claims, policy, tpm.nonce);
    const verity = rule(r, 'expression.cos-verity');
    assert.equal(verity.status, 'pass');
    assert.equal(verity.description, 'the COS dm-verity root is on the command line');
    assert.deepEqual(verity.trust, { configuration: 2 });
    const lockdown = rule(r, 'expression.lockdown');
    assert.equal(lockdown.status, 'fail');
    assert.deepEqual(lockdown.trust, { configuration: 96 });
    assert.equal(lockdown.expected, "claims.boot.kernelCommandLine.contains('lockdown=')");
    assert.match(lockdown.found ?? '', /^false \(claims\.boot\.kernelCommandLine = "\/syslinux\/vmlinuz\.A init=/);
    assert.equal(rule(r, 'expression.google-db').status, 'pass');
    assert.equal(rule(r, 'expression.snp-tcb').status, 'pass');
    // A TPM quote says nothing of debugging: the key is absent, and absent fails by default.
    const debug = rule(r, 'expression.no-debug');
    assert.equal(debug.status, 'fail');
    assert.match(debug.description, /the claims have no key: debug.*absent claims fail unless the expression says absent: not-applicable/);
    assert.equal(r.verdict, 'fail');
    assert.match(r.denial ?? '', /^denied by rule expression\.(lockdown|no-debug): /);
  });

  test('SEV-SNP Milan: boot expressions are not applicable where they say so, and fail where they do not', () => {
    const r = run(milan.claims, policy, milan.nonce);
    assert.equal(rule(r, 'expression.cos-verity').status, 'fail');
    assert.equal(rule(r, 'expression.cos-verity').found, 'absent (claims.boot.kernelCommandLine = absent)');
    assert.equal(rule(r, 'expression.lockdown').status, 'not-applicable');
    assert.deepEqual(rule(r, 'expression.lockdown').trust, {});
    assert.equal(rule(r, 'expression.google-db').status, 'not-applicable');
    assert.equal(rule(r, 'expression.snp-tcb').status, 'pass');
    assert.deepEqual(rule(r, 'expression.snp-tcb').trust, { hardware: 2 });
    assert.equal(rule(r, 'expression.no-debug').status, 'pass');
  });

  test('has() turns an absent claim into false, and a failed snp minimum names the value', () => {
    const p = policyWith(`  - id: sb-if-logged
    expr: "!has(claims.boot) || claims.boot.secureBoot"
  - id: snp-ge-9
    expr: claims.platforms.exists(p, p.tee == 'sev-snp' && p.tcb.reported.components.snp >= 9)
`);
    assert.equal(rule(run(milan.claims, p), 'expression.sb-if-logged').status, 'pass');
    assert.equal(rule(run(tpm.claims, p), 'expression.sb-if-logged').status, 'pass');
    const snp = rule(run(milan.claims, p), 'expression.snp-ge-9');
    assert.equal(snp.status, 'fail');
    assert.match(snp.found ?? '', /^false \(claims\.platforms = \[\{"tee":"sev-snp","vendor":"AMD","product":"Milan","tcb":\{"reported":\{"components":\{"bootloader":3,"tee":0,"snp":8/);
  });

  test('the example policy with expressions added still accepts the cases it accepted', () => {
    const p = { ...examplePolicy(), expressions: [{ id: 'sb', expr: 'claims.boot.secureBoot', absent: 'not-applicable' as const, category: 'configuration' as const }] };
    assert.equal(run(tpm.claims, p, tpm.nonce).verdict, 'pass');
    assert.equal(run(milan.claims, p, milan.nonce).verdict, 'pass');
  });
});

describe('compile errors point at the policy line', () => {
  test('a misspelt claim field: line and the column of the field', () => {
    const e = policyError('id: cel\nversion: 1\nexpressions:\n  - id: a\n    expr: "claims.boot.kernelCmdline == \'\'"\n');
    assert.match(e.message, /^cel\.yaml:5:24: expressions\.0\.expr \(a\): claims\.boot has no field "kernelCmdline" \(fields: source, secureBoot, .*kernelCommandLine/);
  });

  test('a syntax error, a type error, a non-boolean result, deep comprehensions, a duplicate id, too long', () => {
    assert.match(policyError('id: cel\nversion: 1\nexpressions:\n  - id: a\n    expr: claims.boot.secureBoot &&\n').message, /^cel\.yaml:5:\d+: expressions\.0\.expr \(a\): CEL syntax: /);
    assert.match(policyError('id: cel\nversion: 1\nexpressions:\n  - {id: a, expr: "true"}\n  - id: b\n    expr: "1 + \'x\' == 2"\n').message, /^cel\.yaml:6:\d+: expressions\.1\.expr \(b\): CEL type error: no such overload/);
    assert.match(policyError('id: cel\nversion: 1\nexpressions:\n  - id: a\n    expr: "size(claims.signingKeys)"\n').message, /^cel\.yaml:5:12: expressions\.0\.expr \(a\): the expression yields int, not a bool/);
    const deep = 'claims.boot.flags.all(a, claims.boot.flags.all(b, claims.boot.flags.all(c, a == c)))';
    assert.match(policyError(`id: cel\nversion: 1\nexpressions:\n  - id: a\n    expr: "${deep}"\n`).message, /^cel\.yaml:5:62: .*comprehension macros .* nested more than 2 deep/);
    assert.match(policyError('id: cel\nversion: 1\nexpressions:\n  - {id: a, expr: "true"}\n  - {id: a, expr: "false"}\n').message, /^cel\.yaml:5:10: expressions\.1\.id: "a" is used twice/);
    const long = `true${' && true'.repeat(MAX_EXPRESSION_LENGTH / 8)}`;
    assert.match(policyError(`id: cel\nversion: 1\nexpressions:\n  - id: a\n    expr: "${long}"\n`).message, /^cel\.yaml:5:11: expressions\.0\.expr: must be at most 2000 characters/);
    assert.match(policyError('id: cel\nversion: 1\nexpressions:\n  - id: a\n    expr: "true"\n    absent: ignore\n').message, /^cel\.yaml:6:13: expressions\.0\.absent: /);
    assert.match(policyError('id: cel\nversion: 1\nexpressions:\n  - id: a\n    exp: "true"\n').message, /^cel\.yaml:4:5: expressions\.0\.expr: required field is missing \(and 1 more problem\)/);
  });

  test('the structural limits: too many AST nodes', () => {
    const wide = Array.from({ length: 250 }, (_, i) => `${i} == ${i}`).join(' && ');
    assert.ok(wide.length < MAX_EXPRESSION_LENGTH * 2);
    assert.throws(() => compileExpression(wide), (e: Error) => e.name === 'ExpressionError');
  });

  test('a Policy built by hand with a bad expression is refused by evaluate (POLICY_INVALID)', () => {
    const p = { ...examplePolicy(), expressions: [{ id: 'x', expr: 'claims.nope', absent: 'fail' as const, category: 'configuration' as const }] };
    assert.throws(() => run(milan.claims, p), (e: unknown) => e instanceof CofferError && e.code === 'POLICY_INVALID' && /claims has no field "nope"/.test(e.message));
  });
});

describe('evaluation is bounded in time', () => {
  test('a quadratic comprehension over a huge list is stopped, and its rule fails', () => {
    const claims = emptyClaims();
    claims.boot = { source: 'tpm-eventlog', bootApplications: [], flags: Array.from({ length: 30000 }, (_, i) => `F${i}`), notVerified: [] };
    const c = compileExpression('claims.boot.flags.all(a, claims.boot.flags.all(b, a != b || a == b))');
    const t0 = Date.now();
    const out = runExpression(c, celClaims(claims), 50);
    assert.ok(Date.now() - t0 < 2000, `took ${Date.now() - t0} ms`);
    assert.deepEqual(out, { status: 'error', message: 'evaluation took longer than 50 ms and was stopped' });
    const p = policyWith('  - id: slow\n    expr: "claims.boot.flags.all(a, claims.boot.flags.all(b, a != b || a == b))"\n');
    const r = rule(run(claims, p), 'expression.slow');
    assert.equal(r.status, 'fail');
    assert.match(r.description, /evaluation took longer than 1000 ms and was stopped/);
    // The evaluator still works afterwards.
    assert.deepEqual(runExpression(compileExpression('claims.boot.flags.size() == 30000'), celClaims(claims)), { status: 'true' });
  });
});
