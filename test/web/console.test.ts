// The broker's web console in a real browser: Debian's Chromium through playwright-core against a
// real broker (SQLite on files, the simulated SEV-SNP attester of test/broker/helpers.ts). Signs
// in with the keyboard, reads the attestation log and a refused attestation's trust chain, edits a
// policy and finds the audit record; an auditor sees no edit control and the API refuses it;
// forged cross-site requests are refused. Screenshots of each page go to docs/console/.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createServer, request as httpRequest, type Server } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { CONSOLE_COOKIE, CONSOLE_CSP, CONSOLE_SESSION_MS, auditCsv, csvField } from '../../src/broker/console.js';
import { Attester, MEASUREMENT_A, MEASUREMENT_B, http, policyFor, sessionCookie, startTestBroker, type TestBroker } from '../broker/helpers.js';
import { REPO } from '../helpers/build.js';

const CHROMIUM = '/usr/bin/chromium';

// The few browser globals the functions run in the page use (the root tsconfig has no DOM library).
interface El {
  tagName: string;
  id: string;
  textContent: string | null;
  outerHTML: string;
  type?: string;
  value?: string;
  labels?: { length: number } | null;
  getAttribute(name: string): string | null;
}
declare const document: { querySelectorAll(s: string): Iterable<El> & { length: number }; activeElement: El | null; getElementById(id: string): El | null };
declare function getComputedStyle(e: El): { outlineStyle: string };
const SHOTS = join(REPO, 'docs/console');
const work = mkdtempSync(join(tmpdir(), 'coffer-console-'));
/** SEV-SNP guest policy with DEBUG (bit 19) allowed: the attestation policy refuses it. */
const DEBUG_POLICY = 0x30000n | (1n << 19n);

let tb: TestBroker;
let browser: BrowserContext;
let page: Page;
let admin: string;
let auditor: string;
let auditorId: string;
let adminId: string;
let evil: Server;
let evilUrl: string;

function newest(dir: string): number {
  let t = 0;
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    const s = statSync(p);
    t = Math.max(t, s.isDirectory() ? newest(p) : s.mtimeMs);
  }
  return t;
}

/** Builds dist/web with Vite when it is missing or older than web/ (npm run build does it too). */
function ensureWebBuilt(): void {
  const index = join(REPO, 'dist/web/index.html');
  if (existsSync(index) && statSync(index).mtimeMs >= newest(join(REPO, 'web'))) return;
  const r = spawnSync(process.execPath, [join(REPO, 'node_modules/vite/bin/vite.js'), 'build', '--config', 'web/vite.config.ts'], { cwd: REPO, encoding: 'utf8' });
  assert.equal(r.status, 0, `vite build of the console failed:\n${r.stdout}\n${r.stderr}`);
}

async function attest(att: Attester, fields: { policy?: bigint } = {}, tamper = false): Promise<number> {
  const a = await http(`${tb.url}/kbs/v0/auth`, { body: { version: '0.1.0', tee: 'snp' } });
  assert.equal(a.status, 200, a.text);
  const cookie = sessionCookie(a);
  const rd = await att.runtimeData(a.json.nonce as string);
  const evidence = att.evidence(rd, 'sha384', fields);
  if (tamper) {
    // One flipped byte of the signed report: the signature no longer verifies.
    const report = Buffer.from(evidence.report as string, 'base64');
    report[0x90] = (report[0x90] as number) ^ 1;
    evidence.report = report.toString('base64');
  }
  const r = await http(`${tb.url}/kbs/v0/attest`, { body: { 'runtime-data': rd, 'tee-evidence': evidence }, cookie });
  if (r.status === 200) {
    const rel = await http(`${tb.url}/kbs/v0/resource/team-a/disk/root`, { cookie });
    assert.equal(rel.status, 200, rel.text);
  }
  return r.status;
}

const consoleUrl = (p = '') => `${tb.url}/console/${p}`;

async function shot(name: string, fullPage = false): Promise<void> {
  await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage });
}

