import { CHUNK_BYTES, prefixRange, readChunks, storeFailure, writeChunks, writeTransaction, type AppDatabase } from '../store/chunks';
import { StoreError } from '../store/errors';
import { STORES } from '../store/schema';
import type { OptimizerState } from '../optim/adamw-state';
import { DEFAULT_OPTIMIZER, type Adam8bitBlockSize } from '../../shared/optimizer';
import type { TrainCheckpoint, TrainConfig } from './trainer';

/**
 * Training checkpoints in IndexedDB, in the app database's `checkpoints` object store (reserved by
 * store/schema.ts, keyPath `id`). One checkpoint per run, the latest:
 *
 * | key                                          | value                                                 |
 * |----------------------------------------------|-------------------------------------------------------|
 * | `run/{runId}`                                | {@link CheckpointRecord}: step, data position, config |
 * |                                              | (seed and optimiser included), loss history, the      |
 * |                                              | caller's run meta, which optimiser state it holds,    |
 * |                                              | which generation of arrays is current, their CRC-32s |
 * | `run-bytes/{runId}/{generation}/{array}/{i}` | chunks of the arrays: the LoRA weights (f32) and the  |
 * |                                              | optimiser's state (f32 moments, or 8-bit codes and    |
 * |                                              | block absmaxes)                                       |
 *
 * Phi-2 with the paper's LoRA has 94M parameters, so a checkpoint is 1.1 GB of arrays with f32 moments
 * (0.57 GB with 8-bit ones): they go in chunks, one transaction each. A save writes a new generation of
 * chunks, then points the record at it and deletes the old generation in one transaction, so a save cut
 * short (a closed tab, a full disk) leaves the previous checkpoint whole; the next save clears what the
 * broken one left.
 *
 * Format versions: 2 records `optimizer` (which state the arrays hold) and each array's element type;
 * 1 (before 8-bit moments) always held f32 AdamW moments `expAvg` and `expAvgSq` and still loads.
 */

type ArrayName = 'params' | 'expAvg' | 'expAvgSq' | 'absmax';
type ElementType = 'f32' | 'u8';

/** Which optimiser state a checkpoint's arrays hold. */
export type StoredOptimizer = { kind: 'adamw' } | { kind: 'adamw-8bit'; blockSize: Adam8bitBlockSize };

interface StoredArray {
  type: ElementType;
  /** Elements. */
  length: number;
  checksums: number[];
}

export interface CheckpointRecord<M> {
  id: string;
  runId: string;
  generation: number;
  savedAt: number;
  /** The checkpoint without its arrays. */
  state: Omit<TrainCheckpoint, 'params' | 'optimizer'> & { optimizer: StoredOptimizer };
  arrays: Partial<Record<ArrayName, StoredArray>>;
  /** What the caller needs to rebuild the run (model, dataset, settings, names). */
  meta: M;
}

/** A record as version 1 wrote it: f32 moments, arrays counted in floats. */
interface RecordV1<M> {
  id: string;
  runId: string;
  generation: number;
  savedAt: number;
  state: Omit<TrainCheckpoint, 'params' | 'optimizer' | 'version' | 'config'> & { version: 1; config: Omit<TrainConfig, 'optimizer'> };
  arrays: Record<'params' | 'expAvg' | 'expAvgSq', { floats: number; checksums: number[] }>;
  meta: M;
}

export interface CheckpointSummary<M> {
  runId: string;
  step: number;
  totalSteps: number;
  savedAt: number;
  /** Bytes of the stored arrays. */
  bytes: number;
  /** The loss of the last step that had one, or null. */
  lastLoss: number | null;
  optimizer: StoredOptimizer;
  meta: M;
}

const RECORD = 'run/';
const BYTES = 'run-bytes/';
const ELEMENT_BYTES: Record<ElementType, number> = { f32: 4, u8: 1 };

function arrayPrefix(runId: string, generation: number, name?: ArrayName): string {
  return `${BYTES}${runId}/${generation}/${name ? `${name}/` : ''}`;
}

/** The arrays of a checkpoint by name, and the optimiser they belong to. */
function arraysOf(c: TrainCheckpoint): { optimizer: StoredOptimizer; arrays: Array<[ArrayName, Float32Array | Uint8Array]> } {
  const o = c.optimizer;
  if (o.kind === 'adamw') {
    return { optimizer: { kind: 'adamw' }, arrays: [['params', c.params], ['expAvg', o.expAvg], ['expAvgSq', o.expAvgSq]] };
  }
  return { optimizer: { kind: 'adamw-8bit', blockSize: o.blockSize }, arrays: [['params', c.params], ['expAvg', o.expAvg], ['expAvgSq', o.expAvgSq], ['absmax', o.absmax]] };
}

/** A version 1 record as version 2: the same run, its f32 moments named as the optimiser state. */
function upgrade<M>(r: RecordV1<M> | CheckpointRecord<M>): CheckpointRecord<M> {
  if (r.state.version !== 1) return r as CheckpointRecord<M>;
  const v1 = r as RecordV1<M>;
  const f32 = (a: { floats: number; checksums: number[] }): StoredArray => ({ type: 'f32', length: a.floats, checksums: a.checksums });
  return {
    ...v1,
    state: { ...v1.state, version: 2, config: { ...v1.state.config, optimizer: DEFAULT_OPTIMIZER }, optimizer: { kind: 'adamw' } },
    arrays: { params: f32(v1.arrays.params), expAvg: f32(v1.arrays.expAvg), expAvgSq: f32(v1.arrays.expAvgSq) },
  };
}

export class CheckpointStore<M = unknown> {
  constructor(
    private readonly db: AppDatabase,
    private readonly now: () => number = () => Date.now(),
    /** Bytes per stored chunk (smaller in tests, to exercise many chunks cheaply). */
    private readonly chunkBytes = CHUNK_BYTES,
  ) {}

