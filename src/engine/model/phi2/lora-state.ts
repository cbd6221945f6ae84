import type { GpuRuntime } from '../../gpu/runtime';
import { viewTensor, type GpuTensor } from '../../gpu/tensor';
import { initLoraA, loraModules, loraScaling, type LoraModule, type LoraSettings, type LoraTarget } from '../../../shared/lora';
import { adapterTensorNames } from '../../adapters/peft';
import { createAdamW, type AdamWOptimizer } from '../../optim/adamw-state';
import { DEFAULT_OPTIMIZER, describeOptimizer, sameOptimizer, type OptimizerSettings, type Segment } from '../../../shared/optimizer';
import type { ModelDims } from '../../weights/config';
import type { LinearName } from './params';

/** PEFT's target name for each of the model's linear layers. */
export const TARGET_OF: Record<LinearName, LoraTarget> = { q: 'q_proj', k: 'k_proj', v: 'v_proj', dense: 'dense', fc1: 'fc1', fc2: 'fc2' };

/** Storage offsets are rounded to this, so every A and B can be bound as its own view. */
const ALIGN_FLOATS = 64; // 256 bytes

export interface LoraModuleTensors {
  module: LoraModule;
  A: GpuTensor;
  B: GpuTensor;
  /** Present once training buffers exist. */
  dA?: GpuTensor;
  dB?: GpuTensor;
}

/**
 * A LoRA adapter on the GPU. Every A and B lives in one flat f32 buffer (and so do their gradients,
 * when training), so the gradient norm, clipping and the optimizer step are one dispatch each over the
 * whole adapter; the optimiser (engine/optim) keeps its state for the same flat layout and knows where
 * each tensor lies in it. Padding between tensors stays zero: it has zero gradient and zero weight,
 * so the optimiser leaves it zero.
 */
export class LoraState {
  readonly scaling: number;
  readonly modules: LoraModuleTensors[];
  readonly params: GpuTensor;
  /** Floats in the flat buffers, padding included. */
  readonly size: number;
  grads: GpuTensor | null = null;
  /** AdamW's state for these parameters, once training buffers exist. */
  optimizer: AdamWOptimizer | null = null;
  private byLayer: Map<string, LoraModuleTensors>;
  private offsets: Array<{ a: number; b: number }>;

  constructor(
    private readonly gpu: GpuRuntime,
    readonly dims: ModelDims,
    readonly settings: LoraSettings,
  ) {
    this.scaling = loraScaling(settings);
    const mods = loraModules(settings, { hidden: dims.hidden, intermediate: dims.intermediate, layers: dims.layers });
    let offset = 0;
    const align = (n: number) => Math.ceil(n / ALIGN_FLOATS) * ALIGN_FLOATS;
    this.offsets = mods.map((m) => {
      const a = offset;
      offset = align(offset + settings.r * m.inFeatures);
      const b = offset;
      offset = align(offset + m.outFeatures * settings.r);
      return { a, b };
    });
    this.size = Math.max(offset, ALIGN_FLOATS);
    this.params = gpu.tensor('lora.params', [this.size]);
    this.modules = mods.map((module, i) => ({
      module,
      A: viewTensor(this.params, [settings.r, module.inFeatures], `${module.path}.lora_A`, this.offsets[i].a * 4),
      B: viewTensor(this.params, [module.outFeatures, settings.r], `${module.path}.lora_B`, this.offsets[i].b * 4),
    }));
    this.byLayer = new Map(this.modules.map((m) => [`${m.module.layer}.${m.module.target}`, m]));
  }

  /** The adapter of one linear layer, or undefined when that layer is not adapted. */
  at(layer: number, linear: LinearName): LoraModuleTensors | undefined {
    return this.byLayer.get(`${layer}.${TARGET_OF[linear]}`);
  }

  /** PEFT's initialisation: A uniform in ±1/sqrt(in), B zero (the adapter starts as a no-op). */
  initialise(random: () => number): void {
    const host = new Float32Array(this.size);
    this.modules.forEach((m, i) => host.set(initLoraA(this.settings.r, m.module.inFeatures, random), this.offsets[i].a));
    this.gpu.write(this.params, host);
  }