/** Every form control has an accessible name from a label (or aria-label); the page has its landmarks. */
async function checkA11y(where: string): Promise<void> {
  const unlabelled = await page.evaluate(() =>
    [...document.querySelectorAll('input, select, textarea')]
      .filter((el) => el.type !== 'hidden')
      .filter((el) => (el.labels?.length ?? 0) === 0 && !el.getAttribute('aria-label') && !el.getAttribute('aria-labelledby'))
      .map((el) => el.outerHTML.slice(0, 120)),
  );
  assert.deepEqual(unlabelled, [], `${where}: form controls without a label`);
  assert.equal(await page.locator('main').count(), 1, `${where}: one main landmark`);
  assert.equal(await page.locator('h1').count(), 1, `${where}: one h1`);
}

async function signIn(token: string): Promise<void> {
  await page.goto(consoleUrl());
  await page.locator('#token').waitFor();
  // Keyboard only: the token field is the first stop, Enter submits.
  await page.keyboard.press('Tab');
  assert.equal(await page.evaluate(() => document.activeElement?.id), 'token', 'Tab reaches the token field first');
  await page.keyboard.type(token);
  await page.keyboard.press('Enter');
  await page.getByRole('navigation', { name: 'Console pages' }).waitFor();
}

async function signOut(): Promise<void> {
  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.locator('#token').waitFor();
}

async function go(hash: string, heading: string): Promise<void> {
  await page.goto(consoleUrl(`#/${hash}`));
  await page.getByRole('heading', { level: 1, name: heading }).waitFor();
}

/** A console API call made by the page itself (same origin, its cookie), with or without the CSRF token. */
async function fromPage(method: string, path: string, body: unknown, withCsrf: boolean): Promise<{ status: number; json: Record<string, unknown> }> {
  return page.evaluate(
    async ({ method, path, body, withCsrf }) => {
      const s = (await (await fetch('api/session')).json()) as { csrf: string };
      const headers: Record<string, string> = { 'content-type': 'application/json' };
      if (withCsrf) headers['x-coffer-csrf'] = s.csrf;
      const r = await fetch(`api/${path}`, { method, headers, body: JSON.stringify(body) });
      return { status: r.status, json: (await r.json().catch(() => ({}))) as Record<string, unknown> };
    },
    { method, path, body, withCsrf },
  );
}

before(async () => {
  if (!existsSync(CHROMIUM)) assert.fail(`${CHROMIUM} is missing: the console is tested in a real browser; run \`apt-get install chromium\``);
  ensureWebBuilt();
  mkdirSync(SHOTS, { recursive: true });
  tb = await startTestBroker(join(work, 'broker'));
  admin = readFileSync(tb.running.paths.adminTokenFile, 'utf8').trim();
  adminId = admin.split('_')[1] as string;
  auditor = await tb.token('auditor');
  auditorId = auditor.split('_')[1] as string;
  for (const [prefix, m] of [['team-a', MEASUREMENT_A], ['team-b', MEASUREMENT_B]] as const) {
    const r = await http(`${tb.url}/admin/v0/policies/${prefix}`, { method: 'PUT', bearer: admin, body: { policy: policyFor(`${prefix}-release`, m) } });
    assert.equal(r.status, 200, r.text);
  }
  for (const path of ['team-a/disk/root', 'team-a/api/key', 'team-b/disk/root']) {
    const r = await http(`${tb.url}/admin/v0/secrets/${path}`, { method: 'PUT', bearer: admin, body: { value: Buffer.from(`value of ${path}`).toString('base64') } });
    assert.equal(r.status, 200, r.text);
  }
  const vol = await http(`${tb.url}/admin/v0/volumes`, { bearer: admin, body: { id: 'db-data', label: 'database volume', identity: { snp: { measurements: [MEASUREMENT_A.toString('hex')] } } } });
  assert.equal(vol.status, 201, vol.text);
  const vm = new Attester(MEASUREMENT_A);
  for (let i = 0; i < 3; i++) assert.equal(await attest(vm), 200);
  assert.equal(await attest(new Attester(MEASUREMENT_A), { policy: DEBUG_POLICY }), 403, 'a debuggable guest is refused');
  assert.equal(await attest(new Attester(MEASUREMENT_A), {}, true), 403, 'a report with a flipped byte is refused');

  evil = createServer((_req, res) => {
    res.setHeader('content-type', 'text/html');
    res.end('<!doctype html><title>elsewhere</title><p>another origin</p>');
  });
  await new Promise<void>((r) => evil.listen(0, '127.0.0.1', r));
  // localhost, not 127.0.0.1: another site as well as another origin.
  evilUrl = `http://localhost:${(evil.address() as AddressInfo).port}/`;

  const profile = join(work, 'profile');
  mkdirSync(profile);
  browser = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    viewport: { width: 1366, height: 768 },
  });
  page = browser.pages()[0] ?? (await browser.newPage());
});

