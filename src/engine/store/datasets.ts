import type { DBSchema, IDBPDatabase } from 'idb';
import { StoreError, isQuotaError } from './errors';
import { openDatabase, writeTransaction } from './database';

/**
 * The user's prepared datasets, kept between visits so the Train page can pick one. Its own IndexedDB
 * database, 'phi2-user-data', opened from the engine's Platform's IDBFactory with the store's idb helpers
 * (./database.ts):
 *
 * | store       | key                   | value                                                    |
 * |-------------|-----------------------|----------------------------------------------------------|
 * | `datasets`  | `id`                  | {@link SavedDatasetInfo}: name, kind, counts, settings   |
 * | `rows`      | `[datasetId, chunk]`  | {@link RowChunk}: ROWS_PER_CHUNK prompt/completion pairs |
 * | `tokenizer` | name ('phi-2')        | tokenizer.json and tokenizer_config.json texts           |
 *
 * Rows live apart from the list entry so listing never reads rows, and in chunks so a million-row
 * dataset is a few hundred values of a few hundred kB each rather than one value of gigabytes (browsers
 * refuse very large values, and a single huge clone freezes the worker). A dataset's entry and all its
 * chunks are written in one transaction: a full disk leaves nothing half saved.
 */

export const USER_DATA_DB = 'phi2-user-data';
const VERSION = 1;
const DATASETS = 'datasets' as const;
const ROWS = 'rows' as const;
const TOKENIZER = 'tokenizer' as const;

/** Rows per stored chunk. */
export const ROWS_PER_CHUNK = 1000;
/** Longest dataset name. */
export const MAX_NAME_CHARS = 120;

/**
 * One training example, tokeniser-free: `prompt + completion` is exactly the text the template produced
 * (TRL's prompt-completion form). Loss on every token (the paper) trains on the whole text; loss on the
 * completion only trains on what follows the prompt.
 */
export interface TrainingExample {
  prompt: string;
  completion: string;
}

export type PreparedKind = 'instruction' | 'symbol-tuning';

export interface SymbolTuningSettings {
  pools: string[];
  seed: number;
  count: number;
  perClass: number;
  kinds: string[];
  instruction: 'none' | 'include' | 'mixed';
  shapes: 'paper' | 'varied';
  /** How the prompts were fitted within the maximum length (absent in datasets saved before fitting). */
  fit?: SymbolTuningFit;
}

/**
 * Symbol-tuning prompts fitted within a maximum length: a prompt too long gets fewer exemplars per class
 * (never a cut query or answer); one too long with a single exemplar per class is dropped.
 */
export interface SymbolTuningFit {
  /** Measured in tokens and fitted; false without a tokenizer (the prompts are whole, maybe too long). */
  fitted: boolean;
  maxLength: number;
  /** Exemplars per class asked for: the most a prompt has. */
  perClass: number;
  /** Prompts given fewer exemplars per class than asked. */
  shortened: number;
  /** Prompts left out. */
  dropped: number;
  /** The first dropped prompts: their pool and length with one exemplar per class. */
  droppedExamples: Array<{ pool: string; length: number }>;
  /** Exemplars per class -> prompts with that many. */
  perClassCounts: Record<number, number>;
}

export interface SavedDatasetInfo {
  id: string;
  name: string;
  kind: PreparedKind;
  /** Where the rows came from, for people: "reviews.csv, columns text → label" or "bundled pools sst2, rte". */
  description: string;
  rowCount: number;
  /** The instruction template the rows were rendered with (already applied: kept to say how). */
  template: string;
  /** The training length chosen when preparing (tokens): rows longer than this are cut at training time. */
  maxTokens: number;
  /** Rows longer than maxTokens when prepared, or null when no tokenizer was available to count. */
  truncatedRows: number | null;
  symbolTuning?: SymbolTuningSettings;
  /** Characters of all prompts and completions: roughly the stored size in UTF-16 halves. */
  chars: number;
  createdAt: number;
  updatedAt: number;
}

interface RowChunk {
  datasetId: string;
  chunk: number;
  prompts: string[];
  completions: string[];
}

interface UserDataSchema extends DBSchema {
  datasets: { key: string; value: SavedDatasetInfo };
  rows: { key: [string, number]; value: RowChunk };
  tokenizer: { key: string; value: Record<string, string> };
}

export class DataStoreError extends Error {
  override name = 'DataStoreError';
  constructor(
    readonly code: 'unavailable' | 'quota' | 'missing' | 'invalid' | 'failed',
    message: string,
  ) {
    super(message);
  }
}


/** Chunks of a dataset of `rowCount` rows. (Keys are listed, not ranged, so no IDBKeyRange global is needed.) */
function chunkCount(rowCount: number): number {
  return Math.ceil(rowCount / ROWS_PER_CHUNK);
}

/** Trims a name and checks it; throws DataStoreError('invalid') with what to change. */
export function checkDatasetName(name: string): string {
  const trimmed = name.trim();
  if (trimmed === '') throw new DataStoreError('invalid', 'Give the dataset a name.');
  if (trimmed.length > MAX_NAME_CHARS) throw new DataStoreError('invalid', `The name is ${trimmed.length} characters; keep it to ${MAX_NAME_CHARS}.`);
  return trimmed;
}

export class UserDataStore {
  private constructor(private readonly db: IDBPDatabase<UserDataSchema>) {}

