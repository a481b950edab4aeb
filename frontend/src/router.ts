/**
 * Hash routing (`#/notes/ID`): the server returns index.html only for `/`, and every
 * route lives after the `#`, so deep links and reloads work behind `collab serve` and nginx.
 */
import { useEffect, useState } from 'react';

export type Route =
  | { page: 'notes' }
  | { page: 'note'; id: string }
  | { page: 'history'; id: string; version: number | null }
  | { page: 'admin' }
  | { page: 'login' }
  | { page: 'missing'; path: string };

export function parseRoute(hash: string): Route {
  const path = hash.replace(/^#/, '') || '/';
  const parts = path.split('/').filter(Boolean).map(decodeURIComponent);
  if (parts.length === 0) return { page: 'notes' };
  if (parts[0] === 'login' && parts.length === 1) return { page: 'login' };
  if (parts[0] === 'admin' && parts.length === 1) return { page: 'admin' };
  if (parts[0] === 'notes' && parts[1]) {
    if (parts.length === 2) return { page: 'note', id: parts[1] };
    if (parts[2] === 'history' && parts.length <= 4) {
      const version = parts[3] !== undefined ? Number(parts[3]) : null;
      if (version === null || Number.isInteger(version)) return { page: 'history', id: parts[1], version };
    }
  }
  return { page: 'missing', path };
}

export function href(path: string): string {
  return `#${path}`;
}

export function notePath(id: string): string {
  return `/notes/${encodeURIComponent(id)}`;
}

export function navigate(path: string): void {
  window.location.hash = path;
}

/** Return true to hold the user on the page (e.g. unsaved edits they did not give up). */
type LeaveGuard = () => boolean;
const guards = new Set<LeaveGuard>();

/** Register a guard consulted before the route changes; returns its removal. */
export function addLeaveGuard(guard: LeaveGuard): () => void {
  guards.add(guard);
  return () => guards.delete(guard);
}

/** False when a guard holds the user on the page (asks them first). */
export function leaveAllowed(): boolean {
  return ![...guards].some((g) => g());
}

export function useHashRoute(): Route {
  const [hash, setHash] = useState(() => window.location.hash);
  useEffect(() => {
    let current = window.location.hash;
    const onChange = () => {
      const next = window.location.hash;
      if (next === current) return;
      if (!leaveAllowed()) {
        // Put the old address back; the resulting hashchange is ignored (next === current).
        window.history.replaceState(null, '', current || '#/');
        return;
      }
      current = next;
      setHash(next);
    };
    window.addEventListener('hashchange', onChange);
    return () => window.removeEventListener('hashchange', onChange);
  }, []);
  return parseRoute(hash);
}
