import { act, render, screen } from '@testing-library/react';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { vi } from 'vitest';
import { ConnectionBadge } from './ConnectionBadge';

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

describe('ConnectionBadge', () => {
  it('counts down to the next reconnect attempt', () => {
    const retryAt = Date.now() + 4000;
    render(<ConnectionBadge status={{ kind: 'reconnecting', retryAt, delayMs: 4000, attempt: 2, closeCode: 1006 }} />);
    expect(screen.getByTestId('connection-badge')).toHaveTextContent('Reconnecting in 4 s');
    act(() => {
      vi.advanceTimersByTime(2100);
    });
    expect(screen.getByTestId('connection-badge')).toHaveTextContent('Reconnecting in 2 s');
    expect(screen.getByRole('status')).toHaveTextContent('Connection lost, reconnecting');
  });

  it('names connected and offline states in a live region', () => {
    const { rerender } = render(<ConnectionBadge status={{ kind: 'connected', session: 's' }} />);
    expect(screen.getByRole('status')).toHaveTextContent('Connected');
    rerender(<ConnectionBadge status={{ kind: 'offline', reason: 'forbidden' }} />);
    expect(screen.getByRole('status')).toHaveTextContent('Offline - disconnected by an administrator');
  });
});
