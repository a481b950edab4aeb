import { act, fireEvent, render, screen } from '@testing-library/react';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { ApiError } from '../api/http';
import type { UserBrief } from '../api/types';
import { ServicesContext, type Services } from '../services';
import { LOOKUP_DEBOUNCE_MS, ShareDialog } from './ShareDialog';

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

function setup() {
  const users: Record<string, UserBrief> = { bob: { id: 'u-bob', name: 'bob' } };
  const api = {
    listGrants: vi.fn(async () => []),
    lookupUser: vi.fn(async (name: string) => {
      const user = users[name];
      if (!user) throw new ApiError(404, 'not_found', 'no such user');
      return user;
    }),
    grant: vi.fn(async () => null),
    revokeGrant: vi.fn(async () => null),
  };
  const services = { api, auth: {} } as unknown as Services;
  render(
    <ServicesContext.Provider value={services}>
      <ShareDialog note={{ id: 'n1', title: 'Plan' }} onClose={() => undefined} />
    </ServicesContext.Provider>,
  );
  return { api };
}

async function typeName(value: string) {
  fireEvent.change(screen.getByLabelText('User name'), { target: { value } });
  await act(async () => {
    await vi.advanceTimersByTimeAsync(0);
  });
}

describe('ShareDialog', () => {
  it('looks the name up once typing pauses, and says when nobody has it', async () => {
    const { api } = setup();
    await typeName('b');
    await typeName('bo');
    expect(api.lookupUser).not.toHaveBeenCalled();
    await act(async () => {
      await vi.advanceTimersByTimeAsync(LOOKUP_DEBOUNCE_MS);
    });
    expect(api.lookupUser).toHaveBeenCalledTimes(1);
    expect(api.lookupUser).toHaveBeenCalledWith('bo');
    expect(screen.getByTestId('share-lookup')).toHaveTextContent('No such user: “bo”');
    expect(screen.getByLabelText('User name')).toHaveAttribute('aria-invalid', 'true');

    await typeName('bob');
    await act(async () => {
      await vi.advanceTimersByTimeAsync(LOOKUP_DEBOUNCE_MS);
    });
    expect(screen.getByTestId('share-lookup')).toHaveTextContent('✓ bob found');
  });

  it('shares with the user found, without looking the name up again', async () => {
    const { api } = setup();
    await typeName('bob');
    await act(async () => {
      await vi.advanceTimersByTimeAsync(LOOKUP_DEBOUNCE_MS);
    });
    fireEvent.submit(screen.getByRole('button', { name: 'Share' }));
    await act(async () => {
      await vi.advanceTimersByTimeAsync(0);
    });
    expect(api.lookupUser).toHaveBeenCalledTimes(1);
    expect(api.grant).toHaveBeenCalledWith('n1', 'u-bob', 'read');
    expect(screen.getByLabelText('User name')).toHaveValue('');
  });

  it('keeps Tab inside the dialog', async () => {
    setup();
    await act(async () => {
      await vi.advanceTimersByTimeAsync(0);
    });
    const input = screen.getByLabelText('User name');
    const close = screen.getByRole('button', { name: 'Close' });
    close.focus();
    fireEvent.keyDown(close, { key: 'Tab' });
    expect(input).toHaveFocus();
    fireEvent.keyDown(input, { key: 'Tab', shiftKey: true });
    expect(close).toHaveFocus();
  });
});
