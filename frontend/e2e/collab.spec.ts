/**
 * Browser tests against a real `collab serve`: two users on one note see each other's
 * typing and the lock banner live, hand the write token over, and survive a server crash.
 */
import type { Browser } from '@playwright/test';
import { editor, expect, expectReadOnly, lockText, PASSWORD, shot, signIn, test } from './fixtures';
import type { CollabServer } from './server';

async function newUserPage(browser: Browser, server: CollabServer, name: string, viewport?: { width: number; height: number }) {
  const context = await browser.newContext(viewport ? { viewport } : {});
  const page = await context.newPage();
  await signIn(page, server, name);
  return { context, page };
}

async function sharedNote(server: CollabServer, title: string) {
  const alice = await server.register('alice', PASSWORD);
  const bob = await server.register('bob', PASSWORD);
  const note = await server.api<{ id: string }>('POST', '/api/notes', alice.token, {
    title,
    content: '',
    visibility: 'private',
  });
  await server.api('PUT', `/api/notes/${note.id}/access/${bob.user.id}`, alice.token, { access: 'write' });
  return { alice, bob, note };
}

test('two users see live typing, the lock banner and the token handoff', async ({ browser, server }) => {
  const { note } = await sharedNote(server, 'Team plan');
  const a = await newUserPage(browser, server, 'alice');
  const b = await newUserPage(browser, server, 'bob');

  await expect(a.page.getByRole('link', { name: 'Team plan' })).toBeVisible();
  await shot(a.page, 'notes', true);
  await a.page.getByRole('link', { name: 'Team plan' }).click();
  await b.page.goto(`${server.url}/#/notes/${note.id}`);

  for (const p of [a.page, b.page]) {
    await expect(lockText(p)).toHaveText('Free - start editing');
    await expectReadOnly(p);
    await expect(p.getByTestId('presence').getByRole('listitem')).toHaveCount(2);
  }

  // Alice takes the token; Bob's banner changes live and he queues up.
  await a.page.getByRole('button', { name: 'Start editing' }).click();
  await expect(lockText(a.page)).toHaveText('You are editing');
  await expect(lockText(b.page)).toHaveText('alice is editing');
  await b.page.getByRole('button', { name: 'Request to edit (wait in line)' }).click();
  await expect(lockText(b.page)).toHaveText('alice is editing - you are 1st in line');
  await expect(lockText(a.page)).toHaveText('You are editing');

  // Alice types; Bob sees each change arrive while his editor stays read-only.
  await editor(a.page).click();
  await editor(a.page).pressSequentially('Hello from Alice 😀', { delay: 25 });
  await expect(editor(b.page)).toHaveText('Hello from Alice 😀');
  await expectReadOnly(b.page);
  await expect(a.page.getByTestId('save-state')).toHaveText('All changes saved');
  await shot(a.page, 'editor', true);
  await shot(b.page, 'viewer-waiting', true);

  // Alice releases: the token goes to Bob, first in line.
  await a.page.getByRole('button', { name: 'Stop editing' }).click();
  await expect(lockText(b.page)).toHaveText('You are editing');
  await expect(lockText(a.page)).toHaveText('bob is editing');
  await expectReadOnly(b.page, false);
  await editor(b.page).click();
  await editor(b.page).press('End');
  await editor(b.page).pressSequentially(' and Bob', { delay: 25 });
  await expect(editor(a.page)).toHaveText('Hello from Alice 😀 and Bob');
  await expect(b.page.getByTestId('save-state')).toHaveText('All changes saved');

  // The stored text matches what both screens show (code points, emoji included).
  const stored = await server.api<{ content: string; version: number }>(
    'GET',
    `/api/notes/${note.id}`,
    (await server.login('alice', PASSWORD)).token,
  );
  expect(stored.content).toBe('Hello from Alice 😀 and Bob');

  // History: versions are listed and a past one opens read-only.
  await a.page.getByRole('link', { name: 'History' }).click();
  await expect(a.page.getByRole('heading', { name: 'History' })).toBeVisible();
  const versions = a.page.getByRole('navigation', { name: 'Revisions' }).getByRole('link');
  await expect(versions.first()).toBeVisible();
  await versions.first().click();
  await expect(a.page.getByRole('textbox', { name: /Text of version/ })).toBeVisible();
  await shot(a.page, 'history');

  // Narrow screen: the editor stays usable.
  await b.page.setViewportSize({ width: 380, height: 760 });
  await shot(b.page, 'editor-narrow');

  await a.context.close();
  await b.context.close();
});

