/**
 * The writer, as the others meet them, in real Chromium against a real `collab serve`
 * (protocol.md, "The writer's caret" and "Idle hand-off"): viewers see the holder's caret
 * and name move; a holder who walks away is warned, can keep the token, and loses it to the
 * next in line when idle; a waiter can ask the holder, who can hand over. Axe on every new
 * state, and every new button reached by keyboard.
 */
import { editor, expect, expectAccessible, expectReadOnly, lockText, openAs, PASSWORD, shot, tabTo, test } from './fixtures';
import type { CollabServer } from './server';

/** A note of alice's that bob (and carol) may write. */
async function sharedNote(server: CollabServer, title: string, content: string, users = ['bob']) {
  const alice = await server.register('alice', PASSWORD);
  const note = await server.api<{ id: string }>('POST', '/api/notes', alice.token, { title, content, visibility: 'private' });
  for (const name of users) {
    const user = await server.register(name, PASSWORD);
    await server.api('PUT', `/api/notes/${note.id}/access/${user.user.id}`, alice.token, { access: 'write' });
  }
  return note;
}

test("viewers see the writer's caret and selection move, labelled with the writer's name", async ({ browser, server }) => {
  const note = await sharedNote(server, 'Release notes', '# Release 2.4\n\nFaster sync.\nFewer surprises.', ['bob', 'carol']);
  const a = await openAs(browser, server, 'alice');
  const b = await openAs(browser, server, 'bob');
  const c = await openAs(browser, server, 'carol');
  for (const p of [a.page, b.page, c.page]) {
    await p.goto(`${server.url}/#/notes/${note.id}`);
    await expect(lockText(p)).toHaveText('Free - start editing');
  }
  await a.page.getByRole('button', { name: 'Start editing' }).click();
  await expect(lockText(a.page)).toHaveText('You are editing');
  await expect(editor(a.page)).toBeFocused();

  // Alice goes to the end of the third line and types there.
  const kb = a.page.keyboard;
  await kb.press('Control+Home');
  await kb.press('ArrowDown');
  await kb.press('ArrowDown');
  await kb.press('End');
  await kb.type(' Now 2× faster 😀', { delay: 20 });
  for (const viewer of [b.page, c.page]) {
    await expect(editor(viewer)).toContainText('Faster sync. Now 2× faster 😀');
    const caret = viewer.getByTestId('writer-caret');
    await expect(caret).toHaveCount(1);
    await expect(caret).toHaveAttribute('data-name', 'alice');
    // Code points on the wire: the rocket is one column.
    await expect(viewer.getByTestId('writer-where')).toHaveText("alice's cursor is on line 3, column 29.");
  }
  // The name label is drawn next to the caret, and never becomes part of the text.
  const label = await b.page
    .getByTestId('writer-caret')
    .evaluate((el) => getComputedStyle(el, '::after').content);
  expect(label).toBe('"alice"');
  await expect(editor(b.page)).not.toContainText('alice');
  const atEndOfLine = await b.page.getByTestId('writer-caret').boundingBox();

  // Moving without typing moves the caret too; a selection is shown as a selection.
  await kb.press('Home');
  await expect(b.page.getByTestId('writer-where')).toHaveText("alice's cursor is on line 3, column 1.");
  const atStart = await b.page.getByTestId('writer-caret').boundingBox();
  expect(atStart!.x).toBeLessThan(atEndOfLine!.x - 50);
  expect(Math.abs(atStart!.y - atEndOfLine!.y)).toBeLessThan(4);
  await kb.press('Shift+End');
  await expect(b.page.getByTestId('writer-where')).toHaveText(
    "alice's cursor is on line 3, column 29, 28 characters selected.",
  );
  await expect(b.page.locator('.cm-writer-selection')).toHaveText('Faster sync. Now 2× faster 😀');
  await expectReadOnly(b.page);
  await expectAccessible(b.page, "note page with the writer's caret");
  await shot(b.page, 'live-caret', true);

  // The holder draws no caret of its own; once alice stops, the viewers' caret goes.
  await expect(a.page.getByTestId('writer-caret')).toHaveCount(0);
  await a.page.getByRole('button', { name: 'Stop editing' }).click();
  for (const viewer of [b.page, c.page]) {
    await expect(lockText(viewer)).toHaveText('Free - start editing');
    await expect(viewer.getByTestId('writer-caret')).toHaveCount(0);
    await expect(viewer.getByTestId('writer-where')).toHaveCount(0);
  }

  // Bob takes over: alice and carol now see bob's caret.
  await b.page.getByRole('button', { name: 'Start editing' }).click();
  await expect(lockText(b.page)).toHaveText('You are editing');
  await b.page.keyboard.press('Control+End');
  for (const viewer of [a.page, c.page]) {
    await expect(viewer.getByTestId('writer-caret')).toHaveAttribute('data-name', 'bob');
    await expect(viewer.getByTestId('writer-where')).toHaveText("bob's cursor is on line 4, column 17.");
  }
  for (const ctx of [a.context, b.context, c.context]) await ctx.close();
});

