import { committed, done } from './requests';

/**
 * IndexedDB cache of dataset-rows pages, so a dataset read once loads offline and a stopped download
 * resumes where it stopped. Self-contained (its own database, 'phi2-datasets'; the app's main store lives
 * in src/engine/store/) and written against the plain IDBFactory the Platform provides, so it needs no
 * IndexedDB globals under Node.
 *
 * One object store, 'datasets', keyed by [dataset, config, split, view, offset]: `view` is '' for the
 * /rows endpoint and the filter condition for /filter, whose offsets count filtered rows.
 */

export const HUB_DATASETS_DB = 'phi2-datasets';
const STORE = 'datasets';
const VERSION = 1;

export interface HubPageKey {
  dataset: string;
  config: string;
  split: string;
  view: string;
  offset: number;
}

export interface CachedHubPage extends HubPageKey {
  /** The page length asked for; a page is reused only for the same length. */
  length: number;
  features: unknown[];
  rows: Array<{ row_idx: number; row: Record<string, unknown>; truncated_cells: string[] }>;
  numRowsTotal: number;
  /** /filter on a very large dataset searches only part of it. */
  partial: boolean;
  storedAt: number;
}

/** The object-store-like interface the loader uses; a Map-backed fake satisfies it in tests. */
export interface HubRowsCache {
  get(key: HubPageKey): Promise<CachedHubPage | undefined>;
  put(page: CachedHubPage): Promise<void>;
}

export interface HubDatasetsCache extends HubRowsCache {
  /** Forgets every cached page of one dataset, or of all datasets. */
  clear(dataset?: string): Promise<void>;
  close(): void;
}

const keyOf = (k: HubPageKey): IDBValidKey => [k.dataset, k.config, k.split, k.view, k.offset];


export async function openHubDatasetsCache(indexedDB: IDBFactory): Promise<HubDatasetsCache> {
  const request = indexedDB.open(HUB_DATASETS_DB, VERSION);
  request.onupgradeneeded = () => {
    const store = request.result.createObjectStore(STORE);
    store.createIndex('dataset', 'dataset');
  };
  const db = await done(request);
  return {
    async get(key) {
      const page = (await done(db.transaction(STORE, 'readonly').objectStore(STORE).get(keyOf(key)))) as CachedHubPage | undefined;
      return page;
    },
    async put(page) {
      const tx = db.transaction(STORE, 'readwrite');
      tx.objectStore(STORE).put(page, keyOf(page));
      await committed(tx);
    },
    async clear(dataset) {
      const tx = db.transaction(STORE, 'readwrite');
      const store = tx.objectStore(STORE);
      if (dataset === undefined) store.clear();
      else {
        // Deleting inside the success callback keeps the transaction active (no await in between).
        const keys = store.index('dataset').getAllKeys(dataset);
        keys.onsuccess = () => keys.result.forEach((k) => store.delete(k));
      }
      await committed(tx);
    },
    close() {
      db.close();
    },
  };
}
