/**
 * At most one call per interval, and never a lost last one: the first trigger after a quiet
 * interval fires at once; triggers that come sooner are folded into one call at the end of
 * the interval. The callback reads the latest value itself when it fires, so the last
 * position is always the one sent (protocol.md, "The writer's caret"). A callback that
 * returns false sent nothing, and does not use up the interval.
 */
export interface Clock {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

const realClock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (handle) => clearTimeout(handle as ReturnType<typeof setTimeout>),
};

export class TrailingThrottle {
  private lastAt = Number.NEGATIVE_INFINITY;
  private timer: unknown = null;

  constructor(
    private readonly intervalMs: number,
    private readonly fire: () => boolean,
    private readonly clock: Clock = realClock,
  ) {}

  /** A call is scheduled and has not run yet. */
  get scheduled(): boolean {
    return this.timer !== null;
  }

  trigger(): void {
    if (this.timer !== null) return; // the scheduled call will read the newest value
    const wait = this.lastAt + this.intervalMs - this.clock.now();
    if (wait <= 0) {
      this.run();
      return;
    }
    this.timer = this.clock.setTimeout(() => {
      this.timer = null;
      this.run();
    }, wait);
  }

  cancel(): void {
    if (this.timer !== null) this.clock.clearTimeout(this.timer);
    this.timer = null;
  }

  private run(): void {
    if (this.fire()) this.lastAt = this.clock.now();
  }
}
