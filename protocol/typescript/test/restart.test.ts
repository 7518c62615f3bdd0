/**
 * `CrashWindow`, the restart policy, with an injected clock: the backoff
 * doubles per crash in the window up to its cap, old crashes slide out of the
 * window, and the 5th crash within 3 minutes (the defaults) gives up.
 */

import { describe, test } from "node:test";
import assert from "node:assert/strict";

import { CrashWindow, type RestartDecision } from "../src/restart.js";

/** A clock the test moves by hand. */
function clock(start = 1_000_000) {
  let now = start;
  return {
    now: () => now,
    advance(ms: number) {
      now += ms;
    },
  };
}

function delays(decisions: RestartDecision[]): Array<number | "give up"> {
  return decisions.map((d) => (d.restart ? d.delayMs : "give up"));
}

describe("CrashWindow", () => {
  test("the defaults: 100 ms doubling, 5 crashes within 3 minutes", () => {
    const c = clock();
    const w = new CrashWindow({}, c.now);
    assert.equal(w.maxCrashes, 5);
    assert.equal(w.windowMs, 180_000);
    const seen: RestartDecision[] = [];
    for (let i = 0; i < 5; i++) {
      seen.push(w.recordCrash());
      c.advance(1_000);
    }
    assert.deepEqual(seen, [
      { restart: true, delayMs: 100, crashes: 1 },
      { restart: true, delayMs: 200, crashes: 2 },
      { restart: true, delayMs: 400, crashes: 3 },
      { restart: true, delayMs: 800, crashes: 4 },
      { restart: false, crashes: 5 },
    ]);
  });

  test("the delay doubles per crash in the window and stops at maxDelayMs", () => {
    const c = clock();
    const w = new CrashWindow({ initialDelayMs: 10, maxDelayMs: 50, maxCrashes: 100 }, c.now);
    const seen: RestartDecision[] = [];
    for (let i = 0; i < 7; i++) {
      seen.push(w.recordCrash());
      c.advance(10);
    }
    assert.deepEqual(delays(seen), [10, 20, 40, 50, 50, 50, 50]);
    assert.deepEqual(seen.map((d) => d.crashes), [1, 2, 3, 4, 5, 6, 7]);
  });

  test("a cap below the initial delay wins", () => {
    const w = new CrashWindow({ initialDelayMs: 500, maxDelayMs: 200 }, clock().now);
    assert.deepEqual(w.recordCrash(), { restart: true, delayMs: 200, crashes: 1 });
  });

  test("gives up at the 5th crash within 3 minutes, even at the window's last millisecond", () => {
    const c = clock();
    const w = new CrashWindow({}, c.now);
    for (let i = 0; i < 4; i++) {
      assert.equal(w.recordCrash().restart, true);
      c.advance(44_999); // 4 gaps: the 5th crash is 179,996 ms after the 1st
    }
    assert.deepEqual(w.recordCrash(), { restart: false, crashes: 5 });
  });

  test("5 crashes spread over more than 3 minutes do not give up: the window slides", () => {
    const c = clock();
    const w = new CrashWindow({}, c.now);
    const seen: RestartDecision[] = [];
    for (let i = 0; i < 5; i++) {
      seen.push(w.recordCrash());
      c.advance(45_000); // the 5th crash is exactly 180 s after the 1st: the 1st has left
    }
    assert.deepEqual(seen.map((d) => d.crashes), [1, 2, 3, 4, 4]);
    assert.deepEqual(delays(seen), [100, 200, 400, 800, 800]);
    // ...and it keeps sliding: one crash every 45 s is never 5 within the window.
    for (let i = 0; i < 20; i++) {
      const d = w.recordCrash();
      assert.equal(d.restart, true);
      assert.equal(d.crashes, 4);
      c.advance(45_000);
    }
  });

  test("a crash long after the last one restarts after the initial delay again", () => {
    const c = clock();
    const w = new CrashWindow({}, c.now);
    w.recordCrash();
    w.recordCrash();
    assert.deepEqual(w.recordCrash(), { restart: true, delayMs: 400, crashes: 3 });
    c.advance(180_001);
    assert.deepEqual(w.recordCrash(), { restart: true, delayMs: 100, crashes: 1 });
    // The window only counts crashes within it: two more quickly make 3.
    w.recordCrash();
    assert.deepEqual(w.recordCrash(), { restart: true, delayMs: 400, crashes: 3 });
  });

  test("crashes partly out of the window: only the recent ones count", () => {
    const c = clock();
    const w = new CrashWindow({}, c.now);
    w.recordCrash(); // t = 0
    c.advance(100_000);
    w.recordCrash(); // t = 100 s
    w.recordCrash();
    c.advance(90_000); // t = 190 s: the crash at 0 is out, the two at 100 s are in
    assert.deepEqual(w.recordCrash(), { restart: true, delayMs: 400, crashes: 3 });
    assert.deepEqual(w.recordCrash(), { restart: true, delayMs: 800, crashes: 4 });
    assert.deepEqual(w.recordCrash(), { restart: false, crashes: 5 });
  });

  test("custom maxCrashes and windowMs", () => {
    const c = clock();
    const w = new CrashWindow({ maxCrashes: 2, windowMs: 1_000, initialDelayMs: 1 }, c.now);
    assert.deepEqual(w.recordCrash(), { restart: true, delayMs: 1, crashes: 1 });
    c.advance(1_000);
    assert.deepEqual(w.recordCrash(), { restart: true, delayMs: 1, crashes: 1 });
    c.advance(999);
    assert.deepEqual(w.recordCrash(), { restart: false, crashes: 2 });
    // maxCrashes 1: the first crash already gives up.
    assert.deepEqual(new CrashWindow({ maxCrashes: 1 }, c.now).recordCrash(), { restart: false, crashes: 1 });
  });

  test("maxCrashes below 1 is refused", () => {
    assert.throws(() => new CrashWindow({ maxCrashes: 0 }), RangeError);
    assert.throws(() => new CrashWindow({ maxCrashes: Number.NaN }), RangeError);
  });

  test("a window that is not positive is refused (it could never count a crash)", () => {
    assert.throws(() => new CrashWindow({ windowMs: 0 }), /windowMs must be positive/);
    assert.throws(() => new CrashWindow({ windowMs: -1 }), RangeError);
  });
});
