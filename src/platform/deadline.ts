/**
 * Every store call on the decision path runs under a deadline. The outcome is a value: the caller
 * goes on without the store (fails open) on a timeout or an error, and reports which happened.
 */
export type Timed<T> =
  | { readonly ok: true; readonly value: T; readonly ms: number }
  | {
      readonly ok: false;
      readonly reason: "timeout" | "error";
      readonly error?: string;
      readonly ms: number;
    };

/**
 * One timer that several store calls can share: a page's reads (the visitor's object, traits) run
 * side by side under the same deadline, so one timer serves them all; a bulk job checks `expired`
 * before each step. `cancel` when they are done.
 */
export interface Deadline {
  readonly passed: Promise<"timeout">;
  /** True once the time is up (and the `passed` promise has resolved or is about to). */
  readonly expired: boolean;
  cancel(): void;
}

/** A class, not a closure per call: the page path makes one per request. */
class Timer implements Deadline {
  readonly passed: Promise<"timeout">;
  expired = false;
  #timer: ReturnType<typeof setTimeout> | undefined;

  constructor(ms: number) {
    this.passed = new Promise<"timeout">((resolve) => {
      this.#timer = setTimeout(() => {
        this.expired = true;
        resolve("timeout");
      }, ms);
    });
  }

  cancel(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
  }
}

export function deadlineIn(ms: number): Deadline {
  return new Timer(ms);
}

export async function withDeadline<T>(
  work: Promise<T> | (() => Promise<T>),
  limit: number | Deadline,
): Promise<Timed<T>> {
  const started = performance.now();
  const deadline = typeof limit === "number" ? deadlineIn(limit) : limit;
  try {
    const promise = typeof work === "function" ? work() : work;
    const winner = await Promise.race([promise, deadline.passed]);
    const elapsed = performance.now() - started;
    if (winner === "timeout") return { ok: false, reason: "timeout", ms: elapsed };
    return { ok: true, value: winner as T, ms: elapsed };
  } catch (err) {
    return {
      ok: false,
      reason: "error",
      error: err instanceof Error ? err.message : String(err),
      ms: performance.now() - started,
    };
  } finally {
    if (typeof limit === "number") deadline.cancel();
  }
}
