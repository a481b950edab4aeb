/**
 * The client people use, in real Chromium against a real `collab serve`: the CodeMirror
 * editor with its Markdown preview, the hand-off alert in a background tab, the owner's
 * actions on the note page, accessibility (axe), keyboard-only use and a 375 px screen.
 */
import type { Browser, Page } from '@playwright/test';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { editor, expect, expectAccessible, expectReadOnly, lockText, openAs, PASSWORD, shot, tabTo, test } from './fixtures';
import { frontendDir, type CollabServer } from './server';

async function sharedNote(server: CollabServer, title: string, content = '') {
  const alice = await server.register('alice', PASSWORD);
  const bob = await server.register('bob', PASSWORD);
  const note = await server.api<{ id: string }>('POST', '/api/notes', alice.token, {
    title,
    content,
    visibility: 'private',
  });
  await server.api('PUT', `/api/notes/${note.id}/access/${bob.user.id}`, alice.token, { access: 'write' });
  return { alice, bob, note };
}

async function expectNoHorizontalOverflow(page: Page, where: string): Promise<void> {
  const width = await page.evaluate(() => document.documentElement.scrollWidth);
  expect(width, `scrollWidth on ${where}`).toBeLessThanOrEqual(375);
}

test('a viewer sees the holder typing in CodeMirror; the preview renders Markdown and sanitises raw HTML', async ({
  browser,
  server,
}) => {
  const { note } = await sharedNote(server, 'Launch plan');
  const a = await openAs(browser, server, 'alice');
  const b = await openAs(browser, server, 'bob');
  const dialogs: string[] = [];
  for (const p of [a.page, b.page]) {
    p.on('dialog', (d) => {
      dialogs.push(d.message());
      void d.dismiss();
    });
    await p.goto(`${server.url}/#/notes/${note.id}`);
    await expect(lockText(p)).toHaveText('Free - start editing');
    await expectReadOnly(p);
  }

  await a.page.getByRole('button', { name: 'Start editing' }).click();
  await expect(lockText(a.page)).toHaveText('You are editing');
  await expectReadOnly(a.page, false);
  await expect(editor(a.page)).toBeFocused();
  const kb = a.page.keyboard;
  await kb.type('# Launch 😀', { delay: 15 });
  await kb.press('Enter');
  await kb.press('Enter');
  await kb.type('Ship it *soon* and **safely**, with `tests`.', { delay: 5 });
  await kb.press('Enter');
  await kb.press('Enter');
  await kb.type('<img src=x onerror=alert(1)>', { delay: 5 });
  await kb.press('Enter');
  await kb.press('Enter');
  await kb.type('- first', { delay: 5 });
  await kb.press('Enter'); // the Markdown keymap continues the list
  await kb.type('second', { delay: 5 });
  const expected =
    '# Launch 😀\n\nShip it *soon* and **safely**, with `tests`.\n\n<img src=x onerror=alert(1)>\n\n- first\n- second';

  // The viewer's CodeMirror follows, read-only, line by line.
  await expect(editor(b.page)).toContainText('Ship it *soon* and **safely**');
  await expect(editor(b.page).locator('.cm-line').last()).toHaveText('- second');
  await expectReadOnly(b.page);
  await expect(a.page.getByTestId('save-state')).toHaveText('All changes saved');
  const stored = await server.api<{ content: string }>(
    'GET',
    `/api/notes/${note.id}`,
    (await server.login('alice', PASSWORD)).token,
  );
  expect(stored.content).toBe(expected);

  // Both previews render the Markdown; the raw HTML is shown as text and never runs.
  for (const p of [a.page, b.page]) {
    const preview = p.getByTestId('preview');
    await expect(preview.getByRole('heading', { level: 1 })).toHaveText('Launch 😀');
    await expect(preview.locator('em')).toHaveText('soon');
    await expect(preview.locator('strong')).toHaveText('safely');
    await expect(preview.getByRole('listitem')).toHaveText(['first', 'second']);
    await expect(preview).toContainText('<img src=x onerror=alert(1)>');
    await expect(preview.locator('img, script, [onerror]')).toHaveCount(0);
  }
  expect(dialogs).toEqual([]);

  // The preview toggle is a button: off and on again.
  await b.page.getByRole('button', { name: 'Preview' }).click();
  await expect(b.page.getByTestId('preview')).toHaveCount(0);
  await b.page.getByRole('button', { name: 'Preview' }).press('Enter');
  await expect(b.page.getByTestId('preview')).toBeVisible();

  await shot(a.page, 'editor-preview', true);
  await a.context.close();
  await b.context.close();
});

