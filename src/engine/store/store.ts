import { type DBSchema, type IDBPDatabase, type IDBPTransaction, type StoreNames } from 'idb';
import type { Platform } from '../platform/types';
import { RecordChecksums, describeChecksum } from './record-checksum';
import { StoreError, describeQuota, isQuotaError } from './errors';
import { describeError, openDatabase, writeTransaction } from './database';
import {
  DB_NAME,
  DB_VERSION,
  STORES,
  upgradeSchema,
  type ModelManifest,
  type TensorEntry,
  type StoredRecord,
  type TensorRecord,
  type TokenizerFiles,
} from './schema';

interface Phi2Schema extends DBSchema {
  models: { key: string; value: ModelManifest };
  tensors: { key: [string, string]; value: TensorEntry; indexes: { byModel: string } };
  records: { key: [string, string, number]; value: StoredRecord };
  tokenizers: { key: string; value: TokenizerFiles };
  adapters: { key: string; value: { id: string } & Record<string, unknown> };
  checkpoints: { key: string; value: { id: string } & Record<string, unknown> };
  results: { key: string; value: { id: string } & Record<string, unknown> };
  datasets: { key: string; value: { id: string } & Record<string, unknown> };
}

type StoreName = StoreNames<Phi2Schema>;

export interface StorageUsage {
  /** Bytes this origin uses and may use, or null where the host cannot say. */
  usage: number | null;
  quota: number | null;
  /** Whether the host promised to keep our data under storage pressure. */
  persisted: boolean;
}

/** A record that failed its check: the first of its tensor (the rest of the tensor is fetched again with it). */
export interface DamagedRecord {
  key: string;
  index: number;
  reason: 'missing' | 'damaged';
}

export interface ReadAheadOptions {
  /** Record reads kept in flight (default DEFAULT_READAHEAD). */
  readahead?: number;
}

/** Four records of ~4 MB in flight: measured best in Chromium (more reads at once slow each other). */
export const DEFAULT_READAHEAD = 4;

export interface StoreOpenOptions {
  /** Database name; tests use their own. */
  name?: string;
}

/**
 * The app's IndexedDB (schema in ./schema.ts), through the `idb` package over the Platform's factory
 * (opened and written with ./database.ts, like every store here).
 */
export class WeightStore {
  /** Why the connection was closed under us (another tab's upgrade, the browser), or null while open. */
  private closedBecause: string | null = null;

  private constructor(
    readonly db: IDBPDatabase<Phi2Schema>,
    private readonly platform: Pick<Platform, 'storage'>,
    private readonly checksums: RecordChecksums,
  ) {
    // A newer version of the app in another tab needs this connection closed to upgrade the schema:
    // let it, and say so to whoever uses this store next, instead of failing with "connection is closing".
    db.addEventListener('versionchange', () => {
      this.closedBecause =
        'The app was updated in another tab, which upgraded its storage, so this tab can no longer use it. Reload this page to continue: nothing stored is lost.';
      db.close();
    });
    // The browser closes a connection itself when the site's data is cleared or the disk fails.
    db.addEventListener('close', () => {
      this.closedBecause ??= 'The browser closed the app\u2019s storage (its data may have been cleared in the browser\u2019s settings). Reload this page to continue.';
    });
  }

  /** Why this store can no longer be used (reload the page), or null while it can. */
  get closedReason(): string | null {
    return this.closedBecause;
  }

  static async open(platform: Pick<Platform, 'indexedDB' | 'storage'>, options: StoreOpenOptions = {}): Promise<WeightStore> {
    const db = await openDatabase<Phi2Schema>(platform.indexedDB, {
      name: options.name ?? DB_NAME,
      version: DB_VERSION,
      upgrade: upgradeSchema,
      purpose: 'models cannot be stored',
      blockedMessage: 'The database is held open by another tab with an older version of the app; close that tab and retry.',
      versionMessage:
        'A newer version of the app, opened in another tab, has upgraded its storage; this tab still runs the older one. Reload this page to get the new version: nothing stored is lost.',
    });
    return new WeightStore(db, platform, await RecordChecksums.load());
  }

  close(): void {
    this.db.close();
  }

  // ---- models

  async listModels(): Promise<ModelManifest[]> {
    return this.run('listing models', () => this.db.getAll(STORES.models));
  }

  async getModel(id: string): Promise<ModelManifest | undefined> {
    return this.run(`reading model ${id}`, () => this.db.get(STORES.models, id));
  }

  async putModel(model: ModelManifest): Promise<void> {
    await this.transact([STORES.models], `saving model ${model.id}`, 0, (tx, add) => add(tx.objectStore(STORES.models).put({ ...model, updatedAt: Date.now() })));
  }

