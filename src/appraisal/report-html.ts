import { LINK_STATE_LABEL, type LinkBasis, type TrustLink, type TrustReport } from './trust.js';
import type { ThreatAssessment } from './threats.js';

/**
 * The trust report as one self-contained HTML page for an auditor: inline CSS, no scripts, no
 * external resources (a Content-Security-Policy forbids them), headings and tables a screen
 * reader can navigate, and every state written as text (VERIFIED, ASSUMED, NOT CHECKED, FAILED)
 * as well as coloured. Every string that comes from evidence or policy is escaped.
 */

/** HTML-escapes text for element content and double- or single-quoted attribute values. */
export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c] as string);
}

const e = escapeHtml;

const CSS = `
:root { color-scheme: light; --verified: #0b6b2f; --assumed: #7a4d00; --not-checked: #4b4f56; --failed: #a4161a; }
* { box-sizing: border-box; }
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1b1d21; background: #fff; margin: 0 auto; max-width: 76rem; padding: 1.5rem; }
h1 { font-size: 1.6rem; margin: 0 0 .25rem; }
h2 { font-size: 1.25rem; margin: 2rem 0 .5rem; border-bottom: 1px solid #d0d4da; padding-bottom: .25rem; }
p.lead { margin: 0 0 1rem; color: #3b3f46; }
table { border-collapse: collapse; width: 100%; margin: .5rem 0 1rem; }
caption { text-align: left; font-weight: 600; padding: .25rem 0; }
th, td { border: 1px solid #d0d4da; padding: .4rem .5rem; vertical-align: top; text-align: left; }
thead th { background: #f1f3f5; }
tbody th { font-weight: 600; }
td.num { text-align: right; font-variant-numeric: tabular-nums; width: 2.5rem; }
table.links tbody th { width: 15rem; }
table.links td:nth-child(3) { width: 9rem; }
table.threats tbody th { width: 13rem; }
.state { display: inline-block; min-width: 7.5rem; font-weight: 700; font-size: .85rem; letter-spacing: .02em; padding: .1rem .4rem; border-radius: .25rem; border: 2px solid currentColor; text-align: center; }
.state-verified { color: var(--verified); }
.state-assumed { color: var(--assumed); }
.state-not-checked { color: var(--not-checked); border-style: dashed; }
.state-failed { color: #fff; background: var(--failed); border-color: var(--failed); }
tr[data-state="failed"] { background: #fdf1f1; }
tr[data-state="assumed"] { background: #fff8eb; }
ul.basis { margin: .3rem 0 0; padding-left: 1.1rem; font-size: .9rem; color: #3b3f46; }
code, .mono { font-family: ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace; font-size: .85rem; overflow-wrap: anywhere; }
dl.kv { display: grid; grid-template-columns: minmax(10rem, max-content) 1fr; gap: .25rem 1rem; margin: .5rem 0; }
dl.kv dt { font-weight: 600; }
dl.kv dd { margin: 0; overflow-wrap: anywhere; }
.verdict-pass { color: var(--verified); font-weight: 700; }
.verdict-fail { color: var(--failed); font-weight: 700; }
.risk { font-weight: 700; }
footer { margin-top: 2rem; font-size: .85rem; color: #4b4f56; }
@media print { body { max-width: none; } tr { break-inside: avoid; } }
`;

function basisList(basis: readonly LinkBasis[]): string {
  if (basis.length === 0) return '';
  const items = basis.map((b) => {
    const status = b.status === 'pass' ? 'passed' : b.status === 'fail' ? 'FAILED' : b.status === 'not-checked' ? 'NOT CHECKED' : 'not applicable';
    const values = b.expected !== undefined || b.found !== undefined ? ` (expected <span class="mono">${e(b.expected ?? '-')}</span>, found <span class="mono">${e(b.found ?? '-')}</span>)` : '';
    return `<li>${e(b.kind)} <code>${e(b.name)}</code>${b.code ? ` <code>${e(b.code)}</code>` : ''} ${status}: ${e(b.description)}${values}</li>`;
  });
  return `<ul class="basis">${items.join('')}</ul>`;
}

function linkRow(l: TrustLink, i: number): string {
  const label = LINK_STATE_LABEL[l.state];
  const what =
    l.state === 'assumed'
      ? `<p><strong>Trusted:</strong> ${e(l.trusted ?? '')}</p><p>${e(l.reason)}</p>`
      : l.state === 'verified'
        ? `<p><strong>Checked by:</strong> ${e(l.basis.filter((b) => b.status === 'pass').map((b) => b.name).join(', '))}</p>`
        : `<p>${e(l.reason)}</p>`;
  return `<tr data-link="${e(l.id)}" data-state="${e(l.state)}"><td class="num">${i + 1}</td><th scope="row">${e(l.title)}</th><td><span class="state state-${e(l.state)}">${label}</span></td><td>${what}${basisList(l.basis)}</td></tr>`;
}

const THREAT_STATUS: Readonly<Record<ThreatAssessment['status'], string>> = {
  mitigated: 'mitigated',
  partial: 'partly mitigated',
  unmitigated: 'NOT mitigated',
  failed: 'FAILED',
  'not-applicable': 'does not arise',
  'outside-evidence': 'outside the evidence',
  'out-of-scope': 'out of scope',
};

