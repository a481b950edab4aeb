import { describe, expect, it } from 'vitest';
import { backoffDelay } from './backoff';

describe('backoffDelay', () => {
  const policy = { baseMs: 500, maxMs: 8000 };
  it('grows exponentially up to the cap', () => {
    const upper = (attempt: number) => backoffDelay(attempt, policy, () => 0.999999);
    expect(upper(0)).toBe(500);
    expect(upper(1)).toBe(1000);
    expect(upper(3)).toBe(4000);
    expect(upper(10)).toBe(8000);
  });

  it('jitters between half and all of the nominal delay', () => {
    expect(backoffDelay(2, policy, () => 0)).toBe(1000);
    expect(backoffDelay(2, policy, () => 0.5)).toBe(1500);
  });
});