  /** A model's manifest and tensor entries, written together. */
  async putModelWithTensors(model: ModelManifest, entries: TensorEntry[], neededBytes = 0): Promise<void> {
    await this.transact([STORES.models, STORES.tensors], `saving model ${model.id}`, neededBytes, (tx, add) => {
      add(tx.objectStore(STORES.models).put({ ...model, updatedAt: Date.now() }));
      const tensors = tx.objectStore(STORES.tensors);
      for (const e of entries) add(tensors.put(e));
    });
  }

  async getTensors(modelId: string): Promise<TensorEntry[]> {
    return this.run(`reading the tensors of ${modelId}`, () => this.db.getAllFromIndex(STORES.tensors, 'byModel', modelId));
  }

  async getTensor(modelId: string, key: string): Promise<TensorEntry | undefined> {
    return this.run(`reading tensor ${key}`, () => this.db.get(STORES.tensors, [modelId, key]));
  }

  // ---- records

  /**
   * Stores one record and its tensor's progress atomically and returns the updated entry. Records
   * must arrive in order. `neededBytes` (what the whole import still has to store) goes into the
   * message should the quota run out.
   */
  async writeRecord(entry: TensorEntry, record: TensorRecord, neededBytes?: number): Promise<TensorEntry> {
    if (record.index !== entry.recordsDone) {
      throw new Error(`${entry.key}: record ${record.index} written after ${entry.recordsDone} records; they must come in order`);
    }
    const checksums = entry.checksums.slice(0, record.index);
    checksums.push(record.checksum);
    const updated: TensorEntry = {
      ...entry,
      recordsDone: record.index + 1,
      checksums,
      complete: record.index + 1 === entry.recordCount,
    };
    const bytes = record.data.byteLength + (record.scales?.byteLength ?? 0);
    await this.transact([STORES.records, STORES.tensors], `storing ${entry.key} record ${record.index}`, neededBytes ?? bytes, (tx, add) => {
      add(tx.objectStore(STORES.records).put({ ...record, data: new Blob([record.data]) }));
      add(tx.objectStore(STORES.tensors).put(updated));
    });
    return updated;
  }

  private verified(entry: TensorEntry, index: number, record: TensorRecord | undefined): TensorRecord {
    const at = { modelId: entry.modelId, key: entry.key, index };
    if (!record) {
      const err = new StoreError('missing', `Record ${index} of ${entry.key} (model ${entry.modelId}) is missing from storage; resume its download or import to fetch it again.`);
      err.record = at;
      throw err;
    }
    const expected = entry.checksums[index];
    const actual = this.checksums.recompute(expected, record.data, record.scales);
    if (actual !== record.checksum || actual !== expected) {
      const err = new StoreError(
        'corrupt',
        `Record ${index} of ${entry.key} (model ${entry.modelId}) is damaged: its bytes give ${describeChecksum(actual)}, ` +
          `the record says ${describeChecksum(record.checksum)}, its tensor expects ${describeChecksum(expected)}. Resume its download or import to fetch it again.`,
      );
      err.record = at;
      throw err;
    }
    return record;
  }

  /**
   * Reads back every stored record of a model (complete tensors and the stored part of incomplete
   * ones) and checks it against both checksums. Returns the first missing or damaged record of each
   * tensor, with why; empty when everything stored is intact. Reads run READAHEAD at a time.
   */
  async checkRecords(modelId: string, onProgress?: (done: number, total: number) => void): Promise<DamagedRecord[]> {
    const entries = await this.getTensors(modelId);
    const total = entries.reduce((a, e) => a + Math.round((e.bytes * e.recordsDone) / e.recordCount), 0);
    let done = 0;
    const damaged: DamagedRecord[] = [];
    for (const entry of entries) {
      const reads: Array<Promise<TensorRecord | undefined>> = [];
      const issue = (index: number) => {
        const read = this.run(`reading ${entry.key} record ${index}`, () => this.getRecord(entry, index));
        read.catch(() => undefined);
        reads.push(read);
      };
      for (let i = 0; i < Math.min(entry.recordsDone, DEFAULT_READAHEAD); i++) issue(i);
      for (let index = 0; index < entry.recordsDone; index++) {
        const record = await reads.shift()!;
        if (index + DEFAULT_READAHEAD < entry.recordsDone) issue(index + DEFAULT_READAHEAD);
        try {
          this.verified(entry, index, record);
        } catch (err) {
          if (!(err instanceof StoreError) || !err.record) throw err;
          damaged.push({ key: entry.key, index, reason: err.code === 'missing' ? 'missing' : 'damaged' });
          break; // the rest of the tensor is fetched again with it
        }
        done += record!.data.byteLength + (record!.scales?.byteLength ?? 0);
        onProgress?.(done, total);
      }
    }
    return damaged;
  }

