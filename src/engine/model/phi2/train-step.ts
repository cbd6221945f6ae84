import type { RecordedPass } from '../../gpu/encoder';
import { viewTensor, type GpuTensor } from '../../gpu/tensor';
import { ADAMW_DEFAULTS } from '../../kernels/adamw';
import { attentionBackward, attentionForward } from '../../kernels/attention';
import { countLabels, createCrossEntropyWorkspace, crossEntropyBackward, crossEntropyForward, IGNORE_INDEX, type CrossEntropyWorkspace } from '../../kernels/cross-entropy';
import { dropoutBackwardTwoSites, dropoutForward, type DropoutMask } from '../../kernels/dropout';
import { embeddingForward, validateTokenIds } from '../../kernels/embedding';
import { zeroTensor } from '../../kernels/fill';
import { geluBackward, geluForward } from '../../kernels/gelu';
import { GRAD_STATS, gradNorm, gradNormPartialsShape } from '../../kernels/grad-norm';
import { layernormBackward, layernormForward } from '../../kernels/layernorm';
import type { LoraDropout } from '../../kernels/lora';
import { residualAccumulate } from '../../kernels/residual';
import { rngU32 } from '../../kernels/rng';
import { rotaryBackward, rotaryForward } from '../../kernels/rotary';
import type { Phi2Model } from './forward';
import { FrozenLinears, type ComputePath } from './frozen-linear';
import { LoraStepKernels } from './lora-step';
import type { LoraState } from './lora-state';
import { LINEAR_NAMES, type LinearName } from './params';

/**
 * One LoRA training micro-batch on Phi-2, forward and backward, with activation recomputation:
 *
 *   forward   x_0 = embed(ids); per block keep only its input x_l, then
 *             x_{l+1} = x_l + drop(dense(attn(h))) + drop(fc2(gelu(fc1(h)))),  h = LN(x_l)
 *             loss = cross_entropy(lm_head(final_LN(x_L)), shifted labels), fused over vocabulary chunks
 *   backward  dx_L from the loss; per block, last first: recompute the block from x_l (the same dropout
 *             masks, replayed from their seeds), then push the gradient through both branches, the
 *             LoRA layers (accumulating dA, dB) and the LayerNorm into dx_l.
 *
 * Only the block inputs are kept across the pass (layers x tokens x hidden floats), so memory
 * grows with one block's activations, not all of them. Nothing is read back: the loss stays on the
 * GPU until the caller reads it, asynchronously, for display.
 */

export interface TrainBatch {
  /** Token ids [batch * seq], right-padded. */
  ids: Uint32Array;
  /** Labels aligned with ids as transformers takes them (-100 ignored, padding included); shifted here. */
  labels: Int32Array;
  batch: number;
  seq: number;
  /** Valid tokens per sequence (all seq when absent). */
  lengths?: readonly number[];
}

export interface MicroStepOptions {
  /** Dropout probabilities: the config's residual dropout and LoRA's own (0 for exact replays). */
  residDropout: number;
  loraDropout: number;
  /** Seeds every dropout mask of this micro-batch; derive it from the run seed, step and micro-batch. */
  seed: number;
  /** Counted labels over the whole accumulated batch, so the loss is the mean over all of them. */
  labelCount: number;
}

export interface TrainStepOptions {
  /** The frozen layers' matmuls: 'f32' (exact, the default) or 'int8' (see frozen-linear.ts). */
  compute?: ComputePath;
  /**
   * Record every step afresh instead of replaying a recorded one (the default replays; see
   * Phi2TrainStep). The two give the same bits; this exists to prove it and to profile recording.
   */
  recordEachStep?: boolean;
}

/**
 * Recorded micro-steps kept for replay, by shape: a run whose batches pad to a few lengths re-records none
 * (the trainer pads to at most this many: MAX_BUCKETS in src/engine/train/batches.ts).
 */
export const KEPT_MICRO_STEPS = 8;

const align64 = (floats: number) => Math.ceil(floats / 64) * 64;

/** What a recorded micro-step depends on besides the instance: a replay serves only its own shape. */
interface MicroShape {
  B: number;
  T: number;
  /** Whether the sequences carry valid lengths (right padding). */
  padded: boolean;
  residDropout: number;
  loraDropout: number;
}