// Playwright keeps every page visible and focused, so the test decides what the page
// reports as its visibility and focus; the Notification class is the real one, wrapped to
// count what the page does with it. Permission starts undecided, as in a fresh profile.
const BACKGROUND_AND_NOTIFICATIONS = `
  (() => {
    let background = false;
    Object.defineProperty(document, 'visibilityState', { configurable: true, get: () => (background ? 'hidden' : 'visible') });
    Object.defineProperty(document, 'hidden', { configurable: true, get: () => background });
    document.hasFocus = () => !background;
    window.__setBackground = (on) => {
      background = on;
      document.dispatchEvent(new Event('visibilitychange'));
      if (!on) window.dispatchEvent(new Event('focus'));
    };
    window.__notifications = [];
    window.__permissionAsks = 0;
    const Real = window.Notification;
    let permission = 'default';
    class Observed extends Real {
      constructor(title, options) {
        window.__notifications.push({ title, body: (options && options.body) || '' });
        super(title, options);
      }
      static get permission() { return permission; }
      static requestPermission() {
        window.__permissionAsks += 1;
        permission = Real.permission;
        return Promise.resolve(permission);
      }
    }
    window.Notification = Observed;
  })();
`;

interface Observed {
  __notifications: { title: string; body: string }[];
  __permissionAsks: number;
  __setBackground: (on: boolean) => void;
}

test('a waiter in a background tab learns it got the token: tab title and a notification', async ({
  browser,
  server,
}) => {
  const { note } = await sharedNote(server, 'Handoff plan');
  const a = await openAs(browser, server, 'alice');
  const b = await openAs(browser, server, 'bob');
  await b.context.grantPermissions(['notifications'], { origin: server.url });
  await b.context.addInitScript(BACKGROUND_AND_NOTIFICATIONS);

  await a.page.goto(`${server.url}/#/notes/${note.id}`);
  await a.page.getByRole('button', { name: 'Start editing' }).click();
  await expect(lockText(a.page)).toHaveText('You are editing');
  await a.page.keyboard.type('Draft by Alice', { delay: 10 });

  await b.page.goto(`${server.url}/#/notes/${note.id}`);
  await b.page.reload(); // the init script applies from this load on
  await expect(lockText(b.page)).toHaveText('alice is editing');
  await expect(b.page).toHaveTitle('Handoff plan — collab');
  // Never asked on load: only when joining the line.
  expect(await b.page.evaluate(() => (window as unknown as Observed).__permissionAsks)).toBe(0);
  await b.page.getByRole('button', { name: 'Request to edit (wait in line)' }).click();
  await expect(lockText(b.page)).toHaveText('alice is editing - you are 1st in line');
  expect(await b.page.evaluate(() => (window as unknown as Observed).__permissionAsks)).toBe(1);

  // Bob switches to another tab; Alice finishes and hands the token on.
  await b.page.evaluate(() => (window as unknown as Observed).__setBackground(true));
  await expect(a.page.getByTestId('save-state')).toHaveText('All changes saved');
  await a.page.getByRole('button', { name: 'Stop editing' }).click();

  await expect(lockText(b.page)).toHaveText('You are editing');
  await expect(b.page).toHaveTitle('✎ You can edit — Handoff plan');
  await expect(b.page.getByTestId('handoff')).toBeVisible();
  const shown = await b.page.evaluate(() => (window as unknown as Observed).__notifications);
  expect(shown).toEqual([{ title: 'You can edit now', body: 'The write token for “Handoff plan” was handed to you.' }]);
  await handoffShot(browser, b.page, shown[0]!);

  // Back in the tab: the title returns and nothing else is shown again.
  await b.page.evaluate(() => (window as unknown as Observed).__setBackground(false));
  await expect(b.page).toHaveTitle('Handoff plan — collab');
  await expect(b.page.getByTestId('handoff')).toHaveCount(0);
  await expectReadOnly(b.page, false);
  expect(await b.page.evaluate(() => (window as unknown as Observed).__notifications.length)).toBe(1);
  await a.context.close();
  await b.context.close();
});

