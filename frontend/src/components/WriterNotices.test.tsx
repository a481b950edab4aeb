import { act, render, screen } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { EditRequestNotice } from './EditRequestNotice';
import { IdleWarning } from './IdleWarning';

describe('IdleWarning', () => {
  beforeEach(() => {
    vi.useFakeTimers({ shouldAdvanceTime: true });
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('alerts once, counts down without announcing each second, and offers Keep editing', async () => {
    const onKeep = vi.fn();
    render(<IdleWarning deadline={Date.now() + 4000} next="bob" onKeep={onKeep} />);
    expect(screen.getByRole('alert')).toHaveTextContent(
      'You have not typed for a while: the write token will be handed to bob.',
    );
    const timer = screen.getByRole('timer');
    expect(timer).toHaveTextContent('Handing over in 4 s');
    expect(screen.getByRole('alert')).not.toContainElement(timer);
    act(() => {
      vi.advanceTimersByTime(1500);
    });
    expect(timer).toHaveTextContent('Handing over in 3 s');
    act(() => {
      vi.advanceTimersByTime(3000);
    });
    expect(timer).toHaveTextContent('Handing over now');
    await userEvent.click(screen.getByRole('button', { name: 'Keep editing' }));
    expect(onKeep).toHaveBeenCalledTimes(1);
  });
});

describe('EditRequestNotice', () => {
  it('says who would like to edit, politely, with Hand over and Dismiss', async () => {
    const onHandOver = vi.fn();
    const onDismiss = vi.fn();
    const { rerender } = render(<EditRequestNotice from={[]} onHandOver={onHandOver} onDismiss={onDismiss} />);
    const status = screen.getByRole('status');
    expect(status).toBeEmptyDOMElement(); // there before anything is said, so it is announced
    expect(screen.queryByRole('button')).toBeNull();
    rerender(<EditRequestNotice from={[{ id: 'u2', name: 'bob' }]} onHandOver={onHandOver} onDismiss={onDismiss} />);
    expect(screen.getByRole('status')).toBe(status);
    expect(status).toHaveTextContent('bob would like to edit.');
    await userEvent.click(screen.getByRole('button', { name: 'Hand over' }));
    await userEvent.click(screen.getByRole('button', { name: 'Dismiss' }));
    expect(onHandOver).toHaveBeenCalledTimes(1);
    expect(onDismiss).toHaveBeenCalledTimes(1);
  });
});