  /**
   * Forgets damaged or missing records so that the next import (or download) fetches them again:
   * each tensor keeps its records before the bad one, the rest is deleted, and the tensor, its file and
   * the model are marked incomplete, in one transaction.
   */
  async markForRepair(modelId: string, damaged: readonly Pick<DamagedRecord, 'key' | 'index'>[]): Promise<void> {
    if (!damaged.length) return;
    const manifest = await this.getModel(modelId);
    if (!manifest) throw new StoreError('missing', `No stored model "${modelId}"; it may have been deleted in another tab.`);
    const entries = new Map((await this.getTensors(modelId)).map((e) => [e.key, e]));
    const files = new Set<string>();
    const updated: TensorEntry[] = [];
    for (const { key, index } of damaged) {
      const e = entries.get(key);
      if (!e) continue;
      const keep = Math.min(index, e.recordsDone);
      updated.push({ ...e, recordsDone: keep, checksums: e.checksums.slice(0, keep), complete: false });
      files.add(e.file);
    }
    const model: ModelManifest = { ...manifest, complete: false, files: manifest.files.map((f) => (files.has(f.name) ? { ...f, complete: false } : f)) };
    await this.transact([STORES.models, STORES.tensors, STORES.records], `marking damaged records of ${modelId} for repair`, 0, (tx, add) => {
      add(tx.objectStore(STORES.models).put({ ...model, updatedAt: Date.now() }));
      const records = tx.objectStore(STORES.records);
      const tensors = tx.objectStore(STORES.tensors);
      for (const e of updated) {
        add(records.delete(IDBKeyRange.bound([modelId, e.key, e.recordsDone], [modelId, e.key, Infinity])));
        add(tensors.put(e));
      }
    });
  }

  /** The records of a tensor one at a time, verified (never all in memory). */
  readRecords(entry: TensorEntry, options: ReadAheadOptions = {}): AsyncGenerator<TensorRecord> {
    return this.streamRecords([entry], options);
  }

  /**
   * The records of several tensors, in order, each verified. Up to `readahead` reads are in flight
   * while the caller works on the current record: IndexedDB fetches (in the browser's storage
   * process) then overlap the checksum and whatever the caller does with the data, which is what
   * makes loading a model run at the speed of the slower of the two rather than their sum. Memory
   * stays bounded by `readahead` records.
   */
  async *streamRecords(entries: readonly TensorEntry[], options: ReadAheadOptions = {}): AsyncGenerator<TensorRecord> {
    const readahead = options.readahead ?? DEFAULT_READAHEAD;
    if (!Number.isInteger(readahead) || readahead < 1) throw new RangeError(`readahead must be a positive integer, got ${readahead}`);
    for (const e of entries) {
      if (!e.complete) throw new StoreError('missing', `${e.key} of model ${e.modelId} is incomplete (${e.recordsDone} of ${e.recordCount} records).`);
    }
    const order = entries.flatMap((e) => Array.from({ length: e.recordCount }, (_, index) => ({ entry: e, index })));
    const inFlight: Array<Promise<TensorRecord | undefined>> = [];
    let next = 0;
    const issue = () => {
      const { entry, index } = order[next++];
      const read = this.run(`reading ${entry.key} record ${index}`, () => this.getRecord(entry, index));
      read.catch(() => undefined); // handled when its turn comes; a generator closed early leaves it unread
      inFlight.push(read);
    };
    while (next < Math.min(order.length, readahead)) issue();
    for (let i = 0; i < order.length; i++) {
      const record = await inFlight.shift()!;
      if (next < order.length) issue();
      yield this.verified(order[i].entry, order[i].index, record);
    }
  }

  /** One record, checked against its own checksum and its entry's. */
  async readRecord(entry: TensorEntry, index: number): Promise<TensorRecord> {
    const record = await this.run(`reading ${entry.key} record ${index}`, () => this.getRecord(entry, index));
    return this.verified(entry, index, record);
  }

  /** A stored record with its bytes in memory (unverified). */
  private async getRecord(entry: TensorEntry, index: number): Promise<TensorRecord | undefined> {
    const stored = await this.db.get(STORES.records, [entry.modelId, entry.key, index]);
    if (!stored) return undefined;
    const data = stored.data instanceof Blob ? await stored.data.arrayBuffer() : stored.data;
    return { ...stored, data };
  }

