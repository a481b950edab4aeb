/**
 * The same client through the nginx gateway in front of two replicas sharing PostgreSQL
 * and Redis. The stack is started by tests/multi/test_browser_stack.py, which passes its
 * address in COLLAB_E2E_STACK_URL; without it (plain `npm run e2e`) the test is skipped.
 */
import type { Browser } from '@playwright/test';
import { editor, expect, lockText, PASSWORD, shot, test as base } from './fixtures';

const stackUrl = process.env.COLLAB_E2E_STACK_URL ?? '';
const test = base;

async function api<T>(method: string, url: string, token: string | null, body?: unknown): Promise<T> {
  const headers: Record<string, string> = { 'Content-Type': 'application/json' };
  if (token) headers.Authorization = `Bearer ${token}`;
  const res = await fetch(`${stackUrl}${url}`, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`${method} ${url} -> ${res.status} ${text}`);
  return (text ? JSON.parse(text) : null) as T;
}

type Auth = { token: string; user: { id: string; name: string } };

async function open(browser: Browser, name: string) {
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(`${stackUrl}/#/`);
  await page.getByLabel('User name').fill(name);
  await page.getByLabel('Password').fill(PASSWORD);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await expect(page.getByTestId('connection-badge')).toHaveAttribute('data-state', 'connected');
  return { context, page };
}

test.skip(!stackUrl, 'needs the multi-replica stack (tests/multi/test_browser_stack.py)');

test('two users on two replicas behind the gateway see live typing and the lock', async ({ browser }) => {
  const suffix = Date.now().toString(36);
  const alice = await api<Auth>('POST', '/api/auth/register', null, { username: `alice${suffix}`, password: PASSWORD });
  const bob = await api<Auth>('POST', '/api/auth/register', null, { username: `bob${suffix}`, password: PASSWORD });
  const note = await api<{ id: string }>('POST', '/api/notes', alice.token, { title: 'Across replicas' });
  await api('PUT', `/api/notes/${note.id}/access/${bob.user.id}`, alice.token, { access: 'write' });

  const a = await open(browser, alice.user.name);
  const b = await open(browser, bob.user.name);
  await a.page.goto(`${stackUrl}/#/notes/${note.id}`);
  await b.page.goto(`${stackUrl}/#/notes/${note.id}`);
  for (const p of [a.page, b.page]) await expect(lockText(p)).toHaveText('Free - start editing');

  await a.page.getByRole('button', { name: 'Start editing' }).click();
  await expect(lockText(a.page)).toHaveText('You are editing');
  await expect(lockText(b.page)).toHaveText(`${alice.user.name} is editing`);
  await editor(a.page).click();
  await editor(a.page).pressSequentially('typed on one replica, seen on the other', { delay: 20 });
  await expect(editor(b.page)).toHaveText('typed on one replica, seen on the other');
  await expect(a.page.getByTestId('save-state')).toHaveText('All changes saved');

  // Hand the token over: Bob gets it after Alice releases.
  await b.page.getByRole('button', { name: 'Request to edit (wait in line)' }).click();
  await expect(lockText(b.page)).toHaveText(`${alice.user.name} is editing - you are 1st in line`);
  await a.page.getByRole('button', { name: 'Stop editing' }).click();
  await expect(lockText(b.page)).toHaveText('You are editing');
  await shot(b.page, 'stack-handoff');
  await a.context.close();
  await b.context.close();
});
