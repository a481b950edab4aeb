/** Who is viewing the note: one avatar per user (several tabs of one user count once). */
import type { User } from '../api/types';

function initials(name: string): string {
  const letters = Array.from(name.trim());
  return (letters[0] ?? '?').toUpperCase() + (letters[1] ?? '');
}

function hue(id: string): number {
  let h = 0;
  for (const ch of id) h = (h * 31 + (ch.codePointAt(0) ?? 0)) % 360;
  return h;
}

export function PresenceAvatars({ viewers, me }: { viewers: User[]; me: User }) {
  const unique = [...new Map(viewers.map((v) => [v.id, v])).values()];
  const label = unique.length === 1 ? '1 person viewing' : `${unique.length} people viewing`;
  return (
    <ul className="avatars" aria-label={label} data-testid="presence">
      {unique.map((v) => (
        <li key={v.id} className="avatar" title={v.id === me.id ? `${v.name} (you)` : v.name} style={{ backgroundColor: `hsl(${hue(v.id)} 55% 30%)` }}>
          <span aria-hidden="true">{initials(v.name)}</span>
          <span className="visually-hidden">{v.id === me.id ? `${v.name} (you)` : v.name}</span>
        </li>
      ))}
    </ul>
  );
}
