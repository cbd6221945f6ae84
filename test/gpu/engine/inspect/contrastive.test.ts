import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ADAPTER_CONFIG, ADAPTER_WEIGHTS, decodeAdapter } from '../../../../src/engine/adapters/files';
import type { GpuRuntime } from '../../../../src/engine/gpu/runtime';
import { generateContrastive, type ContrastiveOptions, type ContrastiveSample } from '../../../../src/engine/inspect/contrastive';
import { KvCache, Phi2Model, Phi2Workspace } from '../../../../src/engine/model/phi2/forward';
import { loadPhi2FromSource } from '../../../../src/engine/model/phi2/load';
import { LoraState } from '../../../../src/engine/model/phi2/lora-state';
import { destroyParams } from '../../../../src/engine/model/phi2/params';
import { contrastiveRef } from '../../../reference/contrastive';
import { directorySource, goldenJson, MODELS } from '../../../support/fixtures';
import { testGpu } from '../../../support/gpu';

// Contrastive generation on tiny-phi with its golden PEFT adapter: every chosen token must be the one
// the rule picks from the engine's own logits with and without the adapter, each recomputed here by a
// full forward pass over the prompt and the tokens chosen so far (no KV cache, batch of one).

let model: Phi2Model | null = null;
let lora: LoraState | null = null;

async function setup(gpu: GpuRuntime): Promise<{ model: Phi2Model; lora: LoraState }> {
  if (!model) {
    model = new Phi2Model(gpu, (await loadPhi2FromSource(gpu, await directorySource(MODELS.tiny), 'f16')).params);
    const dir = join(MODELS.tiny, 'golden/adapter');
    const d = model.dims;
    const files = { [ADAPTER_CONFIG]: new Uint8Array(readFileSync(join(dir, ADAPTER_CONFIG))), [ADAPTER_WEIGHTS]: new Uint8Array(readFileSync(join(dir, ADAPTER_WEIGHTS))) };
    const a = decodeAdapter(files, { hidden: d.hidden, intermediate: d.intermediate, layers: d.layers });
    lora = new LoraState(gpu, d, a.settings);
    lora.setWeights((name) => a.tensors.get(name)!.data);
  }
  return { model, lora: lora! };
}

afterAll(() => {
  lora?.destroy();
  if (model) {
    model.destroy();
    destroyParams(model.params);
  }
});

/** Logits at every position of one sequence, recomputed from scratch (no KV cache, batch of one): [len, vocab]. */
async function allLogits(m: Phi2Model, ids: number[], adapter: LoraState | null): Promise<Float32Array> {
  const ws = new Phi2Workspace(m.gpu, m.dims, ids.length);
  const cache = new KvCache(m.gpu, m.dims, 1, ids.length);
  try {
    return await m.gpu.readF32(m.forward(ws, cache, { ids: Uint32Array.from(ids), batch: 1, seq: ids.length, logits: 'all', adapter })!);
  } finally {
    ws.destroy();
    cache.destroy();
  }
}

/** Checks every chosen token against the rule applied to the logits before it; returns the smallest margin seen. */
async function checkAgainstReference(m: Phi2Model, adapter: LoraState, prompt: number[], samples: ContrastiveSample[], opts: ContrastiveOptions): Promise<number> {
  const V = m.dims.vocab;
  let minMargin = Infinity;
  for (const [s, sample] of samples.entries()) {
    // Position prompt.length - 1 + t predicts token t: one forward per pass covers the whole sample.
    const context = [...prompt, ...sample.tokens];
    const withAdapter = await allLogits(m, context, adapter);
    const base = await allLogits(m, context, null);
    for (const [t, token] of sample.tokens.entries()) {
      const at = (x: Float32Array) => x.subarray((prompt.length - 1 + t) * V, (prompt.length + t) * V);
      const [expert, amateur] = opts.direction === 'adapter-over-base' ? [at(withAdapter), at(base)] : [at(base), at(withAdapter)];
      const ref = contrastiveRef(expert, amateur, opts.plausibility, opts.temperature, opts.seed + s, t);
      minMargin = Math.min(minMargin, ref.margin);
      const tag = `${opts.direction} sample ${s} token ${t}`;
      expect(token, `${tag} (margin ${ref.margin.toExponential(2)})`).toBe(ref.token);
      const c = sample.choices[t];
      expect(Math.abs(c.score - ref.score), tag).toBeLessThan(1e-3);
      expect(Math.abs(c.logpExpert - ref.logpExpert), tag).toBeLessThan(1e-3);
      expect(Math.abs(c.logpAmateur - ref.logpAmateur), tag).toBeLessThan(1e-3);
    }
  }
  return minMargin;
}

