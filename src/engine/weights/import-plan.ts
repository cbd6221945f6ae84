import type { Locks } from '../platform/locks';
import type { WeightStore } from '../store/store';
import type { ModelSource, TensorEntry } from '../store/schema';
import { storedBytes, storedDType, type ParamSpec, type QuantScheme } from './layout';
import type { ImportProgress } from './progress';
import type { RetryPolicy } from './retry';
import type { CheckpointSource } from './source';

/**
 * What an import is asked to do and how a model is laid out in the store before a byte of weights is
 * fetched: the options, the target it writes to, the model's id and write lock, and each parameter's
 * rows cut into records of about RECORD_BYTES (weights/import.ts runs the import).
 */

/** Target size of one stored record: a few MB keeps IndexedDB transactions and memory small. */
export const RECORD_BYTES = 4 * 2 ** 20;

/** Tokenizer files stored with a model when the source has them. */
export const TOKENIZER_FILES = ['tokenizer.json', 'tokenizer_config.json'] as const;

/**
 * What the importer needs of a store (WeightStore; tests substitute a sink that discards). A store that
 * keeps records also reads them back: every import ends by verifying them, and repairs what fails.
 */
export type ImportTarget = Pick<
  WeightStore,
  | 'getModel'
  | 'putModel'
  | 'putModelWithTensors'
  | 'getTensors'
  | 'writeRecord'
  | 'resetTensors'
  | 'deleteModel'
  | 'putTokenizer'
  | 'requestPersistence'
  | 'checkSpace'
> &
  Partial<Pick<WeightStore, 'checkRecords' | 'markForRepair'>>;

/** The Web Lock (platform/locks.ts) every writer of one stored model holds: imports, repairs, deletes. */
export function modelWriteLock(modelId: string): string {
  return `phi2-model-write:${modelId}`;
}

export interface ImportOptions {
  source: CheckpointSource;
  store: ImportTarget;
  /** 'int8' (default): linear weights quantised; 'f16': every weight kept F16. */
  scheme?: QuantScheme;
  /** Defaults to defaultModelId(source, displayName, scheme). */
  modelId?: string;
  /** Monotonic milliseconds (Platform.now). */
  now?: () => number;
  onProgress?: (p: ImportProgress) => void;
  /** Stops the import (pause); what was stored stays and a later import resumes. */
  signal?: AbortSignal;
  retry?: RetryPolicy;
  recordBytes?: number;
  /** Refuse to start when the host reports less free space than the model needs (default true). */
  checkQuota?: boolean;
  /** How often a file that changed on the server is restarted before giving up (default 2). */
  maxRestarts?: number;
  /** The host's locks (Platform.locks), shared by every tab; default: this process's (localLocks). */
  locks?: Locks;
}

/** "microsoft/phi-2@<revision>:int8" for the Hub, "files:<folder name>:int8" for local files. */
export function defaultModelId(source: ModelSource, displayName: string, scheme: QuantScheme): string {
  if (source.kind === 'hub') return `${source.repo}@${source.revision}:${scheme}`;
  return `files:${displayName}:${scheme}`;
}

/**
 * Whether a stored model came from the same place. For local files only the kind counts: the names
 * may differ by files the import ignores, and each file's identity (size, date) is checked on resume.
 */
export function sameSource(a: ModelSource, b: ModelSource): boolean {
  if (a.kind === 'hub' && b.kind === 'hub') return a.repo === b.repo && a.revision === b.revision && a.baseUrl === b.baseUrl;
  return a.kind === b.kind;
}

/** Stored layout of a parameter: its rows, and how many go into one record. */
export function planTensorEntry(
  modelId: string,
  spec: ParamSpec,
  scheme: QuantScheme,
  file: string,
  recordBytes = RECORD_BYTES,
): TensorEntry {
  const dtype = storedDType(spec, scheme);
  const [rows, cols] = spec.shape.length === 2 ? spec.shape : [1, spec.shape[0]];
  const rowBytes = cols * (dtype === 'i8' ? 1 : dtype === 'f16' ? 2 : 4);
  const rowsPerRecord = Math.max(1, Math.min(rows, Math.floor(recordBytes / rowBytes)));
  return {
    modelId,
    key: spec.key,
    hfName: spec.hfName,
    file,
    shape: [...spec.shape],
    dtype,
    sourceDtype: '',
    rows,
    cols,
    rowsPerRecord,
    recordCount: Math.ceil(rows / rowsPerRecord),
    bytes: storedBytes(spec, dtype),
    recordsDone: 0,
    checksums: [],
    complete: false,
  };
}

export function remainingBytes(entries: Iterable<TensorEntry>): number {
  let n = 0;
  for (const e of entries) n += e.complete ? 0 : Math.ceil((e.bytes * (e.recordCount - e.recordsDone)) / e.recordCount);
  return n;
}
