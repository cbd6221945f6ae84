export type StoreErrorCode =
  /** IndexedDB is missing or refused to open (private mode, blocked by another tab, disabled). */
  | 'unavailable'
  /** The browser's storage quota is exhausted. What was stored before is intact. */
  | 'quota'
  /** A stored record fails its checksum or does not match its entry: the data is damaged. */
  | 'corrupt'
  /** A model or record that should exist does not (deleted in another tab, never completed). */
  | 'missing'
  /** Another IndexedDB failure. */
  | 'failed';

export class StoreError extends Error {
  constructor(
    readonly code: StoreErrorCode,
    message: string,
    /** For 'quota': bytes still to store and bytes the browser reports free (null when it cannot say). */
    readonly needed?: number,
    readonly available?: number | null,
  ) {
    super(message);
    this.name = 'StoreError';
  }
}

/**
 * Whether an IndexedDB failure means the quota is exhausted. Browsers report it as a
 * QuotaExceededError on the request or as the error of the aborted transaction (legacy code 22).
 */
export function isQuotaError(err: unknown): boolean {
  const e = err as { name?: string; code?: number; cause?: unknown } | null;
  if (!e || typeof e !== 'object') return false;
  if (e.name === 'QuotaExceededError' || e.code === 22) return true;
  return e.cause !== undefined && e.cause !== err && isQuotaError(e.cause);
}

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n / 1024;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${v.toFixed(v < 10 ? 2 : 1)} ${units[u]}`;
}
