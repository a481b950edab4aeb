/**
 * Share a note: list grants, grant read or write to a user by name, remove a grant. The
 * name is looked up as it is typed (after a pause), so a typo shows before Share is pressed.
 */
import { useEffect, useRef, useState, type FormEvent, type KeyboardEvent as ReactKeyboardEvent } from 'react';
import { ApiError, errorText } from '../api/http';
import type { AccessGrant, NoteSummary, UserBrief } from '../api/types';
import { useServices } from '../services';

/** Pause in typing before the name is looked up. */
export const LOOKUP_DEBOUNCE_MS = 300;

type Lookup =
  | { state: 'idle' }
  | { state: 'checking'; name: string }
  | { state: 'found'; name: string; user: UserBrief }
  | { state: 'missing'; name: string }
  | { state: 'failed'; name: string; message: string };

const FOCUSABLE = 'button:not([disabled]), input:not([disabled]), select:not([disabled]), a[href], [tabindex="0"]';

/** A modal keeps Tab inside it: from the last control back to the first, and the reverse. */
function keepFocusInside(ev: ReactKeyboardEvent<HTMLElement>): void {
  if (ev.key !== 'Tab') return;
  const items = [...ev.currentTarget.querySelectorAll<HTMLElement>(FOCUSABLE)];
  const first = items[0];
  const last = items[items.length - 1];
  if (!first || !last) return;
  if (ev.shiftKey && document.activeElement === first) {
    ev.preventDefault();
    last.focus();
  } else if (!ev.shiftKey && document.activeElement === last) {
    ev.preventDefault();
    first.focus();
  }
}

export function ShareDialog({
  note,
  onClose,
  onChanged,
}: {
  note: Pick<NoteSummary, 'id' | 'title'>;
  onClose: () => void;
  onChanged?: () => void;
}) {
  const { api } = useServices();
  const [grants, setGrants] = useState<AccessGrant[] | null>(null);
  const [name, setName] = useState('');
  const [access, setAccess] = useState<'read' | 'write'>('read');
  const [error, setError] = useState<string | null>(null);
  const [version, setVersion] = useState(0);
  const [lookup, setLookup] = useState<Lookup>({ state: 'idle' });
  const firstInput = useRef<HTMLInputElement>(null);
  const wanted = name.trim();

  // The lookup endpoint matches whole names: look the typed name up once typing pauses.
  useEffect(() => {
    if (!wanted) return;
    let live = true;
    const timer = setTimeout(() => {
      setLookup({ state: 'checking', name: wanted });
      api.lookupUser(wanted).then(
        (user) => live && setLookup({ state: 'found', name: wanted, user }),
        (err: unknown) =>
          live &&
          setLookup(
            err instanceof ApiError && err.status === 404
              ? { state: 'missing', name: wanted }
              : { state: 'failed', name: wanted, message: errorText(err) },
          ),
      );
    }, LOOKUP_DEBOUNCE_MS);
    return () => {
      live = false;
      clearTimeout(timer);
    };
  }, [api, wanted]);

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
      onChanged?.();
    } catch (err) {
      setError(errorText(err));
    }
  };

  const add = (ev: FormEvent) => {
    ev.preventDefault();
    if (!wanted) return;
    const known = lookup.state === 'found' && lookup.name === wanted ? lookup.user : null;
    void run(async () => {
      const user = known ?? (await api.lookupUser(wanted));
      await api.grant(note.id, user.id, access);
      setName('');
      setLookup({ state: 'idle' });
    });
  };

  const current = wanted && lookup.state !== 'idle' && lookup.name === wanted ? lookup : null;

  return (
    <div className="dialog-backdrop">
      <section role="dialog" aria-modal="true" aria-labelledby="share-title" className="dialog" onKeyDown={keepFocusInside}>
        <h2 id="share-title">Share “{note.title}”</h2>
        <form onSubmit={add} className="share-form">
          <label>
            User name
            <input
              ref={firstInput}
              value={name}
              onChange={(e) => setName(e.target.value)}
              autoComplete="off"
              aria-describedby="share-lookup"
              aria-invalid={current?.state === 'missing'}
            />
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
        <p id="share-lookup" className="hint lookup" role="status" aria-live="polite" data-testid="share-lookup">
          {current?.state === 'checking' && 'Looking up…'}
          {current?.state === 'found' && `✓ ${current.user.name} found`}
          {current?.state === 'missing' && `No such user: “${current.name}”`}
          {current?.state === 'failed' && current.message}
        </p>
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