/**
 * A picture of the hand-off as the user meets it: the tab strip with the waiting tab's real
 * title, the notification the page raised, and the page itself when they switch back.
 */
async function handoffShot(browser: Browser, page: Page, notification: { title: string; body: string }) {
  const title = await page.title();
  const image = (await page.screenshot()).toString('base64');
  const context = await browser.newContext({ viewport: { width: 1200, height: 844 } });
  const frame = await context.newPage();
  const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;');
  await frame.setContent(`<!doctype html><html><body style="margin:0;font-family:system-ui,sans-serif;background:#dfe1e5">
    <div style="display:flex;gap:4px;padding:8px 8px 0;height:36px">
      <div style="background:#fff;border-radius:8px 8px 0 0;padding:8px 16px;width:220px">Mail — Inbox</div>
      <div style="background:#c9e6cf;border-radius:8px 8px 0 0;padding:8px 16px;width:300px;font-weight:600">${esc(title)}</div>
    </div>
    <div style="position:relative;background:#fff">
      <img src="data:image/png;base64,${image}" style="display:block;width:1200px;height:800px">
      <div style="position:absolute;top:16px;right:16px;width:340px;background:#fff;border-radius:10px;
        box-shadow:0 6px 24px rgba(0,0,0,.25);padding:14px 16px">
        <div style="font-size:12px;color:#555">collab · 127.0.0.1</div>
        <div style="font-weight:700;margin:4px 0">${esc(notification.title)}</div>
        <div>${esc(notification.body)}</div>
      </div>
    </div></body></html>`);
  await shot(frame, 'handoff', true);
  await context.close();
}

test('rename, visibility and sharing work from the note page; the share dialog finds users as you type', async ({
  browser,
  server,
}) => {
  const alice = await server.register('alice', PASSWORD);
  const bob = await server.register('bob', PASSWORD);
  const note = await server.api<{ id: string }>('POST', '/api/notes', alice.token, { title: 'Roadmap', visibility: 'private' });
  const a = await openAs(browser, server, 'alice');
  await a.page.goto(`${server.url}/#/notes/${note.id}`);
  await expect(a.page.getByRole('heading', { level: 1 })).toHaveText('Roadmap');

  await a.page.getByRole('button', { name: 'Rename' }).click();
  await a.page.getByLabel('New title').fill('Roadmap 2027');
  await a.page.getByLabel('New title').press('Enter');
  await expect(a.page.getByRole('heading', { level: 1 })).toHaveText('Roadmap 2027');
  await expect(a.page).toHaveTitle('Roadmap 2027 — collab');

  await expect(a.page.getByTestId('visibility')).toHaveText('Private');
  await a.page.getByRole('button', { name: 'Make public' }).click();
  await expect(a.page.getByTestId('visibility')).toHaveText('Public');

  await a.page.getByRole('button', { name: 'Share' }).click();
  const dialog = a.page.getByRole('dialog', { name: /Share/ });
  await expect(dialog.getByLabel('User name')).toBeFocused();
  await dialog.getByLabel('User name').pressSequentially('bo', { delay: 20 });
  await expect(dialog.getByTestId('share-lookup')).toHaveText('No such user: “bo”');
  await dialog.getByLabel('User name').pressSequentially('b', { delay: 20 });
  await expect(dialog.getByTestId('share-lookup')).toHaveText('✓ bob found');
  await dialog.getByRole('combobox').first().selectOption('write');
  await dialog.getByRole('button', { name: 'Share', exact: true }).click();
  await expect(dialog.getByRole('listitem').filter({ hasText: 'bob' })).toBeVisible();
  await expectAccessible(a.page, 'share dialog');
  await a.page.keyboard.press('Escape');
  await expect(dialog).toHaveCount(0);
  await expect(a.page.getByRole('button', { name: 'Share' })).toBeFocused();

  const stored = await server.api<{ title: string; visibility: string }>('GET', `/api/notes/${note.id}`, alice.token);
  expect(stored).toMatchObject({ title: 'Roadmap 2027', visibility: 'public' });
  const grants = await server.api<{ grants: { user: { id: string }; access: string }[] }>(
    'GET',
    `/api/notes/${note.id}/access`,
    alice.token,
  );
  expect(grants.grants).toEqual([{ user: expect.objectContaining({ id: bob.user.id }), access: 'write' }]);
  await a.context.close();
});

