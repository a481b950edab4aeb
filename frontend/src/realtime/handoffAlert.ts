/**
 * Tells a waiter whose tab is in the background that the write token reached it: the tab
 * title changes until the tab is focused again and, if the user allowed it, a system
 * notification appears. Permission is only ever asked when the user joins the line, the
 * moment the notification becomes useful to them.
 */
import type { TokenRole } from './noteState';

export const HANDOFF_TITLE_PREFIX = '✎ You can edit — ';

/** Ask for notification permission (call from the click that joins the line). */
export function askNotificationPermission(): void {
  if (typeof Notification === 'undefined' || Notification.permission !== 'default') return;
  void Notification.requestPermission().catch(() => undefined);
}

export function pageTitle(noteTitle: string): string {
  return `${noteTitle || 'Untitled'} — collab`;
}

export class HandoffAlert {
  private waited = false;
  private alerting = false;
  private title = '';
  private notification: Notification | null = null;
  private listeners = new Set<() => void>();

  constructor(private readonly doc: Document = document) {}

  isAlerting = (): boolean => this.alerting;

  subscribe = (listener: () => void): (() => void) => {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  };

  /** Listen for the tab coming back; returns the function that stops listening. */
  attach(): () => void {
    const win = this.doc.defaultView;
    const back = () => {
      if (!this.inBackground()) this.clear();
    };
    win?.addEventListener('focus', back);
    this.doc.addEventListener('visibilitychange', back);
    return () => {
      win?.removeEventListener('focus', back);
      this.doc.removeEventListener('visibilitychange', back);
      this.clear();
      this.doc.title = 'collab';
    };
  }

  /** The note's title or this tab's role changed. */
  update(role: TokenRole, noteTitle: string): void {
    this.title = noteTitle;
    if (!this.alerting) this.doc.title = pageTitle(noteTitle);
    if (role === 'waiting') {
      this.waited = true;
    } else if (role === 'holder' && this.waited) {
      this.waited = false;
      if (this.inBackground()) this.raise();
    } else if (role === 'none') {
      this.waited = false;
      this.clear();
    }
  }

  private inBackground(): boolean {
    return this.doc.visibilityState === 'hidden' || !this.doc.hasFocus();
  }

  private raise(): void {
    this.alerting = true;
    this.doc.title = `${HANDOFF_TITLE_PREFIX}${this.title || 'Untitled'}`;
    if (typeof Notification !== 'undefined' && Notification.permission === 'granted') {
      try {
        const n = new Notification('You can edit now', {
          body: `The write token for “${this.title || 'Untitled'}” was handed to you.`,
          tag: 'collab-handoff',
        });
        n.onclick = () => {
          this.doc.defaultView?.focus();
          n.close();
        };
        this.notification = n;
      } catch {
        // Some browsers only allow notifications from a service worker: the title remains.
      }
    }
    this.emit();
  }

  private clear(): void {
    this.notification?.close();
    this.notification = null;
    if (!this.alerting) return;
    this.alerting = false;
    this.doc.title = pageTitle(this.title);
    this.emit();
  }

  private emit(): void {
    for (const l of [...this.listeners]) l();
  }
}
