import { HubError, SafetensorsError } from './errors';

export interface RetryPolicy {
  /** Attempts in a row that make no progress before giving up (the first try included). */
  attempts: number;
  /** Delay before the first retry; doubles each time, with ±25% jitter, up to maxDelayMs. */
  baseDelayMs: number;
  maxDelayMs: number;
}

export const DEFAULT_RETRY: RetryPolicy = { attempts: 6, baseDelayMs: 1000, maxDelayMs: 30_000 };

/** The wait before retry number `retry` (1-based). */
export function backoffDelay(retry: number, policy: RetryPolicy, random: () => number = Math.random): number {
  const base = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** (retry - 1));
  return Math.round(base * (0.75 + 0.5 * random()));
}

/** Waits, or rejects with an 'aborted' HubError as soon as the signal fires. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(abortedError());
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(abortedError());
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

export function abortedError(file?: string): HubError {
  return new HubError('aborted', 'The download was stopped; it resumes from where it stopped when started again.', file);
}

/**
 * Failures worth another try: dropped connections, server errors (5xx), rate limiting (429), and,
 * from a network source, a body that ended early. Everything else (404, a malformed file, a full
 * disk) would fail the same way again.
 */
export function isRetryable(err: unknown, remote: boolean): boolean {
  if (err instanceof HubError) {
    if (err.code === 'network' || err.code === 'rate-limited' || err.code === 'bad-response') return true;
    return err.code === 'http' && err.status !== undefined && err.status >= 500;
  }
  if (err instanceof SafetensorsError) return remote && err.code === 'truncated';
  return false;
}
