/**
 * Who is signed in, kept in localStorage so a reload stays signed in. The token is renewed
 * over HTTP before it expires (REFRESH_LEAD_FRACTION of its lifetime, at least
 * MIN_REFRESH_LEAD_MS early); listeners then hand the new token to the WebSocket in-band
 * (`refresh` frame), so the live session is never cut by an expiring token.
 */
import { ApiError, type Api } from '../api/http';
import type { AuthResponse, User } from '../api/types';

export const STORAGE_KEY = 'collab.auth';
/** Refresh when this fraction of the token's lifetime is left... */
export const REFRESH_LEAD_FRACTION = 0.2;
/** ...but never later than this before expiry. */
export const MIN_REFRESH_LEAD_MS = 60_000;
/** Retry delay when a refresh fails for a reason other than a rejected token. */
export const REFRESH_RETRY_MS = 10_000;
/** Assumed lifetime when the server's `expires_at` cannot be parsed. */
export const DEFAULT_TOKEN_LIFETIME_MS = 3_600_000;

export interface AuthState {
  token: string;
  expiresAt: number;
  issuedAt: number;
  user: User;
}

export class AuthStore {
  private state: AuthState | null = null;
  private listeners = new Set<() => void>();
  private tokenListeners = new Set<(token: string) => void>();
  private refreshTimer: ReturnType<typeof setTimeout> | null = null;
  private refreshing: Promise<void> | null = null;
  /** Why the user was signed out, shown on the sign-in page. */
  signOutReason: string | null = null;

  constructor(
    private readonly api: Api,
    private readonly storage: Storage | null = typeof localStorage === 'undefined' ? null : localStorage,
  ) {
    this.state = this.load();
    this.schedule();
  }

  getState = (): AuthState | null => this.state;

  subscribe = (listener: () => void): (() => void) => {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  };

  /** Called with every refreshed token (not on sign-in). */
  onTokenRefreshed(listener: (token: string) => void): () => void {
    this.tokenListeners.add(listener);
    return () => this.tokenListeners.delete(listener);
  }

  token = (): string | null => this.state?.token ?? null;

  async login(username: string, password: string): Promise<void> {
    this.accept(await this.api.login(username, password));
  }

  async register(username: string, password: string): Promise<void> {
    this.accept(await this.api.register(username, password));
  }

  async guest(): Promise<void> {
    this.accept(await this.api.guest());
  }

  signOut(reason: string | null = null): void {
    this.signOutReason = reason;
    if (this.refreshTimer) clearTimeout(this.refreshTimer);
    this.refreshTimer = null;
    this.state = null;
    this.storage?.removeItem(STORAGE_KEY);
    this.emit();
  }

  /** Renew the token now (also when the server reports `token_expired`). */
  refresh(): Promise<void> {
    if (!this.refreshing) {
      this.refreshing = this.doRefresh().finally(() => {
        this.refreshing = null;
      });
    }
    return this.refreshing;
  }

  private async doRefresh(): Promise<void> {
    const current = this.state;
    if (!current) return;
    try {
      const res = await this.api.refresh(current.token);
      if (this.state?.token !== current.token) return; // signed out or replaced meanwhile
      this.accept(res);
      for (const l of [...this.tokenListeners]) l(res.token);
    } catch (err) {
      if (err instanceof ApiError && (err.status === 401 || err.status === 403)) {
        this.signOut('Your session has ended. Please sign in again.');
      } else if (this.state) {
        this.schedule(REFRESH_RETRY_MS);
      }
    }
  }

  private accept(res: AuthResponse): void {
    const now = Date.now();
    const expiresAt = Date.parse(res.expires_at);
    this.signOutReason = null;
    const prev = this.state?.user;
    // Keep the same user object across refreshes so views keyed on it do not restart.
    const same = prev && prev.id === res.user.id && prev.name === res.user.name && prev.role === res.user.role;
    this.state = {
      token: res.token,
      expiresAt: Number.isNaN(expiresAt) ? now + DEFAULT_TOKEN_LIFETIME_MS : expiresAt,
      issuedAt: now,
      user: same ? prev : res.user,
    };
    this.storage?.setItem(STORAGE_KEY, JSON.stringify(this.state));
    this.schedule();
    this.emit();
  }

  private schedule(delayOverride?: number): void {
    if (this.refreshTimer) clearTimeout(this.refreshTimer);
    this.refreshTimer = null;
    const s = this.state;
    if (!s) return;
    const lifetime = Math.max(0, s.expiresAt - s.issuedAt);
    const lead = Math.max(MIN_REFRESH_LEAD_MS, lifetime * REFRESH_LEAD_FRACTION);
    const delay = delayOverride ?? Math.max(0, s.expiresAt - lead - Date.now());
    this.refreshTimer = setTimeout(() => void this.refresh(), delay);
  }

  private load(): AuthState | null {
    try {
      const raw = this.storage?.getItem(STORAGE_KEY);
      if (!raw) return null;
      const parsed = JSON.parse(raw) as AuthState;
      if (!parsed.token || !parsed.user || !(parsed.expiresAt > Date.now())) return null;
      return parsed;
    } catch {
      return null;
    }
  }

  private emit(): void {
    for (const l of [...this.listeners]) l();
  }
}
