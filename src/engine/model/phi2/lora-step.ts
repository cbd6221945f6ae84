import type { GpuRuntime } from '../../gpu/runtime';
import { viewTensor, type GpuTensor } from '../../gpu/tensor';
import { recordGroup, type GroupProblem, type LoraDropout } from '../../kernels/lora';
import type { LoraBackwardColumns } from '../../kernels/matmul';
import { stepLoraScratchFloats } from '../../../shared/lora-slicing';
import type { LoraState } from './lora-state';
import type { LinearName } from './params';

/**
 * The LoRA side of a training step, grouped so that a block costs a handful of dispatches instead of
 * 13 per adapted layer (lora.gemm.wgsl's groups):
 *   forward   xa = dropout(x)·Aᵀ once for every adapted layer that reads x (q, k, v and fc1 read LN(x)),
 *             kept for the whole step (layers x adapted x tokens x r floats, 25 MiB for Phi-2 at 1 x 512
 *             with r 64), so the recomputation in backward needs only the B products;
 *             out += scaling * xa·Bᵀ for q, k, v and fc1 at once; for dense and fc2 with the residual dropout
 *             and the residual add in the epilogue;
 *   backward  dxa = scaling * dY·B in the base input gradient's own pass on the f32 path (columns(): extra
 *             column tiles of matmul.bwd), else per group of layers with the same width (gradProducts);
 *             d input += Σ dropout-mask ⊙ (dxa·A), summed over the layers that share the input (q, k, v
 *             and fc1 into d LN-out); every dA and dB of the block in two dispatches at its end, with no
 *             split reductions (their tiles alone fill the GPU).
 * Operands are addressed by element offsets inside per-layer views of the adapter's flat buffers, so
 * one dispatch reaches every layer of a block.
 */

/** Store order: the layers that read LN(x) first, so that their xa and dxa follow one another. */
export const STORE_ORDER: readonly LinearName[] = ['q', 'k', 'v', 'fc1', 'dense', 'fc2'];

/** A tensor and an element offset inside it. */
export interface At {
  t: GpuTensor;
  off: number;
}

const align = (floats: number) => Math.ceil(floats / 64) * 64; // 256-byte binding offsets

export class LoraStepKernels {
  private readonly r: number;
  private readonly adapted: LinearName[][];
  private readonly xaBase: number[];
  /** x·Aᵀ of every adapted layer of every block, [layer][adapted][M][r]. */
  readonly xaStore: GpuTensor;
  /** scaling * dY·B of the block in backward, [adapted][M][r]. */
  readonly dxaStore: GpuTensor;
  readonly partials: GpuTensor;
  private readonly layerRange: Array<{ start: number; floats: number } | null>;

  constructor(
    private readonly gpu: GpuRuntime,
    private readonly lora: LoraState,
    layers: number,
    hidden: number,
    intermediate: number,
    readonly maxM: number,
  ) {
    const r = (this.r = lora.settings.r);
    this.adapted = Array.from({ length: layers }, (_, l) => STORE_ORDER.filter((n) => lora.at(l, n)));
    let base = 0;
    this.xaBase = this.adapted.map((names) => {
      const b = base;
      base += align(names.length * maxM * r);
      return b;
    });
    this.xaStore = gpu.tensor('lora.xa', [Math.max(base, 64)]);
    this.dxaStore = gpu.tensor('lora.dxa', [STORE_ORDER.length * maxM * r]);
    this.partials = gpu.tensor('lora.partials', [Math.max(1, stepLoraScratchFloats(maxM, hidden, intermediate, r).partials)]);
    this.layerRange = this.adapted.map((names, l) => {
      if (!names.length) return null;
      const ends = names.flatMap((n) => [lora.at(l, n)!.A, lora.at(l, n)!.B]);
      const start = Math.min(...ends.map((t) => t.byteOffset));
      const end = Math.max(...ends.map((t) => t.byteOffset + t.shape[0] * t.shape[1] * 4));
      return { start, floats: (end - start) / 4 };
    });
  }

  /** The adapted layers of block l among `names`, in store order. */
  private of(l: number, names: readonly LinearName[]): LinearName[] {
    return this.adapted[l].filter((n) => names.includes(n));
  }

  private index(l: number, name: LinearName): number {
    return this.adapted[l].indexOf(name);
  }

  /** Layer l's slice of the adapter's flat params (or grads) and an A or B's element offset in it. */
  private layerView(l: number, which: 'params' | 'grads'): GpuTensor {
    const range = this.layerRange[l]!;
    const flat = which === 'params' ? this.lora.params : this.lora.grads!;
    return viewTensor(flat, [range.floats], `lora.${which}.layer${l}`, range.start - flat.byteOffset);
  }

  private offsetOf(l: number, t: GpuTensor): number {
    return (t.byteOffset - this.lora.params.byteOffset - this.layerRange[l]!.start) / 4;
  }

  private gradOffsetOf(l: number, t: GpuTensor): number {
    return (t.byteOffset - this.lora.grads!.byteOffset - this.layerRange[l]!.start) / 4;
  }

