import type { DBSchema } from 'idb';
import { openDatabase, writeTransaction } from './database';

/**
 * IndexedDB cache of dataset-rows pages, so a dataset read once loads offline and a stopped download
 * resumes where it stopped. Its own database, 'phi2-datasets', opened from the Platform's IDBFactory with
 * the store's idb helpers (./database.ts).
 *
 * One object store, 'datasets', keyed by [dataset, config, split, view, offset]: `view` is '' for the
 * /rows endpoint and the filter condition for /filter, whose offsets count filtered rows.
 */

export const HUB_DATASETS_DB = 'phi2-datasets';
const STORE = 'datasets' as const;
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

type PageKey = [string, string, string, string, number];

interface HubDatasetsSchema extends DBSchema {
  datasets: { key: PageKey; value: CachedHubPage; indexes: { dataset: string } };
}

const keyOf = (k: HubPageKey): PageKey => [k.dataset, k.config, k.split, k.view, k.offset];

export async function openHubDatasetsCache(indexedDB: IDBFactory): Promise<HubDatasetsCache> {
  const db = await openDatabase<HubDatasetsSchema>(indexedDB, {
    name: HUB_DATASETS_DB,
    version: VERSION,
    upgrade: (raw) => {
      const store = raw.createObjectStore(STORE);
      store.createIndex('dataset', 'dataset');
    },
    purpose: 'dataset pages cannot be cached',
    blockedMessage: 'Another tab holds the dataset cache open with an older version of the app; close it and retry.',
  });
  return {
    get: (key) => db.get(STORE, keyOf(key)),
    put: (page) => writeTransaction(db, [STORE], (tx, add) => add(tx.objectStore(STORE).put(page, keyOf(page)))),
    async clear(dataset) {
      if (dataset === undefined) {
        await db.clear(STORE);
        return;
      }
      const tx = db.transaction(STORE, 'readwrite');
      const store = tx.objectStore(STORE);
      // idb resolves a request's promise before the transaction can commit, so awaiting the keys keeps it active.
      // A failed delete aborts the transaction: tx.done rejects with its error.
      for (const key of await store.index('dataset').getAllKeys(dataset)) store.delete(key).catch(() => undefined);
      await tx.done;
    },
    close() {
      db.close();
    },
  };
}