after(async () => {
  await browser?.close();
  await new Promise((r) => evil?.close(r));
  await tb?.cleanup();
  rmSync(work, { recursive: true, force: true });
});

test('console responses carry a strict CSP and no inline script; the cookie is HttpOnly and SameSite=Strict', async () => {
  const r = await fetch(consoleUrl());
  assert.equal(r.status, 200);
  const csp = r.headers.get('content-security-policy') ?? '';
  assert.equal(csp, CONSOLE_CSP);
  for (const d of ["default-src 'none'", "script-src 'self'", "frame-ancestors 'none'", "base-uri 'none'"]) assert.ok(csp.includes(d), `CSP has ${d}`);
  assert.equal(r.headers.get('x-frame-options'), 'DENY');
  const html = await r.text();
  assert.ok(!/<script(?![^>]*\bsrc=)[^>]*>/i.test(html), 'no inline script in index.html');
  assert.ok(!/https?:\/\//.test(html.replace(/<!doctype[^>]*>/i, '')), 'nothing loaded from another origin');
  const api = await fetch(consoleUrl('api/session'));
  assert.equal(api.status, 401);
  assert.equal(api.headers.get('content-security-policy'), CONSOLE_CSP);
  assert.equal(api.headers.get('cache-control'), 'no-store');
  // The admin API keeps its own headers (helmet's), untouched by the console's.
  assert.notEqual((await fetch(`${tb.url}/healthz`)).headers.get('content-security-policy'), CONSOLE_CSP);

  const login = await fetch(consoleUrl('api/login'), { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ token: auditor }) });
  assert.equal(login.status, 200);
  const cookie = login.headers.get('set-cookie') ?? '';
  assert.match(cookie, new RegExp(`^${CONSOLE_COOKIE}=[A-Za-z0-9_-]{43};`));
  for (const a of ['HttpOnly', 'SameSite=Strict', 'Path=/console']) assert.ok(cookie.includes(a), `cookie has ${a}: ${cookie}`);
  assert.ok(!cookie.includes('Secure'), 'no Secure flag over plain HTTP (the broker sets it under TLS)');
  // Only the cookie's hash is stored.
  const value = /=([^;]+)/.exec(cookie)?.[1] as string;
  assert.equal(await tb.running.broker.store.getConsoleSession(value), undefined);

  const bad = await fetch(consoleUrl('api/login'), { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ token: `${admin.slice(0, -1)}x` }) });
  assert.equal(bad.status, 401);
  const prov = await tb.token('provisioner');
  const p = await fetch(consoleUrl('api/login'), { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ token: prov }) });
  assert.equal(p.status, 403, 'a provisioner token does not open the console');
});

