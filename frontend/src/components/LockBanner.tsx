/** The lock banner: who may write, the user's place in line, and the matching buttons. */
import type { User } from '../api/types';
import { lockView, type LockAction } from '../realtime/lockView';
import type { NoteState } from '../realtime/noteSession';

const LABELS: Record<LockAction, string> = {
  acquire: 'Start editing',
  wait: 'Request to edit (wait in line)',
  release: 'Stop editing',
  'leave-line': 'Leave the line',
  revoke: 'Force release',
};

export interface LockBannerProps {
  state: NoteState;
  me: User;
  onAction: (action: LockAction) => void;
}

export function LockBanner({ state, me, onAction }: LockBannerProps) {
  const view = lockView(state, me);
  return (
    <section className={`lock-banner lock-${view.tone}`} aria-label="Write token" data-testid="lock-banner">
      <p role="status" aria-live="polite" aria-atomic="true" data-testid="lock-text">
        {view.text}
      </p>
      <div className="actions">
        {view.actions.map((action) => (
          <button
            key={action}
            type="button"
            className={action === 'revoke' ? 'danger' : action === 'release' ? '' : 'primary'}
            onClick={() => onAction(action)}
          >
            {LABELS[action]}
          </button>
        ))}
      </div>
    </section>
  );
}