  /** Block l's xa, [adapted][M][r]. */
  private xa(l: number, M: number): GpuTensor {
    return viewTensor(this.xaStore, [Math.max(1, this.adapted[l].length) * M * this.r], `lora.xa.layer${l}`, this.xaBase[l] * 4);
  }

  private dxa(l: number, M: number): GpuTensor {
    return viewTensor(this.dxaStore, [Math.max(1, this.adapted[l].length) * M * this.r], 'lora.dxa');
  }

  /** Whether block l adapts any of `names`. */
  has(l: number, names: readonly LinearName[]): boolean {
    return this.of(l, names).length > 0;
  }

  /** Saves xa = dropout(x)·Aᵀ for the adapted layers among `names`, which all read x [M, K]. */
  inputProducts(l: number, names: readonly LinearName[], x: GpuTensor, M: number, K: number, drop: (name: LinearName) => LoraDropout | null): void {
    const group = this.of(l, names);
    if (!group.length) return;
    const dropout = drop(group[0]);
    recordGroup(
      this.gpu,
      'loraInputProducts',
      {
        c: this.xa(l, M),
        as: [x],
        bs: [this.layerView(l, 'params')],
        problems: group.map((n) => ({
          M, N: this.r, a: { slot: 0, off: 0 }, b: { slot: 0, off: this.offsetOf(l, this.lora.at(l, n)!.A) },
          cOff: this.index(l, n) * M * this.r, salt: drop(n)?.salt,
        })),
        L: K, aRow: K, aRed: 1, bRed: 1, bCol: K, alpha: 1, accumulate: false, split: true,
        drop: dropout ? { target: 'a', p: dropout.p, seed: dropout.seed } : null,
      },
      this.partials,
    );
  }

  /**
   * out_n (+=) scaling * xa_n·B_nᵀ for the adapted layers among `names` (outputs [M, width(n)] at
   * `outs`, all in one tensor); with `residual`, out holds a branch and residual += dropout(out + product) instead.
   */
  outputProducts(
    l: number,
    names: readonly LinearName[],
    out: GpuTensor,
    outs: (name: LinearName) => number,
    M: number,
    width: number | ((name: LinearName) => number),
    residual?: { t: GpuTensor; mask: { p: number; seed: number; salt: number } | null },
  ): void {
    const group = this.of(l, names);
    if (!group.length) return;
    const N = typeof width === 'number' ? () => width : width;
    recordGroup(this.gpu, 'loraOutputProducts', {
      c: out,
      as: [this.xa(l, M)],
      bs: [this.layerView(l, 'params')],
      problems: group.map((n) => ({
        M, N: N(n), a: { slot: 0, off: this.index(l, n) * M * this.r }, b: { slot: 0, off: this.offsetOf(l, this.lora.at(l, n)!.B) }, cOff: outs(n),
      })),
      L: this.r, aRow: this.r, aRed: 1, bRed: 1, bCol: this.r, alpha: this.lora.scaling, accumulate: true,
      residual: residual ? { t: residual.t, off: 0, mask: residual.mask } : undefined,
    }, null);
  }

  /** dxa_n = scaling * dout_n·B_n for the adapted layers among `names` (douts [M, N] in one tensor). */
  gradProducts(l: number, names: readonly LinearName[], dout: GpuTensor, douts: (name: LinearName) => number, M: number, N: number): void {
    const group = this.of(l, names);
    if (!group.length) return;
    // Split sums need their Cs in a row: the group's dxa are, in store order.
    recordGroup(
      this.gpu,
      'loraGradProducts',
      {
        c: this.dxa(l, M),
        as: [dout],
        bs: [this.layerView(l, 'params')],
        problems: group.map((n) => ({
          M, N: this.r, a: { slot: 0, off: douts(n) }, b: { slot: 0, off: this.offsetOf(l, this.lora.at(l, n)!.B) }, cOff: this.index(l, n) * M * this.r,
        })),
        L: N, aRow: N, aRed: 1, bRed: this.r, bCol: 1, alpha: this.lora.scaling, accumulate: false, split: true,
      },
      this.partials,
    );
  }

  /** Where the base input gradient's pass can put layer `name`'s dxa = scaling · dY·B (undefined when not adapted). */
  columns(l: number, name: LinearName, M: number): LoraBackwardColumns | undefined {
    const a = this.lora.at(l, name);
    if (!a) return undefined;
    return { B: this.layerView(l, 'params'), bOff: this.offsetOf(l, a.B), r: this.r, scaling: this.lora.scaling, dxa: this.dxa(l, M), dxaOff: this.index(l, name) * M * this.r };
  }

