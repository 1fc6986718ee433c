import { render } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import { api, setCsrf, whenSignedOut, type SessionInfo } from './api.js';
import { Login } from './pages/login.js';
import { OverviewPage } from './pages/overview.js';
import { AttestationsPage, AttestationPage } from './pages/attestations.js';
import { SecretsPage } from './pages/secrets.js';
import { PoliciesPage } from './pages/policies.js';
import { ReferencesPage } from './pages/references.js';
import { AuditPage } from './pages/audit.js';
import './style.css';

const PAGES = [
  { path: 'overview', label: 'Overview' },
  { path: 'attestations', label: 'Attestations' },
  { path: 'secrets', label: 'Secrets & volumes' },
  { path: 'policies', label: 'Policies' },
  { path: 'references', label: 'Reference values' },
  { path: 'audit', label: 'Audit log' },
] as const;

function currentRoute(): string[] {
  const h = location.hash.replace(/^#\/?/, '');
  return h === '' ? ['overview'] : h.split('/').map((s) => decodeURIComponent(s));
}

function App() {
  const [session, setSession] = useState<SessionInfo | null | undefined>(undefined);
  const [route, setRoute] = useState<string[]>(currentRoute());
  const main = useRef<HTMLElement>(null);

  useEffect(() => {
    whenSignedOut(() => setSession(null));
    api<SessionInfo>('GET', 'session')
      .then((s) => {
        setCsrf(s.csrf);
        setSession(s);
      })
      .catch(() => setSession(null));
    const onHash = () => setRoute(currentRoute());
    addEventListener('hashchange', onHash);
    return () => removeEventListener('hashchange', onHash);
  }, []);

  // After navigation, focus moves to the page's heading so that a screen reader announces it.
  useEffect(() => {
    const h = main.current?.querySelector<HTMLElement>('h1');
    h?.focus();
    const page = PAGES.find((p) => p.path === route[0]);
    document.title = `${page?.label ?? 'Coffer'} · Coffer broker console`;
  }, [route.join('/'), session?.tokenId]);

  if (session === undefined) return <p class="loading">Loading…</p>;
  if (session === null)
    return (
      <Login
        onSignedIn={(s) => {
          setCsrf(s.csrf);
          setSession(s);
        }}
      />
    );

  const logout = async () => {
    try {
      await api('POST', 'logout');
    } finally {
      setCsrf('');
      setSession(null);
    }
  };

  const [page, arg] = route;
  let body;
  if (page === 'attestations' && arg) body = <AttestationPage id={arg} />;
  else if (page === 'attestations') body = <AttestationsPage />;
  else if (page === 'secrets') body = <SecretsPage scope={session.scope} />;
  else if (page === 'policies') body = <PoliciesPage session={session} selected={arg} />;
  else if (page === 'references') body = <ReferencesPage />;
  else if (page === 'audit') body = <AuditPage />;
  else body = <OverviewPage />;

  return (
    <div class="shell">
      <a class="skip" href="#main" onClick={(e) => { e.preventDefault(); main.current?.querySelector<HTMLElement>('h1')?.focus(); }}>
        Skip to content
      </a>
      <header class="top">
        <span class="brand">Coffer broker console</span>
        <span class="who">
          Signed in as <strong>{session.role}</strong> (token <code>{session.tokenId}</code>
          {session.scope ? <>, scope <code>{session.scope}</code></> : null})
          {session.role === 'auditor' ? <span class="badge">read-only</span> : null}
        </span>
        <button type="button" class="secondary" onClick={logout}>
          Sign out
        </button>
      </header>
      <nav class="side" aria-label="Console pages">
        <ul>
          {PAGES.map((p) => (
            <li key={p.path}>
              <a href={`#/${p.path}`} aria-current={page === p.path || (!page && p.path === 'overview') ? 'page' : undefined}>
                {p.label}
              </a>
            </li>
          ))}
        </ul>
      </nav>
      <main id="main" ref={main}>
        {body}
      </main>
    </div>
  );
}

const root = document.getElementById('app');
if (root) render(<App />, root);
