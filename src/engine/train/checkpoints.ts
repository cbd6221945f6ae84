import { CHUNK_BYTES, prefixRange, readChunks, storeFailure, writeChunks, writeTransaction, type AppDatabase } from '../adapters/store';
import { StoreError } from '../store/errors';
import { STORES } from '../store/schema';
import type { TrainCheckpoint } from './trainer';

/**
 * Training checkpoints in IndexedDB, in the app database's `checkpoints` object store (reserved by
 * store/schema.ts, keyPath `id`). One checkpoint per run, the latest:
 *
 * | key                                        | value                                                 |
 * |--------------------------------------------|-------------------------------------------------------|
 * | `run/{runId}`                              | {@link CheckpointRecord}: step, data position, config |
 * |                                            | (seed included), loss history, the caller's run meta, |
 * |                                            | which generation of arrays is current, their CRC-32s |
 * | `run-bytes/{runId}/{generation}/{array}/{i}` | chunks of the LoRA weights and the AdamW moments (f32) |
 *
 * Phi-2 with the paper's LoRA has 94M parameters, so a checkpoint is 1.1 GB of arrays: they go in
 * chunks, one transaction each. A save writes a new generation of chunks, then points the record at it
 * and deletes the old generation in one transaction, so a save cut short (a closed tab, a full disk)
 * leaves the previous checkpoint whole; the next save clears what the broken one left.
 */

const ARRAYS = ['params', 'expAvg', 'expAvgSq'] as const;
type ArrayName = (typeof ARRAYS)[number];

export interface CheckpointRecord<M> {
  id: string;
  runId: string;
  generation: number;
  savedAt: number;
  /** The checkpoint without its arrays. */
  state: Omit<TrainCheckpoint, ArrayName>;
  arrays: Record<ArrayName, { floats: number; checksums: number[] }>;
  /** What the caller needs to rebuild the run (model, dataset, settings, names). */
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
  meta: M;
}

const RECORD = 'run/';
const BYTES = 'run-bytes/';

function arrayPrefix(runId: string, generation: number, name?: ArrayName): string {
  return `${BYTES}${runId}/${generation}/${name ? `${name}/` : ''}`;
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
    try {
      return (await this.db.get(STORES.checkpoints, RECORD + runId)) as unknown as CheckpointRecord<M> | undefined;
    } catch (err) {
      throw storeFailure(err, `reading the checkpoint of run ${runId}`, 0);
    }
  }

  /** Replaces the run's checkpoint with this one. */
  async save(runId: string, checkpoint: TrainCheckpoint, meta: M): Promise<void> {
    const previous = await this.record(runId);
    const generation = (previous?.generation ?? 0) + 1;
    const what = `the checkpoint of run ${runId} at step ${checkpoint.step}`;
    // Chunks of an earlier save that never finished would sit under this generation.
    await writeTransaction(this.db, STORES.checkpoints, `clearing ${what}`, 0, (s) => [s.delete(prefixRange(arrayPrefix(runId, generation)))]);
    const arrays = {} as CheckpointRecord<M>['arrays'];
    for (const name of ARRAYS) {
      const data = checkpoint[name];
      const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
      arrays[name] = { floats: data.length, checksums: await writeChunks(this.db, STORES.checkpoints, arrayPrefix(runId, generation, name), bytes, `saving ${what}`, this.chunkBytes) };
    }
    const { params: _p, expAvg: _m, expAvgSq: _v, ...state } = checkpoint;
    const record: CheckpointRecord<M> = { id: RECORD + runId, runId, generation, savedAt: this.now(), state: structuredClone(state), arrays, meta };
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
    const read = async (name: ArrayName): Promise<Float32Array> => {
      const { floats, checksums } = record.arrays[name];
      const bytes = await readChunks(this.db, STORES.checkpoints, arrayPrefix(runId, record.generation, name), floats * 4, checksums, `the ${name} of run ${runId}'s checkpoint`);
      return new Float32Array(bytes.buffer, bytes.byteOffset, floats);
    };
    const checkpoint: TrainCheckpoint = { ...record.state, params: await read('params'), expAvg: await read('expAvg'), expAvgSq: await read('expAvgSq') };
    if (checkpoint.version !== 1) throw new StoreError('corrupt', `The checkpoint of run ${runId} has version ${checkpoint.version}, which this app cannot read.`);
    return { checkpoint, meta: record.meta, savedAt: record.savedAt };
  }

  /** Every run with a checkpoint, most recently saved first. */
  async list(): Promise<CheckpointSummary<M>[]> {
    let records: CheckpointRecord<M>[];
    try {
      records = (await this.db.getAll(STORES.checkpoints, prefixRange(RECORD))) as unknown as CheckpointRecord<M>[];
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
          bytes: ARRAYS.reduce((n, a) => n + r.arrays[a].floats * 4, 0),
          lastLoss: withLoss?.loss ?? null,
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