test('keyboard-only sign-in, then the overview and the attestation log', async () => {
  await page.goto(consoleUrl());
  await page.locator('#token').waitFor();
  await checkA11y('sign-in');
  await shot('sign-in');
  // A wrong token is refused with a visible message.
  await page.locator('#token').fill('coffer_0000000000000000_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA');
  await page.keyboard.press('Enter');
  await page.getByRole('alert').waitFor();
  assert.match(await page.getByRole('alert').innerText(), /not valid/);
  await page.locator('#token').fill('');

  await signIn(admin);
  await page.getByRole('heading', { level: 1, name: 'Overview' }).waitFor();
  await page.locator('.totals').waitFor();
  const totals = await page.locator('.totals').innerText();
  assert.match(totals, /Attestations\s+5/);
  assert.match(totals, /Allowed\s+3/);
  assert.match(totals, /Refused\s+2/);
  assert.match(totals, /Releases\s+3/);
  assert.equal(await page.locator('svg[role="img"]').count(), 3, 'three charts drawn as SVG');
  assert.match(await page.locator('.grid2').innerText(), /debug/, 'the refusal is counted under its rule');
  await checkA11y('overview');
  await shot('overview');

  // Keyboard navigation: focus sits on the page heading; Shift+Tab reaches the last page link,
  // visibly focused, and Enter opens it.
  assert.equal(await page.evaluate(() => document.activeElement?.tagName), 'H1');
  await page.keyboard.press('Shift+Tab');
  const focused = await page.evaluate(() => {
    const el = document.activeElement as El;
    return { tag: el.tagName, text: el.textContent, outline: getComputedStyle(el).outlineStyle };
  });
  assert.deepEqual({ tag: focused.tag, text: focused.text }, { tag: 'A', text: 'Audit log' });
  assert.notEqual(focused.outline, 'none', 'focus is visible');
  await page.keyboard.press('Enter');
  await page.getByRole('heading', { level: 1, name: 'Audit log' }).waitFor();

  await go('attestations', 'Attestations');
  const rows = page.locator('table.log tbody tr');
  await rows.first().waitFor();
  assert.equal(await rows.count(), 5);
  assert.equal(await page.locator('tr[data-verdict="deny"]').count(), 2);
  await checkA11y('attestations');
  await shot('attestations');
  // The filter narrows the log.
  await page.getByLabel('Verdict').selectOption('deny');
  await page.getByRole('button', { name: 'Apply filters' }).click();
  await page.waitForFunction(() => document.querySelectorAll('table.log tbody tr').length === 2);
});

test('a refused attestation opens as a chain with the failed link and the rule that refused it', async () => {
  await page.locator('tr[data-verdict="deny"]', { hasText: 'debug' }).locator('a').click();
  await page.getByRole('heading', { level: 1, name: 'Attestation trust report' }).waitFor();
  await page.locator('li.link').first().waitFor();
  assert.equal((await page.locator('code.rule').innerText()).trim(), 'debug', 'the rule that refused it');
  const failed = page.locator('li.link[data-state="failed"]');
  assert.equal(await failed.count(), 1);
  assert.equal(await failed.getAttribute('data-link'), 'snp.guest-policy');
  const text = await failed.innerText();
  assert.match(text, /FAILED/);
  assert.match(text, /Guest policy/);
  assert.match(text, /rule debug/i);
  // The chain runs from the AMD root to the workload, each link with its state as text.
  const ids = await page.locator('li.link').evaluateAll((els) => els.map((e) => e.getAttribute('data-link')));
  assert.equal(ids[0], 'snp.root');
  assert.equal(ids.at(-1), 'snp.workload');
  assert.match(await page.locator('li.link[data-link="snp.root"]').innerText(), /ASSUMED[\s\S]*Trusted:/);
  assert.match(await page.locator('li.link[data-link="snp.signature"]').innerText(), /VERIFIED/);
  assert.match(await page.locator('li.link[data-link="snp.workload"]').innerText(), /NOT CHECKED/);
  await checkA11y('trust report');
  await shot('attestation-refused', true);

  // Evidence that never verified: one FAILED link naming the verifier's error.
  await go('attestations', 'Attestations');
  await page.locator('tr[data-verdict="deny"]', { hasText: 'evidence.verified' }).locator('a').click();
  await page.locator('li.link').first().waitFor();
  assert.equal(await page.locator('li.link').count(), 1);
  assert.match(await page.locator('li.link[data-state="failed"]').innerText(), /FAILED[\s\S]*Evidence verification[\s\S]*SNP_BAD_SIGNATURE/);
  assert.equal((await page.locator('code.rule').innerText()).trim(), 'evidence.verified');

  // An allowed one has no failed link.
  await go('attestations', 'Attestations');
  await page.locator('tr[data-verdict="allow"] a').first().click();
  await page.locator('li.link').first().waitFor();
  assert.equal(await page.locator('li.link[data-state="failed"]').count(), 0);
  assert.match(await page.locator('.decision').innerText(), /ALLOWED/);
});

