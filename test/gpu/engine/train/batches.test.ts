import { afterAll, describe, expect, it } from 'vitest';
import { IGNORE_INDEX } from '../../../../src/engine/data/template';
import { Phi2Model } from '../../../../src/engine/model/phi2/forward';
import { loadPhi2FromSource } from '../../../../src/engine/model/phi2/load';
import { LoraState } from '../../../../src/engine/model/phi2/lora-state';
import { destroyParams } from '../../../../src/engine/model/phi2/params';
import { Phi2TrainStep, type TrainBatch } from '../../../../src/engine/model/phi2/train-step';
import { nextBatch, type TrainExample } from '../../../../src/engine/train/batches';
import type { QuantScheme } from '../../../../src/engine/weights/layout';
import { LORA_TARGETS, type LoraSettings } from '../../../../src/shared/lora';
import { compareTensors, randomArray, rng } from '../../../support/compare';
import { directorySource, MODELS } from '../../../support/fixtures';
import { testGpu } from '../../../support/gpu';

// A batch padded to its bucket is the batch padded to its longest plus masked zeros: the golden model
// (Phi-2's head geometry, 2 layers, int8 weights as the app loads them) gives the same loss and LoRA
// gradients both ways. Measured on SwiftShader, in both weight modes: the gradients identical to the bit in
// every case, the losses too except all-equal lengths with F16 weights (relative 7.2e-8: padded to the
// longest, that batch carries no lengths, and its loss sums one row fewer a sequence). The bounds are
// those of f32 arithmetic that only adds exact zeros, not a tolerance.
const LOSS_REL = 1e-6;
const GRAD_REL = 1e-6;

const models: Phi2Model[] = [];
afterAll(() => {
  for (const m of models) {
    m.destroy();
    destroyParams(m.params);
  }
});

const LORA: LoraSettings = { r: 4, alpha: 8, dropout: 0, useRslora: false, targets: [...LORA_TARGETS], layers: 'all' };

/** Loss and LoRA gradients of one micro-step on `batch`, dropout 0, from zeroed gradients. */
async function lossAndGrads(step: Phi2TrainStep, batch: TrainBatch): Promise<{ loss: number; grads: Float32Array }> {
  step.zeroGrads();
  step.microStep(batch, { residDropout: 0, loraDropout: 0, seed: 7, labelCount: step.countLabels(batch) });
  return { loss: (await step.model.gpu.readF32(step.loss))[0], grads: await step.lora.readFlat('grads') };
}

for (const scheme of ['int8'] as QuantScheme[]) {
  describe(`${scheme} weights: a batch padded to its bucket`, () => {
    it('has the loss and LoRA gradients of the batch padded to its longest (uneven lengths, a one-token sequence, all sequences equal)', async () => {
      const gpu = await testGpu();
      const m = new Phi2Model(gpu, (await loadPhi2FromSource(gpu, await directorySource(MODELS.golden), scheme)).params);
      models.push(m);
      const random = rng(31);
      const lora = new LoraState(gpu, m.dims, LORA);
      lora.enableTraining();
      // Non-zero A and B, so that both get gradients.
      lora.setFlat('params', randomArray(lora.size, random, 0.2));
      const example = (n: number): TrainExample => {
        const ids = Array.from({ length: n }, () => Math.floor(random() * m.dims.vocab));
        return { input_ids: ids, labels: ids.map((id, t) => (t < 2 ? IGNORE_INDEX : id)) };
      };
      const maxLength = 20;
      const step = new Phi2TrainStep(m, lora, 3, maxLength);
      const cases: Array<{ name: string; data: TrainExample[]; bucket: number }> = [
        { name: 'lengths 9, 5, 3 into 16', data: [example(9), example(5), example(3)], bucket: 16 },
        { name: 'lengths 1, 6, 11 into 20 (maxLength)', data: [example(1), example(6), example(11)], bucket: 20 },
        { name: 'lengths 7, 7, 7 into 8', data: [example(7), example(7), example(7)], bucket: 8 },
      ];
      for (const c of cases) {
        // One permutation of the three: nextBatch's order is seeded, the same for both paddings.
        const longest = nextBatch(c.data, 3, { epoch: 0, index: 0 }, 3, maxLength).batch;
        const bucketed = nextBatch(c.data, 3, { epoch: 0, index: 0 }, 3, maxLength, [c.bucket]).batch;
        expect(bucketed.seq, c.name).toBe(c.bucket);
        expect(longest.seq, c.name).toBeLessThanOrEqual(c.bucket);
        const want = await lossAndGrads(step, longest);
        const got = await lossAndGrads(step, bucketed);
        const lossRel = Math.abs(got.loss - want.loss) / Math.abs(want.loss);
        console.log(`${scheme} ${c.name}: loss ${got.loss} vs ${want.loss} (rel ${lossRel.toExponential(2)})`);
        expect(Number.isFinite(want.loss), c.name).toBe(true);
        expect(lossRel, c.name).toBeLessThanOrEqual(LOSS_REL);
        const g = compareTensors(`${scheme} ${c.name}: LoRA grads`, got.grads, want.grads);
        expect(g.relError, c.name).toBeLessThanOrEqual(GRAD_REL);
        expect(Math.max(...want.grads.map(Math.abs)), c.name).toBeGreaterThan(1e-4);
      }
      step.destroy();
      lora.destroy();
    });
  });
}
