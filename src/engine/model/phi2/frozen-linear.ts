import type { GpuRuntime } from '../../gpu/runtime';
import { viewTensor, type GpuTensor } from '../../gpu/tensor';
import { matmulBackwardInput, matmulForward, type LoraBackwardColumns } from '../../kernels/matmul';
import { matmulInt8BackwardInput, matmulInt8Forward } from '../../kernels/matmul-i8i8';
import { paddedCols } from '../../../shared/int8-rows';
import { quantizeRows } from '../../kernels/quantize';
import { computePathProblem, type ComputePath } from '../../../shared/compute';
import type { LinearParams } from './params';

/**
 * The base matmuls of Phi-2's frozen linear layers (forward and input gradient) on one of two compute
 * paths:
 *  - 'f32' (the default, exact against the goldens): f32 activations times dequantised weights;
 *  - 'int8' (SwitchBack, Wortsman et al. 2023): the activations, or the output gradient times the
 *    weight's row scales, quantised per row to int8 and multiplied with the int8 weights by
 *    dot4I8Packed. Faster where the GPU has int8 dot products; its cost in accuracy is measured in
 *    BENCHMARKS.md. Needs int8 weights and WGSL's packed_4x8_integer_dot_product.
 * LoRA's own products always stay f32 (SwitchBack keeps weight gradients in 16 bits or more).
 */

export { COMPUTE_PATHS, computePathProblem, type ComputePath } from '../../../shared/compute';

/** A linear layer's input as the compute path reads it; for int8, quantised once for every layer that reads it. */
export interface LinearInput {
  readonly x: GpuTensor;
  readonly K: number;
  readonly generation: number;
}

export class FrozenLinears {
  private readonly q: GpuTensor | null = null;
  private readonly scales: GpuTensor | null = null;
  /** Bumped at every quantisation: a LinearInput from before reads a buffer that holds something else now. */
  private generation = 0;

  /** maxCols: the longest row quantised, max(hidden, intermediate) for Phi-2. */
  constructor(
    private readonly gpu: GpuRuntime,
    readonly path: ComputePath,
    weightMode: 'int8' | 'f16',
    readonly maxRows: number,
    readonly maxCols: number,
  ) {
    const problem = computePathProblem(path, weightMode, gpu.ctx.hasInt8Dot);
    if (problem) throw new Error(problem);
    if (path === 'int8') {
      this.q = gpu.tensor('int8_compute.q', [maxRows * paddedCols(maxCols)], 'i8');
      this.scales = gpu.tensor('int8_compute.scales', [maxRows]);
    }
  }

  private quantized(rows: number, cols: number, source: GpuTensor, colScale: GpuTensor | null): { q: GpuTensor; scales: GpuTensor } {
    if (rows > this.maxRows || cols > this.maxCols) throw new Error(`int8 compute: ${rows} x ${cols} exceeds the scratch's ${this.maxRows} x ${this.maxCols}`);
    const q = viewTensor(this.q!, [rows, paddedCols(cols)], 'int8_compute.q');
    const scales = viewTensor(this.scales!, [rows], 'int8_compute.scales');
    quantizeRows(this.gpu, q, scales, source, colScale, rows, cols);
    this.generation++;
    return { q, scales };
  }

  /** x [M, K] as the next forward calls read it (int8: quantised now, once for all of them). */
  input(x: GpuTensor, M: number, K: number): LinearInput {
    if (this.path === 'int8') this.quantized(M, K, x, null);
    return { x, K, generation: this.generation };
  }

  /** out [M, N] (= or +=) input · Wᵀ + b. */
  forward(out: GpuTensor, input: LinearInput, p: LinearParams, M: number, N: number, accumulate = false): void {
    const { x, K } = input;
    if (this.path === 'f32') {
      matmulForward(this.gpu, out, x, p.weight, p.scales, p.bias, M, N, K, { accumulate });
      return;
    }
    if (input.generation !== this.generation) throw new Error(`int8 compute: the quantised ${x.name} was overwritten before this matmul read it`);
    const q = viewTensor(this.q!, [M, K], 'int8_compute.q');
    const scales = viewTensor(this.scales!, [M], 'int8_compute.scales');
    matmulInt8Forward(this.gpu, out, q, scales, p.weight, p.scales!, p.bias, M, N, K, { accumulate });
  }

  /** Whether backwardInput computes an adapter's dxa = scaling · dout · B in its own pass (f32 only). */
  get foldsLoraColumns(): boolean {
    return this.path === 'f32';
  }

  /**
   * dinp [M, K] (= or +=) dout [M, N] · W: the input gradient (frozen: no weight gradient); with
   * `lora` (where foldsLoraColumns) also the adapter's dxa, in the same dispatch.
   */
  backwardInput(dinp: GpuTensor, dout: GpuTensor, p: LinearParams, M: number, N: number, K: number, accumulate = false, lora?: LoraBackwardColumns): void {
    if (this.path === 'f32') {
      matmulBackwardInput(this.gpu, dinp, dout, p.weight, p.scales, M, N, K, accumulate, { lora });
      return;
    }
    if (lora) throw new Error('int8 compute: the adapter\'s dY·B has its own pass (foldsLoraColumns is false)');
    const g = this.quantized(M, N, dout, p.scales);
    matmulInt8BackwardInput(this.gpu, dinp, g.q, g.scales, p.weight, M, N, K, { accumulate });
  }

  destroy(): void {
    this.q?.buffer.destroy();
    this.scales?.buffer.destroy();
  }
}