/** Dropout sites per layer: the six LoRA inputs, then the two residual branches. */
const SITES_PER_LAYER = 8;
const SITE_ATTN = 6;
const SITE_MLP = 7;
/** The linear layers that read LN(x). */
const H_READERS: readonly LinearName[] = ['q', 'k', 'v', 'fc1'];

/** Labels for the logits at each position: the next token's label; the last position of a sequence has none. */
export function shiftLabels(labels: Int32Array, batch: number, seq: number): Int32Array {
  const out = new Int32Array(batch * seq).fill(IGNORE_INDEX);
  for (let b = 0; b < batch; b++) for (let t = 0; t + 1 < seq; t++) out[b * seq + t] = labels[b * seq + t + 1];
  return out;
}

/**
 * A step's CPU work is recording ~1,500 dispatches (checks, uniforms, bind groups): ~75 us each, far
 * more than a fast GPU needs to run them. So a micro-step is recorded once per shape (batch, padded
 * length, whether sequences are padded, the dropout probabilities; the compute path is the
 * instance's) and replayed after: what changes from step to step is either in buffers (token ids,
 * shifted labels, lengths: written before the replay) or a replay value that the recorded uniforms
 * recompute (`seed`: every dropout mask's; `labelCount`: the loss's divisor). The optimizer step
 * (clipping and AdamW) is recorded once per set of hyper-parameters and replayed with `lr` and `step`.
 * A replay runs exactly the dispatches a fresh recording would, so the results are the same bits.
 * A micro-step is kept as one pass a block (forward and backward) and one for the loss, replayed as
 * they were recorded: the first step of a shape sends each on as soon as it is recorded, so the GPU
 * does not wait for the whole step's recording.
 */
export class Phi2TrainStep {
  private readonly blockInputs: GpuTensor[];
  private readonly t: Record<string, GpuTensor>;
  private readonly ce: CrossEntropyWorkspace;
  /** The mean loss of the last micro-batch, f32 [1], on the GPU. */
  readonly loss: GpuTensor;
  /** Norm, clip factor and non-finite flag of the last optimizer step (GRAD_STATS), on the GPU. */
  readonly stats: GpuTensor;
  private readonly normPartials: GpuTensor;
  private readonly base: FrozenLinears;
  private readonly loras: LoraStepKernels;
  private readonly recordEachStep: boolean;
  /** Recorded micro-steps (one pass a segment) by shape key, least recently used first. */
  private readonly microPasses = new Map<string, RecordedPass[]>();
  private optimizerPass: { key: string; pass: RecordedPass } | null = null;
  private recordings = 0;

