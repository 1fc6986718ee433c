// Prometheus /metrics of a real broker: counts by route template and status, attestation
// verdicts by tee, releases and refusals by problem type; only unscoped admin/auditor tokens may
// read it; no path, token, cookie or URL ever becomes a label value; one registry per server.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { Attester, MEASUREMENT_A, MEASUREMENT_B, http, policyFor, sessionCookie, startTestBroker, type TestBroker } from './helpers.js';

let tb: TestBroker;
let admin: string;
let auditor: string;
const SECRET_PATH = 'metrics-team/key/zq81';

before(async () => {
  tb = await startTestBroker();
  admin = readFileSync(tb.running.paths.adminTokenFile, 'utf8').trim();
  auditor = await tb.token('auditor');
  assert.equal((await http(`${tb.url}/admin/v0/policies/metrics-team`, { method: 'PUT', bearer: admin, body: { policy: policyFor('m', MEASUREMENT_A) } })).status, 200);
  assert.equal((await http(`${tb.url}/admin/v0/secrets/${SECRET_PATH}`, { method: 'PUT', bearer: admin, body: { value: Buffer.from('metric secret').toString('base64') } })).status, 200);
});
after(async () => tb.cleanup());

/** Parses the text exposition format strictly: every line a comment or `name{labels} value` (NaN in any case, as Prometheus's ParseFloat takes it). */
function parse(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('# HELP ') || line.startsWith('# TYPE ')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*",?)*\})? (-?[0-9.e+-]+|[Nn][Aa][Nn]|\+Inf|-Inf)$/.exec(line);
    assert.ok(m, `not exposition format: ${line}`);
    out.set(`${m[1]}${m[2] ?? ''}`, Number(m[3]));
  }
  return out;
}

async function scrape(token = auditor): Promise<{ text: string; m: Map<string, number> }> {
  const r = await http(`${tb.url}/metrics`, { bearer: token });
  assert.equal(r.status, 200, r.text);
  assert.match(r.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
  return { text: r.text, m: parse(r.text) };
}

async function attest(att: Attester): Promise<{ cookie: string; status: number; text: string }> {
  const a = await http(`${tb.url}/kbs/v0/auth`, { body: { version: '0.1.0', tee: 'snp', 'extra-params': '' } });
  const cookie = sessionCookie(a);
  const t = await http(`${tb.url}/kbs/v0/attest`, { body: await att.attestBody(a.json.nonce as string), cookie });
  return { cookie, status: t.status, text: t.text };
}

test('counts: requests by route template, attestation verdicts by tee, releases and refusals by problem type', async () => {
  const before = (await scrape()).m;
  const good = await attest(new Attester(MEASUREMENT_A));
  assert.equal(good.status, 200, good.text);
  assert.equal((await http(`${tb.url}/kbs/v0/resource/${SECRET_PATH}`, { cookie: good.cookie })).status, 200);
  // Refused releases: the same resource twice, a path no policy covers.
  assert.equal((await http(`${tb.url}/kbs/v0/resource/${SECRET_PATH}`, { cookie: good.cookie })).status, 409);
  assert.equal((await http(`${tb.url}/kbs/v0/resource/elsewhere/key/x`, { cookie: good.cookie })).status, 403);
  // Another VM attests (the attestation policy accepts any genuine VM), then its nonce is replayed: refused.
  const other = await attest(new Attester(MEASUREMENT_B));
  assert.equal(other.status, 200);
  const replay = await http(`${tb.url}/kbs/v0/attest`, { body: await new Attester().attestBody('x'), cookie: other.cookie });
  assert.equal(replay.status, 409);

  const { m, text } = await scrape();
  const d = (k: string) => (m.get(k) ?? 0) - (before.get(k) ?? 0);
  assert.equal(d('coffer_attestations_total{tee="snp",verdict="allow",problem="none"}'), 2);
  assert.equal(d('coffer_attestations_total{tee="snp",verdict="deny",problem="nonce-reused"}'), 1);
  assert.equal(d('coffer_kbs_nonce_refusals_total{problem="nonce-reused"}'), 1);
  assert.equal(d('coffer_releases_total{outcome="released",problem="none"}'), 1);
  assert.equal(d('coffer_releases_total{outcome="refused",problem="already-released"}'), 1);
  assert.equal(d('coffer_releases_total{outcome="refused",problem="no-policy"}'), 1);
  assert.equal(d('coffer_kbs_sessions_total'), 2);
  assert.equal(d('coffer_http_requests_total{method="GET",route="/kbs/v0/resource/:repository/:type/:tag",status="200"}'), 1);
  assert.equal(d('coffer_http_requests_total{method="POST",route="/kbs/v0/attest",status="409"}'), 1);
  assert.equal(d('coffer_http_request_duration_seconds_count{method="POST",route="/kbs/v0/attest",status="200"}'), 2);
  assert.ok(text.includes('coffer_process_'), 'process metrics are there');
  // A wrong-measurement attestation is allowed by the attestation policy; the release is what the policy refuses.
  const wrong = await attest(new Attester(MEASUREMENT_B));
  assert.equal((await http(`${tb.url}/kbs/v0/resource/${SECRET_PATH}`, { cookie: wrong.cookie })).status, 403);
  const after = (await scrape()).m;
  assert.equal((after.get('coffer_releases_total{outcome="refused",problem="policy-denied"}') ?? 0) - (m.get('coffer_releases_total{outcome="refused",problem="policy-denied"}') ?? 0), 1);
});

test('no unbounded label values: no path, token, cookie or URL text appears in the metrics', async () => {
  const marker = `zzmarker${Date.now()}`;
  assert.equal((await http(`${tb.url}/${marker}/a/b`)).status, 404);
  assert.equal((await http(`${tb.url}/kbs/v0/resource/${marker}/key/x`, { cookie: 'nonsense-cookie-value' })).status, 401);
  const { text, m } = await scrape(admin);
  for (const needle of [marker, SECRET_PATH, 'metrics-team', admin, auditor, 'nonsense-cookie-value', '127.0.0.1']) assert.ok(!text.includes(needle), `metrics contain ${needle}`);
  assert.ok((m.get('coffer_http_requests_total{method="GET",route="unmatched",status="404"}') ?? 0) >= 1);
  const routes = new Set([...m.keys()].map((k) => /route="([^"]*)"/.exec(k)?.[1]).filter((x): x is string => x !== undefined));
  for (const r of routes) assert.ok(r === 'unmatched' || r.startsWith('/'), r);
  assert.ok(!/route="[^"]*(?:team|zq81)/.test(text));
});

