import type { LoraModule, LoraTarget } from '../../shared/lora';
import type { GpuRuntime } from '../gpu/runtime';
import { viewTensor, type GpuTensor } from '../gpu/tensor';
import { gramScratchFloats, rowsGram } from '../kernels/rows';
import { TARGET_OF } from '../model/phi2/lora-state';
import type { LinearName, Phi2Params } from '../model/phi2/params';
import type { AdapterFactors } from './factors';
import { FrozenWeightOperator, topSingularTriplets, type LowRankUpdate, type SingularTriplets, type SubspaceOptions } from './subspace';

/**
 * Intruder dimensions (Shuttleworth, Andreas, Torralba and Sharma, 2024, "LoRA vs Full Fine-tuning: An
 * Illusion of Equivalence"): a left singular vector of the fine-tuned weight W + scaling·B·A is an
 * intruder when its largest |cosine similarity| with the pre-trained weight's singular vectors is
 * below a threshold ε. The paper counts them among the fine-tuned matrix's top k vectors and compares
 * with all of the pre-trained ones; here the pre-trained side is its top `compareWith` vectors (all of
 * them where compareWith = min(N, K)), since a full SVD of every Phi-2 matrix is out of a browser's
 * reach. A fine-tuned vector that only matched a lower-ranked pre-trained one is then counted too.
 */

export interface IntruderSettings {
  /** Fine-tuned top-k vectors examined (the paper: 10). */
  k: number;
  /** Cosine threshold ε: below it with every compared pre-trained vector, a vector intrudes. */
  threshold: number;
  /** Pre-trained top vectors compared with (>= k; min(N, K) compares with all). */
  compareWith: number;
  subspace: Omit<SubspaceOptions, 'signal'>;
}

export interface IntruderResult {
  layer: number;
  target: LoraTarget;
  /** How many of the fine-tuned top k are intruders. */
  count: number;
  /** Per fine-tuned top-k vector: its largest |cos| with the compared pre-trained vectors, and with which. */
  maxCosine: number[];
  matchedWith: number[];
  /** Top singular values of the pre-trained weight (compareWith of them) and of the fine-tuned one (k). */
  baseValues: number[];
  tunedValues: number[];
}

/** A frozen weight [N, K] on the GPU as the model holds it: int8 with per-row scales, or f16. */
export interface WeightRef {
  weight: GpuTensor;
  scales: GpuTensor | null;
  N: number;
  K: number;
}

/**
 * Most singular vectors computed per matrix: each orthonormalisation solves a p x p eigenproblem on the
 * CPU, whose cost grows as p³ (at 256 + 10, about a quarter of a second in a browser).
 */
export const MAX_SINGULAR_VECTORS = 256;

export function checkIntruderSettings(s: IntruderSettings, N: number, K: number): void {
  const side = Math.min(N, K, MAX_SINGULAR_VECTORS);
  const why = side < Math.min(N, K) ? ` (at most ${MAX_SINGULAR_VECTORS}: the CPU work per step grows as its cube)` : '';
  if (!Number.isInteger(s.k) || s.k < 1 || s.k > side) throw new RangeError(`k must be a whole number from 1 to ${side}${why}, got ${s.k}.`);
  if (!Number.isInteger(s.compareWith) || s.compareWith < s.k || s.compareWith > side) {
    throw new RangeError(`The pre-trained vectors compared with must be from k (${s.k}) to ${side}${why}, got ${s.compareWith}.`);
  }
  if (!(s.threshold > 0 && s.threshold < 1)) throw new RangeError(`The cosine threshold must be between 0 and 1, got ${s.threshold}.`);
}

/**
 * The pre-trained weight's top singular vectors: independent of any adapter, so a caller comparing
 * several adapters (or thresholds) computes them once per module.
 */
export function baseTriplets(gpu: GpuRuntime, w: WeightRef, s: IntruderSettings, signal?: AbortSignal): Promise<SingularTriplets> {
  const op = new FrozenWeightOperator(gpu, w.weight, w.scales, w.N, w.K);
  return topSingularTriplets(gpu, op, s.compareWith, { ...s.subspace, signal });
}

