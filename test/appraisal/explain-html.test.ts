// The HTML trust report in a real browser: Debian's Chromium through playwright-core renders the
// page from a file:// URL, and the test reads every link's state from the DOM (data-state and the
// state written as text) and the threat table. Strings from the evidence are escaped: a root
// certificate whose file name holds markup shows as text, never as elements.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { escapeHtml, evaluate, gatherEvidence, parseEvidenceDescription, ReferenceStore, trustLinks, trustReport, trustReportHtml, LINK_STATE_LABEL, type TrustReport } from '../../src/appraisal/index.js';
import { AT, REPO, VECTORS, caseClaims, examplePolicy } from './helpers.js';

const CHROMIUM = '/usr/bin/chromium';
const work = mkdtempSync(join(tmpdir(), 'coffer-trust-html-'));
let browser: BrowserContext | undefined;

before(async () => {
  if (!existsSync(CHROMIUM)) assert.fail(`${CHROMIUM} is missing: the HTML trust report is tested in a real browser; run \`apt-get install chromium\``);
  const profile = join(work, 'profile');
  mkdirSync(profile);
  // A new, empty user data dir (playwright passes it as --user-data-dir).
  browser = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic'],
    viewport: { width: 1280, height: 900 },
  });
});

after(async () => {
  await browser?.close();
  rmSync(work, { recursive: true, force: true });
});

const GCE = join(VECTORS, 'tpm-quote/gce-shielded-vm-cos85/gce-cos-85-nonce9009');
/** A file name carrying markup, as the AK root's label quotes its path into the report. */
const HOSTILE = 'root<script>alert(1)<img src=x onerror=alert(2)>.cer';

/** A GCE SNP + vTPM machine described from real pieces (as in trust.test.ts), its AK root under a hostile file name. */
function combinedReport(): TrustReport {
  const S = join(VECTORS, 'amd-snp');
  const dir = join(work, 'case');
  mkdirSync(dir, { recursive: true });
  copyFileSync(join(VECTORS, 'gcp/ca/tpm_ek_root_1.cer'), join(dir, HOSTILE));
  const f = join(dir, 'case.json');
  writeFileSync(
    f,
    JSON.stringify({
      at: '2025-06-01T00:00:00Z',
      nonce: '9009',
      evidence: [
        { kind: 'snp', report: join(S, 'trustee/test-report.bin'), vcek: join(S, 'trustee/test-vcek.der'), chain: join(S, 'amd-certs/ask_ark_milan.pem') },
        { kind: 'tpm', quote: join(GCE, 'quote_sha256.attest'), signature: join(GCE, 'quote_sha256.tpmt_signature'), ak: [join(GCE, 'ak_pub.tpmt'), join(GCE, 'ak_cert.der')], akRoot: HOSTILE, akChain: join(VECTORS, 'gcp/ca/tpm_ek_intermediate_2.crt'), pcrs: join(GCE, 'extracted.json'), eventlog: join(GCE, 'event_log.bin') },
      ],
    }),
  );
  const g = gatherEvidence(parseEvidenceDescription(readFileSync(f, 'utf8'), f), dirname(f), (p) => readFileSync(p), AT);
  return trustReport(evaluate(g.claims, examplePolicy(), new ReferenceStore(), { at: AT, ...(g.nonce !== undefined ? { nonce: g.nonce } : {}) }));
}

async function open(html: string, name: string): Promise<{ page: Page; requests: string[] }> {
  assert.ok(browser, 'the browser started');
  const file = join(work, `${name}.html`);
  writeFileSync(file, html);
  const page = await browser.newPage();
  const requests: string[] = [];
  page.on('request', (r) => requests.push(r.url()));
  page.on('dialog', (d) => assert.fail(`the page opened a dialog: ${d.message()}`));
  await page.goto(pathToFileURL(file).href);
  return { page, requests };
}

interface Row {
  id: string;
  state: string;
  label: string;
  title: string;
  text: string;
}

async function linkRows(page: Page): Promise<Row[]> {
  const rows = page.locator('tr[data-link]');
  const out: Row[] = [];
  for (let i = 0; i < (await rows.count()); i++) {
    const tr = rows.nth(i);
    out.push({
      id: (await tr.getAttribute('data-link')) ?? '',
      state: (await tr.getAttribute('data-state')) ?? '',
      label: await tr.locator('.state').innerText(),
      title: await tr.locator('th').innerText(),
      text: await tr.innerText(),
    });
  }
  return out;
}

test('escapeHtml escapes markup and both quote characters', () => {
  assert.equal(escapeHtml(`<script>alert("x")</script> & 'y'`), '&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;y&#39;');
});

