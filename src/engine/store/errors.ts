import { formatBytes } from '../../shared/bytes';
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
  /** For 'corrupt' and 'missing' records: which one, so that it can be marked for repair. */
  record?: { modelId: string; key: string; index: number };

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

/**
 * Why a write was refused for lack of space, from what still has to be stored and what the browser
 * reports. Browsers estimate quota loosely and refuse for reasons of their own (a nearly full disk, a
 * cap below the estimate in private windows), so a refusal while the estimate shows room is said as
 * such, never as "more are needed" than is free.
 */
export function describeQuota(neededBytes: number, usage: number | null, quota: number | null): string {
  const kept = 'Everything stored so far is kept';
  if (usage === null || quota === null) {
    return (
      `Browser storage is full: the browser refused to store more, and does not say how much space this site has; ${formatBytes(neededBytes)} still have to be stored. ` +
      `${kept}: free some space (delete other models, or other sites\u2019 data) and resume.`
    );
  }
  const available = Math.max(0, quota - usage);
  const used = `${formatBytes(usage)} of ${formatBytes(quota)} used`;
  if (available < neededBytes) {
    return (
      `Browser storage is full: ${formatBytes(neededBytes)} more are needed but only ${formatBytes(available)} are available (${used}). ` +
      `${kept}: free some space (delete other models, or other sites\u2019 data) and resume.`
    );
  }
  return (
    `The browser refused to store more although it reports ${formatBytes(available)} free for this site (${used}), ` +
    `more than the ${formatBytes(neededBytes)} still to store: its estimate is approximate, and the disk itself may be nearly full ` +
    `or the browser may keep this site below that estimate (private windows do). ${kept}: free space on the disk, or delete other models ` +
    'or other sites\u2019 data, and resume.'
  );
}