  constructor(
    readonly model: Phi2Model,
    readonly lora: LoraState,
    readonly maxBatch: number,
    readonly maxSeq: number,
    opts: TrainStepOptions = {},
  ) {
    const gpu = model.gpu;
    const d = model.dims;
    const M = maxBatch * maxSeq;
    const { hidden: C, intermediate: I, heads: H } = d;
    this.base = new FrozenLinears(gpu, opts.compute ?? 'f32', model.params.weightMode, M, Math.max(C, I));
    this.recordEachStep = opts.recordEachStep ?? false;
    lora.enableTraining();
    this.blockInputs = Array.from({ length: d.layers }, (_, l) => gpu.tensor(`block_input.${l}`, [M, C]));
    const f = (name: string, shape: number[], dtype: 'f32' | 'u32' | 'i32' = 'f32') => gpu.tensor(name, shape, dtype);
    this.t = {
      residual: f('residual', [M, C]),
      dresidual: f('d_residual', [M, C]),
      h: f('ln_out', [M, C]),
      mean: f('ln_mean', [M]),
      rstd: f('ln_rstd', [M]),
      finalH: f('final_ln_out', [M, C]),
      finalMean: f('final_ln_mean', [M]),
      finalRstd: f('final_ln_rstd', [M]),
      // q, k, v and fc1's outputs one after another (each 256-byte aligned): their LoRA products are one dispatch
      proj: f('proj_out', [3 * align64(M * C) + align64(M * I)]),
      attn: f('attn', [M, C]),
      lse: f('attn_lse', [M * H]),
      branch: f('branch_out', [M, C]),
      gelu: f('gelu_out', [M, I]),
      dh: f('d_ln_out', [M, C]),
      dqkv: f('d_qkv', [3 * align64(M * C)]),
      dbranch: f('d_branch', [2 * align64(M * C)]), // the MLP branch's, then the attention branch's
      // d gelu-out, then d attention-out: the branches' adapters add their input gradients in one dispatch
      dbranchIn: f('d_branch_in', [align64(M * I) + align64(M * C)]),
      dfc1: f('d_fc1', [M, I]),
      attnStats: f('attn_bwd_stats', [M * H * 2]),
      ids: f('train_ids', [M], 'u32'),
      labels: f('train_labels', [M], 'i32'),
      lengths: f('train_lengths', [maxBatch], 'u32'),
      ceLse: f('ce_lse', [M]),
      rowLoss: f('ce_row_loss', [M]),
    };
    this.loras = new LoraStepKernels(gpu, lora, d.layers, C, I, M);
    this.ce = createCrossEntropyWorkspace(gpu, M, model.params.lmHead, d.vocab, C);
    this.loss = f('loss', [1]);
    this.stats = f('grad_stats', [GRAD_STATS.length]);
    this.normPartials = f('grad_norm_partials', gradNormPartialsShape([lora.size]));
  }

  /** Counted labels of a micro-batch after shifting (validated: -100 or a token id). */
  countLabels(batch: TrainBatch): number {
    return countLabels(shiftLabels(batch.labels, batch.batch, batch.seq), this.model.dims.vocab);
  }

  /** Forward and backward of one micro-batch; LoRA gradients are added to lora.grads. */
  microStep(batch: TrainBatch, opts: MicroStepOptions): void {
    const gpu = this.model.gpu;
    const { batch: B, seq: T } = batch;
    const M = B * T;
    if (!Number.isInteger(B) || !Number.isInteger(T) || B < 1 || T < 1) throw new Error(`train step: batch ${B} x ${T} must be positive whole numbers`);
    if (B > this.maxBatch || T > this.maxSeq) throw new Error(`train step: batch ${B} x ${T} exceeds the buffers' ${this.maxBatch} x ${this.maxSeq}`);
    if (batch.ids.length !== M || batch.labels.length !== M) throw new Error(`train step: ${batch.ids.length} ids and ${batch.labels.length} labels for ${B} x ${T}`);
    if (batch.lengths && batch.lengths.length !== B) throw new Error(`train step: ${batch.lengths.length} lengths for a batch of ${B}`);
    if (!(opts.labelCount > 0) || !Number.isInteger(opts.labelCount)) throw new Error(`train step: the label count must be a positive whole number (got ${opts.labelCount}; 0 means every label is -100)`);
    validateTokenIds('train step', batch.ids, this.model.dims.vocab);
    const t = this.t;
    gpu.write(viewTensor(t.ids, [M]), batch.ids);
    gpu.write(viewTensor(t.labels, [M]), shiftLabels(batch.labels, B, T));
    if (batch.lengths) gpu.write(viewTensor(t.lengths, [B]), Uint32Array.from(batch.lengths));
    const shape: MicroShape = { B, T, padded: !!batch.lengths, residDropout: opts.residDropout, loraDropout: opts.loraDropout };
    if (this.recordEachStep) {
      this.recordMicroStep(shape, opts, (record) => {
        record();
        gpu.encoder.submit();
      });
      return;
    }
    const values = { seed: opts.seed >>> 0, labelCount: opts.labelCount };
    const key = `${B}x${T} padded=${shape.padded} dropout=${shape.residDropout},${shape.loraDropout}`;
    let passes = this.microPasses.get(key);
    if (passes) {
      this.microPasses.delete(key); // re-inserted below: most recently used last
      for (const pass of passes) gpu.encoder.replay(pass, 0, values);
    } else {
      // A new shape: each segment captured and run at once, so the GPU still starts on the first
      // block while the CPU records the rest.
      const captured: RecordedPass[] = (passes = []);
      this.recordMicroStep(shape, opts, (record) => {
        const pass = gpu.encoder.capture(record);
        captured.push(pass);
        gpu.encoder.replay(pass, 0, values);
      });
      if (this.microPasses.size >= KEPT_MICRO_STEPS) {
        const [oldestKey, oldest] = this.microPasses.entries().next().value!;
        this.microPasses.delete(oldestKey);
        this.retire(oldest);
      }
    }
    this.microPasses.set(key, passes);
  }