test('access: no token, a bad token, a provisioner, a scoped auditor are refused (and audited); per-server registry', async () => {
  const none = await http(`${tb.url}/metrics`);
  assert.equal(none.status, 401);
  assert.equal(none.headers.get('content-type')?.split(';')[0], 'application/problem+json');
  assert.equal((await http(`${tb.url}/metrics`, { bearer: 'coffer_x_y' })).status, 401);
  assert.equal((await http(`${tb.url}/metrics`, { bearer: await tb.token('provisioner') })).status, 403);
  const scoped = await http(`${tb.url}/metrics`, { bearer: await tb.token('auditor', 'metrics-team') });
  assert.equal(scoped.status, 403);
  assert.equal(scoped.json.code, 'METRICS_SCOPED_TOKEN');
  const denied = await tb.running.broker.store.queryAudit({ action: 'metrics.read', verdict: 'deny', limit: 100 });
  assert.ok(denied.length >= 3, 'refused scrapes are audited');
  // Allowed scrapes are not audited (a scrape every 15 s would drown the log).
  assert.equal((await tb.running.broker.store.queryAudit({ action: 'metrics.read', verdict: 'allow', limit: 10 })).length, 0);

  const second = await startTestBroker();
  try {
    const tok = readFileSync(second.running.paths.adminTokenFile, 'utf8').trim();
    const r = await http(`${second.url}/metrics`, { bearer: tok });
    assert.equal(r.status, 200);
    const m = parse(r.text);
    assert.equal(m.get('coffer_attestations_total{tee="snp",verdict="allow",problem="none"}'), undefined, 'the second broker counts apart');
    assert.equal(m.get('coffer_releases_total{outcome="released",problem="none"}'), 0);
  } finally {
    await second.cleanup();
  }
});
