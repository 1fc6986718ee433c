// `coffer broker ...` in-process through a commander program (as src/cli/main.ts registers it):
// serve on 127.0.0.1:0 with files in a temp dir, the bootstrap token, token create straight into
// the database, secret/policy/audit through the admin API, TLS with a certificate made by
// openssl, and the refusals (insecure bind, world-readable KEK, bad token) as one-line errors.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command, CommanderError } from 'commander';
import { registerBroker } from '../../src/cli/broker.js';
import { reportError, type Io } from '../../src/cli/output.js';
import type { RunningBroker } from '../../src/broker/index.js';

delete process.env.COFFER_TOKEN;
delete process.env.COFFER_URL;
const work = mkdtempSync(join(tmpdir(), 'coffer-brokercli-'));
const running: RunningBroker[] = [];
after(async () => {
  for (const r of running) await r.close().catch(() => undefined);
  rmSync(work, { recursive: true, force: true });
});

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

async function cli(args: string[]): Promise<Run> {
  let stdout = '';
  let stderr = '';
  let code = 0;
  const nl = (t: string): string => (t.endsWith('\n') ? t : `${t}\n`);
  const io: Io = { out: (t) => void (stdout += nl(t)), err: (t) => void (stderr += nl(t)) };
  const program = new Command('coffer')
    .exitOverride()
    .configureOutput({ writeOut: (s) => io.out(s), writeErr: (s) => io.err(s), outputError: (s, write) => write(`coffer: ${s.trim()}\n`) });
  registerBroker(program, { io, setExit: (c) => (code = c) }, { noSignals: true, onServe: (r) => running.push(r) });
  try {
    await program.parseAsync(args, { from: 'user' });
  } catch (e) {
    code = e instanceof CommanderError ? 2 : reportError(e, {}, io);
  }
  return { code, stdout, stderr };
}

const POLICY = 'id: demo\nversion: 2\nmeasurements:\n  snp: ["' + 'ab'.repeat(48) + '"]\n';

test('serve, then secrets, policies and the audit log through the admin API', async () => {
  const home = join(work, 'home');
  const s = await cli(['broker', 'serve', '--home', home, '--listen', '127.0.0.1:0', '--log-level', 'silent']);
  assert.equal(s.code, 0, s.stderr);
  const url = running.at(-1)?.url ?? '';
  assert.match(s.stdout, new RegExp(`^coffer broker listening on ${url.replace(/[.]/g, '\\.')}`));
  assert.match(s.stdout, /admin token was written to .*admin\.token \(0600\)/);
  assert.match(s.stdout, /coffer broker secret put default\/key\/disk --from-file disk\.key/);
  assert.doesNotMatch(s.stdout, /coffer_[0-9a-f]{16}_/, 'the token itself is never printed by serve');
  const c = ['--url', url, '--home', home];

  const pol = join(work, 'policy.yaml');
  writeFileSync(pol, POLICY);
  const ps = await cli(['broker', 'policy', 'set', 'default', '--policy', pol, ...c]);
  assert.equal(ps.code, 0, ps.stderr);
  assert.equal(ps.stdout.trim(), 'policy demo@2 now decides releases under default/ (with every policy above it and the built-in baseline)');
  assert.match(ps.stderr, /^coffer: warning: policy demo@2 sets no TCB minimum/, 'a policy without a TCB minimum is stored with a warning');
  assert.equal((await cli(['broker', 'policy', 'get', 'default', ...c])).stdout.trim(), POLICY.trim());
  assert.match((await cli(['broker', 'policy', 'list', ...c])).stdout, /^PREFIX\s+POLICY\s+UPDATED\s+BY\ndefault\s+demo@2\s/);

  const keyFile = join(work, 'disk.key');
  writeFileSync(keyFile, 'super secret disk key');
  const put = await cli(['broker', 'secret', 'put', 'default/key/disk', '--from-file', keyFile, ...c]);
  assert.equal(put.code, 0, put.stderr);
  assert.match(put.stdout, /^stored default\/key\/disk \(version 1, 21 bytes, sealed under file:[0-9a-f]{16}\)/);
  const list = await cli(['broker', 'secret', 'list', '--json', ...c]);
  const doc = JSON.parse(list.stdout) as { ok: boolean; secrets: Record<string, unknown>[] };
  assert.equal(doc.secrets.length, 1);
  assert.equal(doc.secrets[0]?.path, 'default/key/disk');
  assert.ok(!list.stdout.includes('super secret'));

  // An auditor token, made straight in the database, reads the log but cannot write.
  const tok = await cli(['broker', 'token', 'create', '--role', 'auditor', '--home', home, '--json']);
  assert.equal(tok.code, 0, tok.stderr);
  const auditorFile = join(work, 'auditor.token');
  writeFileSync(auditorFile, (JSON.parse(tok.stdout) as { token: string }).token, { mode: 0o600 });
  const audit = await cli(['broker', 'audit', '--action', 'admin.secret.put', '--json', '--url', url, '--token-file', auditorFile]);
  assert.equal(audit.code, 0, audit.stderr);
  const recs = (JSON.parse(audit.stdout) as { records: { verdict: string; resource: string }[] }).records;
  assert.deepEqual(recs.map((r) => [r.verdict, r.resource]), [['allow', 'default/key/disk']]);
  const text = await cli(['broker', 'audit', '--since', new Date(Date.now() - 60_000).toISOString(), '--url', url, '--token-file', auditorFile]);
  assert.match(text.stdout, /^TIME\s+VERDICT\s+ACTION\s+ACTOR\s+RESOURCE\s+RULE \/ PROBLEM\n/);
  assert.match(text.stdout, /allow\s+admin\.policy\.set\s+token:[0-9a-f]{16}\s+default\s+demo@2/);

  const weak = await cli(['broker', 'secret', 'put', 'default/key/x', '--from-file', keyFile, '--url', url, '--token-file', auditorFile]);
  assert.equal(weak.code, 1);
  assert.match(weak.stderr, /^coffer: ADMIN_ROLE: role auditor may not admin\.secret\.put .*\(urn:coffer:problem:forbidden\)\n$/);
  const bad = join(work, 'bad.token');
  writeFileSync(bad, 'coffer_0000000000000000_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA');
  const nope = await cli(['broker', 'secret', 'list', '--url', url, '--token-file', bad]);
  assert.equal(nope.code, 1);
  assert.match(nope.stderr, /^coffer: ADMIN_BAD_TOKEN: /);

  const rm = await cli(['broker', 'secret', 'rm', 'default/key/disk', ...c]);
  assert.equal(rm.stdout.trim(), 'deleted default/key/disk');
  const again = await cli(['broker', 'secret', 'rm', 'default/key/disk', ...c]);
  assert.equal(again.code, 1);
  assert.match(again.stderr, /SECRET_NOT_FOUND/);
  const badPath = await cli(['broker', 'secret', 'put', '../etc/passwd', '--from-file', keyFile, ...c]);
  assert.equal(badPath.code, 2);
  assert.match(badPath.stderr, /^coffer: BROKER_BAD_PATH: /);
});