  /** Destroys recorded passes once the GPU has finished what was submitted (their last replays included). */
  private retire(passes: readonly RecordedPass[]): void {
    const gpu = this.model.gpu;
    gpu.encoder.submit();
    void gpu.device.queue.onSubmittedWorkDone().then(() => passes.forEach((pass) => pass.destroy()));
  }

  /**
   * Records one micro-step's dispatches for `shape`, reading the ids, labels and lengths already
   * written, as segments (a block's forward, the loss, a block's backward) that `segment` records and
   * sends on, so the GPU runs one while the CPU records the next. `opts` gives the seed and label count
   * to record with (a replay recomputes both).
   */
  private recordMicroStep(shape: MicroShape, opts: MicroStepOptions, segment: (record: () => void) => void): void {
    this.recordings++;
    const { model } = this;
    const gpu = model.gpu;
    const d = model.dims;
    const { B, T } = shape;
    const M = B * T;
    const C = d.hidden;
    const I = d.intermediate;
    const v = (t: GpuTensor, dims: number[]) => viewTensor(t, dims);
    const t = this.t;
    const x = v(t.residual, [M, C]);
    const dx = v(t.dresidual, [M, C]);
    const h = v(t.h, [M, C]);
    const mean = v(t.mean, [M]);
    const rstd = v(t.rstd, [M]);
    const attn = v(t.attn, [M, C]);
    const lse = v(t.lse, [B, d.heads, T]);
    const branch = v(t.branch, [M, C]);
    const gelu = v(t.gelu, [M, I]);
    const ids = v(t.ids, [M]);
    const labels = v(t.labels, [M]);
    const attnShape = { batch: B, seq: T, heads: d.heads, headDim: d.headDim, pastLen: 0 };
    const validLengths = shape.padded ? v(t.lengths, [B]) : undefined;
    // q, k, v (and their gradients) as views one stride apart; with no padding between q and k, rotary
    // takes both as one batch of 2B sequences.
    const stride = align64(M * C);
    const projOff = (n: LinearName) => ({ q: 0, k: stride, v: 2 * stride, fc1: 3 * stride })[n as 'q' | 'k' | 'v' | 'fc1'];
    const projWidth = (n: LinearName) => (n === 'fc1' ? I : C);
    const q = viewTensor(t.proj, [M, C], 'q');
    const k = viewTensor(t.proj, [M, C], 'k', stride * 4);
    const vv = viewTensor(t.proj, [M, C], 'v', 2 * stride * 4);
    const proj = v(t.proj, [3 * stride + align64(M * I)]);
    const rotaryTogether = stride === M * C;
    const qk = viewTensor(t.proj, [2 * M, C], 'qk');
    const fc1 = viewTensor(t.proj, [M, I], 'fc1_out', 3 * stride * 4);
    const shape2 = { ...attnShape, batch: 2 * B };

    const loraDrop = (l: number, name: LinearName): LoraDropout | null =>
      opts.loraDropout > 0 ? { p: opts.loraDropout, seed: opts.seed >>> 0, salt: l * SITES_PER_LAYER + LINEAR_NAMES.indexOf(name) } : null;
    const residDrop = (l: number, site: number): DropoutMask | null =>
      opts.residDropout > 0 ? { p: opts.residDropout, seed: opts.seed >>> 0, salt: l * SITES_PER_LAYER + site } : null;

    const base = this.base;
    const loras = this.loras;
    const W = (l: number, name: LinearName) => model.params.blocks[l][name];
    const rotate = (direction: typeof rotaryForward, a: GpuTensor, b: GpuTensor, both: GpuTensor) => {
      if (rotaryTogether) direction(gpu, both, model.rotary, shape2);
      else {
        direction(gpu, a, model.rotary, attnShape);
        direction(gpu, b, model.rotary, attnShape);
      }
    };

    /** Block l's forward from x_l (in `input`): intermediates stay in the block buffers. */
    const blockForward = (l: number, input: GpuTensor, residualOut: GpuTensor | null) => {
      const p = model.params.blocks[l];
      layernormForward(gpu, h, mean, rstd, input, p.ln.weight, p.ln.bias, M, C, d.layerNormEps);
      // q, k, v and fc1 read the same h: on the int8 path it is quantised once for the four, and their
      // adapters' h·Aᵀ is one product (kept for backward, so the recomputation skips it).
      if (residualOut) loras.inputProducts(l, H_READERS, h, M, C, (n) => loraDrop(l, n));
      const hIn = base.input(h, M, C);
      base.forward(q, hIn, W(l, 'q'), M, C);
      base.forward(k, hIn, W(l, 'k'), M, C);
      base.forward(vv, hIn, W(l, 'v'), M, C);
      base.forward(fc1, hIn, W(l, 'fc1'), M, I);
      loras.outputProducts(l, H_READERS, proj, projOff, M, projWidth);
      rotate(rotaryForward, q, k, qk);
      attentionForward(gpu, attn, lse, q, k, vv, attnShape, { validLengths, path: 'tiled' });
      geluForward(gpu, gelu, fc1, M * I);
      // Recomputation stops here: backward needs the intermediates, and the branches' xa are kept.
      if (!residualOut) return;
      for (const [name, inp, K, site] of [['dense', attn, C, SITE_ATTN], ['fc2', gelu, I, SITE_MLP]] as const) {
        loras.inputProducts(l, [name], inp, M, K, (n) => loraDrop(l, n));
        const x = base.input(inp, M, K);
        const mask = residDrop(l, site);
        if (!mask) {
          base.forward(residualOut, x, W(l, name), M, C, true);
          loras.outputProducts(l, [name], residualOut, () => 0, M, C);
        } else if (loras.has(l, [name])) {
          // The adapter's product finishes the branch: its epilogue drops and adds it to the residual.
          base.forward(branch, x, W(l, name), M, C);
          loras.outputProducts(l, [name], branch, () => 0, M, C, { t: residualOut, mask });
        } else {
          base.forward(branch, x, W(l, name), M, C);
          dropoutForward(gpu, branch, branch, M * C, mask);
          residualAccumulate(gpu, residualOut, branch, M * C);
        }
      }
    };

    // Forward, keeping each block's input (the ids were checked where they were written).
    for (let l = 0; l < d.layers; l++) {
      segment(() => {
        if (l === 0) embeddingForward(gpu, x, ids, model.params.embedding, M, C, d.vocab);
        const saved = v(this.blockInputs[l], [M, C]);
        gpu.encoder.copy(x, saved, M * C * 4);
        blockForward(l, saved, x);
      });
    }
    const finalH = v(t.finalH, [M, C]);
    const finalMean = v(t.finalMean, [M]);
    const finalRstd = v(t.finalRstd, [M]);
    const lmHead = model.params.lmHead;
    const ceLse = v(t.ceLse, [M]);
    const dh = v(t.dh, [M, C]);
    segment(() => {
      layernormForward(gpu, finalH, finalMean, finalRstd, x, model.params.finalLn.weight, model.params.finalLn.bias, M, C, d.layerNormEps);
      crossEntropyForward(gpu, this.loss, v(t.rowLoss, [M]), ceLse, v(this.ce.partials, [M, this.ce.partials.shape[1]]), finalH, lmHead, model.params.lmHeadBias, labels, M, C, d.vocab, opts.labelCount);
      // Backward: the loss into the final LayerNorm's input.
      crossEntropyBackward(gpu, dh, v(this.ce.gradChunk, [M, this.ce.gradChunk.shape[1]]), ceLse, finalH, lmHead, model.params.lmHeadBias, labels, M, C, d.vocab, opts.labelCount);
      layernormBackward(gpu, dx, dh, x, model.params.finalLn.weight, finalMean, finalRstd, M, C);
    });

    const dq = viewTensor(t.dqkv, [M, C], 'dq');
    const dk = viewTensor(t.dqkv, [M, C], 'dk', stride * 4);
    const dv = viewTensor(t.dqkv, [M, C], 'dv', 2 * stride * 4);
    const dqkv = v(t.dqkv, [3 * stride]);
    const dqk = viewTensor(t.dqkv, [2 * M, C], 'dqk');
    const dgelu = viewTensor(t.dbranchIn, [M, I], 'd_gelu');
    const dattn = viewTensor(t.dbranchIn, [M, C], 'd_attn', align64(M * I) * 4);
    const dBranchIn = v(t.dbranchIn, [align64(M * I) + stride]);
    const dBranchInOff = (n: LinearName) => (n === 'fc2' ? 0 : align64(M * I));
    const dBranchInWidth = (n: LinearName) => (n === 'fc2' ? I : C);
    // On the f32 path the base input gradients' passes also compute the adapters' dxa = scaling · dY·B.
    const folds = base.foldsLoraColumns;
    const cols = (l: number, name: LinearName) => (folds ? loras.columns(l, name, M) : undefined);
    const dfc1 = v(t.dfc1, [M, I]);
    const dbranches = v(t.dbranch, [2 * stride]);

    for (let l = d.layers - 1; l >= 0; l--) segment(() => {
      const input = v(this.blockInputs[l], [M, C]);
      blockForward(l, input, null);
      // Both branches' output gradients: dx itself, or through their dropout masks (MLP's, attention's).
      const mlpMask = residDrop(l, SITE_MLP);
      const attnMask = residDrop(l, SITE_ATTN);
      const dBranch = mlpMask && attnMask ? dbranches : dx;
      const dBranchOff = (n: LinearName) => (dBranch === dx || n === 'fc2' ? 0 : stride);
      const dMlp = dBranch === dx ? dx : viewTensor(t.dbranch, [M, C], 'd_mlp');
      const dAttnOut = dBranch === dx ? dx : viewTensor(t.dbranch, [M, C], 'd_attn_out', stride * 4);
      if (dBranch !== dx) dropoutBackwardTwoSites(gpu, dbranches, dx, M * C, stride, mlpMask!, attnMask!);
      // The branch outputs' layers: base input gradients, then the adapters' (dY·B for both at once).
      base.backwardInput(dgelu, dMlp, W(l, 'fc2'), M, C, I, false, cols(l, 'fc2'));
      base.backwardInput(dattn, dAttnOut, W(l, 'dense'), M, C, C, false, cols(l, 'dense'));
      if (!folds) loras.gradProducts(l, ['dense', 'fc2'], dBranch, dBranchOff, M, C);
      loras.branchInputGrads(l, ['fc2', 'dense'], dBranchIn, dBranchInOff, dBranchInWidth, M, (n) => loraDrop(l, n));
      // The MLP: gelu, then fc1 into d LN-out (its adapter's share joins q, k and v's below).
      geluBackward(gpu, dfc1, dgelu, fc1, M * I);
      base.backwardInput(dh, dfc1, W(l, 'fc1'), M, I, C, false, cols(l, 'fc1'));
      if (!folds) loras.gradProducts(l, ['fc1'], dfc1, () => 0, M, I);
      // Attention: back through softmax(qkᵀ)v and the rotation, then q, k, v into d LN-out.
      attentionBackward(gpu, dq, dk, dv, v(t.attnStats, [B, d.heads, T, 2]), dattn, q, k, vv, attn, lse, attnShape, { validLengths });
      rotate(rotaryBackward, dq, dk, dqk);
      base.backwardInput(dh, dq, W(l, 'q'), M, C, C, true, cols(l, 'q'));
      base.backwardInput(dh, dk, W(l, 'k'), M, C, C, true, cols(l, 'k'));
      base.backwardInput(dh, dv, W(l, 'v'), M, C, C, true, cols(l, 'v'));
      if (!folds) loras.gradProducts(l, ['q', 'k', 'v'], dqkv, projOff, M, C);
      loras.inputGrads(l, H_READERS, dh, M, C, (n) => loraDrop(l, n));
      // Every adapter's dA and dB of the block, from where the block left their inputs and output gradients.
      loras.weightGrads(
        l,
        M,
        (n) => (n === 'fc1' ? { t: dfc1, off: 0, N: I } : n === 'dense' || n === 'fc2' ? { t: dBranch, off: dBranchOff(n), N: C } : { t: dqkv, off: projOff(n), N: C }),
        (n) => (n === 'dense' ? { t: attn, off: 0, K: C } : n === 'fc2' ? { t: gelu, off: 0, K: I } : { t: h, off: 0, K: C }),
        (n) => loraDrop(l, n),
      );
      // Both branches read h = LN(x_l); x_l also flows straight through the residual.
      layernormBackward(gpu, dx, dh, input, model.params.blocks[l].ln.weight, mean, rstd, M, C, true);
    });
  }

