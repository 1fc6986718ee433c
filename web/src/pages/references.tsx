import { api, fmtTime } from '../api.js';
import { ErrorNote, Loading, Page, useLoad } from './common.js';

interface ReferenceValuesMeta {
  name: string;
  imageId: string;
  imageVersion: string;
  sha256: string;
  signer: string;
  updatedAt: number;
  updatedBy: string;
  active: boolean;
}

export function ReferencesPage() {
  const { data, error } = useLoad(() => api<{ references: ReferenceValuesMeta[] }>('GET', 'references'), []);
  return (
    <Page title="Reference values" intro="Signed reference values (from the image build) that policies compare launch measurements and PCRs with (measurements.reference).">
      <ErrorNote error={error} />
      {!data ? (
        error ? null : <Loading what="reference values" />
      ) : (
        <section aria-labelledby="ref-stored">
          <h2 id="ref-stored">Stored documents</h2>
          {data.references.length === 0 ? (
            <p>No reference-value documents are stored: a policy with measurements.reference finds none and fails.</p>
          ) : (
            <table>
              <thead>
                <tr>
                  <th scope="col">Name</th>
                  <th scope="col">Image</th>
                  <th scope="col">Signed by</th>
                  <th scope="col">In use</th>
                  <th scope="col">SHA-256 of the JWS</th>
                  <th scope="col">Updated (UTC)</th>
                </tr>
              </thead>
              <tbody>
                {data.references.map((r) => (
                  <tr key={r.name}>
                    <th scope="row">{r.name}</th>
                    <td>
                      {r.imageId}@{r.imageVersion}
                    </td>
                    <td>{r.signer}</td>
                    <td>{r.active ? 'yes' : <span class="warn">no: its signer is no longer trusted</span>}</td>
                    <td>
                      <code>{r.sha256}</code>
                    </td>
                    <td>
                      {fmtTime(r.updatedAt)} by <code>{r.updatedBy}</code>
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          )}
        </section>
      )}
    </Page>
  );
}