test('refusals at start: plain HTTP on a non-loopback address, a world-readable KEK, bad --listen', async () => {
  const home = join(work, 'refuse');
  const open = await cli(['broker', 'serve', '--home', home, '--listen', '0.0.0.0:0']);
  assert.equal(open.code, 2);
  assert.match(open.stderr, /^coffer: BROKER_INSECURE_BIND: refusing to serve plain HTTP on 0\.0\.0\.0/);
  const first = await cli(['broker', 'serve', '--home', home, '--listen', '127.0.0.1:0', '--json', '--log-level', 'silent']);
  assert.equal(first.code, 0, first.stderr);
  const info = JSON.parse(first.stdout) as { kek: { id: string; spec: string }; created: { kek: boolean } };
  assert.equal(info.created.kek, true);
  assert.equal(info.kek.spec, `file:${join(home, 'kek.key')}`);
  await running.pop()?.close();
  chmodSync(join(home, 'kek.key'), 0o644);
  const leaky = await cli(['broker', 'serve', '--home', home, '--listen', '127.0.0.1:0']);
  assert.equal(leaky.code, 2);
  assert.match(leaky.stderr, /^coffer: KEK_INSECURE_FILE: the KEK file .* has mode 0644/);
  const listen = await cli(['broker', 'serve', '--home', home, '--listen', 'nowhere']);
  assert.equal(listen.code, 2);
  assert.match(listen.stderr, /^coffer: USAGE: --listen nowhere is not HOST:PORT/);
});

test('TLS: serve with a provided certificate; the admin client trusts it with --ca', async () => {
  const home = join(work, 'tls');
  const cert = join(work, 'cert.pem');
  const key = join(work, 'key.pem');
  const r = spawnSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', key, '-out', cert, '-days', '2', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'], { encoding: 'utf8' });
  assert.equal(r.status, 0, `openssl is needed for this test (apt-get install openssl): ${r.stderr}`);
  chmodSync(key, 0o600);
  const s = await cli(['broker', 'serve', '--home', home, '--listen', '127.0.0.1:0', '--tls-cert', cert, '--tls-key', key, '--json', '--log-level', 'silent']);
  assert.equal(s.code, 0, s.stderr);
  const url = (JSON.parse(s.stdout) as { url: string }).url;
  assert.match(url, /^https:\/\/127\.0\.0\.1:\d+$/);
  const list = await cli(['broker', 'secret', 'list', '--url', url, '--home', home, '--ca', cert]);
  assert.equal(list.code, 0, list.stderr);
  assert.equal(list.stdout.trim(), '(no secrets)');
  const untrusted = await cli(['broker', 'secret', 'list', '--url', url, '--home', home]);
  assert.equal(untrusted.code, 2);
  assert.match(untrusted.stderr, /BROKER_UNREACHABLE/);
  assert.ok(readFileSync(key).length > 0);
});

test('the admin client refuses to send its token over plain http:// to a non-loopback broker unless --allow-insecure-http', async () => {
  const tokenFile = join(work, 'insecure.token');
  writeFileSync(tokenFile, 'coffer_0000000000000000_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA', { mode: 0o600 });
  for (const url of ['http://10.0.0.1:8666', 'http://broker.example:8666', 'http://0.0.0.0:1', 'http://[2001:db8::1]:8666']) {
    const r = await cli(['broker', 'secret', 'list', '--url', url, '--token-file', tokenFile]);
    assert.equal(r.code, 2, url);
    assert.match(r.stderr, /^coffer: BROKER_INSECURE_URL: refusing to send the admin token over plain HTTP/, url);
  }
  // Explicitly allowed, the request is made (nothing listens on port 1: unreachable, not refused up front).
  const allowed = await cli(['broker', 'secret', 'list', '--url', 'http://0.0.0.0:1', '--token-file', tokenFile, '--allow-insecure-http']);
  assert.equal(allowed.code, 2);
  assert.match(allowed.stderr, /BROKER_UNREACHABLE/);
  // Loopback needs no flag.
  const local = await cli(['broker', 'secret', 'list', '--url', 'http://127.0.0.1:1', '--token-file', tokenFile]);
  assert.match(local.stderr, /BROKER_UNREACHABLE/);
});
