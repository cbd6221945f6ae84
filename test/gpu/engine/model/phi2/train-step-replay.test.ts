import { describe, expect, it, vi } from 'vitest';
import type { Phi2Model } from '../../../../../src/engine/model/phi2/forward';
import type { ComputePath } from '../../../../../src/engine/model/phi2/frozen-linear';
import { LoraState } from '../../../../../src/engine/model/phi2/lora-state';
import { Phi2TrainStep, type TrainBatch } from '../../../../../src/engine/model/phi2/train-step';
import type { OptimizerSettings } from '../../../../../src/shared/optimizer';
import { rng } from '../../../../support/compare';
import { goldenAdapter, MODELS } from '../../../../support/fixtures';
import { testGpu } from '../../../../support/gpu';
import { modelPerFile } from '../../../../support/models';

/**
 * A training step recorded once and replayed (Phi2TrainStep's default) gives the same bits as the
 * same steps recorded afresh every time: the loss of every micro-batch, every LoRA gradient before
 * each optimizer step and the adapter after it, over several steps with dropout on, a new seed, label
 * count, learning rate and step number each time, gradient accumulation, and shapes that change (a
 * re-recording) and come back (the kept recording replayed).
 */

const loadModel = modelPerFile(MODELS.tiny, 'int8');

/** tiny-phi's real PEFT adapter (B is not zero, so every gradient is), ready for training. */
function loadAdapter(m: Phi2Model, optimizer: OptimizerSettings): LoraState {
  const adapter = goldenAdapter(MODELS.tiny);
  const lora = new LoraState(m.gpu, m.dims, adapter.settings);
  lora.setWeights(adapter.tensor);
  lora.enableTraining(optimizer);
  return lora;
}

/** A batch of random tokens, every other sequence shorter (right-padded, its padding ignored) when `padded`. */
function randomBatch(vocab: number, batch: number, seq: number, seed: number, padded: boolean): TrainBatch {
  const random = rng(seed);
  const ids = new Uint32Array(batch * seq);
  const labels = new Int32Array(batch * seq).fill(-100);
  const lengths: number[] = [];
  for (let b = 0; b < batch; b++) {
    const len = padded && b % 2 === 1 ? Math.max(2, seq - 3) : seq;
    lengths.push(len);
    for (let t = 0; t < len; t++) {
      ids[b * seq + t] = Math.floor(random() * vocab);
      // The first two tokens are prompt (not learnt), the rest response.
      if (t >= 2) labels[b * seq + t] = ids[b * seq + t];
    }
  }
  return { ids, labels, batch, seq, lengths: padded ? lengths : undefined };
}

/** The index and values of the first element whose bits differ, or null when all are the same. */
function firstDifference(a: Float32Array, b: Float32Array): string | null {
  if (a.length !== b.length) return `lengths ${a.length} and ${b.length}`;
  const ua = new Uint32Array(a.buffer, a.byteOffset, a.length);
  const ub = new Uint32Array(b.buffer, b.byteOffset, b.length);
  for (let i = 0; i < ua.length; i++) if (ua[i] !== ub[i]) return `element ${i}: ${a[i]} vs ${b[i]}`;
  return null;
}

const CASES: ReadonlyArray<{ compute: ComputePath; optimizer: OptimizerSettings }> = [
  { compute: 'f32', optimizer: { kind: 'adamw' } },
  { compute: 'int8', optimizer: { kind: 'adamw-8bit', blockSize: 256 } },
];

describe('a training step replayed', () => {
  for (const { compute, optimizer } of CASES) {
    it(`${compute} compute, ${optimizer.kind}: the same bits as recorded afresh, across shape changes, with dropout`, async () => {
      const gpu = await testGpu();
      if (compute === 'int8' && !gpu.ctx.hasInt8Dot) {
        console.log('int8 compute: this GPU lacks packed 4x8-bit dot products; nothing to compare');
        return;
      }
      const m = await loadModel(gpu);
      const vocab = m.dims.vocab;
      // Optimizer steps, each of micro-batches (batch, seq, padded): one shape, another (re-recorded), the
      // first again (replayed from the kept recording), then two micro-batches of different shapes.
      const plan: ReadonlyArray<ReadonlyArray<[number, number, boolean]>> = [
        [[1, 9, false]],
        [[2, 7, true]],
        [[1, 9, false]],
        [[2, 7, true], [1, 5, false]],
      ];
      const run = async (recordEachStep: boolean) => {
        const lora = loadAdapter(m, optimizer);
        const step = new Phi2TrainStep(m, lora, 2, 9, { compute, recordEachStep });
        const capture = vi.spyOn(gpu.encoder, 'capture');
        const losses: Float32Array[] = [];
        const grads: Float32Array[] = [];
        const params: Float32Array[] = [];
        for (const [s, micro] of plan.entries()) {
          const batches = micro.map(([b, t, padded], i) => randomBatch(vocab, b, t, 100 * s + i, padded));
          const labelCount = batches.reduce((sum, b) => sum + step.countLabels(b), 0);
          for (const [i, batch] of batches.entries()) {
            step.microStep(batch, { residDropout: 0.1, loraDropout: 0.2, seed: 7 * s + i + 1, labelCount });
            losses.push(await gpu.readF32(step.loss));
          }
          grads.push(await lora.readFlat('grads'));
          step.optimizerStep({ lr: 1e-3 * (1 - s / plan.length), step: s + 1, weightDecay: 0.01, maxGradNorm: 1 });
          params.push(await lora.readFlat('params'));
        }
        const captures = capture.mock.calls.length;
        capture.mockRestore();
        step.destroy();
        lora.destroy();
        return { losses, grads, params, captures };
      };
      const fresh = await run(true);
      const replayed = await run(false);
      // Recorded afresh: nothing captured. Replayed: the three micro-step shapes (a pass a block's forward,
      // one for the loss, one a block's backward) and the optimizer step, once each.
      expect(fresh.captures).toBe(0);
      expect(replayed.captures).toBe(3 * (2 * m.dims.layers + 1) + 1);
      for (const [i, loss] of fresh.losses.entries()) {
        expect(Number.isFinite(loss[0])).toBe(true);
        expect(firstDifference(replayed.losses[i], loss), `loss of micro-batch ${i}`).toBeNull();
      }
      for (const [s, g] of fresh.grads.entries()) {
        expect(g.some((x) => x !== 0)).toBe(true);
        expect(firstDifference(replayed.grads[s], g), `gradients of step ${s + 1}`).toBeNull();
        expect(firstDifference(replayed.params[s], fresh.params[s]), `adapter after step ${s + 1}`).toBeNull();
      }
      // The steps did move the adapter, differently each time.
      expect(firstDifference(fresh.params[0], fresh.params[2])).not.toBeNull();
      console.log(`${compute}, ${optimizer.kind}: ${fresh.losses.length} micro-batches, losses ${fresh.losses.map((l) => l[0].toFixed(5)).join(' ')}: replay identical`);
    }, 600_000);
  }
});
