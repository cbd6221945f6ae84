/**
 * Named exclusive locks that serialise writes to shared storage. In a browser they are Web Locks
 * (navigator.locks), shared by every tab and worker of the origin, so two tabs never write one model at
 * once; under Node, and in a browser without Web Locks, an in-process queue gives the same guarantee
 * within one process (there is no other writer there). The engine only sees this interface.
 */
export interface Locks {
  /**
   * Runs `fn` while holding the lock `name`. When another holder has it, `onWait` is called once and
   * the call waits its turn; `signal` gives up waiting (rejecting with its reason).
   */
  exclusive<T>(name: string, fn: () => Promise<T>, options?: { signal?: AbortSignal; onWait?: () => void }): Promise<T>;
  /** Runs `fn` holding the lock if nobody holds it; returns `{ held: true }` without running it otherwise. */
  ifFree<T>(name: string, fn: () => Promise<T>): Promise<{ held: false; value: T } | { held: true }>;
}

/** Locks within this process only: a promise chain per name. */
export function processLocks(): Locks {
  const tails = new Map<string, Promise<void>>();
  const busy = new Set<string>();
  const run = async <T>(name: string, fn: () => Promise<T>, signal?: AbortSignal): Promise<T> => {
    const before = tails.get(name) ?? Promise.resolve();
    let release!: () => void;
    const mine = new Promise<void>((resolve) => (release = resolve));
    const tail = before.then(() => mine);
    tails.set(name, tail);
    try {
      await waitFor(before, signal);
      busy.add(name);
      try {
        return await fn();
      } finally {
        busy.delete(name);
      }
    } finally {
      release();
      if (tails.get(name) === tail) tails.delete(name);
    }
  };
  return {
    exclusive(name, fn, options = {}) {
      if (busy.has(name) || tails.has(name)) options.onWait?.();
      return run(name, fn, options.signal);
    },
    async ifFree(name, fn) {
      if (tails.has(name)) return { held: true };
      return { held: false, value: await run(name, fn) };
    },
  };
}

/** Web Locks, where the host has them (every tab and worker of the origin shares them). */
export function webLocks(locks: LockManager): Locks {
  return {
    async exclusive(name, fn, options = {}) {
      // Asked first without waiting, to know whether someone else holds it and say so.
      const first = await locks.request(name, { ifAvailable: true }, async (lock) => (lock ? { value: await fn() } : null));
      if (first) return first.value;
      options.onWait?.();
      return locks.request(name, { signal: options.signal }, () => fn());
    },
    async ifFree(name, fn) {
      const got = await locks.request(name, { ifAvailable: true }, async (lock) => (lock ? { value: await fn() } : null));
      return got ? { held: false, value: got.value } : { held: true };
    },
  };
}

function waitFor(p: Promise<void>, signal?: AbortSignal): Promise<void> {
  if (!signal) return p;
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(
      () => {
        signal.removeEventListener('abort', onAbort);
        resolve();
      },
      (err) => {
        signal.removeEventListener('abort', onAbort);
        reject(err);
      },
    );
  });
}