function threatRow(t: ThreatAssessment): string {
  const mitigations = t.mitigations.length === 0 ? 'none' : `<ul class="basis">${t.mitigations.map((m) => `<li>${e(m.title)} (${e(m.by.join(', '))})</li>`).join('')}</ul>`;
  return `<tr data-threat="${e(t.id)}" data-status="${e(t.status)}"><th scope="row">${e(t.title)}</th><td class="num">${t.likelihood}</td><td class="num">${t.impact}</td><td class="num">${t.inherent}</td><td class="num risk">${t.residual}</td><td>${e(THREAT_STATUS[t.status])}</td><td>${mitigations}</td><td>${e(t.text)}</td></tr>`;
}

/** Renders a trust report as a complete HTML document (UTF-8). */
export function trustReportHtml(r: TrustReport, opts: { title?: string; generator?: string } = {}): string {
  const title = opts.title ?? 'Coffer trust report';
  const evidence = r.evidence.map((x) => `<li>${e(x.label)}: ${x.verified ? 'verified' : `<strong>NOT VERIFIED</strong> (<code>${e(x.error?.code ?? 'FAILED')}</code>: ${e(x.error?.message ?? '')})`}</li>`).join('');
  const verdict = r.policy
    ? `<dt>Policy</dt><dd><code>${e(r.policy.id)}@${e(r.policy.version)}</code></dd><dt>Verdict</dt><dd><span class="verdict-${r.verdict === 'pass' ? 'pass' : 'fail'}">${r.verdict === 'pass' ? 'PASS' : 'DENIED'}</span> (EAR status ${e(r.status ?? 'none')})${r.denial ? `<br>${e(r.denial)}` : ''}</dd>`
    : '<dt>Policy</dt><dd>none given: the links a policy decides are NOT CHECKED</dd>';
  const counts = `${r.counts.verified} VERIFIED, ${r.counts.assumed} ASSUMED, ${r.counts['not-checked']} NOT CHECKED, ${r.counts.failed} FAILED`;
  const chains = r.chains
    .map((c, ci) => {
      const id = `chain-${ci + 1}`;
      return `<section aria-labelledby="${id}"><h2 id="${id}">${e(c.title)}</h2><table class="links" data-chain="${e(c.id)}"><caption>Links from the root of trust towards the workload, in order</caption><thead><tr><th scope="col">#</th><th scope="col">Link</th><th scope="col">State</th><th scope="col">Checked by, trusted party, or reason</th></tr></thead><tbody>${c.links.map(linkRow).join('')}</tbody></table></section>`;
    })
    .join('');
  const claims = r.claims.length === 0 ? '<p>No claims: the evidence did not verify.</p>' : `<dl class="kv">${r.claims.map((c) => `<dt>${e(c.name)}</dt><dd class="mono">${e(c.value)}</dd>`).join('')}</dl>`;
  const rules =
    r.rules.length === 0
      ? '<p>No policy was evaluated.</p>'
      : `<table class="rules"><caption>Every rule of the policy</caption><thead><tr><th scope="col">Rule</th><th scope="col">Outcome</th><th scope="col">What it compared</th><th scope="col">Expected</th><th scope="col">Found</th></tr></thead><tbody>${r.rules
          .map((x) => `<tr data-rule="${e(x.id)}" data-status="${e(x.status)}"><th scope="row"><code>${e(x.id)}</code></th><td>${x.status === 'pass' ? 'pass' : x.status === 'fail' ? '<strong>FAIL</strong>' : 'not applicable'}</td><td>${e(x.description)}</td><td class="mono">${e(x.expected ?? '')}</td><td class="mono">${e(x.found ?? '')}</td></tr>`)
          .join('')}</tbody></table>`;
  const threats = `<table class="threats"><caption>Threats, highest residual risk first (likelihood and impact 1-5; inherent = likelihood × impact)</caption><thead><tr><th scope="col">Threat</th><th scope="col">Likelihood</th><th scope="col">Impact</th><th scope="col">Inherent</th><th scope="col">Residual</th><th scope="col">Status</th><th scope="col">Mitigations established</th><th scope="col">Residual risk</th></tr></thead><tbody>${r.threats.map(threatRow).join('')}</tbody></table>`;
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${e(title)}</title>
<style>${CSS}</style>
</head>
<body>
<header>
<h1>${e(title)}</h1>
<p class="lead">Which links of the chain from the hardware root to the workload were verified, which are taken on trust, and what risk each threat leaves.</p>
</header>
<main>
<section aria-labelledby="summary"><h2 id="summary">Summary</h2>
<dl class="kv"><dt>Appraised at</dt><dd>${e(r.at)}</dd>${verdict}${r.provider ? `<dt>Cloud</dt><dd>${e(r.provider)}</dd>` : ''}<dt>Links</dt><dd id="counts">${counts}</dd></dl>
<h3>Evidence</h3><ul>${evidence || '<li>none</li>'}</ul>
</section>
${chains}
<section aria-labelledby="threats"><h2 id="threats">Threats and residual risk</h2>${threats}</section>
<section aria-labelledby="claims"><h2 id="claims">Claims</h2>${claims}</section>
<section aria-labelledby="rules"><h2 id="rules">Policy rules</h2>${rules}</section>
</main>
<footer><p>States: VERIFIED — established by the checks and rules listed; ASSUMED — trusted without proof, the trusted party named; NOT CHECKED — could have been checked, was not; FAILED — a check or rule failed.${opts.generator ? ` Generated by ${e(opts.generator)}.` : ''}</p></footer>
</body>
</html>
`;
}