  /**
   * Forgets the given tensors of a model, records included (a file that changed on the server is
   * restarted from scratch), and saves the manifest in the same transaction.
   */
  async resetTensors(model: ModelManifest, keys: string[], entries: TensorEntry[]): Promise<void> {
    await this.transact([STORES.models, STORES.tensors, STORES.records], `resetting tensors of ${model.id}`, 0, (tx, add) => {
      add(tx.objectStore(STORES.models).put({ ...model, updatedAt: Date.now() }));
      const records = tx.objectStore(STORES.records);
      const tensors = tx.objectStore(STORES.tensors);
      for (const key of keys) add(records.delete(IDBKeyRange.bound([model.id, key, 0], [model.id, key, Infinity])));
      for (const e of entries) add(tensors.put(e));
    });
  }

  /** Deletes a model completely: manifest, tensors, records, tokenizer. */
  async deleteModel(id: string): Promise<void> {
    // Every array key [id, ...] sorts after [id] and before [id, []] (arrays sort after strings).
    const all = IDBKeyRange.bound([id], [id, []]);
    await this.transact([STORES.models, STORES.tensors, STORES.records, STORES.tokenizers], `deleting model ${id}`, 0, (tx, add) => {
      add(tx.objectStore(STORES.models).delete(id));
      add(tx.objectStore(STORES.tensors).delete(all));
      add(tx.objectStore(STORES.records).delete(all));
      add(tx.objectStore(STORES.tokenizers).delete(id));
    });
  }

  // ---- tokenizer

  async putTokenizer(modelId: string, files: Record<string, string>): Promise<void> {
    const bytes = Object.values(files).reduce((a, s) => a + s.length, 0);
    await this.transact([STORES.tokenizers], `storing the tokenizer of ${modelId}`, bytes, (tx, add) => add(tx.objectStore(STORES.tokenizers).put({ modelId, files })));
  }

  async getTokenizer(modelId: string): Promise<Record<string, string> | undefined> {
    const t = await this.run(`reading the tokenizer of ${modelId}`, () => this.db.get(STORES.tokenizers, modelId));
    return t?.files;
  }

  // ---- storage

  /** Asks the host to keep our data under storage pressure (a 5.6 GB download is worth keeping). */
  async requestPersistence(): Promise<boolean> {
    try {
      return (await this.platform.storage.persisted()) || (await this.platform.storage.persist());
    } catch {
      return false;
    }
  }

  async usage(): Promise<StorageUsage> {
    const [estimate, persisted] = await Promise.all([
      this.platform.storage.estimate().catch(() => null),
      this.platform.storage.persisted().catch(() => false),
    ]);
    return { usage: estimate?.usage ?? null, quota: estimate?.quota ?? null, persisted };
  }

  /**
   * Throws the 'quota' StoreError when the host reports less free space than `neededBytes`, so that a
   * long download does not start only to fail near its end. Passes when the host cannot say.
   */
  async checkSpace(neededBytes: number): Promise<void> {
    const { usage, quota } = await this.usage();
    if (usage !== null && quota !== null && quota - usage < neededBytes) throw await this.quotaError(neededBytes);
  }

  /** Re-reads every record of a model and checks its checksums; returns the bytes checked. */
  async verifyModel(modelId: string, onProgress?: (done: number, total: number) => void): Promise<number> {
    const entries = await this.getTensors(modelId);
    const total = entries.reduce((a, e) => a + e.bytes, 0);
    let done = 0;
    for (const entry of entries) {
      for await (const r of this.readRecords(entry)) {
        done += r.data.byteLength + (r.scales?.byteLength ?? 0);
        onProgress?.(done, total);
      }
    }
    return done;
  }

  // ---- failure handling

  private async run<T>(what: string, op: () => Promise<T>): Promise<T> {
    if (this.closedBecause) throw new StoreError('unavailable', this.closedBecause);
    try {
      return await op();
    } catch (err) {
      if (err instanceof StoreError) throw err;
      throw new StoreError('failed', `IndexedDB failed ${what}: ${describeError(err)}`);
    }
  }

  /**
   * Runs writes in one readwrite transaction (see writeTransaction). A quota failure becomes a
   * StoreError saying what is needed and what is free.
   */
  private async transact<S extends StoreName>(
    names: S[],
    what: string,
    neededBytes: number,
    body: (tx: IDBPTransaction<Phi2Schema, S[], 'readwrite'>, add: (request: Promise<unknown>) => void) => void,
  ): Promise<void> {
    if (this.closedBecause) throw new StoreError('unavailable', this.closedBecause);
    try {
      await writeTransaction(this.db, names, body);
    } catch (err) {
      if (isQuotaError(err)) throw await this.quotaError(neededBytes);
      throw new StoreError('failed', `IndexedDB failed ${what}: ${describeError(err)}`);
    }
  }

  private async quotaError(neededBytes: number): Promise<StoreError> {
    const { usage, quota } = await this.usage();
    return new StoreError('quota', describeQuota(neededBytes, usage, quota), neededBytes, usage !== null && quota !== null ? Math.max(0, quota - usage) : null);
  }
}
