import contrastiveCode from '../../../shaders/contrastive.select.wgsl?raw';
import rowReduce from '../../../shaders/lib/row_reduce.wgsl?raw';
import { packUniforms } from '../gpu/encoder';
import { grid, type GpuRuntime } from '../gpu/runtime';
import type { GpuTensor } from '../gpu/tensor';
import { expectDType, expectShape } from './check';
import { expectCount, expectDisjoint } from './kernel-args';
import { RNG_WGSL } from './rng';

/**
 * Contrastive token choice between two models' logits for the same contexts (Li et al.'s contrastive
 * decoding rule, as "What's New in My Data?" uses it between a fine-tuned and a pre-trained model):
 * per row, the token maximising log p_expert − log p_amateur among those the expert gives at least
 * `plausibility` times its top probability; greedy, or drawn from softmax(score / temperature) over
 * that set by Gumbel-max with a per-row seed. The procedure is spelled out in
 * shaders/contrastive.select.wgsl; test/reference/contrastive.ts repeats it in float64.
 */

const SELECT = { name: 'contrastive.select', code: rowReduce + RNG_WGSL + contrastiveCode };
const workgroupSize = (vocab: number): number => (vocab >= 8192 ? 256 : 64);

/** u32 words per row of the output record: token, then the f32 bits of score, log p_expert, log p_amateur. */
export const CHOICE_WORDS = 4;

export interface ContrastiveChoiceOptions {
  /** Keep tokens with p_expert >= plausibility · max p_expert; in [0, 1] (0: every token). */
  plausibility: number;
  /** 0: greedy; otherwise the temperature of the draw. */
  temperature: number;
  /** The generation step: with the row's seed, it picks the random numbers of the draw. */
  step: number;
  /** Only ids below this are candidates (the tokenizer's size); default: the whole row. */
  valid?: number;
}

export interface ContrastiveChoice {
  token: number;
  /** log p_expert(token) − log p_amateur(token). */
  score: number;
  logpExpert: number;
  logpAmateur: number;
}

/**
 * out [rows, CHOICE_WORDS] (u32) = the choice per row of expert and amateur logits [rows, vocab];
 * seeds [rows] (u32) seed each row's draws.
 */
export function contrastiveSelect(
  gpu: GpuRuntime,
  out: GpuTensor,
  expert: GpuTensor,
  amateur: GpuTensor,
  seeds: GpuTensor,
  rows: number,
  vocab: number,
  opts: ContrastiveChoiceOptions,
): void {
  const k = 'contrastiveSelect';
  expectCount(k, 'rows', rows);
  expectCount(k, 'vocab', vocab, 1);
  for (const t of [expert, amateur]) {
    expectDType(k, t, 'f32');
    expectShape(k, t, [rows, vocab]);
  }
  expectDType(k, seeds, 'u32');
  expectShape(k, seeds, [rows]);
  expectDType(k, out, 'u32');
  expectShape(k, out, [rows, CHOICE_WORDS]);
  expectDisjoint(k, out, [expert, amateur, seeds]);
  const { plausibility, temperature, step } = opts;
  const valid = opts.valid ?? vocab;
  expectCount(k, 'valid', valid, 1);
  if (valid > vocab) throw new Error(`${k}: valid (${valid}) must be at most vocab (${vocab})`);
  if (!(plausibility >= 0 && plausibility <= 1)) throw new Error(`${k}: plausibility must be in [0, 1], got ${plausibility}`);
  if (!Number.isFinite(temperature) || temperature < 0) throw new Error(`${k}: temperature must be finite and >= 0, got ${temperature}`);
  expectCount(k, 'step', step);
  const [gx, gy] = grid(rows);
  gpu.encoder.dispatch(
    gpu.pipelines.get(SELECT, { WG: workgroupSize(vocab) }),
    packUniforms([
      ['u32', rows],
      ['u32', vocab],
      ['u32', gx],
      ['u32', step >>> 0],
      ['f32', logPlausibility(plausibility)],
      ['f32', temperature],
      ['u32', valid],
    ]),
    [out, expert, amateur, seeds],
    [gx, gy],
  );
}

/** log(plausibility) as the shader compares it; the lowest f32 for 0 (no cut). */
export function logPlausibility(plausibility: number): number {
  return plausibility > 0 ? Math.log(plausibility) : -3.4028234663852886e38;
}

/** The records read back from contrastiveSelect's output. */
export function decodeChoices(words: ArrayBuffer, rows: number): ContrastiveChoice[] {
  const u = new Uint32Array(words, 0, rows * CHOICE_WORDS);
  const f = new Float32Array(words, 0, rows * CHOICE_WORDS);
  return Array.from({ length: rows }, (_, r) => ({
    token: u[r * CHOICE_WORDS],
    score: f[r * CHOICE_WORDS + 1],
    logpExpert: f[r * CHOICE_WORDS + 2],
    logpAmateur: f[r * CHOICE_WORDS + 3],
  }));
}
