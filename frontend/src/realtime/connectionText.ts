/** The connection badge's words for each connection state. */
import type { ConnectionStatus } from './socket';

const OFFLINE_TEXT: Record<string, string> = {
  unauthorized: 'Offline - signed out by the server',
  forbidden: 'Offline - disconnected by an administrator',
  replaced: 'Offline - this session continued in another window',
  stopped: 'Offline',
};

export function connectionText(status: ConnectionStatus, now: number, online: boolean): string {
  switch (status.kind) {
    case 'connected':
      return 'Connected';
    case 'connecting':
      return status.attempt === 0 ? 'Connecting…' : 'Reconnecting…';
    case 'reconnecting': {
      if (!online) return 'Offline - waiting for the network';
      // `now` may be older than the status (the ticker has not run yet): never show more
      // than the delay that was actually chosen.
      const left = Math.min(status.retryAt - now, status.delayMs);
      const seconds = Math.max(0, Math.ceil(left / 1000));
      return `Reconnecting in ${seconds} s`;
    }
    case 'offline':
      return OFFLINE_TEXT[status.reason] ?? 'Offline';
  }
}
