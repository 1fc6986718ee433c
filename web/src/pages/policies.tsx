import { useEffect, useState } from 'preact/hooks';
import { api, fmtTime, query, type PolicyRecord, type PolicyTestResult, type SessionInfo } from '../api.js';
import { Verdict } from './attestations.js';
import { ErrorNote, Loading, Page, errorText, useLoad } from './common.js';

interface PolicyList {
  policies: Omit<PolicyRecord, 'text'>[];
  attestationPolicy: { id: string; version: string; description?: string };
  canEdit: boolean;
}

export function PoliciesPage({ session, selected }: { session: SessionInfo; selected: string | undefined }) {
  const list = useLoad(() => api<PolicyList>('GET', 'policies'), []);
  const canEdit = session.canEdit && list.data?.canEdit !== false;
  return (
    <Page title="Policies" intro="Release policies per path prefix. A release needs every policy along the path, and the built-in baseline, to pass.">
      <ErrorNote error={list.error} />
      {!list.data ? (
        list.error ? null : <Loading what="policies" />
      ) : (
        <>
          <p>
            Attestation policy in use: <code>{list.data.attestationPolicy.id}@{list.data.attestationPolicy.version}</code>
            {list.data.attestationPolicy.description ? ` (${list.data.attestationPolicy.description})` : ''}
          </p>
          <table>
            <caption class="sr-only">Release policies</caption>
            <thead>
              <tr>
                <th scope="col">Prefix</th>
                <th scope="col">Policy</th>
                <th scope="col">Updated (UTC)</th>
                <th scope="col">SHA-256</th>
              </tr>
            </thead>
            <tbody>
              {list.data.policies.map((p) => (
                <tr key={p.prefix} aria-current={p.prefix === selected ? 'true' : undefined}>
                  <th scope="row">
                    <a href={`#/policies/${encodeURIComponent(p.prefix)}`}>
                      <code>{p.prefix}</code>
                    </a>
                  </th>
                  <td>
                    {p.policyId}@{p.policyVersion}
                  </td>
                  <td>
                    {fmtTime(p.updatedAt)} by <code>{p.updatedBy}</code>
                  </td>
                  <td>
                    <code>{p.sha256.slice(0, 16)}…</code>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
          {selected ? <PolicyEditor key={selected} prefix={selected} canEdit={canEdit} onSaved={list.reload} /> : <p>Choose a prefix to view its policy{canEdit ? ', edit it' : ''} and test it against recent evidence.</p>}
          {canEdit && !selected ? <NewPolicy /> : null}
        </>
      )}
    </Page>
  );
}

function NewPolicy() {
  const [prefix, setPrefix] = useState('');
  return (
    <form
      class="filters"
      aria-label="New policy"
      onSubmit={(e) => {
        e.preventDefault();
        if (prefix.trim()) location.hash = `#/policies/${encodeURIComponent(prefix.trim())}`;
      }}
    >
      <div>
        <label for="new-prefix">New policy for prefix</label>
        <input id="new-prefix" value={prefix} onInput={(e) => setPrefix((e.target as HTMLInputElement).value)} placeholder="team-a/disk" />
      </div>
      <button type="submit">Open editor</button>
    </form>
  );
}

function PolicyEditor({ prefix, canEdit, onSaved }: { prefix: string; canEdit: boolean; onSaved: () => void }) {
  const [text, setText] = useState('');
  const [loaded, setLoaded] = useState<PolicyRecord | null | undefined>(undefined);
  const [status, setStatus] = useState<{ kind: 'ok' | 'error'; text: string } | undefined>(undefined);
  const [test, setTest] = useState<PolicyTestResult | undefined>(undefined);
  const [busy, setBusy] = useState(false);

  useEffect(() => {
    api<PolicyRecord>('GET', `policy${query({ prefix })}`)
      .then((p) => {
        setLoaded(p);
        setText(p.text);
      })
      .catch(() => setLoaded(null));
  }, [prefix]);

  const save = async () => {
    setBusy(true);
    setStatus(undefined);
    try {
      const r = await api<{ policyId: string; policyVersion: string; sha256: string; warnings: string[] }>('PUT', `policy${query({ prefix })}`, { policy: text });
      setStatus({ kind: 'ok', text: `Saved ${r.policyId}@${r.policyVersion} for ${prefix} (sha256 ${r.sha256.slice(0, 16)}…).${r.warnings.length ? ` Warning: ${r.warnings.join('; ')}` : ''}` });
      onSaved();
    } catch (e) {
      setStatus({ kind: 'error', text: `Not saved: ${errorText(e)}` });
    } finally {
      setBusy(false);
    }
  };
  const runTest = async () => {
    setBusy(true);
    setStatus(undefined);
    try {
      setTest(await api<PolicyTestResult>('POST', 'policy-test', { policy: text }));
    } catch (e) {
      setTest(undefined);
      setStatus({ kind: 'error', text: `Test failed: ${errorText(e)}` });
    } finally {
      setBusy(false);
    }
  };

  if (loaded === undefined) return <Loading what={`the policy for ${prefix}`} />;
  return (
    <section class="editor" aria-labelledby="editor-h">
      <h2 id="editor-h">
        Policy for <code>{prefix}</code>
      </h2>
      {loaded === null ? <p>No policy is set for this prefix yet.</p> : null}
      <label for="policy-text">{canEdit ? 'Policy text (YAML or JSON)' : 'Policy text (read-only)'}</label>
      <textarea id="policy-text" rows={14} spellcheck={false} readOnly={!canEdit} value={text} onInput={(e) => setText((e.target as HTMLTextAreaElement).value)} />
      <div class="actions">
        {canEdit ? (
          <button type="button" onClick={save} disabled={busy}>
            Save policy
          </button>
        ) : null}
        <button type="button" class="secondary" onClick={runTest} disabled={busy || text.trim() === ''}>
          Test this policy against recent evidence
        </button>
      </div>
      <div role="status" aria-live="polite">
        {status ? <p class={status.kind === 'ok' ? 'success' : 'error'}>{status.text}</p> : null}
      </div>
      {test ? (
        <section aria-labelledby="test-h">
          <h3 id="test-h">
            {test.policy.id}@{test.policy.version} against the {test.evaluated} most recent attestations with verified evidence: {test.pass} would pass, {test.fail} would fail
          </h3>
          <p class="hint">Evaluated alone (without the built-in release baseline), as of each attestation's time.</p>
          {test.results.length === 0 ? null : (
            <table class="log">
              <thead>
                <tr>
                  <th scope="col">Time (UTC)</th>
                  <th scope="col">Platform</th>
                  <th scope="col">Recorded</th>
                  <th scope="col">Draft</th>
                  <th scope="col">Failed rule</th>
                  <th scope="col">Why</th>
                </tr>
              </thead>
              <tbody>
                {test.results.map((r) => (
                  <tr key={r.id}>
                    <td>
                      <a href={`#/attestations/${r.id}`}>{fmtTime(r.at)}</a>
                    </td>
                    <td>{r.platform}</td>
                    <td>
                      <Verdict v={r.recorded} />
                    </td>
                    <td>
                      <span class={`verdict verdict-${r.draft === 'pass' ? 'allow' : 'deny'}`}>{r.draft === 'pass' ? 'PASS' : r.draft === 'fail' ? 'FAIL' : 'ERROR'}</span>
                    </td>
                    <td>
                      <code>{r.rule ?? ''}</code>
                    </td>
                    <td class="detail">{r.denial ?? ''}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          )}
        </section>
      ) : null}
    </section>
  );
}
