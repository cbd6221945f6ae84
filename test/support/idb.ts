/**
 * IndexedDB for store tests: a fresh fake-indexeddb factory per test, and a disk that fills up.
 * `import 'fake-indexeddb/auto'` makes fake-indexeddb's classes the globals the idb package checks.
 */
import 'fake-indexeddb/auto';
import { IDBFactory } from 'fake-indexeddb';
import type { Platform, StorageInfo } from '../../src/engine/platform/types';

export type QuotaFailure = 'request' | 'commit';

/**
 * A disk of `budget` bytes for the bulky values: tensor records (data and scales) and the chunks of
 * adapters and checkpoints. Once they would exceed it, a write fails the way browsers report it: the
 * put request fails with QuotaExceededError ('request'), or the transaction aborts with it as its
 * error ('commit'). Rolled-back writes free their bytes.
 */
export class LimitedDisk {
  used = 0;
  failures = 0;
  private restore: (() => void) | null = null;

  constructor(
    public budget: number,
    private readonly mode: QuotaFailure = 'request',
  ) {}

  install(): this {
    const proto = (globalThis as unknown as { IDBObjectStore: { prototype: Record<string, unknown> } }).IDBObjectStore.prototype;
    const original = proto.put as (this: IDBObjectStore, value: unknown, key?: IDBValidKey) => IDBRequest;
    const disk = this;
    proto.put = function (this: IDBObjectStore & { transaction: IDBTransaction & Record<string, Function> }, value: unknown, key?: IDBValidKey) {
      const bytes = bulkyBytes(this.name, value);
      if (bytes && disk.used + bytes > disk.budget) {
        disk.failures++;
        if (disk.mode === 'request') {
          // fake-indexeddb's own request machinery: the operation throws, the request fails, the transaction aborts.
          return this.transaction._execRequestAsync({
            operation: () => {
              throw new DOMException('The quota has been exceeded.', 'QuotaExceededError');
            },
            source: this,
          });
        }
        const request = original.call(this, value, key);
        this.transaction._abort('QuotaExceededError');
        return request;
      }
      if (bytes) {
        disk.used += bytes;
        this.transaction.addEventListener('abort', () => (disk.used -= bytes));
      }
      return original.call(this, value, key);
    };
    this.restore = () => {
      proto.put = original;
    };
    return this;
  }

  uninstall(): void {
    this.restore?.();
    this.restore = null;
  }

  /** What the host reports: the real budget, or `reportedQuota` to model an optimistic estimate. */
  storage(reportedQuota?: number): StorageInfo {
    return {
      persist: async () => true,
      persisted: async () => false,
      estimate: async () => ({ usage: this.used, quota: reportedQuota ?? this.budget }),
    };
  }
}

/** What a put of `value` into `store` adds to the disk, as LimitedDisk counts it. */
function bulkyBytes(store: string, value: unknown): number {
  const v = value as { data?: unknown; scales?: ArrayBuffer | null };
  const data = v.data instanceof Blob ? v.data.size : v.data instanceof ArrayBuffer ? v.data.byteLength : 0;
  if (store === 'records') return data + (v.scales?.byteLength ?? 0);
  return store === 'adapters' || store === 'checkpoints' ? data : 0;
}

export function testPlatform(storage?: StorageInfo): Pick<Platform, 'indexedDB' | 'storage' | 'now'> {
  return {
    indexedDB: new IDBFactory(),
    now: () => performance.now(),
    storage: storage ?? { persist: async () => true, persisted: async () => true, estimate: async () => null },
  };
}
