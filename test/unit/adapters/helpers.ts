/**
 * Shared pieces of the adapter tests: small PEFT adapters made here, the app database over
 * fake-indexeddb, and a disk that fills up for the adapter and checkpoint stores.
 */
import 'fake-indexeddb/auto';
import { IDBFactory } from 'fake-indexeddb';
import { encodeAdapter, type AdapterFiles } from '../../../src/engine/adapters/files';
import { loraModules, type LinearShapes, type LoraSettings } from '../../../src/engine/adapters/lora-config';
import { adapterTensorNames } from '../../../src/engine/adapters/peft';
import { WeightStore } from '../../../src/engine/store/store';
import { randomArray, rng } from '../../support/compare';

export const SHAPES: LinearShapes = { hidden: 8, intermediate: 16, layers: 2 };

export const SETTINGS: LoraSettings = { r: 2, alpha: 4, dropout: 0, useRslora: false, targets: ['q_proj', 'v_proj', 'fc1'], layers: 'all' };

/** A PEFT adapter with random A and B for `shapes`, as encodeAdapter writes it (F32). */
export function makeAdapter(seed = 1, settings: LoraSettings = SETTINGS, shapes: LinearShapes = SHAPES, baseModel = 'test/base-model'): AdapterFiles {
  const random = rng(seed);
  const tensors = new Map<string, { shape: number[]; data: Float32Array }>();
  for (const m of loraModules(settings, shapes)) {
    const names = adapterTensorNames(m);
    tensors.set(names.a, { shape: [settings.r, m.inFeatures], data: randomArray(settings.r * m.inFeatures, random) });
    tensors.set(names.b, { shape: [m.outFeatures, settings.r], data: randomArray(m.outFeatures * settings.r, random) });
  }
  return encodeAdapter(settings, baseModel, tensors);
}

let dbCount = 0;

/** A fresh app database (its own fake-indexeddb factory). */
export async function freshStore(): Promise<WeightStore> {
  return WeightStore.open(
    { indexedDB: new IDBFactory(), storage: { persist: async () => true, persisted: async () => true, estimate: async () => null } },
    { name: `adapters-test-${++dbCount}` },
  );
}

/**
 * A disk of `budget` bytes for the chunked values (anything with an ArrayBuffer `data`) of the
 * adapters and checkpoints stores: past it, a put fails with QuotaExceededError as browsers report it.
 */
export class FullDisk {
  used = 0;
  private restore: (() => void) | null = null;

  constructor(public budget: number) {}

  install(): this {
    const proto = (globalThis as unknown as { IDBObjectStore: { prototype: Record<string, unknown> } }).IDBObjectStore.prototype;
    const original = proto.put as (this: IDBObjectStore, value: unknown, key?: IDBValidKey) => IDBRequest;
    const disk = this;
    proto.put = function (this: IDBObjectStore & { transaction: IDBTransaction & Record<string, Function> }, value: unknown, key?: IDBValidKey) {
      const data = (value as { data?: unknown }).data;
      const bytes = (this.name === 'adapters' || this.name === 'checkpoints') && data instanceof ArrayBuffer ? data.byteLength : 0;
      if (bytes && disk.used + bytes > disk.budget) {
        return this.transaction._execRequestAsync({
          operation: () => {
            throw new DOMException('The quota has been exceeded.', 'QuotaExceededError');
          },
          source: this,
        });
      }
      if (bytes) {
        disk.used += bytes;
        this.transaction.addEventListener('abort', () => (disk.used -= bytes));
      }
      return original.call(this, value, key);
    };
    this.restore = () => {
      proto.put = original;
    };
    return this;
  }

  uninstall(): void {
    this.restore?.();
    this.restore = null;
  }
}

/** Every key of an object store (to see what a delete left behind). */
export async function keysOf(store: WeightStore, name: 'adapters' | 'checkpoints'): Promise<string[]> {
  return (await store.db.getAllKeys(name)) as string[];
}