test('every page has no serious or critical accessibility violations', async ({ browser, server }) => {
  // Four browser contexts and six axe scans: near a minute on two idle cores, more when busy.
  test.slow();
  server.addAdmin('root', PASSWORD);
  const { note } = await sharedNote(server, 'Accessible plan', '# Title\n\nSome *text*.');
  const context = await browser.newContext();
  const login = await context.newPage();
  await login.goto(`${server.url}/#/`);
  await expect(login.getByRole('button', { name: 'Sign in' })).toBeVisible();
  await expectAccessible(login, 'sign-in page');
  await context.close();

  const a = await openAs(browser, server, 'alice');
  await expect(a.page.getByRole('link', { name: 'Accessible plan' })).toBeVisible();
  await expectAccessible(a.page, 'notes list');

  const b = await openAs(browser, server, 'bob');
  await a.page.goto(`${server.url}/#/notes/${note.id}`);
  await b.page.goto(`${server.url}/#/notes/${note.id}`);
  await a.page.getByRole('button', { name: 'Start editing' }).click();
  await expect(lockText(a.page)).toHaveText('You are editing');
  await a.page.keyboard.type(' More.', { delay: 10 });
  await expect(editor(b.page)).toContainText('More.');
  await expectAccessible(a.page, 'note page (holder)');
  await expectAccessible(b.page, 'note page (viewer)');

  await a.page.getByRole('link', { name: 'History' }).click();
  await expect(a.page.getByRole('heading', { name: 'History' })).toBeVisible();
  await expect(a.page.getByRole('navigation', { name: 'Revisions' }).getByRole('link').first()).toBeVisible();
  await expectAccessible(a.page, 'history');

  const admin = await openAs(browser, server, 'root');
  await admin.page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Admin', exact: true }).click();
  await expect(admin.page.getByRole('cell', { name: 'alice' }).first()).toBeVisible();
  await expectAccessible(admin.page, 'admin');
  for (const c of [a.context, b.context, admin.context]) await c.close();
});