  /**
   * Clips the accumulated gradients to maxGradNorm, takes one step of the adapter's optimiser (f32 AdamW
   * with torch's semantics unless the LoRA state was given another) and clears the gradients. A step with
   * a NaN or infinite gradient leaves weights and moments untouched; the stats tensor says so.
   */
  optimizerStep(hyper: { lr: number; step: number; weightDecay?: number; beta1?: number; beta2?: number; eps?: number; maxGradNorm: number }): void {
    const gpu = this.model.gpu;
    const lora = this.lora;
    const fixed = {
      maxNorm: hyper.maxGradNorm > 0 ? hyper.maxGradNorm : Infinity,
      beta1: hyper.beta1 ?? ADAMW_DEFAULTS.beta1,
      beta2: hyper.beta2 ?? ADAMW_DEFAULTS.beta2,
      eps: hyper.eps ?? ADAMW_DEFAULTS.eps,
      weightDecay: hyper.weightDecay ?? ADAMW_DEFAULTS.weightDecay,
    };
    const record = (lr: number, step: number) => {
      gradNorm(gpu, this.stats, this.normPartials, [lora.grads!], { maxNorm: fixed.maxNorm });
      const { beta1, beta2, eps, weightDecay } = fixed;
      lora.optimizer!.step(lora.params, lora.grads!, this.stats, { lr, step, beta1, beta2, eps, weightDecay }, { zeroGrad: true });
    };
    if (this.recordEachStep) {
      record(hyper.lr, hyper.step);
      return;
    }
    // lr and step change every step: replay values. The rest is fixed for a run: part of the key.
    const key = JSON.stringify(fixed);
    if (this.optimizerPass?.key !== key) {
      if (this.optimizerPass) this.retire([this.optimizerPass.pass]);
      this.optimizerPass = { key, pass: gpu.encoder.capture(() => record(hyper.lr, hyper.step)) };
    }
    gpu.encoder.replay(this.optimizerPass.pass, 0, { lr: hyper.lr, step: hyper.step });
  }

  /** Micro-steps recorded so far (each ~1,500 dispatches of CPU work; a replay is a fraction of it). */
  get microStepRecordings(): number {
    return this.recordings;
  }

  zeroGrads(): void {
    zeroTensor(this.model.gpu, this.lora.grads!);
  }

  /** The frozen layers' compute path of this step. */
  get compute(): ComputePath {
    return this.base.path;
  }

  destroy(): void {
    for (const passes of this.microPasses.values()) passes.forEach((pass) => pass.destroy());
    this.microPasses.clear();
    this.optimizerPass?.pass.destroy();
    this.optimizerPass = null;
    this.base.destroy();
    for (const b of this.blockInputs) b.buffer.destroy();
    for (const b of Object.values(this.t)) b.buffer.destroy();
    this.loras.destroy();
    this.ce.partials.buffer.destroy();
    this.ce.gradChunk.buffer.destroy();
    for (const b of [this.loss, this.stats, this.normPartials]) b.buffer.destroy();
  }
}

/** A micro-batch's dropout seed from the run seed, the optimizer step and the micro-batch index. */
export function microBatchSeed(runSeed: number, step: number, micro: number): number {
  return rngU32(runSeed >>> 0, step, micro);
}
