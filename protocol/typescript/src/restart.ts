/**
 * When to restart a worker that went away, and when to give up.
 *
 * Crashes are counted in a sliding window: the `maxCrashes`-th crash within
 * `windowMs` ends supervision (a worker that dies on every start would
 * otherwise be restarted forever). Before that, each restart waits
 * `initialDelayMs * 2^(n-1)` (capped at `maxDelayMs`) where n is the number
 * of crashes in the window, so a worker that crashed once long ago restarts
 * at once again.
 */

export interface RestartPolicy {
  /** Give up at this many crashes within `windowMs` (default 5). */
  maxCrashes?: number;
  /** The sliding window (default 3 minutes). */
  windowMs?: number;
  /** Delay before the first restart (default 100 ms). */
  initialDelayMs?: number;
  /** Longest delay between restarts (default 10 s). */
  maxDelayMs?: number;
}

export type RestartDecision = { restart: true; delayMs: number; crashes: number } | { restart: false; crashes: number };

export class CrashWindow {
  private readonly times: number[] = [];
  readonly maxCrashes: number;
  readonly windowMs: number;
  private readonly initialDelayMs: number;
  private readonly maxDelayMs: number;

  constructor(policy: RestartPolicy = {}, private readonly now: () => number = Date.now) {
    this.maxCrashes = policy.maxCrashes ?? 5;
    this.windowMs = policy.windowMs ?? 180_000;
    this.initialDelayMs = policy.initialDelayMs ?? 100;
    this.maxDelayMs = policy.maxDelayMs ?? 10_000;
    if (!(this.maxCrashes >= 1)) throw new RangeError(`restart.maxCrashes must be at least 1, got ${policy.maxCrashes}`);
    if (!(this.windowMs > 0)) throw new RangeError(`restart.windowMs must be positive, got ${policy.windowMs}`);
  }

  /** Records a crash now and says whether (and after how long) to restart. */
  recordCrash(): RestartDecision {
    const t = this.now();
    this.times.push(t);
    while (this.times.length > 0 && this.times[0]! <= t - this.windowMs) this.times.shift();
    const crashes = this.times.length;
    if (crashes >= this.maxCrashes) return { restart: false, crashes };
    const delayMs = Math.min(this.initialDelayMs * 2 ** (crashes - 1), this.maxDelayMs);
    return { restart: true, delayMs, crashes };
  }
}
