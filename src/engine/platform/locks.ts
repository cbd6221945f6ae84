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

/** Locks within this process only: per name, whether it is held and who waits, in order. */
export function processLocks(): Locks {
  /** A name is held while it has an entry; the entry lists the waiters' starts. */
  const queues = new Map<string, Array<() => void>>();
  const acquire = (name: string, signal?: AbortSignal) =>
    new Promise<void>((resolve, reject) => {
      const queue = queues.get(name);
      if (!queue) {
        queues.set(name, []);
        return resolve();
      }
      if (signal?.aborted) return reject(signal.reason);
      const start = () => {
        signal?.removeEventListener('abort', onAbort);
        resolve();
      };
      const onAbort = () => {
        const i = queue.indexOf(start);
        if (i >= 0) queue.splice(i, 1);
        reject(signal!.reason);
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      queue.push(start);
    });
  const release = (name: string) => {
    const next = queues.get(name)?.shift();
    if (next) next(); // handed over: still held
    else queues.delete(name);
  };
  const run = async <T>(name: string, fn: () => Promise<T>, signal?: AbortSignal): Promise<T> => {
    await acquire(name, signal);
    try {
      return await fn();
    } finally {
      release(name);
    }
  };
  return {
    exclusive(name, fn, options = {}) {
      if (queues.has(name)) options.onWait?.();
      return run(name, fn, options.signal);
    },
    async ifFree(name, fn) {
      if (queues.has(name)) return { held: true };
      return { held: false, value: await run(name, fn) };
    },
  };
}

/** This process's locks, for callers given no Platform.locks: one registry, so they still exclude each other. */
export const localLocks: Locks = processLocks();

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
