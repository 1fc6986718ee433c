// `coffer explain`, run in-process through a commander program that registers the command the way
// src/cli/main.ts does: text, JSON and HTML over the real vectors, with and without a policy, exit
// statuses and one-line errors.
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TrustReport } from '../../src/appraisal/index.js';
import { POLICY_FILE, VECTORS, caseFile } from '../appraisal/helpers.js';
import { bin, ensureBuilt } from '../appraisal/bin.js';
import { runCli as cli } from '../helpers/cli.js';

const work = mkdtempSync(join(tmpdir(), 'coffer-explaincli-'));
after(() => rmSync(work, { recursive: true, force: true }));



const GCE = caseFile('tpm-gce-cos85');

test('explain --policy, text: every link with its state, the threats, exit 0', async () => {
  const r = await cli(['explain', '--evidence', GCE, '--policy', POLICY_FILE]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stderr, '');
  assert.match(r.stdout, /^Trust report at 2025-06-01T00:00:00\.000Z: TPM 2\.0 quote \(RSASSA\/SHA256\) with event log$/m);
  assert.match(r.stdout, /^Policy coffer-example-cvm@1: PASS \(EAR status affirming\)$/m);
  assert.match(r.stdout, /^ {2}ASSUMED +vTPM operated by Google +trusted: vTPM operated by the CSP's hypervisor/m);
  assert.match(r.stdout, /^ {2}ASSUMED +UEFI firmware +trusted: Google-provided UEFI firmware, not$/m);
  assert.match(r.stdout, /^ {2}VERIFIED +Event log replay +by eventlog\.replay$/m);
  assert.match(r.stdout, /^ {2}NOT CHECKED +Kernel command line +the policy sets no expectation/m);
  assert.match(r.stdout, /^Threats \(residual risk, highest first/m);
});

test('explain without --policy: policy links NOT CHECKED; --json is the report', async () => {
  const t = await cli(['explain', '--evidence', GCE]);
  assert.equal(t.code, 0, t.stderr);
  assert.match(t.stdout, /^No policy: the links a policy decides are NOT CHECKED$/m);
  assert.match(t.stdout, /^ {2}NOT CHECKED +Secure Boot +no policy was given, so Secure Boot \(on in the$/m);

  for (const args of [['--json'], ['--format', 'json']]) {
    const j = await cli(['explain', '--evidence', GCE, ...args]);
    assert.equal(j.code, 0, j.stderr);
    const doc = JSON.parse(j.stdout) as TrustReport;
    assert.equal(doc.policy, undefined);
    assert.deepEqual(doc.counts, { verified: 5, assumed: 3, 'not-checked': 5, failed: 0 });
    const links = doc.chains.flatMap((c) => c.links);
    assert.equal(links.find((l) => l.id === 'tpm.vtpm')?.state, 'assumed');
    assert.equal(links.find((l) => l.id === 'boot.verity')?.state, 'not-checked');
    assert.equal(doc.threats[0]?.id, 'malicious-host');
  }
});

test('explain --format html --out: a self-contained page; a failing case exits 1', async () => {
  const out = join(work, 'report.html');
  const r = await cli(['explain', '--evidence', caseFile('snp-go-sev-guest-debug'), '--policy', POLICY_FILE, '--format', 'html', '--out', out]);
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stdout, new RegExp(`^html trust report written to ${out.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: 4 VERIFIED, 2 ASSUMED, 3 NOT CHECKED, 3 FAILED\\n$`));
  const html = readFileSync(out, 'utf8');
  assert.match(html, /^<!DOCTYPE html>\n<html lang="en">/);
  assert.match(html, /<tr data-link="snp\.guest-policy" data-state="failed">/);
  assert.ok(!/<script|<link |https?:\/\//.test(html.replace(/http-equiv/g, '')), 'no script, no external resource');

  const stdoutHtml = await cli(['explain', '--evidence', GCE, '--format', 'html']);
  assert.equal(stdoutHtml.code, 0);
  assert.match(stdoutHtml.stdout, /<tr data-link="tpm\.vtpm" data-state="assumed">/);

  const failed = await cli(['explain', '--evidence', caseFile('tpm-gce-cos85-wrong-nonce')]);
  assert.equal(failed.code, 1);
  assert.match(failed.stdout, /^ {2}FAILED +Nonce \(quote extraData\) +check tpm\.nonce TPM_NONCE_MISMATCH/m);
});

test('explain: bad input is one line and exit 2', async () => {
  const fmt = await cli(['explain', '--evidence', GCE, '--format', 'pdf']);
  assert.equal(fmt.code, 2);
  assert.equal(fmt.stderr, 'coffer: USAGE: --format must be text, json or html, got "pdf"\n');
  const refs = await cli(['explain', '--evidence', GCE, '--reference', join(work, 'x.jws')]);
  assert.equal(refs.code, 2);
  assert.match(refs.stderr, /^coffer: USAGE: --reference and --reference-key are used by a policy: give --policy too\n$/);
  const missing = await cli(['explain', '--evidence', join(work, 'nope.yaml')]);
  assert.equal(missing.code, 2);
  assert.match(missing.stderr, /^coffer: FILE_UNREADABLE: evidence description .*nope\.yaml does not exist\n$/);
  const bad = join(work, 'bad.yaml');
  writeFileSync(bad, 'kind: snp\nreport: r.bin\nbogus: 1\n');
  const invalid = await cli(['explain', '--evidence', bad, '--json']);
  assert.equal(invalid.code, 2);
  assert.equal((JSON.parse(invalid.stdout) as { error: { code: string } }).error.code, 'EVIDENCE_DESCRIPTION_INVALID');
  const noEvidence = await cli(['explain']);
  assert.equal(noEvidence.code, 2);
  assert.ok(VECTORS);
});

before(ensureBuilt);

test('bin/coffer explain --policy: exit 0, the links and the boot-level authorities (order not authenticated)', async () => {
  const r = await bin(['explain', '--evidence', GCE, '--policy', POLICY_FILE], work);
  assert.equal(r.code, 0, r.stdout + r.stderr);
  assert.match(r.stdout, /^Policy coffer-example-cvm@1: PASS \(EAR status affirming\)$/m);
  assert.match(r.stdout, /^ {2}VERIFIED +Event log replay +by eventlog\.replay/m);
  assert.match(r.stdout, /^ {2}ASSUMED +vTPM operated by Google /m);
  assert.match(r.stdout, /^ {2}authorities used \(order not authenticated\) +db: "UEFI DB Key v10" \(×3\)$/m);
  assert.equal(r.stderr, '');
});
