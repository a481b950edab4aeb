/** The connection state, announced politely to screen readers as it changes. */
import { useEffect, useState } from 'react';
import { connectionText } from '../realtime/connectionText';
import type { ConnectionStatus } from '../realtime/socket';

export function ConnectionBadge({ status, onRetry }: { status: ConnectionStatus; onRetry?: () => void }) {
  const [now, setNow] = useState(() => Date.now());
  const [online, setOnline] = useState(() => navigator.onLine);
  useEffect(() => {
    if (status.kind !== 'reconnecting') return;
    const timer = setInterval(() => setNow(Date.now()), 250);
    return () => clearInterval(timer);
  }, [status]);
  useEffect(() => {
    const update = () => setOnline(navigator.onLine);
    window.addEventListener('online', update);
    window.addEventListener('offline', update);
    return () => {
      window.removeEventListener('online', update);
      window.removeEventListener('offline', update);
    };
  }, []);
  const text = connectionText(status, now, online);
  const tone = status.kind === 'connected' ? 'ok' : status.kind === 'offline' ? 'bad' : 'warn';
  // The live region carries the state only (not the countdown), so readers are not spammed.
  const announced = status.kind === 'reconnecting' ? 'Connection lost, reconnecting' : text;
  return (
    <div className={`badge badge-${tone}`} data-testid="connection-badge" data-state={status.kind}>
      <span className="dot" aria-hidden="true" />
      <span aria-hidden="true">{text}</span>
      <span className="visually-hidden" role="status" aria-live="polite">
        {announced}
      </span>
      {status.kind === 'reconnecting' && onRetry && (
        <button type="button" className="link" onClick={onRetry}>
          Retry now
        </button>
      )}
      {status.kind === 'offline' && status.reason !== 'unauthorized' && onRetry && (
        <button type="button" className="link" onClick={onRetry}>
          Reconnect
        </button>
      )}
    </div>
  );
}
