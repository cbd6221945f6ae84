import type { GpuRuntime } from '../gpu/runtime';
import type { GpuTensor } from '../gpu/tensor';
import { adamwStep, type AdamWHyper, type AdamWOptions } from '../kernels/adamw';
import { adamw8bitStep, type Adam8bitTensors } from '../kernels/adamw8bit';
import { adamw8bitQuantMaps, blockTable } from './blockwise';
import { blockCount, describeOptimizer, sameOptimizer, type Adam8bitBlockSize, type OptimizerSettings, type Segment } from '../../shared/optimizer';

/**
 * AdamW's state on the GPU for one flat f32 parameter buffer, and one step over it: f32 moments
 * (torch.optim.AdamW) or bitsandbytes' block-wise 8-bit moments. The trainer sees only this interface:
 * step, read the state out for a checkpoint, write it back on resume.
 */
export interface AdamWOptimizer {
  readonly settings: OptimizerSettings;
  /** Floats of the parameter buffer it serves. */
  readonly size: number;
  /** GPU bytes of its state. */
  readonly bytes: number;
  /** One step: params updated in place from grads x stats[GRAD_STATS.scale] (clipping), as adamwStep. */
  step(params: GpuTensor, grads: GpuTensor, stats: GpuTensor, hyper: AdamWHyper, options?: AdamWOptions): void;
  read(): Promise<OptimizerState>;
  /** Restores a state read from an optimiser of the same settings and size (a checkpoint). */
  write(state: OptimizerState): void;
  destroy(): void;
}

/** The optimiser's state on the host, as checkpoints keep it. */
export type OptimizerState =
  | { kind: 'adamw'; expAvg: Float32Array; expAvgSq: Float32Array }
  | {
      kind: 'adamw-8bit';
      blockSize: Adam8bitBlockSize;
      /** One code per parameter, padded to a multiple of 4 bytes. */
      expAvg: Uint8Array;
      expAvgSq: Uint8Array;
      /** Per block: the first moment's absmax, then the second's. */
      absmax: Float32Array;
    };

export class OptimizerStateError extends Error {
  override name = 'OptimizerStateError';
}

/**
 * The optimiser for `size` floats of parameters. `segments` are the tensors inside the buffer (8-bit blocks
 * never cross one, as in bitsandbytes); values outside every segment (alignment padding) are not
 * optimised by the 8-bit optimiser and must stay zero. Moments start at zero.
 */
export function createAdamW(gpu: GpuRuntime, settings: OptimizerSettings, size: number, segments: readonly Segment[]): AdamWOptimizer {
  return settings.kind === 'adamw' ? new AdamW32(gpu, size) : new AdamW8bit(gpu, settings.blockSize, size, segments);
}

function zeros(gpu: GpuRuntime, name: string, shape: number[], dtype: 'f32' | 'u32'): GpuTensor {
  const t = gpu.tensor(name, shape, dtype);
  gpu.write(t, dtype === 'f32' ? new Float32Array(t.shape.reduce((a, b) => a * b, 1)) : new Uint32Array(t.shape.reduce((a, b) => a * b, 1)));
  return t;
}

function mismatch(self: AdamWOptimizer, state: OptimizerState): OptimizerStateError {
  const have = state.kind === 'adamw' ? 'AdamW, f32 moments' : `8-bit AdamW, blocks of ${state.blockSize}`;
  return new OptimizerStateError(`The saved optimiser state is for ${have}; this run uses ${describeOptimizer(self.settings)}.`);
}

function checkLength(what: string, got: number, want: number): void {
  if (got !== want) throw new OptimizerStateError(`The saved ${what} has ${got} values; this adapter's layout needs ${want}.`);
}

class AdamW32 implements AdamWOptimizer {
  readonly settings: OptimizerSettings = { kind: 'adamw' };
  readonly bytes: number;
  private readonly expAvg: GpuTensor;
  private readonly expAvgSq: GpuTensor;

  constructor(
    private readonly gpu: GpuRuntime,
    readonly size: number,
  ) {
    this.expAvg = zeros(gpu, 'adamw.exp_avg', [size], 'f32');
    this.expAvgSq = zeros(gpu, 'adamw.exp_avg_sq', [size], 'f32');
    this.bytes = 2 * size * 4;
  }

