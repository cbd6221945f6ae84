import type { IDBPDatabase } from 'idb';
import { formatBytes } from '../../shared/bytes';
import { crc32 } from './crc32';
import { StoreError, isQuotaError } from './errors';
import type { STORES } from './schema';

/**
 * Large values in chunks, for the adapters and checkpoints object stores: Phi-2's paper adapter is
 * 377 MB of f32, and one value that large makes browsers copy it whole on every read and write. A file
 * is stored as chunks `{prefix}{i}` of CHUNK_BYTES, each in its own transaction with its CRC-32, and
 * read back whole with every chunk checked. The record that points to the chunks is the caller's, and
 * is written last.
 */

export const CHUNK_BYTES = 32 * 2 ** 20;

/** The key range of every string key that starts with `prefix`. */
export function prefixRange(prefix: string): IDBKeyRange {
  return IDBKeyRange.bound(prefix, `${prefix}\uffff`);
}

/** The shape every value of the reserved stores must have; ours are cast to it. */
export type StoredValue = { id: string } & Record<string, unknown>;
type ChunkedStore = typeof STORES.adapters | typeof STORES.checkpoints;
/** The app database as the adapter and checkpoint stores use it (WeightStore.db). */
export type AppDatabase = IDBPDatabase<{
  adapters: { key: string; value: StoredValue };
  checkpoints: { key: string; value: StoredValue };
}>;

/** The object-store operations the writers use. */
export interface WritableStore {
  put(value: StoredValue): Promise<unknown>;
  delete(key: string | IDBKeyRange): Promise<unknown>;
}

export interface ChunkRecord {
  id: string;
  data: ArrayBuffer;
}

export function chunkKey(prefix: string, index: number): string {
  return `${prefix}${String(index).padStart(6, '0')}`;
}

function describe(err: unknown): string {
  if (err && typeof err === 'object' && 'message' in err) return `${(err as Error).name}: ${(err as Error).message}`;
  return String(err);
}

/** Turns an IndexedDB failure into a StoreError that says what was being done and what to do. */
export function storeFailure(err: unknown, what: string, bytes: number): StoreError {
  if (err instanceof StoreError) return err;
  if (isQuotaError(err)) {
    return new StoreError(
      'quota',
      `Browser storage is full: ${what} needs ${formatBytes(bytes)}. Delete adapters, checkpoints or models you no longer need, then try again.`,
      bytes,
      null,
    );
  }
  return new StoreError('failed', `IndexedDB failed ${what}: ${describe(err)}`);
}

/** Runs one readwrite transaction; its own error (a full disk) wins over a request's AbortError. */
export async function writeTransaction(
  db: AppDatabase,
  store: ChunkedStore,
  what: string,
  bytes: number,
  body: (s: WritableStore) => Array<Promise<unknown>>,
): Promise<void> {
  let tx;
  try {
    tx = db.transaction(store, 'readwrite');
  } catch (err) {
    throw storeFailure(err, what, bytes);
  }
  try {
    const ops = body(tx.objectStore(store) as unknown as WritableStore);
    for (const op of ops) op.catch(() => undefined);
    await Promise.all([...ops, tx.done]);
  } catch (err) {
    await tx.done.catch(() => undefined);
    throw storeFailure(tx.error ?? err, what, bytes);
  }
}

/**
 * Writes `bytes` as chunks `{prefix}{i}`, one transaction each (a large file never sits in one
 * transaction), and returns each chunk's CRC-32.
 */
export async function writeChunks(
  db: AppDatabase,
  store: ChunkedStore,
  prefix: string,
  bytes: Uint8Array,
  what: string,
  chunkBytes = CHUNK_BYTES,
): Promise<number[]> {
  const checksums: number[] = [];
  for (let i = 0, at = 0; at < bytes.length || i === 0; i++, at += chunkBytes) {
    const piece = bytes.slice(at, Math.min(bytes.length, at + chunkBytes));
    checksums.push(crc32(piece));
    const record: ChunkRecord = { id: chunkKey(prefix, i), data: piece.buffer };
    await writeTransaction(db, store, `${what} (part ${i + 1})`, piece.length, (s) => [s.put(record as unknown as StoredValue)]);
    if (bytes.length === 0) break;
  }
  return checksums;
}

/** Reads chunks written by writeChunks back into one array of `total` bytes, checking each CRC-32. */
export async function readChunks(
  db: AppDatabase,
  store: ChunkedStore,
  prefix: string,
  total: number,
  checksums: readonly number[],
  what: string,
): Promise<Uint8Array> {
  const out = new Uint8Array(total);
  let at = 0;
  for (let i = 0; i < checksums.length; i++) {
    let record: ChunkRecord | undefined;
    try {
      record = (await db.get(store, chunkKey(prefix, i))) as unknown as ChunkRecord | undefined;
    } catch (err) {
      throw storeFailure(err, `reading ${what}`, 0);
    }
    if (!record) throw new StoreError('missing', `Part ${i + 1} of ${what} is missing from storage; it was deleted or never finished saving.`);
    const piece = new Uint8Array(record.data);
    if (crc32(piece) !== checksums[i]) throw new StoreError('corrupt', `Part ${i + 1} of ${what} is damaged (CRC-32 mismatch); delete it and save it again.`);
    if (at + piece.length > total) throw new StoreError('corrupt', `${what} holds more bytes than its ${total} recorded.`);
    out.set(piece, at);
    at += piece.length;
  }
  if (at !== total) throw new StoreError('corrupt', `${what} has ${at} bytes stored but ${total} recorded.`);
  return out;
}
