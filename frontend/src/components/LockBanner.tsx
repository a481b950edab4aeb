/**
 * The lock banner: who may write, the user's place in line, and the matching buttons; a
 * waiter can ask the holder for the token and sees the answer here.
 */
import type { User } from '../api/types';
import { lockView, type LockAction, type LockView } from '../realtime/lockView';
import type { NoteState } from '../realtime/noteSession';

const LABELS: Record<Exclude<LockAction, 'ask'>, string> = {
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

function label(action: LockAction, view: LockView): string {
  return action === 'ask' ? `Ask ${view.holder ?? 'the writer'} for the token` : LABELS[action];
}

export function LockBanner({ state, me, onAction }: LockBannerProps) {
  const view = lockView(state, me);
  const asking = view.actions.includes('ask');
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
            {label(action, view)}
          </button>
        ))}
      </div>
      {asking && (
        // Present (empty) before the answer, so the answer is announced when it comes.
        <p className="ask-status" role="status" data-testid="ask-status">
          {state.askStatus ?? ''}
        </p>
      )}
    </section>
  );
}
