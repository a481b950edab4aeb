/** Sorting the notes list into the user's own, shared-with-them and public notes. */
import type { NoteSummary, User } from '../api/types';

export function groupNotes(notes: NoteSummary[], me: User) {
  const own = notes.filter((n) => n.owner_id === me.id);
  const others = notes.filter((n) => n.owner_id !== me.id);
  const publicOnly = (n: NoteSummary) => n.visibility === 'public' && n.access === 'read';
  return {
    own,
    shared: others.filter((n) => !publicOnly(n)),
    public: others.filter(publicOnly),
  };
}
