/**
 * The holder's warning before an idle hand-off (protocol.md, "Idle hand-off"): announced
 * once as an alert, with a countdown that is shown but not read out every second, and a
 * "Keep editing" button.
 */
import { useEffect, useState } from 'react';
import { idleWarningText, secondsLeft } from '../realtime/writerNotices';

/** How often the countdown is redrawn. */
const TICK_MS = 250;

export interface IdleWarningProps {
  /** Clock time of the hand-off. */
  deadline: number;
  /** Who gets the token, when known. */
  next: string | null;
  onKeep: () => void;
}

export function IdleWarning({ deadline, next, onKeep }: IdleWarningProps) {
  const [now, setNow] = useState(() => Date.now());
  useEffect(() => {
    const timer = setInterval(() => setNow(Date.now()), TICK_MS);
    return () => clearInterval(timer);
  }, [deadline]);
  const left = secondsLeft(deadline, now);
  return (
    <section className="idle-warning" aria-label="Idle warning" data-testid="idle-warning">
      <p role="alert">{idleWarningText(next)}</p>
      <p className="idle-countdown">
        {/* role="timer" is not live: the alert above is read once, the seconds are only shown. */}
        <span role="timer" data-testid="idle-countdown">
          {left > 0 ? `Handing over in ${left} s` : 'Handing over now'}
        </span>
        <button type="button" className="primary" onClick={onKeep}>
          Keep editing
        </button>
      </p>
    </section>
  );
}
