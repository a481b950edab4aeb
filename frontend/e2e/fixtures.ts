/**
 * Test fixtures: a fresh server per test (settings from `serverEnv`, e.g.
 * `test.use({ serverEnv: { COLLAB_IDLE_HANDOFF_S: '6' } })`), sign-in helpers, axe, keyboard
 * walking and screenshot capture.
 */
import AxeBuilder from '@axe-core/playwright';
import { test as base, expect, type Browser, type BrowserContextOptions, type Locator, type Page } from '@playwright/test';
import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { CollabServer, freePort, frontendDir } from './server';

export const PASSWORD = 'correct-horse-battery';
const shotsDir = path.join(frontendDir, 'test-results', 'screenshots');
const docsShotsDir = path.resolve(frontendDir, '..', 'docs', 'screenshots');

/** WebSocket frames of the pages opened with `openAs` in the running test (heartbeats left out). */
let frameLog: string[] = [];

export const test = base.extend<{ server: CollabServer; serverEnv: Record<string, string> }>({
  serverEnv: [{}, { option: true }],
  server: async ({ serverEnv }, use, testInfo) => {
    const server = new CollabServer(await freePort(), serverEnv);
    frameLog = [];
    try {
      // Inside the try: a server that fails to start (and may hang) is still stopped.
      await server.start();
      await use(server);
    } finally {
      if (testInfo.status !== testInfo.expectedStatus) {
        await testInfo.attach('server-log', { body: server.output(), contentType: 'text/plain' });
        const frames = testInfo.outputPath('ws-frames.txt');
        writeFileSync(frames, frameLog.join('\n'));
        await testInfo.attach('ws-frames', { path: frames, contentType: 'text/plain' });
      }
      await server.dispose();
    }
  },
});

export { expect };

/** Sign in through the login form. */
export async function signIn(page: Page, server: CollabServer, username: string, password = PASSWORD): Promise<void> {
  await page.goto(`${server.url}/#/`);
  await page.getByLabel('User name').fill(username);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await expect(page.getByRole('heading', { name: 'Notes', level: 1 })).toBeVisible();
  await expect(page.getByTestId('connection-badge')).toHaveAttribute('data-state', 'connected');
}

/**
 * Save a screenshot under test-results/screenshots/. With UPDATE_DOCS_SCREENSHOTS=1 the
 * ones named for the docs are also copied to docs/screenshots/.
 */
export async function shot(page: Page, name: string, forDocs = false): Promise<void> {
  mkdirSync(shotsDir, { recursive: true });
  const file = path.join(shotsDir, `${name}.png`);
  await page.screenshot({ path: file, fullPage: false });
  await test.info().attach(name, { path: file, contentType: 'image/png' });
  if (forDocs && process.env.UPDATE_DOCS_SCREENSHOTS === '1') {
    mkdirSync(docsShotsDir, { recursive: true });
    copyFileSync(file, path.join(docsShotsDir, `${name}.png`));
  }
}

/** The CodeMirror editor's content element (role textbox, named "Note text"). */
export function editor(page: Page) {
  return page.getByRole('textbox', { name: 'Note text' });
}

/** The editor is read-only: CodeMirror marks its content with aria-readonly. */
export async function expectReadOnly(page: Page, readOnly = true): Promise<void> {
  if (readOnly) await expect(editor(page)).toHaveAttribute('aria-readonly', 'true');
  else await expect(editor(page)).not.toHaveAttribute('aria-readonly', 'true');
}

export function lockText(page: Page) {
  return page.getByTestId('lock-text');
}

/** A signed-in browser context of its own for `name`. */
export async function openAs(browser: Browser, server: CollabServer, name: string, options: BrowserContextOptions = {}) {
  const context = await browser.newContext(options);
  const page = await context.newPage();
  recordFrames(page, name);
  await signIn(page, server, name);
  return { context, page };
}

/** Keep `who`'s WebSocket frames for the failure report (tokens blanked, heartbeats left out). */
function recordFrames(page: Page, who: string): void {
  page.on('websocket', (ws) => {
    const keep = (dir: string) => (frame: { payload: string | Buffer }) => {
      const text = String(frame.payload);
      if (/"type":"heartbeat(_ack)?"/.test(text)) return;
      const at = new Date().toISOString().slice(11, 23);
      frameLog.push(`${at} ${who} ${dir} ${text.replace(/"token":"[^"]*"/, '"token":"…"')}`);
    };
    ws.on('framesent', keep('>'));
    ws.on('framereceived', keep('<'));
  });
}

/** Zero serious or critical axe violations on the page as it is now. */
export async function expectAccessible(page: Page, where: string): Promise<void> {
  const results = await new AxeBuilder({ page }).analyze();
  const bad = results.violations
    .filter((v) => v.impact === 'serious' || v.impact === 'critical')
    .map((v) => `${v.id} (${v.impact}): ${v.help} at ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`);
  expect(bad, `axe on ${where}`).toEqual([]);
}

/** Press Tab (or Shift+Tab) until `target` has the focus. */
export async function tabTo(page: Page, target: Locator, backwards = false): Promise<void> {
  for (let i = 0; i < 40; i++) {
    // A short wait per look: a target that went away fails here instead of hanging the test.
    if (await target.evaluate((el) => el === document.activeElement, null, { timeout: 2000 }).catch(() => false)) return;
    await page.keyboard.press(backwards ? 'Shift+Tab' : 'Tab');
  }
  throw new Error(`could not reach ${target} with the keyboard`);
}