// SwiftShader on a shared machine takes seconds per forward pass of tiny-phi: generous limits.
const LONG = 900_000;

describe('contrastive generation on tiny-phi with the golden adapter', () => {
  const prompt = goldenJson(MODELS.tiny).text_greedy!.prompt_ids;

  it('greedy: each token maximises log p_adapter − log p_base among plausible tokens, and the reverse', async () => {
    const gpu = await testGpu();
    const { model: m, lora: a } = await setup(gpu);
    for (const direction of ['adapter-over-base', 'base-over-adapter'] as const) {
      const opts: ContrastiveOptions = { maxNewTokens: 6, samples: 1, direction, plausibility: 0.1, temperature: 0, seed: 0, stopTokens: [] };
      const streamed: number[] = [];
      const samples = await generateContrastive(m, a, prompt, { ...opts, onToken: (_s, c) => streamed.push(c.token) });
      expect(samples[0].tokens).toHaveLength(6);
      expect(samples[0].stopped).toBe('max-tokens');
      expect(streamed).toEqual(samples[0].tokens);
      // Greedy keys are exact f32 differences: only a true tie could differ, and none is near.
      await checkAgainstReference(m, a, prompt, samples, opts);
      // The chosen tokens do what the direction says: the adapter likes them more, or less.
      for (const c of samples[0].choices) expect(c.score).toBeGreaterThan(0);
      console.log(`${direction}: ${samples[0].tokens.join(' ')} (scores ${samples[0].choices.map((c) => c.score.toFixed(3)).join(' ')})`);
    }
  }, LONG);

  it('several diverse samples at once, each drawn with its own seed, as the rule draws them', async () => {
    const gpu = await testGpu();
    const { model: m, lora: a } = await setup(gpu);
    const opts: ContrastiveOptions = { maxNewTokens: 5, samples: 3, direction: 'adapter-over-base', plausibility: 0.05, temperature: 1, seed: 7, stopTokens: [] };
    const samples = await generateContrastive(m, a, prompt, opts);
    expect(samples).toHaveLength(3);
    const margin = await checkAgainstReference(m, a, prompt, samples, opts);
    console.log(`sampled: smallest margin between the winner and the runner-up ${margin.toExponential(2)}`);
    expect(new Set(samples.map((s) => s.tokens.join(','))).size).toBeGreaterThan(1);
    // One sample alone draws exactly what it drew in the batch.
    const alone = await generateContrastive(m, a, prompt, { ...opts, samples: 1, seed: 8 });
    expect(alone[0].tokens).toEqual(samples[1].tokens);
  }, LONG);

  it('stops where asked, and refuses what it cannot do', async () => {
    const gpu = await testGpu();
    const { model: m, lora: a } = await setup(gpu);
    const base: ContrastiveOptions = { maxNewTokens: 4, samples: 1, direction: 'adapter-over-base', plausibility: 0.1, temperature: 0, seed: 0, stopTokens: [] };
    const steps: number[] = [];
    const first = (await generateContrastive(m, a, prompt, { ...base, onStep: (step) => steps.push(step) }))[0];
    expect(steps).toEqual([0, 1, 2, 3]);
    const stopped = await generateContrastive(m, a, prompt, { ...base, stopTokens: [first.tokens[2]] });
    expect(stopped[0].tokens).toEqual(first.tokens.slice(0, 2));
    expect(stopped[0].stopped).toBe('stop-token');
    const controller = new AbortController();
    const cancelled = await generateContrastive(m, a, prompt, { ...base, signal: controller.signal, onToken: (_s, _c, i) => i === 1 && controller.abort() });
    expect(cancelled[0].tokens).toHaveLength(2);
    expect(cancelled[0].stopped).toBe('cancelled');
    await expect(generateContrastive(m, a, prompt, { ...base, samples: 2 })).rejects.toThrow(/temperature above 0/);
    await expect(generateContrastive(m, a, prompt, { ...base, plausibility: 2 })).rejects.toThrow(/plausibility/);
    await expect(generateContrastive(m, a, [], base)).rejects.toThrow(/empty/);
  }, LONG);
});
