import { useState } from 'preact/hooks';
import { api, fmtTime, query, type AttestationDetail, type AttestationSummary, type LinkState, type TrustLink, type TrustReport } from '../api.js';
import { ErrorNote, Loading, Page, useLoad } from './common.js';

const toMs = (local: string) => (local ? String(Date.parse(`${local}Z`)) : undefined);

export const STATE_LABEL: Record<LinkState, string> = { verified: 'VERIFIED', assumed: 'ASSUMED', 'not-checked': 'NOT CHECKED', failed: 'FAILED' };

export function AttestationsPage() {
  const [filters, setFilters] = useState({ verdict: '', platform: '', since: '', until: '' });
  const [draft, setDraft] = useState(filters);
  const { data, error } = useLoad(() => api<{ attestations: AttestationSummary[] }>('GET', `attestations${query({ ...filters, since: toMs(filters.since), until: toMs(filters.until), limit: 200 })}`), [JSON.stringify(filters)]);
  const set = (k: keyof typeof draft) => (e: Event) => setDraft({ ...draft, [k]: (e.target as HTMLInputElement).value });
  return (
    <Page title="Attestations" intro="Every attestation that reached the evidence, newest first. Open one to see its trust report.">
      <form
        class="filters"
        aria-label="Filter attestations"
        onSubmit={(e) => {
          e.preventDefault();
          setFilters(draft);
        }}
      >
        <div>
          <label for="f-verdict">Verdict</label>
          <select id="f-verdict" value={draft.verdict} onChange={set('verdict')}>
            <option value="">any</option>
            <option value="allow">allowed</option>
            <option value="deny">refused</option>
          </select>
        </div>
        <div>
          <label for="f-platform">Platform</label>
          <input id="f-platform" value={draft.platform} onInput={set('platform')} placeholder="sev-snp Milan" />
        </div>
        <div>
          <label for="f-since">Since (UTC)</label>
          <input id="f-since" type="datetime-local" value={draft.since} onInput={set('since')} />
        </div>
        <div>
          <label for="f-until">Until (UTC)</label>
          <input id="f-until" type="datetime-local" value={draft.until} onInput={set('until')} />
        </div>
        <button type="submit">Apply filters</button>
      </form>
      <ErrorNote error={error} />
      {!data ? (
        error ? null : <Loading what="attestations" />
      ) : data.attestations.length === 0 ? (
        <p>No attestations match.</p>
      ) : (
        <table class="log">
          <caption class="sr-only">Attestations, newest first</caption>
          <thead>
            <tr>
              <th scope="col">Time (UTC)</th>
              <th scope="col">Verdict</th>
              <th scope="col">Platform</th>
              <th scope="col">Rule</th>
              <th scope="col">Detail</th>
              <th scope="col">Session</th>
            </tr>
          </thead>
          <tbody>
            {data.attestations.map((a) => (
              <tr key={a.id} data-verdict={a.verdict}>
                <td>
                  <a href={`#/attestations/${a.id}`} aria-label={`${a.verdict === 'allow' ? 'Allowed' : 'Refused'} attestation at ${fmtTime(a.at)}: open its trust report`}>
                    {fmtTime(a.at)}
                  </a>
                </td>
                <td>
                  <Verdict v={a.verdict} />
                </td>
                <td>{a.platform ?? `${a.tee} (not verified)`}</td>
                <td>
                  <code>{a.rule ?? ''}</code>
                </td>
                <td class="detail">{a.detail ?? ''}</td>
                <td>
                  <code>{a.actor.replace(/^session:/, '')}</code>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </Page>
  );
}

export function Verdict({ v }: { v: 'allow' | 'deny' }) {
  return <span class={`verdict verdict-${v}`}>{v === 'allow' ? 'ALLOWED' : 'REFUSED'}</span>;
}

/** A report for evidence that never verified: one FAILED link saying why. */
function unverifiedReport(a: AttestationDetail): TrustReport {
  // Refused before any claims existed: the evidence did not verify, or the session or nonce was refused first.
  const verification = a.problem === 'evidence-invalid' || a.problem === 'bad-request';
  const link: TrustLink = { id: 'evidence.verification', title: verification ? 'Evidence verification' : 'Session and nonce, checked before the evidence', state: 'failed', reason: a.detail ?? 'the evidence did not verify', basis: [] };
  return { at: new Date(a.at).toISOString(), evidence: [], chains: [{ id: 'evidence', title: `${a.tee} evidence`, links: [link] }], counts: { verified: 0, assumed: 0, 'not-checked': 0, failed: 1 }, claims: [], rules: [], threats: [] };
}

export function AttestationPage({ id }: { id: string }) {
  const { data, error } = useLoad(() => api<AttestationDetail>('GET', `attestations/${encodeURIComponent(id)}`), [id]);
  return (
    <Page title="Attestation trust report">
      <p>
        <a href="#/attestations">← Back to the attestation log</a>
      </p>
      <ErrorNote error={error} />
      {!data ? error ? null : <Loading what="the attestation" /> : <AttestationView a={data} />}
    </Page>
  );
}

function AttestationView({ a }: { a: AttestationDetail }) {
  const report = a.report ?? unverifiedReport(a);
  return (
    <>
      <section class={`decision decision-${a.verdict}`} aria-labelledby="decision">
        <h2 id="decision">
          <Verdict v={a.verdict} /> {a.verdict === 'deny' ? 'Refused' : 'Allowed'} at {fmtTime(a.at)}
        </h2>
        <dl class="kv">
          <dt>{a.verdict === 'deny' ? 'Refused by rule' : 'Policy'}</dt>
          <dd>
            <code class="rule">{a.rule ?? 'none'}</code>
          </dd>
          {a.detail ? (
            <>
              <dt>Detail</dt>
              <dd>{a.detail}</dd>
            </>
          ) : null}
          {a.problem ? (
            <>
              <dt>Problem</dt>
              <dd>
                <code>{a.problem}</code>
              </dd>
            </>
          ) : null}
          <dt>Attestation policy</dt>
          <dd>
            <code>{a.policy ?? 'not evaluated'}</code>
          </dd>
          <dt>Platform</dt>
          <dd>{a.platform ?? `${a.tee} (evidence not verified)`}</dd>
          <dt>Session</dt>
          <dd>
            <code>{a.actor}</code>
          </dd>
          {a.evidenceDigest ? (
            <>
              <dt>Evidence SHA-256</dt>
              <dd>
                <code>{a.evidenceDigest}</code>
              </dd>
            </>
          ) : null}
        </dl>
      </section>
      <p class="counts" aria-label="Link counts">
        {(['verified', 'assumed', 'not-checked', 'failed'] as const).map((s) => (
          <span key={s} class={`state state-${s}`}>
            {report.counts[s]} {STATE_LABEL[s]}
          </span>
        ))}
      </p>
      {report.chains.map((c) => (
        <section class="chain" key={c.id} aria-labelledby={`chain-${c.id}`}>
          <h2 id={`chain-${c.id}`}>{c.title}</h2>
          <p class="hint">From the hardware root (top) to the workload (bottom).</p>
          <ol class="links">
            {c.links.map((l) => (
              <li key={l.id} class={`link link-${l.state}`} data-state={l.state} data-link={l.id}>
                <div class="link-head">
                  <span class={`state state-${l.state}`}>{STATE_LABEL[l.state]}</span>
                  <strong class="link-title">{l.title}</strong>
                </div>
                <p class="reason">
                  {l.state === 'assumed' && l.trusted ? (
                    <>
                      <span class="trusted">Trusted: {l.trusted}.</span>{' '}
                    </>
                  ) : null}
                  {l.reason}
                </p>
                {l.basis.length > 0 ? (
                  <details>
                    <summary>
                      {l.basis.length} check{l.basis.length === 1 ? '' : 's'} and rule{l.basis.length === 1 ? '' : 's'} behind “{l.title}”
                    </summary>
                    <ul class="basis">
                      {l.basis.map((b, i) => (
                        <li key={i}>
                          {b.kind} <code>{b.name}</code> {b.status === 'pass' ? 'passed' : b.status === 'fail' ? 'FAILED' : b.status === 'not-checked' ? 'NOT CHECKED' : 'not applicable'}: {b.description}
                          {b.expected !== undefined || b.found !== undefined ? (
                            <>
                              {' '}
                              (expected <code>{b.expected ?? '-'}</code>, found <code>{b.found ?? '-'}</code>)
                            </>
                          ) : null}
                        </li>
                      ))}
                    </ul>
                  </details>
                ) : null}
              </li>
            ))}
          </ol>
        </section>
      ))}
      {report.claims.length > 0 ? (
        <section aria-labelledby="claims">
          <h2 id="claims">Claims</h2>
          <dl class="kv">
            {report.claims.map((c, i) => (
              <div key={i} class="kv-row">
                <dt>{c.name}</dt>
                <dd>{c.value}</dd>
              </div>
            ))}
          </dl>
        </section>
      ) : null}
      {report.threats.length > 0 ? (
        <section aria-labelledby="threats">
          <h2 id="threats">Threats (residual risk, highest first)</h2>
          <table>
            <thead>
              <tr>
                <th scope="col">Threat</th>
                <th scope="col">Risk</th>
                <th scope="col">Status</th>
                <th scope="col">Residual</th>
              </tr>
            </thead>
            <tbody>
              {report.threats.map((t) => (
                <tr key={t.id}>
                  <th scope="row">{t.title}</th>
                  <td class="num">{t.residual}</td>
                  <td>{t.status}</td>
                  <td>{t.text}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </section>
      ) : null}
    </>
  );
}