  static async open(indexedDB: IDBFactory): Promise<UserDataStore> {
    let db: IDBPDatabase<UserDataSchema>;
    try {
      db = await openDatabase<UserDataSchema>(indexedDB, {
        name: USER_DATA_DB,
        version: VERSION,
        upgrade: (raw) => {
          raw.createObjectStore(DATASETS, { keyPath: 'id' });
          raw.createObjectStore(ROWS, { keyPath: ['datasetId', 'chunk'] });
          raw.createObjectStore(TOKENIZER);
        },
        purpose: 'datasets cannot be kept',
        blockedMessage: 'Another tab holds the datasets database open with an older version of the app; close it and retry.',
      });
    } catch (err) {
      throw err instanceof StoreError ? new DataStoreError('unavailable', err.message) : err;
    }
    db.addEventListener('versionchange', () => db.close());
    return new UserDataStore(db);
  }

  close(): void {
    this.db.close();
  }

  /** Newest first. */
  async list(): Promise<SavedDatasetInfo[]> {
    const all = await this.db.getAll(DATASETS);
    return all.sort((a, b) => b.createdAt - a.createdAt || (a.name < b.name ? -1 : 1));
  }

  async info(id: string): Promise<SavedDatasetInfo> {
    const info = await this.db.get(DATASETS, id);
    if (!info) throw new DataStoreError('missing', `No saved dataset with id "${id}": it may have been deleted in another tab.`);
    return info;
  }

  /** Saves a new dataset; the name must be unused (names are how people tell datasets apart). */
  async save(info: SavedDatasetInfo, rows: readonly TrainingExample[]): Promise<SavedDatasetInfo> {
    const name = checkDatasetName(info.name);
    if (rows.length !== info.rowCount) throw new DataStoreError('invalid', `rowCount ${info.rowCount} does not match the ${rows.length} rows given`);
    if (rows.length === 0) throw new DataStoreError('invalid', 'There are no rows to save.');
    await this.checkNameFree(name, info.id);
    const record = { ...info, name };
    try {
      await writeTransaction(this.db, [DATASETS, ROWS], (tx, add) => {
        add(tx.objectStore(DATASETS).add(record));
        const store = tx.objectStore(ROWS);
        for (let c = 0; c < chunkCount(rows.length); c++) {
          const slice = rows.slice(c * ROWS_PER_CHUNK, (c + 1) * ROWS_PER_CHUNK);
          add(store.put({ datasetId: info.id, chunk: c, prompts: slice.map((r) => r.prompt), completions: slice.map((r) => r.completion) }));
        }
      });
    } catch (err) {
      throw this.writeError(err, name);
    }
    return record;
  }

  async rows(id: string): Promise<TrainingExample[]> {
    const info = await this.info(id);
    const store = this.db.transaction(ROWS, 'readonly').objectStore(ROWS);
    const chunks = await Promise.all(Array.from({ length: chunkCount(info.rowCount) }, (_, c) => store.get([id, c])));
    const out: TrainingExample[] = [];
    for (const c of chunks) {
      if (!c) break;
      for (let i = 0; i < c.prompts.length; i++) out.push({ prompt: c.prompts[i], completion: c.completions[i] });
    }
    if (out.length !== info.rowCount) {
      throw new DataStoreError('failed', `The saved dataset "${info.name}" should have ${info.rowCount} rows but ${out.length} were found: save it again.`);
    }
    return out;
  }

  async rename(id: string, newName: string): Promise<SavedDatasetInfo> {
    const name = checkDatasetName(newName);
    await this.checkNameFree(name, id);
    const info = await this.info(id);
    const updated = { ...info, name, updatedAt: Date.now() };
    await writeTransaction(this.db, [DATASETS], (tx, add) => add(tx.objectStore(DATASETS).put(updated)));
    return updated;
  }

  async delete(id: string): Promise<void> {
    const info = await this.info(id);
    await writeTransaction(this.db, [DATASETS, ROWS], (tx, add) => {
      add(tx.objectStore(DATASETS).delete(id));
      const rows = tx.objectStore(ROWS);
      for (let c = 0; c < chunkCount(info.rowCount); c++) add(rows.delete([id, c]));
    });
  }

  async getTokenizerFiles(name: string): Promise<Record<string, string> | undefined> {
    return this.db.get(TOKENIZER, name);
  }

  async putTokenizerFiles(name: string, files: Record<string, string>): Promise<void> {
    try {
      await writeTransaction(this.db, [TOKENIZER], (tx, add) => add(tx.objectStore(TOKENIZER).put(files, name)));
    } catch (err) {
      throw this.writeError(err, 'the tokenizer');
    }
  }

  private async checkNameFree(name: string, exceptId: string): Promise<void> {
    const clash = (await this.list()).find((d) => d.id !== exceptId && d.name.toLowerCase() === name.toLowerCase());
    if (clash) throw new DataStoreError('invalid', `A saved dataset is already called "${clash.name}": choose another name.`);
  }

  private writeError(err: unknown, what: string): DataStoreError {
    if (err instanceof DataStoreError) return err;
    if (isQuotaError(err)) {
      return new DataStoreError(
        'quota',
        `The browser's storage is full, so ${what} was not saved (nothing was half written). Delete saved datasets or models you no longer need, then save again.`,
      );
    }
    return new DataStoreError('failed', `Saving ${what} failed: ${(err as Error)?.message ?? String(err)}`);
  }
}