test('a server crash loses no typed text: the client reconnects, re-claims the token and re-sends', async ({
  browser,
  server,
}) => {
  const { note } = await sharedNote(server, 'Crash test');
  const a = await newUserPage(browser, server, 'alice');
  await a.page.goto(`${server.url}/#/notes/${note.id}`);
  await a.page.getByRole('button', { name: 'Start editing' }).click();
  await expect(lockText(a.page)).toHaveText('You are editing');
  await editor(a.page).click();
  await editor(a.page).pressSequentially('saved before. ', { delay: 10 });
  await expect(a.page.getByTestId('save-state')).toHaveText('All changes saved');

  // Freeze the server so the next keystrokes are sent but never acknowledged, then crash it.
  server.pause();
  await editor(a.page).pressSequentially('typed while frozen', { delay: 10 });
  await server.kill();
  await expect(a.page.getByTestId('connection-badge')).toContainText(/Reconnecting in \d+ s|Reconnecting…/);
  await expect(editor(a.page)).toHaveText('saved before. typed while frozen');
  await expectReadOnly(a.page);
  await shot(a.page, 'reconnecting');

  await server.start();
  await expect(a.page.getByTestId('connection-badge')).toHaveAttribute('data-state', 'connected', { timeout: 20_000 });
  await expect(lockText(a.page)).toHaveText('You are editing');
  await expect(a.page.getByTestId('save-state')).toHaveText('All changes saved');
  await expect(editor(a.page)).toHaveText('saved before. typed while frozen');
  await expect(a.page.getByTestId('draft')).toHaveCount(0);

  const stored = await server.api<{ content: string }>(
    'GET',
    `/api/notes/${note.id}`,
    (await server.login('alice', PASSWORD)).token,
  );
  expect(stored.content).toBe('saved before. typed while frozen');
  await a.context.close();
});

test('an admin sees users and sessions and can force-release a token; the holder is told', async ({
  browser,
  server,
}) => {
  server.addAdmin('root', PASSWORD);
  const { note } = await sharedNote(server, 'Admin test');
  const a = await newUserPage(browser, server, 'alice');
  await a.page.goto(`${server.url}/#/notes/${note.id}`);
  await a.page.getByRole('button', { name: 'Start editing' }).click();
  await expect(lockText(a.page)).toHaveText('You are editing');

  const admin = await newUserPage(browser, server, 'root');
  await admin.page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Admin', exact: true }).click();
  await expect(admin.page.getByRole('cell', { name: 'alice' }).first()).toBeVisible();
  await expect(admin.page.getByRole('button', { name: /Kick alice/ })).toBeVisible();
  await shot(admin.page, 'admin');

  await admin.page.getByLabel('Note id').fill(note.id);
  await admin.page.getByRole('button', { name: 'Force release' }).click();
  await expect(admin.page.getByRole('status').filter({ hasText: 'was released' })).toBeVisible();

  // The holder is told, and the editor turns read-only at once.
  await expect(a.page.getByRole('alert').filter({ hasText: 'revoked' })).toBeVisible();
  await expect(lockText(a.page)).toHaveText('Free - start editing');
  await expectReadOnly(a.page);
  await a.context.close();
  await admin.context.close();
});
