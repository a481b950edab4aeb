import { describe, expect, it } from 'vitest';
import { DisconnectedError, ProtocolError } from './socket';
import {
  askErrorText,
  askResultText,
  editRequestText,
  idleLossText,
  idleWarningText,
  secondsLeft,
} from './writerNotices';

const bob = { id: 'u2', name: 'bob' };
const carol = { id: 'u3', name: 'carol' };
const refused = (code: 'rate_limited' | 'forbidden' | 'bad_request' | 'internal', extra = {}) =>
  new ProtocolError({ type: 'error', code, message: `${code} message`, ...extra });

describe('writer notices', () => {
  it('counts whole seconds down to zero', () => {
    expect(secondsLeft(10_000, 0)).toBe(10);
    expect(secondsLeft(10_000, 1)).toBe(10);
    expect(secondsLeft(10_000, 9_001)).toBe(1);
    expect(secondsLeft(10_000, 12_000)).toBe(0);
  });

  it('names the next writer in the warning and after the hand-off', () => {
    expect(idleWarningText('bob')).toBe('You have not typed for a while: the write token will be handed to bob.');
    expect(idleWarningText(null)).toContain('the next person in line');
    expect(idleLossText('bob', 120)).toBe('The token was handed to bob after 120 s idle.');
    expect(idleLossText(null, null)).toBe('The token was handed to the next person in line because you were idle.');
  });

  it('lists who would like to edit', () => {
    expect(editRequestText([bob])).toBe('bob would like to edit');
    expect(editRequestText([bob, carol])).toBe('bob and carol would like to edit');
    expect(editRequestText([bob, carol, { id: 'u4', name: 'dave' }])).toBe('bob, carol and dave would like to edit');
  });

  it('says who was asked', () => {
    expect(askResultText(bob)).toBe('bob was asked to hand over the token.');
    expect(askResultText(null)).toMatch(/^Nobody holds the token/);
  });

  it('explains a refused request, with the wait the server gave', () => {
    expect(askErrorText(refused('rate_limited', { retry_after_ms: 7200 }))).toBe(
      'You asked a moment ago: you can ask again in 8 s.',
    );
    expect(askErrorText(refused('rate_limited'))).toBe('You asked a moment ago: you can ask again in a few seconds.');
    expect(askErrorText(refused('forbidden'))).toBe('You may not edit this note.');
    expect(askErrorText(refused('internal'))).toBe('Could not ask: internal message.');
    expect(askErrorText(new DisconnectedError())).toBe('Could not ask: not connected.');
  });
});