test.describe('idle hand-off', () => {
  // Hand-off after 12 s without typing, warned 10 s before (the warning at 2 s idle): time
  // enough, even on a busy machine, to look at the warning before keeping the token.
  test.use({ serverEnv: { COLLAB_IDLE_HANDOFF_S: '12', COLLAB_IDLE_WARNING_S: '10' } });

  test('the idle holder is warned, keeps the token once, then loses it to the waiter', async ({ browser, server }) => {
    test.slow(); // two idle periods of 12 s on the clock
    const note = await sharedNote(server, 'Standup', 'Yesterday:');
    const a = await openAs(browser, server, 'alice');
    const b = await openAs(browser, server, 'bob');
    await a.page.goto(`${server.url}/#/notes/${note.id}`);
    await a.page.getByRole('button', { name: 'Start editing' }).click();
    await expect(lockText(a.page)).toHaveText('You are editing');
    await a.page.keyboard.press('Control+End');
    await a.page.keyboard.type(' shipped the caret', { delay: 10 });
    await expect(a.page.getByTestId('save-state')).toHaveText('All changes saved');

    // Nobody waits: no warning however long alice idles.
    await a.page.waitForTimeout(3500);
    await expect(a.page.getByTestId('idle-warning')).toHaveCount(0);

    await b.page.goto(`${server.url}/#/notes/${note.id}`);
    await b.page.getByRole('button', { name: 'Request to edit (wait in line)' }).click();
    await expect(lockText(b.page)).toHaveText('alice is editing - you are 1st in line');

    // Alice has been idle longer than the limit: warned now, with the full warning time.
    const warning = a.page.getByTestId('idle-warning');
    await expect(warning).toBeVisible();
    await expect(warning.getByRole('alert')).toHaveText(
      'You have not typed for a while: the write token will be handed to bob.',
    );
    await expect(warning.getByRole('timer')).toHaveText(/^Handing over in ([5-9]|10) s$/);
    const warnedAt = Date.now();
    await shot(a.page, 'idle-warning', true);
    await expectAccessible(a.page, 'idle warning');

    // Keep editing, by keyboard alone: Shift+Tab back from the text to the button.
    await expect(editor(a.page)).toBeFocused();
    await tabTo(a.page, warning.getByRole('button', { name: 'Keep editing' }), true);
    await a.page.keyboard.press('Enter');
    await expect(warning).toHaveCount(0);
    await expect(editor(a.page)).toBeFocused(); // back where alice was typing

    // The first deadline passes (hand-offs are checked every second): alice still holds the token.
    await a.page.waitForTimeout(Math.max(0, warnedAt + 10_000 + 1200 - Date.now()));
    await expect(lockText(a.page)).toHaveText('You are editing');
    await expect(lockText(b.page)).toHaveText('alice is editing - you are 1st in line');

    // Alice idles again: warned again (since 2 s after keep), then the token moves to bob.
    await expect(warning).toBeVisible();
    await expect(lockText(b.page)).toHaveText('You are editing', { timeout: 20_000 });
    const notice = a.page.getByRole('alert').filter({ hasText: 'The token was handed to bob' });
    await expect(notice).toHaveText(/^The token was handed to bob after (12|13|14) s idle\.Dismiss$/);
    await expect(warning).toHaveCount(0);
    await expectReadOnly(a.page);
    await expect(lockText(a.page)).toHaveText('bob is editing');
    await expectAccessible(a.page, 'after an idle hand-off');

    await expectReadOnly(b.page, false);
    await b.page.keyboard.press('Control+End');
    await b.page.keyboard.type(' and bob took over', { delay: 10 });
    await expect(editor(a.page)).toContainText('Yesterday: shipped the caret and bob took over');
    await a.context.close();
    await b.context.close();
  });
});