  /** The store over WeightStore.db (the app database). */
  static over<M>(weightStore: { db: unknown }): CheckpointStore<M> {
    return new CheckpointStore<M>(weightStore.db as AppDatabase);
  }

  private async record(runId: string): Promise<CheckpointRecord<M> | undefined> {
    let raw: RecordV1<M> | CheckpointRecord<M> | undefined;
    try {
      raw = (await this.db.get(STORES.checkpoints, RECORD + runId)) as unknown as RecordV1<M> | CheckpointRecord<M> | undefined;
    } catch (err) {
      throw storeFailure(err, `reading the checkpoint of run ${runId}`, 0);
    }
    return raw && upgrade(raw);
  }

  /** Replaces the run's checkpoint with this one. */
  async save(runId: string, checkpoint: TrainCheckpoint, meta: M): Promise<void> {
    const previous = await this.record(runId);
    const generation = (previous?.generation ?? 0) + 1;
    const what = `the checkpoint of run ${runId} at step ${checkpoint.step}`;
    // Chunks of an earlier save that never finished would sit under this generation.
    await writeTransaction(this.db, STORES.checkpoints, `clearing ${what}`, 0, (s) => [s.delete(prefixRange(arrayPrefix(runId, generation)))]);
    const { optimizer, arrays: named } = arraysOf(checkpoint);
    const arrays: CheckpointRecord<M>['arrays'] = {};
    for (const [name, data] of named) {
      const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
      const checksums = await writeChunks(this.db, STORES.checkpoints, arrayPrefix(runId, generation, name), bytes, `saving ${what}`, this.chunkBytes);
      arrays[name] = { type: data instanceof Float32Array ? 'f32' : 'u8', length: data.length, checksums };
    }
    const { params: _p, optimizer: _o, ...rest } = checkpoint;
    const state = { ...structuredClone(rest), optimizer };
    const record: CheckpointRecord<M> = { id: RECORD + runId, runId, generation, savedAt: this.now(), state, arrays, meta };
    await writeTransaction(this.db, STORES.checkpoints, `saving ${what}`, 0, (s) => {
      const ops = [s.put(record as unknown as { id: string } & Record<string, unknown>)];
      if (previous) ops.push(s.delete(prefixRange(arrayPrefix(runId, previous.generation))));
      return ops;
    });
  }

  /** The run's checkpoint, arrays read back and checked, or null when there is none. */
  async load(runId: string): Promise<{ checkpoint: TrainCheckpoint; meta: M; savedAt: number } | null> {
    const record = await this.record(runId);
    if (!record) return null;
    if (record.state.version !== 2) throw new StoreError('corrupt', `The checkpoint of run ${runId} has version ${record.state.version}, which this app cannot read.`);
    const read = async (name: ArrayName, type: ElementType): Promise<Float32Array | Uint8Array> => {
      const a = record.arrays[name];
      if (!a || a.type !== type) throw new StoreError('corrupt', `The checkpoint of run ${runId} has no ${type} array "${name}": it is damaged. Discard it and start the run again.`);
      const bytes = await readChunks(this.db, STORES.checkpoints, arrayPrefix(runId, record.generation, name), a.length * ELEMENT_BYTES[type], a.checksums, `the ${name} of run ${runId}'s checkpoint`);
      return type === 'f32' ? new Float32Array(bytes.buffer, bytes.byteOffset, a.length) : bytes;
    };
    const { optimizer: stored, ...state } = record.state;
    const params = (await read('params', 'f32')) as Float32Array;
    const optimizer: OptimizerState =
      stored.kind === 'adamw'
        ? { kind: 'adamw', expAvg: (await read('expAvg', 'f32')) as Float32Array, expAvgSq: (await read('expAvgSq', 'f32')) as Float32Array }
        : {
            kind: 'adamw-8bit',
            blockSize: stored.blockSize,
            expAvg: (await read('expAvg', 'u8')) as Uint8Array,
            expAvgSq: (await read('expAvgSq', 'u8')) as Uint8Array,
            absmax: (await read('absmax', 'f32')) as Float32Array,
          };
    return { checkpoint: { ...state, params, optimizer }, meta: record.meta, savedAt: record.savedAt };
  }

  /** Every run with a checkpoint, most recently saved first. */
  async list(): Promise<CheckpointSummary<M>[]> {
    let records: CheckpointRecord<M>[];
    try {
      records = ((await this.db.getAll(STORES.checkpoints, prefixRange(RECORD))) as unknown as Array<RecordV1<M> | CheckpointRecord<M>>).map(upgrade);
    } catch (err) {
      throw storeFailure(err, 'listing checkpoints', 0);
    }
    return records
      .map((r) => {
        const withLoss = [...r.state.history].reverse().find((h) => Number.isFinite(h.loss));
        return {
          runId: r.runId,
          step: r.state.step,
          totalSteps: r.state.config.schedule.totalSteps,
          savedAt: r.savedAt,
          bytes: Object.values(r.arrays).reduce((n, a) => n + a.length * ELEMENT_BYTES[a.type], 0),
          lastLoss: withLoss?.loss ?? null,
          optimizer: r.state.optimizer,
          meta: r.meta,
        };
      })
      .sort((a, b) => b.savedAt - a.savedAt);
  }

  /** Deletes the run's checkpoint, every generation of arrays included. */
  async delete(runId: string): Promise<void> {
    await writeTransaction(this.db, STORES.checkpoints, `deleting the checkpoint of run ${runId}`, 0, (s) => [
      s.delete(RECORD + runId),
      s.delete(prefixRange(`${BYTES}${runId}/`)),
    ]);
  }
}
