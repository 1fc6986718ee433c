import { useState } from 'preact/hooks';
import { api, fmtTime, query, type AuditRecord } from '../api.js';
import { ErrorNote, Loading, Page, useLoad } from './common.js';

const toMs = (local: string) => (local ? String(Date.parse(`${local}Z`)) : undefined);

export function AuditPage() {
  const empty = { action: '', verdict: '', actor: '', since: '', until: '', limit: '200' };
  const [filters, setFilters] = useState(empty);
  const [draft, setDraft] = useState(empty);
  // Pages run oldest first: `after` is the last sequence number of the previous page.
  const [after, setAfter] = useState<number[]>([]);
  const params = { action: filters.action, verdict: filters.verdict, actor: filters.actor, since: toMs(filters.since), until: toMs(filters.until), limit: filters.limit };
  const { data, error } = useLoad(() => api<{ records: AuditRecord[] }>('GET', `audit${query({ ...params, after: after.at(-1) })}`), [JSON.stringify(filters), after.join()]);
  const set = (k: keyof typeof draft) => (e: Event) => setDraft({ ...draft, [k]: (e.target as HTMLInputElement).value });
  return (
    <Page title="Audit log" intro="Every decision of the broker and every console action, oldest first within the page. The log is append-only.">
      <form
        class="filters"
        aria-label="Filter the audit log"
        onSubmit={(e) => {
          e.preventDefault();
          setAfter([]);
          setFilters(draft);
        }}
      >
        <div>
          <label for="a-action">Action</label>
          <input id="a-action" value={draft.action} onInput={set('action')} placeholder="admin.policy.set" />
        </div>
        <div>
          <label for="a-verdict">Verdict</label>
          <select id="a-verdict" value={draft.verdict} onChange={set('verdict')}>
            <option value="">any</option>
            <option value="allow">allow</option>
            <option value="deny">deny</option>
          </select>
        </div>
        <div>
          <label for="a-actor">Actor</label>
          <input id="a-actor" value={draft.actor} onInput={set('actor')} placeholder="token:…" />
        </div>
        <div>
          <label for="a-since">Since (UTC)</label>
          <input id="a-since" type="datetime-local" value={draft.since} onInput={set('since')} />
        </div>
        <div>
          <label for="a-until">Until (UTC)</label>
          <input id="a-until" type="datetime-local" value={draft.until} onInput={set('until')} />
        </div>
        <div>
          <label for="a-limit">At most</label>
          <input id="a-limit" type="number" min={1} max={1000} value={draft.limit} onInput={set('limit')} />
        </div>
        <button type="submit">Apply filters</button>
        <a class="button secondary" href={`api/audit.csv${query(params)}`} download>
          Export CSV
        </a>
      </form>
      <ErrorNote error={error} />
      {!data ? (
        error ? null : <Loading what="the audit log" />
      ) : data.records.length === 0 ? (
        <p>No records match.</p>
      ) : (
        <table class="log audit">
          <caption class="sr-only">Audit records</caption>
          <thead>
            <tr>
              <th scope="col">#</th>
              <th scope="col">Time (UTC)</th>
              <th scope="col">Actor</th>
              <th scope="col">Action</th>
              <th scope="col">Resource</th>
              <th scope="col">Verdict</th>
              <th scope="col">Rule</th>
              <th scope="col">Detail</th>
            </tr>
          </thead>
          <tbody>
            {data.records.map((r) => (
              <tr key={r.seq} data-verdict={r.verdict}>
                <td class="num">{r.seq}</td>
                <td>{fmtTime(r.at)}</td>
                <td>
                  <code>{r.actor}</code>
                </td>
                <td>
                  <code>{r.action}</code>
                </td>
                <td>
                  <code>{r.resource ?? ''}</code>
                </td>
                <td>
                  <span class={`verdict verdict-${r.verdict}`}>{r.verdict.toUpperCase()}</span>
                </td>
                <td>
                  <code>{r.rule ?? ''}</code>
                </td>
                <td class="detail">{r.detail ?? ''}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {data && (after.length > 0 || data.records.length >= Number(filters.limit || 100)) ? (
        <nav class="actions" aria-label="Audit log pages">
          <button type="button" class="secondary" disabled={after.length === 0} onClick={() => setAfter(after.slice(0, -1))}>
            ← Previous page
          </button>
          <button type="button" class="secondary" disabled={data.records.length < Number(filters.limit || 100)} onClick={() => setAfter([...after, data.records.at(-1)?.seq ?? 0])}>
            Next page →
          </button>
        </nav>
      ) : null}
    </Page>
  );
}
