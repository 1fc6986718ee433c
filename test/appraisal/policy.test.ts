// Policy files: YAML and JSON through one strict schema; every error names the file, line and
// column of the offending field, unknown fields included; safe defaults.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CofferError } from '../../src/errors.js';
import { maxAgeSeconds, parsePolicy } from '../../src/appraisal/index.js';
import { examplePolicy, MEASUREMENT_MILAN } from './helpers.js';

function policyError(text: string, source = 'p.yaml'): CofferError {
  try {
    parsePolicy(text, source);
  } catch (e) {
    assert.ok(e instanceof CofferError, String(e));
    assert.equal(e.kind, 'input');
    return e;
  }
  assert.fail('the policy was accepted');
}

test('the example policy parses with its values and safe defaults', () => {
  const p = examplePolicy();
  assert.equal(p.id, 'coffer-example-cvm');
  assert.equal(p.version, '1');
  assert.deepEqual(p.measurements?.snp?.[0], MEASUREMENT_MILAN);
  assert.deepEqual(p.tcb?.['sev-snp']?.Milan, { bootloader: 3, tee: 0, snp: 8, microcode: 115 });
  assert.equal(p.debug, 'forbidden');
  assert.equal(p.migration, 'forbidden');
  const minimal = parsePolicy('id: x\nversion: "2.1"\n');
  assert.equal(minimal.debug, 'forbidden');
  assert.equal(minimal.version, '2.1');
});

test('an unknown field is an error at its own line and column', () => {
  const e = policyError('id: x\nversion: 1\nsecureBoot:\n  required: true\n  dbb:\n    - subject: Foo\n');
  assert.equal(e.code, 'POLICY_INVALID');
  assert.equal(e.message, 'p.yaml:5:3: secureBoot.dbb: unknown field');
  const top = policyError('id: x\nversion: 1\nmeasurment:\n  snp: []\n');
  assert.equal(top.message, 'p.yaml:3:1: measurment: unknown field');
});

test('a wrong value points at the value; all problems are listed in details', () => {
  const e = policyError('id: x\nversion: 1\ntcb:\n  sev-snp:\n    Milan: { bootloader: 3, tee: x }\ndebug: nope\n');
  assert.match(e.message, /^p\.yaml:5:34: tcb\.sev-snp\.Milan\.tee: Invalid input: expected number, received string \(and 1 more problem\)$/);
  const errors = e.details?.errors as { line: number; column: number; field: string }[];
  assert.deepEqual(errors.map((x) => [x.line, x.column, x.field]), [[5, 34], [6, 8]].map(([l, c], i) => [l, c, ['tcb.sev-snp.Milan.tee', 'debug'][i]]));
});

test('JSON policies get line numbers too', () => {
  const e = policyError('{\n  "id": "p",\n  "version": 1,\n  "measurements": {\n    "snp": ["abcd"]\n  }\n}\n', 'p.json');
  assert.equal(e.message, 'p.json:5:13: measurements.snp.0: must be 48 bytes (96 hex digits)');
  const u = policyError('{\n  "id": "p",\n  "version": 1,\n  "kernel": { "cmdline": "x" }\n}\n', 'p.json');
  assert.equal(u.message, 'p.json:4:15: kernel.cmdline: unknown field');
});

test('missing fields, syntax errors and duplicate keys', () => {
  assert.equal(policyError('description: x\nversion: 2\n').message, 'p.yaml:1:1: id: required field is missing');
  const s = policyError('id: a\nversion: 2\nfoo: [1\n');
  assert.equal(s.code, 'POLICY_SYNTAX');
  assert.match(s.message, /^p\.yaml:4:1: /);
  const d = policyError('id: a\nversion: 1\nid: b\n');
  assert.equal(d.code, 'POLICY_SYNTAX');
  assert.equal(d.message, 'p.yaml:3:1: Map keys must be unique');
  assert.equal(policyError('- a\n- b\n').message, 'p.yaml:1:1: a policy is a mapping with at least id and version');
});

test('an all-digit hex value must be quoted: YAML reads it as a number and the error says so', () => {
  const e = policyError(`id: x\nversion: 1\nworkload:\n  digest:\n    - 1234\n`);
  assert.equal(e.message, 'p.yaml:5:7: workload.digest.0: Invalid input: expected string, received number');
  assert.deepEqual(parsePolicy(`id: x\nversion: 1\nworkload:\n  digest: ["${'12'.repeat(32)}", "${'AB'.repeat(48)}"]\n`).workload?.digest, ['12'.repeat(32), 'ab'.repeat(48)]);
  // a truncated digest would match a launcher-chosen prefix followed by zeros
  assert.match(policyError(`id: x\nversion: 1\nworkload:\n  digest: ["1234"]\n`).message, /^p\.yaml:4:12: workload\.digest\.0: must be a SHA-256 \(64 hex digits\) or SHA-384 \(96 hex digits\) digest$/);
});

test('durations', () => {
  assert.equal(maxAgeSeconds(parsePolicy('id: x\nversion: 1\nfreshness: { maxAge: 5m }\n')), 300);
  assert.equal(maxAgeSeconds(parsePolicy('id: x\nversion: 1\nfreshness: { maxAge: 90 }\n')), 90);
  assert.equal(maxAgeSeconds(parsePolicy('id: x\nversion: 1\nfreshness: { maxAge: 2d }\n')), 172800);
  assert.equal(policyError('id: x\nversion: 1\nfreshness: { maxAge: soon }\n').message, 'p.yaml:3:22: freshness.maxAge: must be a duration such as 300s, 5m, 1h or 2d');
});
