/**
 * Shared pieces of the adapter tests: small PEFT adapters made here, the app database over
 * fake-indexeddb. A disk that fills up is the store tests' LimitedDisk (../store/idb-helpers).
 */
import 'fake-indexeddb/auto';
import { IDBFactory } from 'fake-indexeddb';
import { encodeAdapter, type AdapterFiles } from '../../src/engine/adapters/files';
import { loraModules, type LinearShapes, type LoraSettings } from '../../src/shared/lora';
import { adapterTensorNames } from '../../src/engine/adapters/peft';
import { WeightStore } from '../../src/engine/store/store';
import { randomArray, rng } from './compare';

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

/** Every key of an object store (to see what a delete left behind). */
export async function keysOf(store: WeightStore, name: 'adapters' | 'checkpoints'): Promise<string[]> {
  return (await store.db.getAllKeys(name)) as string[];
}