test('secrets and volumes show metadata and their release policies, never values', async () => {
  await go('secrets', 'Secrets & volumes');
  await page.locator('table').first().waitFor();
  const t = await page.locator('main').innerText();
  assert.match(t, /team-a\/disk\/root/);
  assert.match(t, /team-a-release@1/);
  assert.ok(!t.includes('value of'), 'no secret value on the page');
  assert.match(t, /db-data \(database volume\)\s+active\s+1/);
  // The volume's generated release policy is shown, its key never is.
  await page.locator('section[aria-labelledby="vol-h"] summary').click();
  assert.match(await page.locator('section[aria-labelledby="vol-h"] pre').innerText(), /a1a1a1a1/);
  await checkA11y('secrets');
  await shot('secrets');
  await go('references', 'Reference values');
  await page.locator('#ref-stored').waitFor();
  await checkA11y('references');
  await shot('references');
});

test('an admin edits a policy, tests it against recent evidence, and finds the audit record', async () => {
  await go('policies/team-a', 'Policies');
  const editor = page.getByLabel('Policy text (YAML or JSON)');
  await editor.waitFor();
  await page.waitForFunction(() => document.getElementById('policy-text')?.value?.includes('team-a-release') === true);
  const edited = policyFor('team-a-release', MEASUREMENT_A).replace('version: 1', 'version: 2').concat('debug: forbidden\n');
  await editor.fill(edited);
  await page.getByRole('button', { name: 'Test this policy against recent evidence' }).click();
  await page.locator('#test-h').waitFor();
  // The attempt whose evidence never verified has no claims to test against.
  assert.match(await page.locator('#test-h').innerText(), /4 most recent attestations with verified evidence: 3 would pass, 1 would fail/);
  await checkA11y('policies');
  await shot('policies', true);

  // A draft that does not parse is refused with its reason, and nothing is stored.
  await editor.fill('id: broken\nversion: 1\nunknown_field: 1\n');
  await page.getByRole('button', { name: 'Save policy' }).click();
  await page.locator('.editor p.error').waitFor();
  assert.match(await page.locator('.editor p.error').innerText(), /Not saved/);

  await editor.fill(edited);
  await page.getByRole('button', { name: 'Save policy' }).click();
  await page.locator('.editor p.success').waitFor();
  assert.match(await page.locator('.editor p.success').innerText(), /Saved team-a-release@2/);
  assert.equal((await tb.running.broker.store.getPolicy('team-a'))?.text, edited);

  await go('audit', 'Audit log');
  await page.getByLabel('Action').fill('admin.policy.set');
  await page.getByRole('button', { name: 'Apply filters' }).click();
  // Until the filtered page replaces the unfiltered one (where console.policy.test also names the policy).
  await page.waitForFunction(() => {
    const rows = [...document.querySelectorAll('table.audit tbody tr')];
    return rows.length > 0 && rows.every((r) => r.textContent?.includes('admin.policy.set'));
  });
  const row = page.locator('table.audit tbody tr', { hasText: 'team-a-release@2' });
  const rowText = await row.innerText();
  assert.match(rowText, new RegExp(`token:${adminId}`));
  assert.match(rowText, /ALLOW/);
  assert.match(rowText, /team-a/);
  await page.getByLabel('Action').fill('');
  await page.getByRole('button', { name: 'Apply filters' }).click();
  await page.waitForFunction(() => document.querySelectorAll('table.audit tbody tr').length > 5);
  await checkA11y('audit');
  await shot('audit');

  // The CSV export is the same records, with spreadsheet formulas defused.
  const csv = await page.evaluate(async () => {
    const r = await fetch('api/audit.csv?action=admin.policy.set');
    return { type: r.headers.get('content-type'), disposition: r.headers.get('content-disposition'), text: await r.text() };
  });
  assert.match(csv.type ?? '', /^text\/csv/);
  assert.match(csv.disposition ?? '', /^attachment; filename="coffer-audit-/);
  assert.match(csv.text, /^seq,at,actor,action,resource,verdict,rule,problem,detail,evidenceDigest,remote\r\n/);
  assert.match(csv.text, /team-a-release@2/);
  assert.equal(csvField('=HYPERLINK("x")'), `"'=HYPERLINK(""x"")"`);
  assert.equal(csvField('-1+1'), "'-1+1");
  assert.equal(csvField('plain'), 'plain');
  assert.equal(auditCsv([{ seq: 1, at: 0, actor: 'a,b', action: 'x', verdict: 'allow' }]).split('\r\n')[1], '1,1970-01-01T00:00:00.000Z,"a,b",x,,allow,,,,,');
});

test('forged requests are refused: no CSRF token, another origin, another site', async () => {
  // The page's own request with the token is accepted (the positive twin)...
  const ok = await fromPage('POST', 'policy-test', { policy: policyFor('t', MEASUREMENT_A) }, true);
  assert.equal(ok.status, 200, JSON.stringify(ok.json));
  // ...and without it refused, even from the same origin with the cookie.
  const noToken = await fromPage('PUT', 'policy?prefix=team-a', { policy: policyFor('forged', MEASUREMENT_B) }, false);
  assert.equal(noToken.status, 403);
  assert.equal(noToken.json.code, 'CONSOLE_CSRF');

  // A client holding the cookie and the right token but sending another Origin is refused.
  const cookies = await browser.cookies(consoleUrl());
  const c = cookies.find((x) => x.name === CONSOLE_COOKIE);
  assert.ok(c && c.httpOnly && c.sameSite === 'Strict');
  const cookie = `${CONSOLE_COOKIE}=${c.value}`;
  const s = (await (await fetch(consoleUrl('api/session'), { headers: { cookie } })).json()) as { csrf: string };
  const put = (headers: Record<string, string>) =>
    fetch(consoleUrl('api/policy?prefix=team-a'), { method: 'PUT', headers: { cookie, 'content-type': 'application/json', ...headers }, body: JSON.stringify({ policy: policyFor('forged', MEASUREMENT_B) }) });
  const crossOrigin = await put({ 'x-coffer-csrf': s.csrf, origin: 'http://evil.example' });
  assert.equal(crossOrigin.status, 403);
  assert.equal(((await crossOrigin.json()) as { code: string }).code, 'CONSOLE_CSRF');
  const crossSite = await put({ 'x-coffer-csrf': s.csrf, 'sec-fetch-site': 'cross-site' });
  assert.equal(crossSite.status, 403);
  const wrongToken = await put({ 'x-coffer-csrf': `${s.csrf.slice(0, -2)}AA`, origin: new URL(tb.url).origin });
  assert.equal(wrongToken.status, 403);
  const textPlain = await fetch(consoleUrl('api/policy?prefix=team-a'), { method: 'PUT', headers: { cookie, 'content-type': 'text/plain', 'x-coffer-csrf': s.csrf }, body: JSON.stringify({ policy: policyFor('forged', MEASUREMENT_B) }) });
  assert.equal(textPlain.status, 403, 'a simple (form-like) request is refused');

  // From a page on another site in the same browser: the cookie is not sent and nothing changes.
  const before = (await tb.running.broker.store.getPolicy('team-a'))?.sha256;
  await page.goto(evilUrl);
  const forged = await page.evaluate(async (target) => {
    const out: string[] = [];
    try {
      await fetch(target, { method: 'PUT', mode: 'no-cors', credentials: 'include', headers: { 'content-type': 'text/plain' }, body: JSON.stringify({ policy: 'id: forged' }) });
      out.push('sent');
    } catch {
      out.push('blocked');
    }
    try {
      const r = await fetch(target, { method: 'PUT', credentials: 'include', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ policy: 'id: forged' }) });
      out.push(`read ${r.status}`);
    } catch {
      out.push('cors-blocked');
    }
    return out;
  }, consoleUrl('api/policy?prefix=team-a'));
  assert.equal(forged[1], 'cors-blocked', 'the preflight fails: no CORS for the console API');
  assert.equal((await tb.running.broker.store.getPolicy('team-a'))?.sha256, before, 'the policy is unchanged');
  const refusals = (await tb.running.broker.store.queryAudit({ action: 'admin.policy.set', verdict: 'deny', limit: 100 })).map((r) => r.detail ?? '');
  assert.ok(refusals.filter((d) => d.startsWith('CONSOLE_CSRF')).length >= 4, 'the CSRF refusals are audited');
  await page.goto(consoleUrl());
  await page.getByRole('navigation', { name: 'Console pages' }).waitFor();
  await signOut();
  // The session is gone server-side: the old cookie no longer works.
  assert.equal((await fetch(consoleUrl('api/session'), { headers: { cookie } })).status, 401);
});

