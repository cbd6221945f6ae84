import { HubError, SafetensorsError } from './errors';

export interface RetryPolicy {
  /** Attempts in a row that make no progress before giving up (the first try included). */
  attempts: number;
  /**
   * Attempts while the server has not answered once in this task (offline, a wrong address, a server
   * that is down): a few quick ones ride out a blip, more would only keep the user waiting.
   * Defaults to UNREACHABLE_ATTEMPTS, never more than `attempts`.
   */
  unreachableAttempts?: number;
  /** Delay before the first retry; doubles each time, with ±25% jitter, up to maxDelayMs. */
  baseDelayMs: number;
  maxDelayMs: number;
}

export const UNREACHABLE_ATTEMPTS = 3;

export const DEFAULT_RETRY: RetryPolicy = { attempts: 6, unreachableAttempts: UNREACHABLE_ATTEMPTS, baseDelayMs: 1000, maxDelayMs: 30_000 };

/** A wait before another try, as the page shows it: one line that counts, not one line per try. */
export interface RetryStatus {
  /** What failed to arrive (a file name, a page of rows). */
  what: string;
  /** The attempt about to be made (2 for the first retry), and the most there will be. */
  attempt: number;
  attempts: number;
  delayMs: number;
  /** The failure, in words. */
  reason: string;
  /** Nothing has answered in this task: the server cannot be reached at all. */
  unreachable: boolean;
}

/** Whether a failure means no answer came at all (the request never reached a server). */
export function isUnreachable(err: unknown): boolean {
  return err instanceof HubError && err.code === 'unreachable';
}

/**
 * How many attempts a failure gets: the quick few while nothing has answered in this task and the
 * failure is another "no answer"; the full policy once the server has answered (a dropped connection
 * in the middle of a download is usually a blip worth riding out).
 */
export function attemptsFor(err: unknown, answeredBefore: boolean, policy: RetryPolicy): number {
  if (answeredBefore || !isUnreachable(err)) return policy.attempts;
  return Math.min(policy.attempts, policy.unreachableAttempts ?? UNREACHABLE_ATTEMPTS);
}

/** The wait before retry number `retry` (1-based). */
export function backoffDelay(retry: number, policy: RetryPolicy, random: () => number = Math.random): number {
  const base = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** (retry - 1));
  return Math.round(base * (0.75 + 0.5 * random()));
}

/** Waits, or rejects as soon as the signal fires: with an 'aborted' HubError, or what `aborted` gives. */
export function sleep(ms: number, signal?: AbortSignal, aborted: () => unknown = abortedError): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(aborted());
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(aborted());
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

export function abortedError(file?: string): HubError {
  return new HubError('aborted', 'The download was stopped; it resumes from where it stopped when started again.', file);
}

/**
 * Failures worth another try: no answer, dropped connections, server errors (5xx), rate limiting (429), and,
 * from a network source, a body that ended early. Everything else (404, a malformed file, a full
 * disk) would fail the same way again.
 */
export function isRetryable(err: unknown, remote: boolean): boolean {
  if (err instanceof HubError) {
    if (err.code === 'network' || err.code === 'unreachable' || err.code === 'rate-limited' || err.code === 'bad-response') return true;
    return err.code === 'http' && err.status !== undefined && err.status >= 500;
  }
  if (err instanceof SafetensorsError) return remote && err.code === 'truncated';
  return false;
}
