import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { TrailingThrottle } from './caretThrottle';

beforeEach(() => {
  vi.useFakeTimers();
  vi.setSystemTime(1_000_000);
});
afterEach(() => {
  vi.useRealTimers();
});

function setup(interval = 100) {
  let value = 0;
  const sent: { value: number; at: number }[] = [];
  const throttle = new TrailingThrottle(interval, () => {
    if (value < 0) return false; // nothing to send
    sent.push({ value, at: Date.now() });
    return true;
  });
  return {
    throttle,
    sent,
    move(v: number) {
      value = v;
      throttle.trigger();
    },
  };
}

describe('TrailingThrottle', () => {
  it('fires at once after a quiet interval', () => {
    const { sent, move } = setup();
    move(1);
    expect(sent).toEqual([{ value: 1, at: 1_000_000 }]);
    vi.advanceTimersByTime(150);
    move(2);
    expect(sent.at(-1)).toEqual({ value: 2, at: 1_000_150 });
  });

  it('folds a burst into one call at the end of the interval, with the last value', () => {
    const { sent, move } = setup();
    move(1);
    for (let i = 2; i <= 10; i++) {
      vi.advanceTimersByTime(10);
      move(i);
    }
    expect(sent).toHaveLength(1);
    vi.advanceTimersByTime(9);
    expect(sent).toHaveLength(1);
    vi.advanceTimersByTime(1);
    expect(sent).toEqual([
      { value: 1, at: 1_000_000 },
      { value: 10, at: 1_000_100 },
    ]);
  });

  it('never fires twice within one interval, however long the burst', () => {
    const { sent, move } = setup();
    for (let t = 0; t < 1000; t += 7) {
      move(t);
      vi.advanceTimersByTime(7);
    }
    vi.advanceTimersByTime(200);
    const gaps = sent.slice(1).map((s, i) => s.at - sent[i]!.at);
    expect(Math.min(...gaps)).toBeGreaterThanOrEqual(100);
    expect(sent.at(-1)!.value).toBe(994); // the last value always goes out
    expect(sent.length).toBeLessThanOrEqual(11);
  });

  it('does not use up the interval when the call sent nothing', () => {
    const { sent, move } = setup();
    move(-1);
    move(1);
    expect(sent).toEqual([{ value: 1, at: 1_000_000 }]);
  });

  it('drops the scheduled call when cancelled', () => {
    const { throttle, sent, move } = setup();
    move(1);
    move(2);
    expect(throttle.scheduled).toBe(true);
    throttle.cancel();
    vi.advanceTimersByTime(500);
    expect(sent.map((s) => s.value)).toEqual([1]);
  });
});
