import type { GpuRuntime } from '../../gpu/runtime';
import { viewTensor, type GpuTensor } from '../../gpu/tensor';
import { initLoraA, loraModules, loraScaling, type LoraModule, type LoraSettings, type LoraTarget } from '../../adapters/lora-config';
import { adapterTensorNames } from '../../adapters/peft';
import type { LinearName, Phi2Dims } from './params';

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
 * A LoRA adapter on the GPU. Every A and B lives in one flat f32 buffer (and so do their gradients
 * and AdamW moments, when training), so the gradient norm, clipping and the optimizer step are one
 * dispatch each over the whole adapter. Padding between tensors stays zero: it has zero gradient and
 * zero weight, so AdamW leaves it zero.
 */
export class LoraState {
  readonly scaling: number;
  readonly modules: LoraModuleTensors[];
  readonly params: GpuTensor;
  /** Floats in the flat buffers, padding included. */
  readonly size: number;
  grads: GpuTensor | null = null;
  expAvg: GpuTensor | null = null;
  expAvgSq: GpuTensor | null = null;
  private byLayer: Map<string, LoraModuleTensors>;
  private offsets: Array<{ a: number; b: number }>;

  constructor(
    private readonly gpu: GpuRuntime,
    readonly dims: Phi2Dims,
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
  setFlat(which: 'params' | 'expAvg' | 'expAvgSq', data: Float32Array): void {
    if (data.length !== this.size) throw new Error(`LoRA ${which}: ${data.length} floats for a layout of ${this.size}`);
    const t = which === 'params' ? this.params : which === 'expAvg' ? this.expAvg : this.expAvgSq;
    if (!t) throw new Error(`LoRA ${which}: no training buffers yet`);
    this.gpu.write(t, data);
  }

  /** Allocates gradients and AdamW moments (zeroed), and gradient views per module. */
  enableTraining(): void {
    if (this.grads) return;
    const zeros = (name: string) => {
      const t = this.gpu.tensor(name, [this.size]);
      this.gpu.write(t, new Float32Array(this.size));
      return t;
    };
    this.grads = zeros('lora.grads');
    this.expAvg = zeros('lora.exp_avg');
    this.expAvgSq = zeros('lora.exp_avg_sq');
    this.modules.forEach((m, i) => {
      m.dA = viewTensor(this.grads!, m.A.shape, `${m.module.path}.lora_A.grad`, this.offsets[i].a * 4);
      m.dB = viewTensor(this.grads!, m.B.shape, `${m.module.path}.lora_B.grad`, this.offsets[i].b * 4);
    });
  }

  /** Reads a flat buffer back (checkpoints, export). */
  async readFlat(which: 'params' | 'grads' | 'expAvg' | 'expAvgSq'): Promise<Float32Array> {
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
    for (const t of [this.params, this.grads, this.expAvg, this.expAvgSq]) t?.buffer.destroy();
  }
}

function checked(data: Float32Array, count: number, name: string): Float32Array {
  if (data.length !== count) throw new Error(`${name}: ${data.length} values, expected ${count}`);
  return data;
}
