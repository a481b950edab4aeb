/** Reconnect delays: exponential growth with "equal jitter" so a restarted server is not hit
 * by every client at the same instant (a reconnect storm), yet no client waits far longer
 * than the nominal delay. */
export interface BackoffPolicy {
  /** Delay before the first retry, in ms. */
  baseMs: number;
  /** Upper bound of the nominal delay, in ms. */
  maxMs: number;
}

export const DEFAULT_BACKOFF: BackoffPolicy = { baseMs: 500, maxMs: 15_000 };

/**
 * Delay before retry number `attempt` (0 for the first): the nominal delay
 * `min(maxMs, baseMs * 2^attempt)` halved, plus a uniformly random part of the other half.
 * `random` returns a number in [0, 1).
 */
export function backoffDelay(attempt: number, policy: BackoffPolicy, random: () => number): number {
  const nominal = Math.min(policy.maxMs, policy.baseMs * 2 ** Math.min(attempt, 30));
  return Math.round(nominal / 2 + random() * (nominal / 2));
}
