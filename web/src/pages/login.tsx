import { useState } from 'preact/hooks';
import { api, type SessionInfo } from '../api.js';
import { errorText } from './common.js';

export function Login({ onSignedIn }: { onSignedIn: (s: SessionInfo) => void }) {
  const [token, setToken] = useState('');
  const [error, setError] = useState<string | undefined>(undefined);
  const [busy, setBusy] = useState(false);
  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError(undefined);
    try {
      const s = await api<SessionInfo>('POST', 'login', { token: token.trim() });
      setToken('');
      onSignedIn(s);
    } catch (err) {
      setError(errorText(err));
    } finally {
      setBusy(false);
    }
  };
  return (
    <main id="main" class="login">
      <h1 tabIndex={-1}>Coffer broker console</h1>
      <p>Sign in with an admin or auditor token. The token is sent once; the console then uses a session cookie that scripts cannot read.</p>
      <form onSubmit={submit} aria-describedby={error ? 'login-error' : undefined}>
        <label for="token">Admin or auditor token</label>
        <input id="token" name="token" type="password" autoComplete="off" spellcheck={false} required value={token} onInput={(e) => setToken((e.target as HTMLInputElement).value)} placeholder="coffer_…" />
        <button type="submit" disabled={busy}>
          {busy ? 'Signing in…' : 'Sign in'}
        </button>
      </form>
      {error ? (
        <p id="login-error" class="error" role="alert">
          {error}
        </p>
      ) : null}
    </main>
  );
}