test('the GCE SNP + vTPM report renders in Chromium; link states, threats and escaping read from the DOM', async () => {
  const r = combinedReport();
  const html = trustReportHtml(r, { generator: 'coffer test' });
  assert.ok(!html.includes('<script'), 'no script element in the page');
  assert.ok(html.includes('&lt;script&gt;alert(1)&lt;img src=x onerror=alert(2)&gt;'), 'the hostile file name appears escaped');
  assert.doesNotMatch(html, /\b(?:src|href)=["']?(?:https?:|\/\/)/, 'no external resource');

  const { page, requests } = await open(html, 'gce-snp-vtpm');
  try {
    // Self-contained: the only request is the page itself; no script ran or exists.
    assert.deepEqual(requests.filter((u) => !u.startsWith('file:')), []);
    assert.equal(await page.locator('script, img, iframe, object, embed, link').count(), 0);
    assert.equal(await page.title(), 'Coffer trust report');
    assert.equal(await page.getAttribute('html', 'lang'), 'en');
    const headings = await page.$$eval('h1, h2', (hs) => hs.map((h) => `${h.tagName} ${h.textContent ?? ''}`));
    assert.deepEqual(headings.slice(0, 2), ['H1 Coffer trust report', 'H2 Summary']);
    assert.ok(headings.includes('H2 Threats and residual risk'));

    const rows = await linkRows(page);
    assert.deepEqual(rows.map((x) => x.id), trustLinks(r).map((l) => l.id));
    for (const row of rows) {
      // The state is written as text, not only as colour, and agrees with the attribute.
      assert.equal(row.label, LINK_STATE_LABEL[row.state as keyof typeof LINK_STATE_LABEL], row.id);
    }
    const state = Object.fromEntries(rows.map((x) => [x.id, x]));
    for (const id of ['snp.ask', 'snp.vcek', 'snp.signature', 'snp.tcb-binding', 'tpm.quote-signature', 'tpm.nonce', 'tpm.eventlog']) assert.equal(state[id]?.label, 'VERIFIED', id);
    for (const id of ['snp.root', 'firmware', 'binding.vtpm-snp', 'tpm.vtpm', 'tpm.ak-root']) assert.equal(state[id]?.label, 'ASSUMED', id);
    assert.equal(state['snp.revocation']?.label, 'NOT CHECKED');
    assert.match(state['firmware']?.text ?? '', /Trusted: Google-provided UEFI firmware, not reproducible from source/);
    assert.match(state['binding.vtpm-snp']?.text ?? '', /nothing in the SNP report \(REPORT_DATA, HOST_DATA\) names the AK/);
    assert.match(state['snp.signature']?.text ?? '', /Checked by: snp\.signature, snp\.format/);
    // The hostile file name is text in the AK root's row, not elements.
    assert.ok(state['tpm.ak-root']?.text.includes(`(from ${HOSTILE})`), state['tpm.ak-root']?.text);

    const threats = await page.$$eval('tr[data-threat]', (trs) => trs.map((tr) => ({ id: tr.getAttribute('data-threat'), status: tr.getAttribute('data-status'), residual: Number(tr.querySelector('td.risk')?.textContent) })));
    assert.deepEqual(threats.map((t) => t.id), r.threats.map((t) => t.id));
    assert.deepEqual(threats.map((t) => t.residual), r.threats.map((t) => t.residual));
    assert.deepEqual(threats.find((t) => t.id === 'csp-vtpm'), { id: 'csp-vtpm', status: 'unmitigated', residual: 12 });
    assert.match(await page.textContent('#counts') ?? '', /^\d+ VERIFIED, 5 ASSUMED, \d+ NOT CHECKED, 0 FAILED$/);

    mkdirSync(join(REPO, 'test-output'), { recursive: true });
    await page.screenshot({ path: join(REPO, 'test-output/trust-report.png'), fullPage: true });
  } finally {
    await page.close();
  }
});

test('a failing case renders its FAILED links with the rule, and evidence strings stay text', async () => {
  const g = caseClaims('snp-go-sev-guest-debug');
  const r = trustReport(evaluate(g.claims, examplePolicy(), new ReferenceStore(), { at: AT }));
  // An evidence label and a claim carrying markup, as a hostile description could make them.
  r.evidence[0] = { ...(r.evidence[0] as TrustReport['evidence'][number]), label: '</td><script>alert(1)</script>' };
  r.claims.push({ name: 'note"><script>', value: `<script>document.title='owned'</script>` });
  const { page } = await open(trustReportHtml(r), 'debug');
  try {
    assert.equal(await page.locator('script, img').count(), 0);
    assert.equal(await page.title(), 'Coffer trust report');
    const rows = Object.fromEntries((await linkRows(page)).map((x) => [x.id, x]));
    assert.equal(rows['snp.guest-policy']?.label, 'FAILED');
    assert.match(rows['snp.guest-policy']?.text ?? '', /rule debug: the guest policy allows debugging by the host.*\(expected forbidden, found DEBUG=1\)/);
    assert.equal(rows['snp.tcb-minimum']?.state, 'failed');
    assert.equal(rows['snp.signature']?.label, 'VERIFIED');
    const body = await page.locator('body').innerText();
    assert.ok(body.includes('</td><script>alert(1)</script>: verified'));
    assert.ok(body.includes(`<script>document.title='owned'</script>`));
    const rule = await page.locator('tr[data-rule="debug"]').innerText();
    assert.match(rule, /FAIL/);
  } finally {
    await page.close();
  }
});
