import { api, fmtTime, type SecretRow, type VolumeRow } from '../api.js';
import { ErrorNote, Loading, Page, useLoad } from './common.js';

/**
 * `scope`: the signed-in token's scope. Its policy list stops at the scope (as the admin API's
 * does), so policies on prefixes above it apply but are not listed: never say "never released".
 */
export function SecretsPage({ scope }: { scope?: string | undefined }) {
  const above = scope !== undefined && scope.includes('/') ? scope.slice(0, scope.lastIndexOf('/')) : undefined;
  const { data, error } = useLoad(() => api<{ secrets: SecretRow[]; volumes: VolumeRow[] }>('GET', 'secrets'), []);
  return (
    <Page title="Secrets & volumes" intro="Metadata only: values and keys never leave the broker. A release needs every policy along the path to pass, and the built-in baseline.">
      <ErrorNote error={error} />
      {!data ? (
        error ? null : <Loading what="secrets" />
      ) : (
        <>
          <section aria-labelledby="sec-h">
            <h2 id="sec-h">Secrets</h2>
            {above ? (
              <p class="hint" id="scope-hint">
                Your token is scoped to <code>{scope}</code>: policies on prefixes above it (such as <code>{above}</code>) also apply to these secrets but are not shown.
              </p>
            ) : null}
            {data.secrets.length === 0 ? (
              <p>No secrets.</p>
            ) : (
              <table>
                <thead>
                  <tr>
                    <th scope="col">Path</th>
                    <th scope="col">Size</th>
                    <th scope="col">Version</th>
                    <th scope="col">Updated (UTC)</th>
                    <th scope="col">Release policies (shortest prefix first)</th>
                  </tr>
                </thead>
                <tbody>
                  {data.secrets.map((s) => (
                    <tr key={s.path}>
                      <th scope="row">
                        <code>{s.path}</code>
                      </th>
                      <td class="num">{s.size} B</td>
                      <td class="num">{s.version}</td>
                      <td>
                        {fmtTime(s.updatedAt)} by <code>{s.updatedBy}</code>
                      </td>
                      <td>
                        {s.policies.length === 0 ? (
                          above ? <span>none within your scope</span> : <span class="warn">none: never released</span>
                        ) : (
                          <ul class="plain">
                            {s.policies.map((p) => (
                              <li key={p.prefix}>
                                <a href={`#/policies/${encodeURIComponent(p.prefix)}`}>
                                  <code>{p.prefix}</code>
                                </a>
                                : {p.policyId}@{p.policyVersion}
                              </li>
                            ))}
                          </ul>
                        )}
                      </td>
                    </tr>
                  ))}
                </tbody>
              </table>
            )}
          </section>
          <section aria-labelledby="vol-h">
            <h2 id="vol-h">Volumes</h2>
            {data.volumes.length === 0 ? (
              <p>No provisioned volume keys.</p>
            ) : (
              <table>
                <thead>
                  <tr>
                    <th scope="col">Volume</th>
                    <th scope="col">State</th>
                    <th scope="col">Key version</th>
                    <th scope="col">Updated (UTC)</th>
                    <th scope="col">Release policy</th>
                  </tr>
                </thead>
                <tbody>
                  {data.volumes.map((v) => (
                    <tr key={v.id}>
                      <th scope="row">
                        <code>{v.id}</code>
                        {v.label ? ` (${v.label})` : ''}
                      </th>
                      <td>{v.state}</td>
                      <td class="num">{v.keyVersion}</td>
                      <td>{fmtTime(v.updatedAt)}</td>
                      <td>
                        <details>
                          <summary>
                            {v.policy.id ?? 'policy'}@{v.policy.version ?? '?'}
                          </summary>
                          <pre>{v.policyText}</pre>
                        </details>
                      </td>
                    </tr>
                  ))}
                </tbody>
              </table>
            )}
          </section>
        </>
      )}
    </Page>
  );
}
