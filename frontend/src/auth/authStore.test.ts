import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { Api } from '../api/http';
import { AuthStore, MIN_REFRESH_LEAD_MS, STORAGE_KEY } from './authStore';

const user = { id: 'u1', name: 'alice', role: 'user' as const };

function respond(status: number, body: unknown): Response {
  return new Response(JSON.stringify(body), { status, headers: { 'Content-Type': 'application/json' } });
}

function memoryStorage(): Storage {
  const data = new Map<string, string>();
  return {
    get length() {
      return data.size;
    },
    clear: () => data.clear(),
    getItem: (k) => data.get(k) ?? null,
    key: (i) => [...data.keys()][i] ?? null,
    removeItem: (k) => void data.delete(k),
    setItem: (k, v) => void data.set(k, v),
  };
}

beforeEach(() => {
  vi.useFakeTimers();
  vi.setSystemTime(new Date('2030-01-01T00:00:00Z'));
});
afterEach(() => {
  vi.useRealTimers();
  vi.unstubAllGlobals();
});

describe('AuthStore', () => {
  it('signs in, persists, and refreshes the token before it expires', async () => {
    const fetchMock = vi.fn(async (url: string, init?: RequestInit) => {
      if (url === '/api/auth/login') {
        expect(JSON.parse(String(init?.body))).toEqual({ username: 'alice', password: 'pw' });
        return respond(200, { token: 't1', expires_at: '2030-01-01T00:03:20Z', user });
      }
      if (url === '/api/auth/refresh') {
        expect((init?.headers as Record<string, string>).Authorization).toBe('Bearer t1');
        return respond(200, { token: 't2', expires_at: '2030-01-01T00:20:00Z', user });
      }
      return respond(404, { error: { code: 'not_found', message: 'no' } });
    });
    vi.stubGlobal('fetch', fetchMock);
    const storage = memoryStorage();
    const auth: AuthStore = new AuthStore(new Api((): string | null => auth.token()), storage);
    const refreshed: string[] = [];
    auth.onTokenRefreshed((t) => refreshed.push(t));
    await auth.login('alice', 'pw');
    expect(auth.getState()?.user).toEqual(user);
    expect(JSON.parse(storage.getItem(STORAGE_KEY)!).token).toBe('t1');
    const userObject = auth.getState()!.user;

    // 200 s token: 20% of it is under the minimum lead, so it is refreshed MIN_REFRESH_LEAD_MS early.
    await vi.advanceTimersByTimeAsync(200_000 - MIN_REFRESH_LEAD_MS - 1);
    expect(refreshed).toEqual([]);
    await vi.advanceTimersByTimeAsync(2);
    expect(refreshed).toEqual(['t2']);
    expect(auth.token()).toBe('t2');
    expect(auth.getState()!.user).toBe(userObject); // same object: views keyed on it stay
  });

  it('signs out with a reason when the refresh is rejected', async () => {
    vi.stubGlobal(
      'fetch',
      vi.fn(async () => respond(401, { error: { code: 'unauthorized', message: 'expired' } })),
    );
    const storage = memoryStorage();
    storage.setItem(STORAGE_KEY, JSON.stringify({ token: 'old', expiresAt: Date.now() + 30_000, issuedAt: Date.now(), user }));
    const auth: AuthStore = new AuthStore(new Api((): string | null => auth.token()), storage);
    expect(auth.token()).toBe('old');
    await auth.refresh();
    expect(auth.getState()).toBeNull();
    expect(auth.signOutReason).toMatch(/sign in again/);
    expect(storage.getItem(STORAGE_KEY)).toBeNull();
  });

  it('reports API errors with the server message, never a stack', async () => {
    vi.stubGlobal('fetch', vi.fn(async () => respond(401, { error: { code: 'unauthorized', message: 'wrong user name or password' } })));
    const auth = new AuthStore(new Api(() => null), memoryStorage());
    await expect(auth.login('alice', 'bad')).rejects.toMatchObject({ code: 'unauthorized', message: 'wrong user name or password' });
  });
});