  /** Sets weights from PEFT-named host tensors (adapter_model.safetensors), A [r, in] and B [out, r] each. */
  setWeights(get: (name: string) => Float32Array): void {
    const host = new Float32Array(this.size);
    this.modules.forEach((m, i) => {
      const names = adapterTensorNames(m.module);
      host.set(checked(get(names.a), this.settings.r * m.module.inFeatures, names.a), this.offsets[i].a);
      host.set(checked(get(names.b), m.module.outFeatures * this.settings.r, names.b), this.offsets[i].b);
    });
    this.gpu.write(this.params, host);
  }

  /** Sets the whole flat parameter buffer (a checkpoint). */
  setFlat(which: 'params', data: Float32Array): void {
    if (data.length !== this.size) throw new Error(`LoRA ${which}: ${data.length} floats for a layout of ${this.size}`);
    this.gpu.write(this.params, data);
  }

  /** Where each A and B lies in the flat buffers (for the optimiser's per-tensor blocks). */
  segments(): Segment[] {
    return this.modules.flatMap((m, i) => [
      { offset: this.offsets[i].a, length: this.settings.r * m.module.inFeatures },
      { offset: this.offsets[i].b, length: m.module.outFeatures * this.settings.r },
    ]);
  }

  /**
   * Allocates the gradients (zeroed), gradient views per module and the optimiser's state (zero moments):
   * f32 AdamW unless another optimiser is given. Once enabled, asking for another optimiser is an error.
   */
  enableTraining(optimizer?: OptimizerSettings): void {
    if (this.grads) {
      if (optimizer && !sameOptimizer(optimizer, this.optimizer!.settings)) {
        throw new Error(`LoRA training buffers already use ${describeOptimizer(this.optimizer!.settings)}, not ${describeOptimizer(optimizer)}`);
      }
      return;
    }
    this.grads = this.gpu.tensor('lora.grads', [this.size]);
    this.gpu.write(this.grads, new Float32Array(this.size));
    this.optimizer = createAdamW(this.gpu, optimizer ?? DEFAULT_OPTIMIZER, this.size, this.segments());
    this.modules.forEach((m, i) => {
      m.dA = viewTensor(this.grads!, m.A.shape, `${m.module.path}.lora_A.grad`, this.offsets[i].a * 4);
      m.dB = viewTensor(this.grads!, m.B.shape, `${m.module.path}.lora_B.grad`, this.offsets[i].b * 4);
    });
  }

  /** Reads a flat buffer back (checkpoints, export). */
  async readFlat(which: 'params' | 'grads'): Promise<Float32Array> {
    const t = this[which];
    if (!t) throw new Error(`LoRA ${which}: no such buffer`);
    return this.gpu.readF32(t);
  }

  /** The adapter's tensors by PEFT name, from a flat buffer read back (params or grads). */
  unflatten(flat: Float32Array): Map<string, { shape: number[]; data: Float32Array }> {
    const out = new Map<string, { shape: number[]; data: Float32Array }>();
    this.modules.forEach((m, i) => {
      const names = adapterTensorNames(m.module);
      const r = this.settings.r;
      out.set(names.a, { shape: [r, m.module.inFeatures], data: flat.slice(this.offsets[i].a, this.offsets[i].a + r * m.module.inFeatures) });
      out.set(names.b, { shape: [m.module.outFeatures, r], data: flat.slice(this.offsets[i].b, this.offsets[i].b + m.module.outFeatures * r) });
    });
    return out;
  }

  destroy(): void {
    for (const t of [this.params, this.grads]) t?.buffer.destroy();
    this.optimizer?.destroy();
  }
}

function checked(data: Float32Array, count: number, name: string): Float32Array {
  if (data.length !== count) throw new Error(`${name}: ${data.length} values, expected ${count}`);
  return data;
}