test('the whole path works by keyboard alone: sign in, open, take the token, type, release, share', async ({
  browser,
  server,
}) => {
  const alice = await server.register('alice', PASSWORD);
  await server.register('bob', PASSWORD);
  const note = await server.api<{ id: string }>('POST', '/api/notes', alice.token, { title: 'Keyboard note' });
  const context = await browser.newContext();
  const page = await context.newPage();
  const kb = page.keyboard;
  await page.goto(`${server.url}/#/`);

  await tabTo(page, page.getByLabel('User name'));
  await kb.type('alice');
  await tabTo(page, page.getByLabel('Password'));
  await kb.type(PASSWORD);
  await kb.press('Enter');
  await expect(page.getByRole('heading', { name: 'Notes', level: 1 })).toBeVisible();

  await tabTo(page, page.getByRole('link', { name: 'Keyboard note' }));
  await kb.press('Enter');
  await expect(lockText(page)).toHaveText('Free - start editing');

  await tabTo(page, page.getByRole('button', { name: 'Start editing' }));
  await kb.press('Enter');
  await expect(lockText(page)).toHaveText('You are editing');
  await expect(editor(page)).toBeFocused(); // focus moves to the text once it is writable
  await kb.type('Typed without a mouse 😀', { delay: 10 });
  await expect(page.getByTestId('save-state')).toHaveText('All changes saved');

  // Tab leaves the editor (it never traps focus); Shift+Tab walks back to the banner.
  await tabTo(page, page.getByRole('button', { name: 'Stop editing' }), true);
  await kb.press('Enter');
  await expect(lockText(page)).toHaveText('Free - start editing');

  await tabTo(page, page.getByRole('button', { name: 'Share' }), true);
  await kb.press('Enter');
  await expect(page.getByRole('dialog')).toBeVisible();
  await kb.type('bob', { delay: 20 });
  await expect(page.getByTestId('share-lookup')).toHaveText('✓ bob found');
  await kb.press('Enter');
  await expect(page.getByRole('dialog').getByRole('listitem').filter({ hasText: 'bob' })).toBeVisible();
  await kb.press('Escape');
  await expect(page.getByRole('dialog')).toHaveCount(0);

  const stored = await server.api<{ content: string }>('GET', `/api/notes/${note.id}`, alice.token);
  expect(stored.content).toBe('Typed without a mouse 😀');
  const grants = await server.api<{ grants: { user: { name: string } }[] }>('GET', `/api/notes/${note.id}/access`, alice.token);
  expect(grants.grants.map((g) => g.user.name)).toEqual(['bob']);
  await context.close();
});

test('usable at 375 px: nothing overflows horizontally on any page', async ({ browser, server }) => {
  server.addAdmin('root', PASSWORD);
  const { note } = await sharedNote(server, 'A note with a rather long title for a small phone screen');
  const viewport = { width: 375, height: 740 };
  const a = await openAs(browser, server, 'alice', { viewport });
  await expectNoHorizontalOverflow(a.page, 'notes list');

  await a.page.goto(`${server.url}/#/notes/${note.id}`);
  await a.page.getByRole('button', { name: 'Start editing' }).click();
  await expect(lockText(a.page)).toHaveText('You are editing');
  await a.page.keyboard.type('A line without spaces: https://example.org/a/very/long/path/that/goes/on/and/on/and/on', {
    delay: 2,
  });
  await expect(a.page.getByTestId('save-state')).toHaveText('All changes saved');
  await expect(a.page.getByTestId('preview')).toContainText('example.org');
  await expectNoHorizontalOverflow(a.page, 'note page with preview');
  await a.page.getByRole('button', { name: 'Share' }).click();
  await expectNoHorizontalOverflow(a.page, 'share dialog');
  await a.page.keyboard.press('Escape');
  mkdirSync(path.join(frontendDir, 'test-results', 'screenshots'), { recursive: true });
  await shot(a.page, 'editor-375');

  await a.page.getByRole('link', { name: 'History' }).click();
  await expect(a.page.getByRole('heading', { name: 'History' })).toBeVisible();
  await expectNoHorizontalOverflow(a.page, 'history');

  const admin = await openAs(browser, server, 'root', { viewport });
  await admin.page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Admin', exact: true }).click();
  await expect(admin.page.getByRole('heading', { name: 'Administration' })).toBeVisible();
  await expectNoHorizontalOverflow(admin.page, 'admin');
  await a.context.close();
  await admin.context.close();
});
