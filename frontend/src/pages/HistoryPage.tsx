/** Revision history of a note: the list, and one past version read-only. */
import { useEffect, useState } from 'react';
import { errorText } from '../api/http';
import type { Revision, RevisionSummary } from '../api/types';
import { href, notePath } from '../router';
import { useServices } from '../services';

export function HistoryPage({ noteId, version }: { noteId: string; version: number | null }) {
  const { api } = useServices();
  const [revisions, setRevisions] = useState<RevisionSummary[] | null>(null);
  const [shown, setShown] = useState<Revision | null>(null);
  const [error, setError] = useState<string | null>(null);

  useEffect(() => {
    let live = true;
    api.listRevisions(noteId).then(
      (r) => live && setRevisions([...r].sort((a, b) => b.version - a.version)),
      (err: unknown) => live && setError(errorText(err)),
    );
    return () => {
      live = false;
    };
  }, [api, noteId]);

  useEffect(() => {
    if (version === null) return;
    let live = true;
    api.getRevision(noteId, version).then(
      (r) => live && setShown(r),
      (err: unknown) => live && setError(errorText(err)),
    );
    return () => {
      live = false;
    };
  }, [api, noteId, version]);

  const base = `${notePath(noteId)}/history`;
  const current = version !== null && shown?.version === version ? shown : null;
  return (
    <main className="page history-page">
      <a href={href(notePath(noteId))} className="back">
        ← Back to the note
      </a>
      <h1>History</h1>
      {error && (
        <p role="alert" className="error">
          {error}
        </p>
      )}
      <div className="history">
        <nav aria-label="Revisions">
          {revisions === null && !error && <p>Loading…</p>}
          {revisions?.length === 0 && <p className="hint">No revisions yet.</p>}
          <ol className="revision-list">
            {revisions?.map((r) => (
              <li key={r.version}>
                <a href={href(`${base}/${r.version}`)} aria-current={r.version === version ? 'page' : undefined}>
                  Version {r.version}
                </a>{' '}
                <span className="meta">
                  “{r.title}” · <time dateTime={r.created_at}>{new Date(r.created_at).toLocaleString()}</time>
                </span>
              </li>
            ))}
          </ol>
        </nav>
        <section aria-label="Selected version" className="revision-view">
          {version === null && <p className="hint">Choose a version to see its text.</p>}
          {version !== null && !current && !error && <p>Loading…</p>}
          {current && (
            <>
              <h2>
                Version {current.version}: {current.title}
              </h2>
              <label htmlFor="revision-text" className="visually-hidden">
                Text of version {current.version}
              </label>
              <textarea id="revision-text" className="editor" readOnly value={current.content} />
            </>
          )}
        </section>
      </div>
    </main>
  );
}
