/** Admin: users and roles, live sessions (kick), force-release of a note's write token. */
import { useCallback, useEffect, useState, type FormEvent } from 'react';
import { errorText } from '../api/http';
import type { AdminSession, AdminUser, Role, User } from '../api/types';
import { useServices } from '../services';

// Accounts are admins or users; guests are anonymous tokens, never stored.
const ROLES: Role[] = ['admin', 'user'];

export function AdminPage({ me }: { me: User }) {
  const { api } = useServices();
  const [users, setUsers] = useState<AdminUser[] | null>(null);
  const [sessions, setSessions] = useState<AdminSession[] | null>(null);
  const [message, setMessage] = useState<string | null>(null);
  const [noteId, setNoteId] = useState('');
  const [generation, setGeneration] = useState(0);

  useEffect(() => {
    let live = true;
    Promise.all([api.adminUsers(), api.adminSessions()]).then(
      ([u, s]) => {
        if (!live) return;
        setUsers(u);
        setSessions(s);
      },
      (err: unknown) => live && setMessage(errorText(err)),
    );
    return () => {
      live = false;
    };
  }, [api, generation]);

  const reload = useCallback(() => setGeneration((g) => g + 1), []);

  const run = async (action: () => Promise<unknown>, done: string) => {
    try {
      await action();
      setMessage(done);
      reload();
    } catch (err) {
      setMessage(errorText(err));
    }
  };

  const revoke = (ev: FormEvent) => {
    ev.preventDefault();
    const id = noteId.trim();
    if (id) void run(() => api.forceRelease(id), `The write token of note ${id} was released.`);
  };

  if (me.role !== 'admin') {
    return (
      <main className="page">
        <p role="alert">Only administrators can see this page.</p>
      </main>
    );
  }

  return (
    <main className="page admin-page">
      <h1>Administration</h1>
      <p role="status" aria-live="polite" className="status-line">
        {message}
      </p>
      <button type="button" onClick={reload}>
        Refresh
      </button>

      <section aria-labelledby="users-title">
        <h2 id="users-title">Users</h2>
        {users === null ? (
          <p>Loading…</p>
        ) : (
          <div className="table-wrap">
            <table>
              <thead>
                <tr>
                  <th scope="col">Name</th>
                  <th scope="col">Role</th>
                  <th scope="col">Created</th>
                </tr>
              </thead>
              <tbody>
                {users.map((u) => (
                  <tr key={u.id}>
                    <td>{u.name}</td>
                    <td>
                      <label className="visually-hidden" htmlFor={`role-${u.id}`}>
                        Role of {u.name}
                      </label>
                      <select
                        id={`role-${u.id}`}
                        value={u.role}
                        disabled={u.id === me.id}
                        onChange={(e) => run(() => api.setRole(u.id, e.target.value as Role), `${u.name} is now ${e.target.value}.`)}
                      >
                        {ROLES.map((r) => (
                          <option key={r} value={r}>
                            {r}
                          </option>
                        ))}
                      </select>
                    </td>
                    <td>
                      <time dateTime={u.created_at}>{new Date(u.created_at).toLocaleString()}</time>
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )}
      </section>

      <section aria-labelledby="sessions-title">
        <h2 id="sessions-title">Live sessions</h2>
        {sessions === null ? (
          <p>Loading…</p>
        ) : sessions.length === 0 ? (
          <p className="hint">No live sessions.</p>
        ) : (
          <div className="table-wrap">
            <table>
              <thead>
                <tr>
                  <th scope="col">User</th>
                  <th scope="col">Replica</th>
                  <th scope="col">Connected</th>
                  <th scope="col">Notes</th>
                  <th scope="col">
                    <span className="visually-hidden">Actions</span>
                  </th>
                </tr>
              </thead>
              <tbody>
                {sessions.map((s) => (
                  <tr key={s.session}>
                    <td>
                      {s.user.name} <span className="meta">({s.user.role})</span>
                    </td>
                    <td>{s.replica}</td>
                    <td>
                      <time dateTime={s.connected_at}>{new Date(s.connected_at).toLocaleString()}</time>
                    </td>
                    <td className="ids">{s.notes.join(', ') || '-'}</td>
                    <td>
                      <button
                        type="button"
                        className="danger"
                        aria-label={`Kick ${s.user.name} (session ${s.session})`}
                        onClick={() => run(() => api.kick(s.session), `Session of ${s.user.name} closed.`)}
                      >
                        Kick
                      </button>
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )}
      </section>

      <section aria-labelledby="revoke-title">
        <h2 id="revoke-title">Force-release a note's write token</h2>
        <form onSubmit={revoke} className="inline-form">
          <label>
            Note id
            <input value={noteId} onChange={(e) => setNoteId(e.target.value)} autoComplete="off" />
          </label>
          <button type="submit" className="danger">
            Force release
          </button>
        </form>
      </section>
    </main>
  );
}
