import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { askNotificationPermission, HANDOFF_TITLE_PREFIX, HandoffAlert } from './handoffAlert';

const shown: { title: string; options?: NotificationOptions }[] = [];

class FakeNotification {
  static permission: NotificationPermission = 'granted';
  static requestPermission = vi.fn(async () => FakeNotification.permission);
  onclick: (() => void) | null = null;
  close = vi.fn();
  constructor(title: string, options?: NotificationOptions) {
    shown.push({ title, options });
  }
}

let focused = false;

beforeEach(() => {
  shown.length = 0;
  FakeNotification.permission = 'granted';
  FakeNotification.requestPermission.mockClear();
  vi.stubGlobal('Notification', FakeNotification);
  focused = false;
  vi.spyOn(document, 'hasFocus').mockImplementation(() => focused);
});
afterEach(() => {
  vi.unstubAllGlobals();
  vi.restoreAllMocks();
});

describe('HandoffAlert', () => {
  it('changes the title and notifies when a waiter in the background gets the token', () => {
    const alert = new HandoffAlert();
    const detach = alert.attach();
    alert.update('waiting', 'Plan');
    expect(document.title).toBe('Plan — collab');
    alert.update('catching-up', 'Plan');
    expect(alert.isAlerting()).toBe(false);
    alert.update('holder', 'Plan');
    expect(alert.isAlerting()).toBe(true);
    expect(document.title).toBe(`${HANDOFF_TITLE_PREFIX}Plan`);
    expect(shown).toHaveLength(1);
    expect(shown[0]?.options?.body).toMatch(/Plan/);

    // Still in the background: the title stays. Focused again: it goes back.
    window.dispatchEvent(new Event('focus'));
    expect(document.title).toBe(`${HANDOFF_TITLE_PREFIX}Plan`);
    focused = true;
    window.dispatchEvent(new Event('focus'));
    expect(alert.isAlerting()).toBe(false);
    expect(document.title).toBe('Plan — collab');
    detach();
  });

  it('stays quiet for a tab in the foreground, and for a token taken without waiting', () => {
    const alert = new HandoffAlert();
    alert.update('none', 'Plan');
    alert.update('holder', 'Plan'); // took a free token: no wait, no alert
    expect(alert.isAlerting()).toBe(false);
    focused = true;
    alert.update('waiting', 'Plan');
    alert.update('holder', 'Plan');
    expect(alert.isAlerting()).toBe(false);
    expect(shown).toHaveLength(0);
  });

  it('changes only the title when notifications are not allowed', () => {
    FakeNotification.permission = 'denied';
    const alert = new HandoffAlert();
    alert.update('waiting', 'Plan');
    alert.update('holder', 'Plan');
    expect(document.title).toBe(`${HANDOFF_TITLE_PREFIX}Plan`);
    expect(shown).toHaveLength(0);
  });

  it('asks for permission only while it is undecided', () => {
    FakeNotification.permission = 'default';
    askNotificationPermission();
    expect(FakeNotification.requestPermission).toHaveBeenCalledTimes(1);
    FakeNotification.permission = 'denied';
    askNotificationPermission();
    expect(FakeNotification.requestPermission).toHaveBeenCalledTimes(1);
  });
});