  step(params: GpuTensor, grads: GpuTensor, stats: GpuTensor, hyper: AdamWHyper, options?: AdamWOptions): void {
    adamwStep(this.gpu, params, this.expAvg, this.expAvgSq, grads, stats, this.size, hyper, options);
  }

  async read(): Promise<OptimizerState> {
    return { kind: 'adamw', expAvg: await this.gpu.readF32(this.expAvg), expAvgSq: await this.gpu.readF32(this.expAvgSq) };
  }

  write(state: OptimizerState): void {
    if (state.kind !== 'adamw') throw mismatch(this, state);
    checkLength('first moment', state.expAvg.length, this.size);
    checkLength('second moment', state.expAvgSq.length, this.size);
    this.gpu.write(this.expAvg, state.expAvg);
    this.gpu.write(this.expAvgSq, state.expAvgSq);
  }

  destroy(): void {
    this.expAvg.buffer.destroy();
    this.expAvgSq.buffer.destroy();
  }
}

class AdamW8bit implements AdamWOptimizer {
  readonly settings: OptimizerSettings;
  readonly bytes: number;
  private readonly tensors: Adam8bitTensors;
  private readonly blockCount: number;

  constructor(
    private readonly gpu: GpuRuntime,
    private readonly blockSize: Adam8bitBlockSize,
    readonly size: number,
    segments: readonly Segment[],
  ) {
    this.settings = { kind: 'adamw-8bit', blockSize };
    const table = blockTable(segments, blockSize, size);
    this.blockCount = blockCount(segments, blockSize);
    const words = Math.ceil(size / 4);
    this.tensors = {
      codesM: zeros(gpu, 'adamw8bit.exp_avg', [words], 'u32'),
      codesV: zeros(gpu, 'adamw8bit.exp_avg_sq', [words], 'u32'),
      absmax: zeros(gpu, 'adamw8bit.absmax', [this.blockCount, 2], 'f32'),
      blocks: gpu.upload('adamw8bit.blocks', [this.blockCount, 2], table, 'u32'),
      maps: gpu.upload('adamw8bit.maps', [512], adamw8bitQuantMaps()),
    };
    this.bytes = 2 * words * 4 + this.blockCount * 16 + 512 * 4;
  }

  step(params: GpuTensor, grads: GpuTensor, stats: GpuTensor, hyper: AdamWHyper, options?: AdamWOptions): void {
    adamw8bitStep(this.gpu, params, this.tensors, grads, stats, this.size, this.blockSize, hyper, options);
  }

  async read(): Promise<OptimizerState> {
    const bytes = async (t: GpuTensor) => new Uint8Array(await this.gpu.read(t));
    return {
      kind: 'adamw-8bit',
      blockSize: this.blockSize,
      expAvg: await bytes(this.tensors.codesM),
      expAvgSq: await bytes(this.tensors.codesV),
      absmax: await this.gpu.readF32(this.tensors.absmax),
    };
  }

  write(state: OptimizerState): void {
    if (state.kind !== 'adamw-8bit' || !sameOptimizer(this.settings, state)) throw mismatch(this, state);
    const codeBytes = Math.ceil(this.size / 4) * 4;
    checkLength('first moment', state.expAvg.length, codeBytes);
    checkLength('second moment', state.expAvgSq.length, codeBytes);
    checkLength('block absmax table', state.absmax.length, 2 * this.blockCount);
    this.gpu.write(this.tensors.codesM, new Uint32Array(state.expAvg.buffer.slice(state.expAvg.byteOffset, state.expAvg.byteOffset + codeBytes)));
    this.gpu.write(this.tensors.codesV, new Uint32Array(state.expAvgSq.buffer.slice(state.expAvgSq.byteOffset, state.expAvgSq.byteOffset + codeBytes)));
    this.gpu.write(this.tensors.absmax, state.absmax);
  }

  destroy(): void {
    for (const t of Object.values(this.tensors)) t.buffer.destroy();
  }
}