test('an auditor sees no edit control and the API refuses its changes; revoking the token ends the session', async () => {
  await signIn(auditor);
  assert.match(await page.locator('header.top').innerText(), /auditor[\s\S]*read-only/);
  await go('policies/team-a', 'Policies');
  const text = page.getByLabel('Policy text (read-only)');
  await text.waitFor();
  assert.equal(await text.getAttribute('readonly'), '');
  assert.equal(await page.getByRole('button', { name: 'Save policy' }).count(), 0, 'no save button for an auditor');
  assert.equal(await page.locator('#new-prefix').count(), 0);
  // Testing a policy changes nothing, so an auditor may.
  await page.getByRole('button', { name: 'Test this policy against recent evidence' }).click();
  await page.locator('#test-h').waitFor();

  const put = await fromPage('PUT', 'policy?prefix=team-a', { policy: policyFor('by-auditor', MEASUREMENT_B) }, true);
  assert.equal(put.status, 403, JSON.stringify(put.json));
  assert.equal(put.json.code, 'ADMIN_ROLE');
  assert.ok(!(await tb.running.broker.store.getPolicy('team-a'))?.text.includes('by-auditor'));
  const denied = (await tb.running.broker.store.queryAudit({ action: 'admin.policy.set', verdict: 'deny', actor: `token:${auditorId}`, limit: 10 })).at(-1);
  assert.equal(denied?.problem, 'forbidden');
  // Its reads are audited under its token.
  const reads = await tb.running.broker.store.queryAudit({ action: 'admin.policy.get', actor: `token:${auditorId}`, limit: 10 });
  assert.ok(reads.length >= 1);

  assert.ok(await tb.running.broker.store.revokeToken(auditorId, Date.now()));
  await page.goto(consoleUrl('#/overview'));
  await page.locator('#token').waitFor();
});