/** The intruder count of one module: W and W + scaling·B·A, both on the GPU (see the top of this file). */
export async function intrudersOf(
  gpu: GpuRuntime,
  module: { layer: number; target: LoraTarget },
  w: WeightRef,
  update: LowRankUpdate,
  s: IntruderSettings,
  opts: { base?: SingularTriplets; signal?: AbortSignal } = {},
): Promise<IntruderResult> {
  const { N, K } = w;
  checkIntruderSettings(s, N, K);
  const base = opts.base ?? (await baseTriplets(gpu, w, s, opts.signal));
  const op = new FrozenWeightOperator(gpu, w.weight, w.scales, N, K, update);
  let tuned: SingularTriplets | null = null;
  const cos = gpu.tensor('inspect.cosines', [s.k, s.compareWith]);
  const scratch = gpu.tensor('inspect.cosines_scratch', [gramScratchFloats(s.k, s.compareWith, N)]);
  try {
    tuned = await topSingularTriplets(gpu, op, s.k, { ...s.subspace, signal: opts.signal });
    rowsGram(gpu, cos, viewTensor(tuned.left, [s.k, N]), viewTensor(base.left, [s.compareWith, N]), s.k, s.compareWith, N, scratch);
    const c = await gpu.readF32(cos);
    const maxCosine: number[] = [];
    const matchedWith: number[] = [];
    for (let i = 0; i < s.k; i++) {
      let best = -1;
      let at = 0;
      for (let j = 0; j < s.compareWith; j++) {
        const v = Math.abs(c[i * s.compareWith + j]);
        if (v > best) {
          best = v;
          at = j;
        }
      }
      maxCosine.push(best);
      matchedWith.push(at);
    }
    return {
      ...module,
      count: maxCosine.filter((x) => x < s.threshold).length,
      maxCosine,
      matchedWith,
      baseValues: Array.from(base.values.subarray(0, s.compareWith)),
      tunedValues: Array.from(tuned.values.subarray(0, s.k)),
    };
  } finally {
    gpu.encoder.submit();
    tuned?.destroy();
    if (!opts.base) base.destroy();
    op.destroy();
    cos.buffer.destroy();
    scratch.buffer.destroy();
  }
}

/** The weight of one adapted module in the model's parameters, as the GPU holds it. */
export function moduleWeight(params: Phi2Params, module: Pick<LoraModule, 'layer' | 'target' | 'inFeatures' | 'outFeatures'>): WeightRef {
  const linear = LINEAR_OF[module.target];
  const block = params.blocks[module.layer];
  if (!block) throw new RangeError(`The model has no layer ${module.layer}.`);
  const p = block[linear];
  if (p.weight.shape[0] !== module.outFeatures || p.weight.shape[1] !== module.inFeatures) {
    throw new RangeError(`${module.target} of layer ${module.layer} is [${p.weight.shape}] in the model, but the adapter's update is [${module.outFeatures}, ${module.inFeatures}].`);
  }
  return { weight: p.weight, scales: p.scales, N: module.outFeatures, K: module.inFeatures };
}

const LINEAR_OF = Object.fromEntries(Object.entries(TARGET_OF).map(([linear, target]) => [target, linear])) as Record<LoraTarget, LinearName>;

export interface AdapterIntruderOptions {
  /** Modules to examine (by default every module the adapter adapts). */
  modules?: ReadonlyArray<{ layer: number; target: LoraTarget }>;
  signal?: AbortSignal;
  onProgress?: (p: { done: number; total: number; result: IntruderResult }) => void;
}

/**
 * Intruder dimensions of every chosen module of an adapter against the model's weights, one module at
 * a time (each ends with a readback, so progress is real and a cancel lands between modules).
 */
export async function adapterIntruders(gpu: GpuRuntime, params: Phi2Params, adapter: AdapterFactors, s: IntruderSettings, opts: AdapterIntruderOptions = {}): Promise<IntruderResult[]> {
  const modules = (opts.modules ?? adapter.modules).map((m) => {
    const found = adapter.modules.find((x) => x.layer === m.layer && x.target === m.target);
    if (!found) throw new RangeError(`The adapter does not adapt ${m.target} of layer ${m.layer}.`);
    return found;
  });
  if (!modules.length) throw new RangeError('Choose at least one module.');
  for (const m of modules) {
    try {
      checkIntruderSettings(s, m.outFeatures, m.inFeatures);
    } catch (err) {
      throw new RangeError(`${(err as Error).message} (${m.target} is ${m.outFeatures} x ${m.inFeatures})`);
    }
  }
  const results: IntruderResult[] = [];
  for (const m of modules) {
    opts.signal?.throwIfAborted();
    const f = adapter.factors(m);
    const result = await intrudersOf(gpu, m, moduleWeight(params, m), { A: f.A, B: f.B, r: f.r, scaling: f.scaling }, s, { signal: opts.signal });
    results.push(result);
    opts.onProgress?.({ done: results.length, total: modules.length, result });
  }
  return results;
}
