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

export async function withDeadline<T>(work: Promise<T> | (() => Promise<T>), ms: number): Promise<Timed<T>> {
  const started = performance.now();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<"timeout">((resolve) => {
    timer = setTimeout(() => resolve("timeout"), ms);
  });
  try {
    const promise = typeof work === "function" ? work() : work;
    const winner = await Promise.race([promise, timeout]);
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
    if (timer !== undefined) clearTimeout(timer);
  }
}
