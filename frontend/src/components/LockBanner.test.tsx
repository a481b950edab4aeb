import { cleanup, render, screen } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { describe, expect, it, vi } from 'vitest';
import type { Lock } from '../api/types';
import { ordinal } from '../realtime/lockView';
import type { NoteState } from '../realtime/noteSession';
import { ME } from '../test/fakeSocket';
import { LockBanner } from './LockBanner';

const base: NoteState = {
  noteId: 'n1',
  loaded: true,
  error: null,
  title: 'Plan',
  access: 'write',
  text: '',
  version: 1,
  lock: null,
  viewers: [],
  mySession: 's-1',
  role: 'none',
  queuePosition: null,
  fence: null,
  leaseDeadline: null,
  writable: false,
  save: 'saved',
  draft: null,
  notice: null,
  remote: { seq: 0, changes: null },
  caret: null,
  idleWarning: null,
  editRequests: [],
  askStatus: null,
};

const aliceLock: Lock = {
  holder: { id: 'u-bob', name: 'Alice Smith' },
  session: 's-9',
  fence: 3,
  since: '2025-01-01T00:00:00Z',
  queue: [],
};

function banner(state: Partial<NoteState>) {
  const onAction = vi.fn();
  render(<LockBanner state={{ ...base, ...state }} me={ME} onAction={onAction} />);
  return onAction;
}

describe('LockBanner', () => {
  it('offers the free token', async () => {
    const onAction = banner({});
    expect(screen.getByRole('status')).toHaveTextContent('Free - start editing');
    await userEvent.click(screen.getByRole('button', { name: 'Start editing' }));
    expect(onAction).toHaveBeenCalledWith('acquire');
  });

  it('shows the holder and the place in line, announced politely', () => {
    banner({ role: 'waiting', lock: aliceLock, queuePosition: 2 });
    const status = screen.getByTestId('lock-text');
    expect(status).toHaveRole('status');
    expect(status).toHaveTextContent('Alice Smith is editing - you are 2nd in line');
    expect(status).toHaveAttribute('aria-live', 'polite');
    expect(screen.getByRole('button', { name: 'Leave the line' })).toBeInTheDocument();
  });

  it('lets a waiter ask the holder for the token, and shows the answer as a status', async () => {
    const onAction = banner({ role: 'waiting', lock: { ...aliceLock, queue: [{ id: ME.id, name: ME.name }] }, queuePosition: 1 });
    const ask = screen.getByRole('button', { name: 'Ask Alice Smith for the token' });
    expect(screen.getByTestId('ask-status')).toHaveRole('status');
    expect(screen.getByTestId('ask-status')).toHaveTextContent(/^$/);
    await userEvent.click(ask);
    expect(onAction).toHaveBeenCalledWith('ask');
    cleanup();
    banner({ role: 'waiting', lock: aliceLock, queuePosition: 1, askStatus: 'Alice Smith was asked to hand over the token.' });
    expect(screen.getByTestId('ask-status')).toHaveTextContent('Alice Smith was asked to hand over the token.');
  });

  it('offers no asking to a reader, nor while waiting behind oneself in another tab', () => {
    banner({ access: 'read', lock: aliceLock });
    expect(screen.queryByRole('button', { name: /^Ask/ })).toBeNull();
    cleanup();
    banner({ role: 'waiting', lock: { ...aliceLock, holder: { id: ME.id, name: ME.name } }, queuePosition: 1 });
    expect(screen.queryByRole('button', { name: /^Ask/ })).toBeNull();
    expect(screen.queryByTestId('ask-status')).toBeNull();
  });

  it('tells the holder they are editing and lets them stop', async () => {
    const onAction = banner({ role: 'holder', writable: true, fence: 3, lock: { ...aliceLock, holder: { id: ME.id, name: ME.name } } });
    expect(screen.getByRole('status')).toHaveTextContent(/^You are editing$/);
    await userEvent.click(screen.getByRole('button', { name: 'Stop editing' }));
    expect(onAction).toHaveBeenCalledWith('release');
  });

  it('lets a reader only watch, and an owner force-release', () => {
    banner({ access: 'read', lock: aliceLock });
    expect(screen.getByRole('status')).toHaveTextContent('Alice Smith is editing');
    expect(screen.queryByRole('button')).toBeNull();
    cleanup();
    banner({ access: 'admin', lock: aliceLock });
    expect(screen.getByRole('button', { name: 'Force release' })).toBeInTheDocument();
    expect(screen.getByRole('button', { name: 'Request to edit (wait in line)' })).toBeInTheDocument();
  });

  it('spells ordinals', () => {
    expect([1, 2, 3, 4, 11, 12, 13, 21, 22, 101].map(ordinal)).toEqual([
      '1st', '2nd', '3rd', '4th', '11th', '12th', '13th', '21st', '22nd', '101st',
    ]);
  });
});