test('under TLS the session cookie is Secure and a plain-http Origin is refused', async () => {
  const tls = await startTestBroker(join(work, 'tls-broker'), { selfSignedTls: true });
  try {
    assert.ok(tls.url.startsWith('https://'));
    const ca = readFileSync(tls.running.tls?.certFile as string);
    const token = await tls.token('auditor');
    const login = (origin: string) =>
      new Promise<{ status: number; cookie: string; body: string }>((resolve, reject) => {
        const u = new URL(`${tls.url}/console/api/login`);
        const req = httpsRequest(u, { method: 'POST', ca, headers: { 'content-type': 'application/json', origin } }, (res) => {
          let body = '';
          res.on('data', (d: Buffer) => (body += d.toString()));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, cookie: String(res.headers['set-cookie'] ?? ''), body }));
        });
        req.on('error', reject);
        req.end(JSON.stringify({ token }));
      });
    const host = new URL(tls.url).host;
    const ok = await login(`https://${host}`);
    assert.equal(ok.status, 200, ok.body);
    for (const a of ['Secure', 'HttpOnly', 'SameSite=Strict']) assert.ok(ok.cookie.includes(a), `cookie has ${a}: ${ok.cookie}`);
    const downgraded = await login(`http://${host}`);
    assert.equal(downgraded.status, 403);
    assert.equal((JSON.parse(downgraded.body) as { code: string }).code, 'CONSOLE_CSRF');
  } finally {
    await tls.cleanup();
  }
});

test('a console session ends after its lifetime, whatever the cookie says', async () => {
  const login = await fetch(consoleUrl('api/login'), { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ token: admin }) });
  assert.equal(login.status, 200);
  const cookie = (login.headers.get('set-cookie') ?? '').split(';')[0] as string;
  assert.equal((await fetch(consoleUrl('api/session'), { headers: { cookie } })).status, 200);
  tb.clock.offsetMs = CONSOLE_SESSION_MS + 60_000;
  try {
    assert.equal((await fetch(consoleUrl('api/session'), { headers: { cookie } })).status, 401);
    assert.equal((await fetch(consoleUrl('api/audit'), { headers: { cookie } })).status, 401);
  } finally {
    tb.clock.offsetMs = 0;
  }
  // A cookie that was never issued is refused the same way.
  assert.equal((await fetch(consoleUrl('api/session'), { headers: { cookie: `${CONSOLE_COOKIE}=${'A'.repeat(43)}` } })).status, 401);
});