test('a waiter asks the holder, who is told at once and hands over', async ({ browser, server }) => {
  const note = await sharedNote(server, 'Budget', 'Q3: ', ['bob', 'carol']);
  const a = await openAs(browser, server, 'alice');
  const b = await openAs(browser, server, 'bob');
  const c = await openAs(browser, server, 'carol');
  await a.page.goto(`${server.url}/#/notes/${note.id}`);
  await a.page.getByRole('button', { name: 'Start editing' }).click();
  await expect(lockText(a.page)).toHaveText('You are editing');
  await a.page.keyboard.press('Control+End');
  await a.page.keyboard.type('12k', { delay: 10 });
  for (const p of [b.page, c.page]) await p.goto(`${server.url}/#/notes/${note.id}`);

  // Only someone in line is offered to ask.
  await expect(lockText(b.page)).toHaveText('alice is editing');
  await expect(b.page.getByRole('button', { name: /^Ask/ })).toHaveCount(0);
  await b.page.getByRole('button', { name: 'Request to edit (wait in line)' }).click();
  await expect(lockText(b.page)).toHaveText('alice is editing - you are 1st in line');
  const ask = b.page.getByRole('button', { name: 'Ask alice for the token' });
  await tabTo(b.page, ask, true);
  await b.page.keyboard.press('Enter');
  await expect(b.page.getByTestId('ask-status')).toHaveText('alice was asked to hand over the token.');
  // Asking again at once is refused by the server's rate (one per 10 s), and said so.
  await ask.click();
  await expect(b.page.getByTestId('ask-status')).toHaveText(/^You asked a moment ago: you can ask again in \d+ s\.$/);

  // Alice hears it at once, politely, while still typing.
  const request = a.page.getByTestId('edit-request');
  await expect(request.getByRole('status')).toHaveText('bob would like to edit.');
  await expect(editor(a.page)).toBeFocused();
  await a.page.keyboard.type(', 3k spare', { delay: 10 });
  await expect(editor(b.page)).toContainText('Q3: 12k, 3k spare');
  await expect(c.page.getByTestId('edit-request')).toHaveCount(0);
  await expectAccessible(a.page, 'holder with an edit request');
  await expectAccessible(b.page, 'waiter who asked');

  // Carol queues behind bob; alice hands over by keyboard: bob (first in line) gets it.
  await c.page.getByRole('button', { name: 'Request to edit (wait in line)' }).click();
  await expect(lockText(c.page)).toHaveText('alice is editing - you are 2nd in line');
  await expect(a.page.getByTestId('save-state')).toHaveText('All changes saved');
  await tabTo(a.page, request.getByRole('button', { name: 'Hand over' }), true);
  await a.page.keyboard.press('Enter');
  await expect(lockText(b.page)).toHaveText('You are editing');
  await expect(lockText(a.page)).toHaveText('bob is editing (1 waiting)');
  await expect(a.page.getByTestId('edit-request')).toHaveCount(0);
  await expect(lockText(c.page)).toHaveText('bob is editing - you are 1st in line');
  await expect(c.page.getByRole('button', { name: 'Ask bob for the token' })).toBeVisible();
  await b.page.keyboard.press('Control+End');
  await b.page.keyboard.type(' (bob)', { delay: 10 });
  await expect(editor(c.page)).toContainText('Q3: 12k, 3k spare (bob)');

  // Dismissing a request keeps the token.
  await c.page.getByRole('button', { name: 'Ask bob for the token' }).click();
  await expect(b.page.getByTestId('edit-request').getByRole('status')).toHaveText('carol would like to edit.');
  await b.page.getByTestId('edit-request').getByRole('button', { name: 'Dismiss' }).click();
  await expect(b.page.getByTestId('edit-request').getByRole('status')).toHaveText('');
  await expect(lockText(b.page)).toHaveText('You are editing');
  await expect(editor(b.page)).toBeFocused();
  for (const ctx of [a.context, b.context, c.context]) await ctx.close();
});
