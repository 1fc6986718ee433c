// `coffer workload check`: text, JSON and SARIF 2.1.0 output; exit 0 clean, 1 at or above
// --fail-on, 2 on bad input.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { runCli } from '../helpers/cli.js';

const FIX = join(import.meta.dirname, 'fixtures');
const f = (n: string) => join(FIX, n);

test('clean manifest: exit 0, one line', async () => {
  const r = await runCli(['workload', 'check', f('hardened.yaml')]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^CLEAN {2}.*hardened\.yaml \(coffer\): no finding\n$/);
});

test('findings: text lines file:line:col severity rule [section]; exit 1 at --fail-on high, 0 at critical when none is critical', async () => {
  const r = await runCli(['workload', 'check', f('compose-insecure.yaml'), '--allow-registry', 'registry.example.com']);
  assert.equal(r.code, 1);
  assert.match(r.stdout, /compose-insecure\.yaml:5:17: critical CW010 \[SP 800-190 4\.4\.3\] container app is privileged/);
  assert.match(r.stdout, /\d+ findings \(\d+ critical, \d+ high, \d+ medium, \d+ low\)/);
  // k8s-equivalent with only its low finding kept: threshold decides.
  const low = await runCli(['workload', 'check', f('k8s-hardened.yaml')]);
  assert.equal(low.code, 0, 'CW005 (no allow-list) is low: below the default threshold');
  assert.match(low.stdout, /CW005/);
  const strict = await runCli(['workload', 'check', f('k8s-hardened.yaml'), '--fail-on', 'low']);
  assert.equal(strict.code, 1);
  const never = await runCli(['workload', 'check', f('compose-insecure.yaml'), '--fail-on', 'never']);
  assert.equal(never.code, 0);
});

test('--json: findings with rule, severity, section, line and column', async () => {
  const r = await runCli(['workload', 'check', f('k8s-insecure.yaml'), '--json', '--allow-registry', 'registry.example.com']);
  assert.equal(r.code, 1);
  const out = JSON.parse(r.stdout) as { ok: boolean; input: string; findings: { ruleId: string; line: number; column: number; section: string; severity: string }[] };
  assert.equal(out.ok, false);
  assert.equal(out.input, 'kubernetes');
  const priv = out.findings.find((x) => x.ruleId === 'CW010');
  assert.deepEqual(priv && { line: priv.line, section: priv.section, severity: priv.severity }, { line: 36, section: '4.4.3', severity: 'critical' });
});

test('--format sarif: SARIF 2.1.0 with the rule catalogue and located results', async () => {
  const r = await runCli(['workload', 'check', f('compose-insecure.yaml'), '--format', 'sarif', '--allow-registry', 'registry.example.com']);
  assert.equal(r.code, 1);
  const s = JSON.parse(r.stdout) as {
    version: string;
    $schema: string;
    runs: { tool: { driver: { name: string; rules: { id: string; shortDescription: { text: string }; defaultConfiguration: { level: string } }[] } }; results: { ruleId: string; ruleIndex: number; level: string; message: { text: string }; locations: { physicalLocation: { artifactLocation: { uri: string }; region: { startLine: number; startColumn: number } } }[] }[] }[];
  };
  assert.equal(s.version, '2.1.0');
  assert.match(s.$schema, /sarif-schema-2\.1\.0\.json$/);
  const run = s.runs[0];
  assert.ok(run);
  assert.equal(run.tool.driver.name, 'coffer');
  assert.ok(run.results.length > 10);
  for (const res of run.results) {
    assert.match(res.ruleId, /^CW\d{3}$/);
    assert.equal(run.tool.driver.rules[res.ruleIndex]?.id, res.ruleId, 'ruleIndex points at the rule');
    assert.ok(['note', 'warning', 'error'].includes(res.level));
    assert.ok(res.message.text.length > 0);
    const loc = res.locations[0]?.physicalLocation;
    assert.ok(loc && loc.region.startLine >= 1 && loc.region.startColumn >= 1);
    assert.match(loc.artifactLocation.uri, /compose-insecure\.yaml$/);
  }
  const priv = run.results.find((x) => x.ruleId === 'CW010');
  assert.equal(priv?.level, 'error');
  assert.equal(priv?.locations[0]?.physicalLocation.region.startLine, 5);
});

test('bad input and bad flags exit 2 with one line', async () => {
  const cases: [string[], RegExp][] = [
    [['workload', 'check', f('nope.yaml')], /FILE_UNREADABLE/],
    [['workload', 'check', f('hardened.yaml'), '--format', 'xml'], /--format must be text or sarif/],
    [['workload', 'check', f('hardened.yaml'), '--fail-on', 'severe'], /--fail-on must be one of/],
    [['workload', 'check', f('hardened.yaml'), '--input', 'helm'], /--input must be one of/],
    [['workload', 'check', f('hardened.yaml'), '--input', 'compose'], /a Compose file needs a services mapping/],
  ];
  for (const [args, re] of cases) {
    const r = await runCli(args);
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.stdout}${r.stderr}`);
    assert.match(r.stderr, re);
    assert.equal(r.stderr.trim().split('\n').length, 1);
  }
  const j = await runCli(['workload', 'check', f('nope.yaml'), '--json']);
  assert.equal((JSON.parse(j.stdout) as { error: { code: string } }).error.code, 'FILE_UNREADABLE');
});

test('workload rules lists every rule with its SP 800-190 section', async () => {
  const r = await runCli(['workload', 'rules', '--json']);
  const rules = (JSON.parse(r.stdout) as { rules: { id: string; section: string }[] }).rules;
  assert.ok(rules.length >= 30);
  for (const x of rules) assert.match(x.section, /^4\.[1-5]\.[1-5]$/);
  assert.equal(new Set(rules.map((x) => x.id)).size, rules.length);
});
