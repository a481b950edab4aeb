/** Sign in, register, or continue as a guest, as the server's /api/config allows. */
import { useEffect, useState, type FormEvent } from 'react';
import { errorText } from '../api/http';
import type { ServerConfig } from '../api/types';
import { useServices } from '../services';

export function LoginPage({ reason }: { reason: string | null }) {
  const { api, auth } = useServices();
  const [config, setConfig] = useState<ServerConfig | null>(null);
  const [mode, setMode] = useState<'login' | 'register'>('login');
  const [username, setUsername] = useState('');
  const [password, setPassword] = useState('');
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  useEffect(() => {
    let live = true;
    api.config().then(
      (c) => live && setConfig(c),
      () => live && setConfig({ allow_signup: false, allow_guest: false }),
    );
    return () => {
      live = false;
    };
  }, [api]);

  const attempt = async (action: () => Promise<void>) => {
    setBusy(true);
    setError(null);
    try {
      await action();
    } catch (err) {
      setError(errorText(err));
      setBusy(false);
    }
  };

  const submit = (ev: FormEvent) => {
    ev.preventDefault();
    void attempt(() => (mode === 'login' ? auth.login(username, password) : auth.register(username, password)));
  };

  return (
    <main className="page login-page">
      <h1>collab</h1>
      <p className="hint">Real-time notes: one writer at a time, everyone sees it live.</p>
      {reason && (
        <p role="alert" className="notice">
          {reason}
        </p>
      )}
      <form onSubmit={submit} className="login-form" aria-labelledby="login-title">
        <h2 id="login-title">{mode === 'login' ? 'Sign in' : 'Create an account'}</h2>
        <label>
          User name
          <input name="username" value={username} onChange={(e) => setUsername(e.target.value)} autoComplete="username" required />
        </label>
        <label>
          Password
          <input
            name="password"
            type="password"
            value={password}
            onChange={(e) => setPassword(e.target.value)}
            autoComplete={mode === 'login' ? 'current-password' : 'new-password'}
            required
          />
        </label>
        {error && (
          <p role="alert" className="error">
            {error}
          </p>
        )}
        <button type="submit" className="primary" disabled={busy}>
          {mode === 'login' ? 'Sign in' : 'Register'}
        </button>
      </form>
      <div className="login-alt">
        {config?.allow_signup && (
          <button type="button" className="link" onClick={() => setMode(mode === 'login' ? 'register' : 'login')}>
            {mode === 'login' ? 'No account? Register' : 'Have an account? Sign in'}
          </button>
        )}
        {config?.allow_guest && (
          <button type="button" onClick={() => attempt(() => auth.guest())} disabled={busy}>
            Continue as guest (read-only)
          </button>
        )}
      </div>
    </main>
  );
}
