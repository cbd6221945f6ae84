import { DEFAULT_INFERENCE, runnableInference, type InferenceOptions } from '../../shared/compute';
import { decodeAdapter, type AdapterFiles, type AdapterTensors } from '../adapters/files';
import type { Engine } from '../engine';
import { Phi2Model } from '../model/phi2/forward';
import { Generator } from '../model/phi2/generate';
import { LoraState } from '../model/phi2/lora-state';
import { phi2ParamsFromWeights } from '../model/phi2/build';
import type { ModelDims } from '../weights/config';
import { WeightStore } from '../store';
import { loadStoredTokenizer, type PhiTokenizer } from '../tokenizer';
import { loadModelToGpu, type LoadProgress } from '../weights/upload';

/**
 * What the engine holds between calls: the IndexedDB store, the model on the GPU with its tokenizer
 * and generator, and the LoRA adapters loaded beside it (applied unmerged; one is active at a time).
 * Every page's part of the engine in this folder (training.ts, evaluations.ts, demo.ts, adapters.ts,
 * inspection.ts, ...) works through this one object, and takes the model lock below for GPU work.
 */

export interface LoadedModel {
  id: string;
  dims: ModelDims;
  weightMode: 'int8' | 'f16';
  model: Phi2Model;
  tokenizer: PhiTokenizer;
  generator: Generator;
  gpuBytes: number;
}

export class SessionError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SessionError';
  }
}

// ---------------------------------------------------------------------------------------------------
// The model lock: one GPU task at a time per model (evaluation, demo, training, adapter merges and the
// adapter analyses share the loaded model's Generator).

const holders = new WeakMap<object, string>();

export class ModelBusyError extends Error {
  override name = 'ModelBusyError';
}

/**
 * Runs `task` with exclusive use of a Generator (its workspace and KV cache are shared by every call,
 * so two generations must not interleave). A second caller is refused at once with what holds it,
 * rather than queued behind a long evaluation without a word.
 */
export async function withModel<T>(generator: object, what: string, task: () => Promise<T>): Promise<T> {
  const holder = holders.get(generator);
  if (holder !== undefined) throw new ModelBusyError(`The model is busy with ${holder}. Wait for it to finish or cancel it, then try again.`);
  holders.set(generator, what);
  try {
    return await task();
  } finally {
    holders.delete(generator);
  }
}

export function modelBusyWith(generator: object): string | null {
  return holders.get(generator) ?? null;
}

// ---------------------------------------------------------------------------------------------------

export class Session {
  private storePromise: Promise<WeightStore> | null = null;
  private openStore: WeightStore | null = null;
  private current: LoadedModel | null = null;
  private destroyWeights: (() => void) | null = null;
  private readonly adapters = new Map<string, { state: LoraState; meta: AdapterTensors }>();
  activeAdapter: string | null = null;
  /** The inference settings asked for: a model is made with those it can run (session/inference.ts changes them). */
  inference: InferenceOptions = { ...DEFAULT_INFERENCE };

  constructor(readonly engine: Engine) {
    // A lost device takes every GPU buffer with it: forget them so the next use loads again.
    engine.onGpuLost(() => this.forgetGpu());
  }

  /**
   * The app database. A failed open is not kept (the next call tries again: the user may have left a
   * private window, or closed the tab that blocked it), and a store closed under us (another tab's
   * upgrade) is opened again, which says in words that this tab must be reloaded when it must.
   */
  store(): Promise<WeightStore> {
    if (!this.storePromise || this.openStore?.closedReason) {
      const opening = WeightStore.open(this.engine.platform);
      this.storePromise = opening;
      this.openStore = null;
      opening.then(
        (store) => {
          if (this.storePromise === opening) this.openStore = store;
        },
        () => {
          if (this.storePromise === opening) this.storePromise = null;
        },
      );
    }
    return this.storePromise;
  }

  get loaded(): LoadedModel | null {
    return this.current;
  }

  /** The loaded model, or a clear error saying how to get one. */
  requireModel(): LoadedModel {
    if (!this.current) throw new SessionError('No model is loaded on the GPU. Load one on the Model page first.');
    return this.current;
  }

  async load(modelId: string, onProgress?: (p: LoadProgress) => void): Promise<LoadedModel> {
    if (this.current?.id === modelId) return this.current;
    this.unload();
    const store = await this.store();
    const manifest = await store.getModel(modelId);
    if (!manifest) throw new SessionError(`No stored model "${modelId}". Download or import it first.`);
    if (!manifest.complete) throw new SessionError(`"${modelId}" is not completely stored yet. Resume its download first.`);
    const gpu = await this.engine.runtime();
    const weights = await loadModelToGpu(gpu, store, modelId, onProgress);
    try {
      const tokenizer = await loadStoredTokenizer(store, modelId);
      const params = phi2ParamsFromWeights(weights);
      const model = new Phi2Model(gpu, params, runnableInference(this.inference, { weightMode: params.weightMode, hidden: params.dims.hidden, hasInt8Dot: gpu.ctx.hasInt8Dot }));
      this.destroyWeights = () => weights.destroy();
      this.current = {
        id: modelId,
        dims: model.dims,
        weightMode: weights.scheme,
        model,
        tokenizer,
        generator: new Generator(model, { decodableVocab: Math.min(tokenizer.vocabSize, model.dims.vocab), endOfText: tokenizer.eosTokenId }),
        gpuBytes: weights.bytes,
      };
      return this.current;
    } catch (err) {
      weights.destroy();
      throw err;
    }
  }

  unload(): void {
    for (const { state } of this.adapters.values()) state.destroy();
    this.adapters.clear();
    this.activeAdapter = null;
    if (this.current) {
      this.current.generator.destroy();
      this.current.model.destroy();
    }
    this.destroyWeights?.();
    this.destroyWeights = null;
    this.current = null;
  }

  private forgetGpu(): void {
    // The buffers died with the device; dropping the references is all that is left to do.
    this.adapters.clear();
    this.activeAdapter = null;
    this.current = null;
    this.destroyWeights = null;
  }

  /** Puts an adapter's weights on the GPU beside the loaded model (checked against its shapes). */
  addAdapter(id: string, files: AdapterFiles): AdapterTensors {
    const { dims, model } = this.requireModel();
    const meta = decodeAdapter(files, { hidden: dims.hidden, intermediate: dims.intermediate, layers: dims.layers });
    this.adapters.get(id)?.state.destroy();
    const state = new LoraState(model.gpu, dims, meta.settings);
    state.setWeights((name) => meta.tensors.get(name)!.data);
    this.adapters.set(id, { state, meta });
    return meta;
  }

  /** Registers an adapter state made here (a training run's). */
  putAdapterState(id: string, state: LoraState, meta: AdapterTensors): void {
    const old = this.adapters.get(id);
    if (old && old.state !== state) old.state.destroy();
    this.adapters.set(id, { state, meta });
  }

  adapter(id: string | null): LoraState | null {
    if (id === null) return null;
    const a = this.adapters.get(id);
    if (!a) throw new SessionError(`Adapter "${id}" is not loaded. Load it on the Adapters page.`);
    return a.state;
  }

  removeAdapter(id: string): void {
    this.adapters.get(id)?.state.destroy();
    this.adapters.delete(id);
    if (this.activeAdapter === id) this.activeAdapter = null;
  }

  loadedAdapters(): string[] {
    return [...this.adapters.keys()];
  }
}
