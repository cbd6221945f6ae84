import { describe, expect, it } from 'vitest';
import { LoraState } from '../../../../../src/engine/model/phi2/lora-state';
import { Phi2TrainStep } from '../../../../../src/engine/model/phi2/train-step';
import { goldenAdapter, goldenJson, MODELS } from '../../../../support/fixtures';
import { testGpu } from '../../../../support/gpu';
import { modelPerFile } from '../../../../support/models';

/**
 * The training step with dropout on (LoRA's on every adapter input, the residual's on both branches):
 * the goldens have none, so here each adapted layer type's gradient is held to central differences of
 * the step's own loss. A step's masks are a function of its seed, so the loss is a deterministic,
 * differentiable function of the adapter's weights; a mask replayed wrongly anywhere in backward (the
 * grouped x·Aᵀ, the input gradients' masks, dA's, the residual epilogue) moves the gradient by far more
 * than the 2% allowed.
 */

const dir = MODELS.tiny;
const loadModel = modelPerFile(dir, 'f16');

describe('LoRA training with dropout', () => {
  it('each group of adapters\' gradient matches central differences of the loss under the same masks', async () => {
    const gpu = await testGpu();
    const model = await loadModel(gpu);
    const golden = goldenJson(dir);
    // The first sequence alone keeps the seven micro-steps short.
    const ids = golden.input_ids[0];
    const batch = { ids: Uint32Array.from(ids), labels: Int32Array.from(golden.lora.labels[0]), batch: 1, seq: ids.length };
    // The golden adapter: B is not zero, so every dA is too.
    const adapter = goldenAdapter(dir);
    const lora = new LoraState(gpu, model.dims, { ...adapter.settings, dropout: 0.3 });
    lora.setWeights(adapter.tensor);
    const step = new Phi2TrainStep(model, lora, batch.batch, batch.seq);
    const opts = { residDropout: 0.2, loraDropout: 0.3, seed: 12345, labelCount: step.countLabels(batch) };
    const lossAt = async (params: Float32Array): Promise<number> => {
      lora.setFlat('params', params);
      step.microStep(batch, opts);
      return (await gpu.readF32(step.loss))[0];
    };

    const theta = await lora.readFlat('params');
    await lossAt(theta);
    const grads = await lora.readFlat('grads');
    expect(new Set(lora.modules.map((m) => m.module.target)).size).toBe(6);
    // One direction per way the step groups its adapters: those reading LN(x), then each branch's.
    const groups = [['q_proj', 'k_proj', 'v_proj', 'fc1'], ['dense'], ['fc2']];
    for (const group of groups) {
      // The direction of these layers' gradient (A and B of every block): g·v = |g_group|.
      const v = new Float32Array(theta.length);
      for (const m of lora.modules.filter((x) => group.includes(x.module.target))) {
        for (const t of [m.A, m.B]) {
          const off = (t.byteOffset - lora.params.byteOffset) / 4;
          const n = t.shape[0] * t.shape[1];
          v.set(grads.subarray(off, off + n), off);
        }
      }
      const norm = Math.sqrt(v.reduce((s, x) => s + x * x, 0));
      expect(norm).toBeGreaterThan(0);
      const eps = 1e-2;
      const plus = await lossAt(theta.map((x, i) => x + (eps * v[i]) / norm));
      const minus = await lossAt(theta.map((x, i) => x - (eps * v[i]) / norm));
      const fd = (plus - minus) / (2 * eps);
      console.log(`${group.join(', ')}: |g| ${norm.toExponential(4)}, central difference ${fd.toExponential(4)} (${((100 * (fd - norm)) / norm).toFixed(3)}%)`);
      expect(Math.abs(fd - norm) / norm).toBeLessThan(0.02);
    }
    step.destroy();
    lora.destroy();
  }, 600_000);
});