  /**
   * The branches' input gradients, each into its own place in one tensor: dinp_n += mask_n ⊙ (dxa_n·A_n)
   * at element offset at(n), [M, K(n)] (dense into d attention-out, fc2 into d gelu-out).
   */
  branchInputGrads(l: number, names: readonly LinearName[], dinp: GpuTensor, at: (name: LinearName) => number, K: (name: LinearName) => number, M: number, drop: (name: LinearName) => LoraDropout | null): void {
    this.recordInputGrads(l, names, dinp, M, drop, (n) => ({ N: K(n), cOff: at(n) }), { bRed: 'N' });
  }

  /** dinp [M, K] += Σ_n mask_n ⊙ (dxa_n·A_n) over the adapted layers among `names`, which all read the input. */
  inputGrads(l: number, names: readonly LinearName[], dinp: GpuTensor, M: number, K: number, drop: (name: LinearName) => LoraDropout | null): void {
    this.recordInputGrads(l, names, dinp, M, drop, () => ({ N: K, cOff: 0 }), { bRed: K, summed: true });
  }

  /** dxa_n·A_n under each layer's dropout mask, into dinp [M, N] at cOff (place(n)), for the adapted layers among `names`. */
  private recordInputGrads(
    l: number,
    names: readonly LinearName[],
    dinp: GpuTensor,
    M: number,
    drop: (name: LinearName) => LoraDropout | null,
    place: (name: LinearName) => { N: number; cOff: number },
    layout: { bRed: number | 'N'; summed?: boolean },
  ): void {
    const group = this.of(l, names);
    if (!group.length) return;
    const dropout = drop(group[0]);
    recordGroup(this.gpu, 'loraInputGrads', {
      c: dinp,
      as: [this.dxa(l, M)],
      bs: [this.layerView(l, 'params')],
      problems: group.map((n) => ({
        M, ...place(n), a: { slot: 0, off: this.index(l, n) * M * this.r }, b: { slot: 0, off: this.offsetOf(l, this.lora.at(l, n)!.A) }, salt: drop(n)?.salt,
      })),
      L: this.r, aRow: this.r, aRed: 1, bCol: 1, alpha: 1, accumulate: true, ...layout,
      drop: dropout ? { target: 'c', p: dropout.p, seed: dropout.seed } : null,
    }, null);
  }

  /**
   * Every adapted layer's dA and dB of block l, accumulated into the adapter's gradients:
   *   dB_n += scaling * dout_nᵀ·xa_n,   dA_n += dxa_nᵀ·dropout(x_n)
   * dout_n [M, N_n] and x_n [M, K_n] where the block left them (at most three tensors of each).
   */
  weightGrads(
    l: number,
    M: number,
    dout: (name: LinearName) => At & { N: number },
    input: (name: LinearName) => At & { K: number },
    drop: (name: LinearName) => LoraDropout | null,
  ): void {
    const names = this.adapted[l];
    if (!names.length) return;
    const grads = this.layerView(l, 'grads');
    const slots = (ts: GpuTensor[]) => {
      const distinct: GpuTensor[] = [];
      for (const t of ts) if (!distinct.some((d) => d.buffer === t.buffer && d.byteOffset === t.byteOffset)) distinct.push(t);
      if (distinct.length > 3) throw new Error(`lora weight gradients: ${distinct.length} tensors, 3 bind at most`);
      return { tensors: distinct, slot: (t: GpuTensor) => distinct.findIndex((d) => d.buffer === t.buffer && d.byteOffset === t.byteOffset) };
    };
    const douts = slots(names.map((n) => dout(n).t));
    const dB: GroupProblem[] = names.map((n) => {
      const d = dout(n);
      return { M: d.N, N: this.r, a: { slot: douts.slot(d.t), off: d.off }, b: { slot: 0, off: this.index(l, n) * M * this.r }, cOff: this.gradOffsetOf(l, this.lora.at(l, n)!.dB!) };
    });
    recordGroup(this.gpu, 'loraWeightGrads', {
      c: grads, as: douts.tensors, bs: [this.xa(l, M)], problems: dB,
      L: M, aRow: 1, aRed: 'M', bRed: this.r, bCol: 1, alpha: this.lora.scaling, accumulate: true,
    }, null);
    const inputs = slots(names.map((n) => input(n).t));
    const dropout = drop(names[0]);
    const dA: GroupProblem[] = names.map((n) => {
      const x = input(n);
      return {
        M: this.r, N: x.K, a: { slot: 0, off: this.index(l, n) * M * this.r }, b: { slot: inputs.slot(x.t), off: x.off },
        cOff: this.gradOffsetOf(l, this.lora.at(l, n)!.dA!), salt: drop(n)?.salt,
      };
    });
    recordGroup(this.gpu, 'loraWeightGrads', {
      c: grads, as: [this.dxa(l, M)], bs: inputs.tensors, problems: dA,
      L: M, aRow: 1, aRed: this.r, bRed: 'N', bCol: 1, alpha: 1, accumulate: true,
      drop: dropout ? { target: 'b', p: dropout.p, seed: dropout.seed } : null,
    }, null);
  }

  destroy(): void {
    for (const t of [this.xaStore, this.dxaStore, this.partials]) t.buffer.destroy();
  }
}
