/** Share a note: list grants, grant read or write to a user by name, remove a grant. */
import { useEffect, useRef, useState, type FormEvent } from 'react';
import { errorText } from '../api/http';
import type { AccessGrant, NoteSummary } from '../api/types';
import { useServices } from '../services';

export function ShareDialog({ note, onClose }: { note: NoteSummary; onClose: () => void }) {
  const { api } = useServices();
  const [grants, setGrants] = useState<AccessGrant[] | null>(null);
  const [name, setName] = useState('');
  const [access, setAccess] = useState<'read' | 'write'>('read');
  const [error, setError] = useState<string | null>(null);
  const [version, setVersion] = useState(0);
  const firstInput = useRef<HTMLInputElement>(null);

  useEffect(() => {
    let live = true;
    api.listGrants(note.id).then(
      (g) => live && setGrants(g),
      (err: unknown) => live && setError(errorText(err)),
    );
    return () => {
      live = false;
    };
  }, [api, note.id, version]);

  useEffect(() => {
    firstInput.current?.focus();
    const onKey = (ev: KeyboardEvent) => ev.key === 'Escape' && onClose();
    window.addEventListener('keydown', onKey);
    return () => window.removeEventListener('keydown', onKey);
  }, [onClose]);

  const run = async (action: () => Promise<unknown>) => {
    try {
      await action();
      setError(null);
      setVersion((v) => v + 1);
    } catch (err) {
      setError(errorText(err));
    }
  };

  const add = (ev: FormEvent) => {
    ev.preventDefault();
    const wanted = name.trim();
    if (!wanted) return;
    void run(async () => {
      const user = await api.lookupUser(wanted);
      await api.grant(note.id, user.id, access);
      setName('');
    });
  };

  return (
    <div className="dialog-backdrop">
      <section role="dialog" aria-modal="true" aria-labelledby="share-title" className="dialog">
        <h2 id="share-title">Share “{note.title}”</h2>
        <form onSubmit={add} className="share-form">
          <label>
            User name
            <input ref={firstInput} value={name} onChange={(e) => setName(e.target.value)} autoComplete="off" />
          </label>
          <label>
            Access
            <select value={access} onChange={(e) => setAccess(e.target.value as 'read' | 'write')}>
              <option value="read">Can read</option>
              <option value="write">Can write</option>
            </select>
          </label>
          <button type="submit" className="primary">
            Share
          </button>
        </form>
        {error && (
          <p role="alert" className="error">
            {error}
          </p>
        )}
        <h3>People with access</h3>
        {grants === null ? (
          <p>Loading…</p>
        ) : grants.length === 0 ? (
          <p className="hint">Only you (and admins).</p>
        ) : (
          <ul className="grant-list">
            {grants.map((g) => (
              <li key={g.user.id}>
                <span>{g.user.name}</span>
                <label className="visually-hidden" htmlFor={`grant-${g.user.id}`}>
                  Access for {g.user.name}
                </label>
                <select
                  id={`grant-${g.user.id}`}
                  value={g.access}
                  onChange={(e) => run(() => api.grant(note.id, g.user.id, e.target.value as 'read' | 'write'))}
                >
                  <option value="read">Can read</option>
                  <option value="write">Can write</option>
                </select>
                <button type="button" className="danger" onClick={() => run(() => api.revokeGrant(note.id, g.user.id))}>
                  Remove
                </button>
              </li>
            ))}
          </ul>
        )}
        <div className="actions">
          <button type="button" onClick={onClose}>
            Close
          </button>
        </div>
      </section>
    </div>
  );
}