test('static paths that leave the bundle or name a dotfile are a plain 404, never a 500, and never cached', async () => {
  // node:http, not fetch: fetch would normalise the dot segments away before sending.
  const get = (path: string) =>
    new Promise<{ status: number; cache: string; body: string }>((resolve, reject) => {
      const u = new URL(tb.url);
      const req = httpRequest({ host: u.hostname, port: u.port, path }, (res) => {
        let body = '';
        res.on('data', (d: Buffer) => (body += d.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, cache: String(res.headers['cache-control'] ?? ''), body }));
      });
      req.on('error', reject);
      req.end();
    });
  const errorsBefore = tb.logs.lines.filter((l) => l.includes('"level":50')).length;
  for (const path of ['/console/.env', '/console/assets/.hidden', '/console/%2e%2e/%2e%2e/package.json', '/console/..%2f..%2fpackage.json', '/console/assets/%2e%2e/index.html', '/console/assets/../index.html', '/console/assets/nope.js']) {
    const r = await get(path);
    assert.equal(r.status, 404, `${path}: ${r.body}`);
    assert.equal(r.cache, 'no-store', `${path} is not cached (an index.html under /assets/ must not become immutable)`);
  }
  assert.equal(tb.logs.lines.filter((l) => l.includes('"level":50')).length, errorsBefore, 'no internal error logged');
  // The positive twins: the page itself (no-store) and a content-hashed asset (immutable).
  const index = await get('/console/');
  assert.equal(index.status, 200);
  assert.equal(index.cache, 'no-store');
  const asset = /src="(\/console\/assets\/[^"]+\.js)"/.exec(index.body)?.[1];
  assert.ok(asset, 'index.html names its script');
  const a = await get(asset);
  assert.equal(a.status, 200);
  assert.equal(a.cache, 'public, max-age=31536000, immutable');
  assert.equal((await get(`${asset}?x=1`)).cache, 'no-store', 'only the exact asset URL is immutable');
});

test('a scoped token sees its scope only, and its secrets are not called "never released" when a policy above the scope applies', async () => {
  const scoped = await tb.token('admin', 'team-a/disk');
  await signIn(scoped);
  await go('secrets', 'Secrets & volumes');
  await page.locator('section[aria-labelledby="sec-h"] table').waitFor();
  const t = await page.locator('section[aria-labelledby="sec-h"]').innerText();
  assert.match(t, /team-a\/disk\/root/);
  assert.doesNotMatch(t, /team-a\/api\/key|team-b/, 'nothing outside the scope');
  // team-a's policy releases team-a/disk/root but lies above the scope, so it is not listed...
  assert.doesNotMatch(t, /never released/);
  assert.match(t, /none within your scope/);
  assert.match(await page.locator('#scope-hint').innerText(), /scoped to team-a\/disk[\s\S]*team-a/);
  await checkA11y('secrets (scoped)');
  await signOut();
  // ...while an unscoped admin still sees the warning for a secret that no policy covers.
  const orphan = await http(`${tb.url}/admin/v0/secrets/team-c/disk/root`, { method: 'PUT', bearer: admin, body: { value: Buffer.from('x').toString('base64') } });
  assert.equal(orphan.status, 200, orphan.text);
  try {
    await signIn(admin);
    await go('secrets', 'Secrets & volumes');
    await page.locator('section[aria-labelledby="sec-h"] table').waitFor();
    assert.match(await page.locator('tr', { hasText: 'team-c/disk/root' }).innerText(), /none: never released/);
    assert.equal(await page.locator('#scope-hint').count(), 0);
    await signOut();
  } finally {
    await http(`${tb.url}/admin/v0/secrets/team-c/disk/root`, { method: 'DELETE', bearer: admin });
  }
});
