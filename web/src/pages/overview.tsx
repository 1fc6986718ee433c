import { useState } from 'preact/hooks';
import { api, query, type Overview } from '../api.js';
import { HBars, StackedBars } from '../charts.js';
import { ErrorNote, Loading, Page, useLoad } from './common.js';

const hourLabel = (t: number) => `${new Date(t).toISOString().slice(11, 13)}h`;

export function OverviewPage() {
  const [hours, setHours] = useState('24');
  const { data, error } = useLoad(() => api<Overview>('GET', `overview${query({ hours })}`), [hours]);
  const every = Number(hours) > 48 ? 12 : Number(hours) > 24 ? 4 : 2;
  return (
    <Page title="Overview" intro="Attestations, releases and refusals per hour (UTC), by verdict and platform.">
      <form class="filters" onSubmit={(e) => e.preventDefault()}>
        <label for="ov-hours">Period</label>
        <select id="ov-hours" value={hours} onChange={(e) => setHours((e.target as HTMLSelectElement).value)}>
          <option value="6">last 6 hours</option>
          <option value="24">last 24 hours</option>
          <option value="72">last 3 days</option>
          <option value="168">last 7 days</option>
        </select>
      </form>
      <ErrorNote error={error} />
      {!data ? (
        error ? null : <Loading what="the overview" />
      ) : (
        <>
          {data.scoped ? <p class="note">Your token is scoped to a path: attestations name no path, so only releases inside your scope are counted.</p> : null}
          {data.truncated ? <p class="note">More records than the overview reads: the counts are a lower bound.</p> : null}
          <dl class="totals">
            <div>
              <dt>Attestations</dt>
              <dd>{data.totals.attestations}</dd>
            </div>
            <div>
              <dt>Allowed</dt>
              <dd class="ok">{data.totals.allowed}</dd>
            </div>
            <div>
              <dt>Refused</dt>
              <dd class="bad">{data.totals.refused}</dd>
            </div>
            <div>
              <dt>Releases</dt>
              <dd class="ok">{data.totals.releases}</dd>
            </div>
            <div>
              <dt>Release refusals</dt>
              <dd class="bad">{data.totals.releaseRefusals}</dd>
            </div>
          </dl>
          <div class="grid2">
            <section aria-labelledby="ov-att">
              <h2 id="ov-att">Attestations per hour</h2>
              <StackedBars
                title="Attestations per hour by verdict"
                description={`${data.totals.allowed} allowed and ${data.totals.refused} refused attestations between ${new Date(data.from).toISOString()} and ${new Date(data.to).toISOString()}`}
                series={[
                  { key: 'allow', label: 'allowed', className: 'fill-allow' },
                  { key: 'deny', label: 'refused', className: 'fill-deny' },
                ]}
                rows={data.hours.map((h) => ({ label: hourLabel(h.start), values: { allow: h.allow, deny: h.deny } }))}
                labelEvery={every}
              />
            </section>
            <section aria-labelledby="ov-rel">
              <h2 id="ov-rel">Releases per hour</h2>
              <StackedBars
                title="Secret releases per hour"
                description={`${data.totals.releases} releases and ${data.totals.releaseRefusals} refused release requests`}
                series={[
                  { key: 'releases', label: 'released', className: 'fill-release' },
                  { key: 'releaseRefusals', label: 'refused', className: 'fill-deny' },
                ]}
                rows={data.hours.map((h) => ({ label: hourLabel(h.start), values: { releases: h.releases, releaseRefusals: h.releaseRefusals } }))}
                labelEvery={every}
              />
            </section>
            <section aria-labelledby="ov-plat">
              <h2 id="ov-plat">By platform</h2>
              <HBars
                title="Attestations by platform"
                series={[
                  { key: 'allow', label: 'allowed', className: 'fill-allow' },
                  { key: 'deny', label: 'refused', className: 'fill-deny' },
                ]}
                rows={data.byPlatform.map((p) => ({ label: p.platform, values: { allow: p.allow, deny: p.deny } }))}
              />
            </section>
            <section aria-labelledby="ov-rules">
              <h2 id="ov-rules">Why attestations were refused</h2>
              {data.refusalRules.length === 0 ? (
                <p>No refusals in this period.</p>
              ) : (
                <table>
                  <caption class="sr-only">Refused attestations by the rule that refused them</caption>
                  <thead>
                    <tr>
                      <th scope="col">Rule or check</th>
                      <th scope="col">Refusals</th>
                    </tr>
                  </thead>
                  <tbody>
                    {data.refusalRules.map((r) => (
                      <tr key={r.rule}>
                        <th scope="row">
                          <code>{r.rule}</code>
                        </th>
                        <td class="num">{r.count}</td>
                      </tr>
                    ))}
                  </tbody>
                </table>
              )}
            </section>
          </div>
        </>
      )}
    </Page>
  );
}
