/** The notes list: own, shared and public notes, with the actions the caller's access allows. */
import { useCallback, useEffect, useState, type FormEvent } from 'react';
import { errorText } from '../api/http';
import type { NoteSummary, User, Visibility } from '../api/types';
import { ShareDialog } from '../components/ShareDialog';
import { groupNotes } from '../lib/notes';
import { href, navigate, notePath } from '../router';
import { useServices } from '../services';

export function NotesPage({ me }: { me: User }) {
  const { api } = useServices();
  const [notes, setNotes] = useState<NoteSummary[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [sharing, setSharing] = useState<NoteSummary | null>(null);

  const reload = useCallback(async () => {
    try {
      setNotes(await api.listNotes());
      setError(null);
    } catch (err) {
      setError(errorText(err));
    }
  }, [api]);

  useEffect(() => {
    // Loading on mount: the state is set when the request finishes, not synchronously.
    let live = true;
    api.listNotes().then(
      (list) => live && setNotes(list),
      (err: unknown) => live && setError(errorText(err)),
    );
    return () => {
      live = false;
    };
  }, [api]);

  const groups = notes ? groupNotes(notes, me) : null;
  return (
    <main className="page">
      <h1>Notes</h1>
      {me.role !== 'guest' && <CreateNote onCreated={(id) => navigate(notePath(id))} />}
      {error && (
        <p role="alert" className="error">
          {error}
        </p>
      )}
      {!groups && !error && <p>Loading…</p>}
      {groups && (
        <>
          <NoteSection title="My notes" notes={groups.own} onChanged={reload} onShare={setSharing} empty="You have no notes yet." />
          <NoteSection title="Shared with me" notes={groups.shared} onChanged={reload} onShare={setSharing} empty="Nothing is shared with you." />
          <NoteSection title="Public notes" notes={groups.public} onChanged={reload} onShare={setSharing} empty="No public notes." />
        </>
      )}
      {sharing && <ShareDialog note={sharing} onClose={() => setSharing(null)} />}
    </main>
  );
}

function CreateNote({ onCreated }: { onCreated: (id: string) => void }) {
  const { api } = useServices();
  const [title, setTitle] = useState('');
  const [visibility, setVisibility] = useState<Visibility>('private');
  const [error, setError] = useState<string | null>(null);
  const submit = async (ev: FormEvent) => {
    ev.preventDefault();
    try {
      const note = await api.createNote(title.trim() || 'Untitled', visibility);
      onCreated(note.id);
    } catch (err) {
      setError(errorText(err));
    }
  };
  return (
    <form className="create-note" onSubmit={submit} aria-label="New note">
      <label>
        Title
        <input value={title} onChange={(e) => setTitle(e.target.value)} placeholder="New note title" maxLength={200} />
      </label>
      <label>
        Visibility
        <select value={visibility} onChange={(e) => setVisibility(e.target.value as Visibility)}>
          <option value="private">Private</option>
          <option value="public">Public</option>
        </select>
      </label>
      <button type="submit" className="primary">
        Create note
      </button>
      {error && (
        <p role="alert" className="error">
          {error}
        </p>
      )}
    </form>
  );
}

interface SectionProps {
  title: string;
  notes: NoteSummary[];
  empty: string;
  onChanged: () => void;
  onShare: (note: NoteSummary) => void;
}

function NoteSection({ title, notes, empty, onChanged, onShare }: SectionProps) {
  const id = `section-${title.toLowerCase().replace(/\W+/g, '-')}`;
  return (
    <section aria-labelledby={id} className="note-section">
      <h2 id={id}>{title}</h2>
      {notes.length === 0 ? (
        <p className="hint">{empty}</p>
      ) : (
        <ul className="note-list">
          {notes.map((n) => (
            <NoteRow key={n.id} note={n} onChanged={onChanged} onShare={onShare} />
          ))}
        </ul>
      )}
    </section>
  );
}

function NoteRow({ note, onChanged, onShare }: { note: NoteSummary; onChanged: () => void; onShare: (n: NoteSummary) => void }) {
  const { api } = useServices();
  const [renaming, setRenaming] = useState(false);
  const [title, setTitle] = useState(note.title);
  const [error, setError] = useState<string | null>(null);
  const manage = note.access === 'admin';

  const run = async (action: () => Promise<unknown>) => {
    try {
      await action();
      setError(null);
      onChanged();
    } catch (err) {
      setError(errorText(err));
    }
  };

  const rename = (ev: FormEvent) => {
    ev.preventDefault();
    setRenaming(false);
    void run(() => api.updateNote(note.id, { title: title.trim() || 'Untitled' }));
  };

  return (
    <li className="note-row" data-testid="note-row">
      {renaming ? (
        <form onSubmit={rename} className="rename">
          <label className="visually-hidden" htmlFor={`rename-${note.id}`}>
            New title
          </label>
          <input id={`rename-${note.id}`} value={title} onChange={(e) => setTitle(e.target.value)} autoFocus maxLength={200} />
          <button type="submit">Save</button>
          <button type="button" onClick={() => setRenaming(false)}>
            Cancel
          </button>
        </form>
      ) : (
        <a href={href(notePath(note.id))} className="note-link">
          {note.title || 'Untitled'}
        </a>
      )}
      <span className="meta">
        {note.visibility === 'public' ? 'Public' : 'Private'} · {note.access} · v{note.version} · updated{' '}
        <time dateTime={note.updated_at}>{new Date(note.updated_at).toLocaleString()}</time>
      </span>
      {manage && !renaming && (
        <span className="row-actions">
          <button type="button" onClick={() => setRenaming(true)} aria-label={`Rename ${note.title}`}>
            Rename
          </button>
          <button
            type="button"
            onClick={() => run(() => api.updateNote(note.id, { visibility: note.visibility === 'public' ? 'private' : 'public' }))}
            aria-label={`Make ${note.title} ${note.visibility === 'public' ? 'private' : 'public'}`}
          >
            Make {note.visibility === 'public' ? 'private' : 'public'}
          </button>
          <button type="button" onClick={() => onShare(note)} aria-label={`Share ${note.title}`}>
            Share
          </button>
          <button
            type="button"
            className="danger"
            aria-label={`Delete ${note.title}`}
            onClick={() => window.confirm(`Delete "${note.title}" for good?`) && run(() => api.deleteNote(note.id))}
          >
            Delete
          </button>
        </span>
      )}
      {error && (
        <p role="alert" className="error">
          {error}
        </p>
      )}
    </li>
  );
}
