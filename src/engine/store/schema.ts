/**
 * # The IndexedDB schema (database "phi2-lora", version 1)
 *
 * One database per origin holds everything the app keeps between visits. Object stores:
 *
 * | store         | key                              | value                 | written by                    |
 * |---------------|----------------------------------|-----------------------|-------------------------------|
 * | `models`      | `id`                             | {@link ModelManifest} | weights import (Hub or files) |
 * | `tensors`     | `[modelId, key]`                 | {@link TensorEntry}   | weights import                |
 * | `records`     | `[modelId, key, index]`          | {@link TensorRecord}  | weights import                |
 * | `tokenizers`  | `modelId`                        | {@link TokenizerFiles}| weights import                |
 * | `adapters`    | `id`                             | reserved: LoRA adapters (PEFT import/export)           |
 * | `checkpoints` | `id`                             | reserved: training checkpoints (adapter + optimizer)   |
 * | `results`     | `id`                             | reserved: evaluation results                           |
 * | `datasets`    | `id`                             | reserved: uploaded or converted datasets               |
 *
 * Index: `tensors.byModel` on `modelId`.
 *
 * A model is a manifest (config.json as found, where it came from, the quantisation scheme, the state
 * of each safetensors file) plus one entry per parameter and that parameter's data in records of a few
 * MB: whole rows `[rowStart, rowStart + rows)` of the stored layout (see weights/layout.ts), each with
 * its checksum (XXH64; CRC-32 in stores of the first version, see ./record-checksum.ts). A record and
 * its entry's progress (`recordsDone`, `checksums`) are written in one transaction, so a tensor is marked complete only once all its records have committed, an interrupted
 * import resumes at the first missing record, and a failed write (a full disk) leaves nothing torn.
 * The manifest is marked complete only when every entry is. Records are verified against both
 * checksums when loaded.
 *
 * Stored layouts (little-endian, as on the GPU): 'i8' data = u32 words of 4 int8 along a row, plus
 * `scales` (f32, one per row); 'f16' = u32 words of 2 halves (low first); 'f32' = f32.
 *
 * A record's data is stored as a Blob ({@link StoredRecord}). Chromium keeps any value of more than
 * 64 KB in a blob file anyway; handing it a Blob skips wrapping the bytes into one during the put,
 * which measured half the main thread's time per 4 MB record (3.6-4.2 ms against 6.4-7.1 ms), and
 * reads come back about 40% faster (1,140-1,180 MB/s against 810-850, headless Chromium 156). Records
 * stored as an ArrayBuffer (the first version of the app) are read as well.
 *
 * Versioning: a new store or index means a new version and a step in `upgradeSchema`; the reserved
 * stores exist so that the next features need no migration.
 */

import type { RecordChecksum } from './record-checksum';

/** How a model's weights are stored: 'int8' quantises the linear layers' weights (per-row scales), 'f16' keeps every weight F16. */
export type QuantScheme = 'int8' | 'f16';

/** A stored tensor's element type (weights/layout.ts says which parameter gets which). */
export type StoredDType = 'i8' | 'f16' | 'f32';

export const DB_NAME = 'phi2-lora';
export const DB_VERSION = 1;

export const STORES = {
  models: 'models',
  tensors: 'tensors',
  records: 'records',
  tokenizers: 'tokenizers',
  adapters: 'adapters',
  checkpoints: 'checkpoints',
  results: 'results',
  datasets: 'datasets',
} as const;

export type ModelSource =
  | { kind: 'hub'; repo: string; revision: string; baseUrl: string }
  | { kind: 'files'; names: string[] };

/** What is known of one safetensors file of a model. */
export interface StoredFileState {
  name: string;
  /** Bytes, once a response or the header told. */
  size: number | null;
  /** The server's ETag when first downloaded (Hub only): a resume must see the same. */
  etag: string | null;
  /** The safetensors JSON header (unpadded) and its padded length, once read. */
  header: string | null;
  headerLength: number | null;
  /** All tensors of this file are complete. */
  complete: boolean;
}

export interface ModelManifest {
  id: string;
  /** For lists: "microsoft/phi-2" or the folder's name. */
  name: string;
  /** config.json as found (parse with weights/config.ts parsePhiConfig). */
  config: Record<string, unknown>;
  source: ModelSource;
  scheme: QuantScheme;
  files: StoredFileState[];
  tensorCount: number;
  /** Bytes of all records (data + scales) once complete. */
  storedBytes: number;
  complete: boolean;
  /** Wall-clock milliseconds (Date.now()). */
  createdAt: number;
  updatedAt: number;
}

export interface TensorEntry {
  modelId: string;
  /** The engine's parameter key (weights/layout.ts): 'layers.3.fc1.weight'. */
  key: string;
  hfName: string;
  /** The safetensors file it comes from. */
  file: string;
  shape: number[];
  dtype: StoredDType;
  sourceDtype: string;
  /** 2-D view: a 1-D tensor is one row. */
  rows: number;
  cols: number;
  rowsPerRecord: number;
  recordCount: number;
  /** Bytes of all its records. */
  bytes: number;
  /** Records 0..recordsDone-1 have committed. */
  recordsDone: number;
  /** The checksum of each committed record (data then scales). */
  checksums: RecordChecksum[];
  complete: boolean;
}

/** One record as the importer writes it and the loader reads it: its bytes in memory. */
export interface TensorRecord {
  modelId: string;
  key: string;
  index: number;
  rowStart: number;
  rows: number;
  data: ArrayBuffer;
  /** 'i8' only. */
  scales: ArrayBuffer | null;
  checksum: RecordChecksum;
}

/** A record as IndexedDB holds it: the data in a Blob (an ArrayBuffer in stores of the first version). */
export type StoredRecord = Omit<TensorRecord, 'data'> & { data: Blob | ArrayBuffer };

export interface TokenizerFiles {
  modelId: string;
  /** File name (tokenizer.json, tokenizer_config.json, ...) to its text. */
  files: Record<string, string>;
}

/** Creates the stores of each version up to `newVersion` (run inside the versionchange transaction). */
export function upgradeSchema(db: IDBDatabase, oldVersion: number): void {
  if (oldVersion < 1) {
    db.createObjectStore(STORES.models, { keyPath: 'id' });
    const tensors = db.createObjectStore(STORES.tensors, { keyPath: ['modelId', 'key'] });
    tensors.createIndex('byModel', 'modelId');
    db.createObjectStore(STORES.records, { keyPath: ['modelId', 'key', 'index'] });
    db.createObjectStore(STORES.tokenizers, { keyPath: 'modelId' });
    for (const reserved of [STORES.adapters, STORES.checkpoints, STORES.results, STORES.datasets]) {
      db.createObjectStore(reserved, { keyPath: 'id' });
    }
  }
}
