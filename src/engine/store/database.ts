import { wrap, type DBSchema, type IDBPDatabase, type IDBPTransaction, type StoreNames } from 'idb';
import { StoreError, isQuotaError } from './errors';

/**
 * The IndexedDB helpers every persistent store here uses (the model store, saved datasets, the
 * Hub-datasets cache): opening a database from the Platform's factory through the `idb` package, and
 * writing in one transaction that either commits whole or fails with its real cause.
 *
 * idb recognises IndexedDB objects by the global IDBRequest/IDBDatabase classes: the browser has them,
 * and under Node `import 'fake-indexeddb/auto'` (done by the Node platform) provides them.
 */

export interface OpenDatabaseOptions {
  name: string;
  version: number;
  /** Creates or migrates the object stores, from the version found (0 for a new database). */
  upgrade(db: IDBDatabase, oldVersion: number): void;
  /** What to say when another tab holds the database open at an older version. */
  blockedMessage: string;
  /** What to say when the database is newer than this code (another tab runs a newer app). */
  versionMessage?: string;
  /** What is lost without the database, for the message when there is none: "models cannot be stored". */
  purpose: string;
}

/** Opens a database; every failure is a StoreError('unavailable') saying why. */
export async function openDatabase<S extends DBSchema>(factory: IDBFactory | undefined, options: OpenDatabaseOptions): Promise<IDBPDatabase<S>> {
  const { name, version } = options;
  if (!factory) throw new StoreError('unavailable', `IndexedDB is not available here, so ${options.purpose}.`);
  if (typeof IDBRequest === 'undefined') {
    throw new StoreError(
      'unavailable',
      'The IndexedDB classes (IDBRequest, IDBDatabase, ...) are not globals here; the idb wrapper needs them. ' +
        "Under Node, import 'fake-indexeddb/auto' before opening the store.",
    );
  }
  let request: IDBOpenDBRequest;
  try {
    request = factory.open(name, version);
  } catch (err) {
    throw new StoreError('unavailable', `IndexedDB refused to open "${name}": ${(err as Error).message}`);
  }
  request.onupgradeneeded = (event) => options.upgrade(request.result, event.oldVersion);
  const blocked = new Promise<never>((_, reject) => {
    request.onblocked = () => reject(new StoreError('unavailable', options.blockedMessage));
  });
  try {
    return (await Promise.race([wrap(request), blocked])) as unknown as IDBPDatabase<S>;
  } catch (err) {
    if (err instanceof StoreError) throw err;
    if (options.versionMessage && (err as { name?: string } | null)?.name === 'VersionError') {
      throw new StoreError('unavailable', options.versionMessage);
    }
    throw new StoreError('unavailable', `IndexedDB could not open "${name}": ${describeError(err)}`);
  }
}

/**
 * Runs `body`'s writes in one readwrite transaction and resolves once it has committed. `body` passes
 * each request to `add`. On failure nothing is written (a body that throws aborts the transaction) and
 * the promise rejects with the cause, judged once the transaction has settled: a full disk often shows
 * as an AbortError on the requests while the transaction carries the QuotaExceededError.
 */
export async function writeTransaction<S extends DBSchema, N extends StoreNames<S>>(
  db: IDBPDatabase<S>,
  names: N[],
  body: (tx: IDBPTransaction<S, N[], 'readwrite'>, add: (request: Promise<unknown>) => void) => void,
): Promise<void> {
  const tx = db.transaction(names, 'readwrite');
  const ops: Promise<unknown>[] = [];
  // Each request's failure is handled here, even when a later request throws before all are issued.
  const add = (request: Promise<unknown>) => {
    request.catch(() => undefined);
    ops.push(request);
  };
  try {
    try {
      body(tx, add);
    } catch (err) {
      // Abort what was issued so far; a transaction the failure already aborted refuses, which is fine.
      try {
        tx.abort();
      } catch {
        // already aborted (its error is the cause)
      }
      throw err;
    }
    await Promise.all([...ops, tx.done]);
  } catch (err) {
    // Let the transaction settle so that its error (the cause) is known.
    await tx.done.catch(() => undefined);
    const cause = (tx.error as unknown) ?? err;
    throw isQuotaError(err) && !isQuotaError(cause) ? err : cause;
  }
}

/** "Name: message" of an IndexedDB error, or the value as text. */
export function describeError(err: unknown): string {
  if (err && typeof err === 'object' && 'name' in err && 'message' in err) return `${(err as Error).name}: ${(err as Error).message}`;
  return String(err);
}
