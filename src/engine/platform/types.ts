import type { Locks } from './locks';

/**
 * What the engine receives from whoever hosts it. Only src/engine/platform/ knows whether that is a
 * browser worker or Node; everything else in the engine takes a Platform and never looks further.
 */
export interface Platform {
  /** 'browser' inside a page or worker, 'node' under Node with Dawn. For messages and reports only. */
  readonly kind: 'browser' | 'node';
  /** The WebGPU entry point, or null with the reason it is missing. */
  readonly gpu: GPU | null;
  readonly gpuMissingReason: string | null;
  /** IndexedDB: the browser's, or an in-memory implementation under Node. */
  readonly indexedDB: IDBFactory;
  /** Monotonic milliseconds (performance.now in both hosts). */
  now(): number;
  /** Persistent-storage and quota, where the host has them. */
  storage: StorageInfo;
  /** Fetch for downloads: the host's own, so tests can point it at a local server. */
  fetch: typeof fetch;
  /**
   * Locks that serialise writes to one stored model across tabs (Web Locks in a browser). Absent in
   * hand-made test platforms: then this process's locks only (platform/locks.ts localLocks).
   */
  locks?: Locks;
}

export interface StorageInfo {
  /** Asks the host to keep our data under storage pressure; resolves to whether it agreed. */
  persist(): Promise<boolean>;
  persisted(): Promise<boolean>;
  /** Bytes used and available to this origin, or null where the host cannot say. */
  estimate(): Promise<{ usage: number; quota: number } | null>;
}
