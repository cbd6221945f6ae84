import { afterAll, describe, expect, it } from 'vitest';
import type { GpuRuntime } from '../../src/engine/gpu/runtime';
import { KvCache, Phi2Model, Phi2Workspace } from '../../src/engine/model/phi2/forward';
import { Generator } from '../../src/engine/model/phi2/generate';
import { loadPhi2FromSource } from '../../src/engine/model/phi2/load';
import { loadTokenizer } from '../../src/engine/tokenizer';
import { destroyParams } from '../../src/engine/model/phi2/params';
import type { QuantScheme } from '../../src/engine/weights/layout';
import { compareTensors } from '../support/compare';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { directorySource, goldenJson, goldenTensors, MODELS } from '../support/fixtures';
import { testGpu } from '../support/gpu';

/** Logits of all positions, keeping the first `vocabKept` columns (tiny-phi's goldens keep 1024). */
function firstColumns(all: Float32Array, rows: number, vocab: number, kept: number): Float32Array {
  if (kept === vocab) return all;
  const out = new Float32Array(rows * kept);
  for (let r = 0; r < rows; r++) out.set(all.subarray(r * vocab, r * vocab + kept), r * kept);
  return out;
}

// Loading is the slow part on SwiftShader: each model and weight mode is loaded once per file.
const loaded = new Map<string, Promise<Phi2Model>>();
function loadModel(gpu: GpuRuntime, dir: string, scheme: QuantScheme): Promise<Phi2Model> {
  const key = `${dir}:${scheme}`;
  if (!loaded.has(key)) {
    loaded.set(key, (async () => new Phi2Model(gpu, (await loadPhi2FromSource(gpu, await directorySource(dir), scheme)).params))());
  }
  return loaded.get(key)!;
}

afterAll(async () => {
  for (const m of loaded.values()) {
    const model = await m;
    model.destroy();
    destroyParams(model.params);
  }
});

for (const [label, dir] of Object.entries(MODELS)) {
  describe(`Phi forward against transformers (${label})`, () => {
    const golden = goldenJson(dir);
    const tensors = goldenTensors(dir, 'forward.safetensors');
    const ids = golden.input_ids;
    const B = ids.length;
    const T = ids[0].length;

    for (const scheme of ['f16', 'int8'] as const) {
      it(`${scheme}: every hidden state and the logits of a batch`, async () => {
        const gpu = await testGpu();
        const model = await loadModel(gpu, dir, scheme);
        const d = model.dims;
        const ws = new Phi2Workspace(gpu, d, B * T);
        const cache = new KvCache(gpu, d, B, T);
        const hidden = Array.from({ length: d.layers + 1 }, (_, i) => gpu.tensor(`hidden_${i}`, [B * T, d.hidden]));
        const logits = model.forward(ws, cache, { ids: Uint32Array.from(ids.flat()), batch: B, seq: T, logits: 'all', captureHidden: hidden })!;
        const ours = await gpu.readF32(logits);
        const kept = tensors.header.tensors.find((t) => t.name === 'logits')!.shape[2];
        const got = firstColumns(ours, B * T, d.vocab, kept);
        if (scheme === 'f16') {
          for (let i = 0; i <= d.layers; i++) {
            const c = compareTensors(`${label} f16 hidden_${i}`, await gpu.readF32(hidden[i]), tensors.float32(`hidden_${i}`));
            expect(c.relError).toBeLessThan(1e-4);
          }
          expect(compareTensors(`${label} f16 logits`, got, tensors.float32('logits')).relError).toBeLessThan(1e-4);
        } else {
          expect(compareTensors(`${label} int8 logits vs int8_logits`, got, tensors.float32('int8_logits')).relError).toBeLessThan(1e-4);
          // Against the unquantised logits int8 is only close.
          expect(compareTensors(`${label} int8 logits vs f16 logits`, got, tensors.float32('logits'), true).relError).toBeLessThan(0.05);
        }
        ws.destroy();
        cache.destroy();
      });
    }

    it('f16: a single longer sequence', async () => {
      const gpu = await testGpu();
      const model = await loadModel(gpu, dir, 'f16');
      const single = golden.single_ids[0];
      const ws = new Phi2Workspace(gpu, model.dims, single.length);
      const cache = new KvCache(gpu, model.dims, 1, single.length);
      const logits = model.forward(ws, cache, { ids: Uint32Array.from(single), batch: 1, seq: single.length, logits: 'all' })!;
      const kept = tensors.header.tensors.find((t) => t.name === 'single_logits')!.shape[2];
      const got = firstColumns(await gpu.readF32(logits), single.length, model.dims.vocab, kept);
      expect(compareTensors(`${label} f16 single_logits`, got, tensors.float32('single_logits')).relError).toBeLessThan(1e-4);
    });

    it('f16: greedy tokens through the KV cache are identical', async () => {
      const gpu = await testGpu();
      const model = await loadModel(gpu, dir, 'f16');
      const { prompt, generated } = golden.greedy;
      const generator = new Generator(model);
      const streamed: number[] = [];
      const result = await generator.generate(prompt, { maxNewTokens: generated.length, stopTokens: [], onToken: (t) => streamed.push(t) });
      console.log(`${label} greedy ours   ${result.tokens.join(' ')}\n${label} greedy golden ${generated.join(' ')}`);
      expect(result.tokens).toEqual(generated);
      expect(streamed).toEqual(generated);
      expect(result.stopped).toBe('max-tokens');
      generator.destroy();
    }, 600_000);

    if (golden.text_greedy) {
      const text = golden.text_greedy;
      it('f16: text in, greedy text out, through the real tokenizer', async () => {
        const gpu = await testGpu();
        const model = await loadModel(gpu, dir, 'f16');
        const tokenizer = await loadTokenizer({
          'tokenizer.json': readFileSync(join(dir, 'tokenizer.json'), 'utf8'),
          'tokenizer_config.json': readFileSync(join(dir, 'tokenizer_config.json'), 'utf8'),
        });
        const ids = tokenizer.encode(text.prompt);
        expect(ids).toEqual(text.prompt_ids);
        const generator = new Generator(model);
        const result = await generator.generate(ids, { maxNewTokens: text.generated.length, stopTokens: [] });
        expect(result.tokens).toEqual(text.generated);
        expect(tokenizer.decode(result.tokens)).toBe(text.generated_text);
        generator.destroy();
      }, 600_000);
    }

    it('cancels between tokens and scores candidate continuations', async () => {
      const gpu = await testGpu();
      const model = await loadModel(gpu, dir, 'f16');
      const generator = new Generator(model);
      const controller = new AbortController();
      const { prompt, generated } = golden.greedy;
      const cut = await generator.generate(prompt, {
        maxNewTokens: 10,
        stopTokens: [],
        signal: controller.signal,
        onToken: (_t, i) => i === 2 && controller.abort(),
      });
      expect(cut).toEqual({ tokens: generated.slice(0, 3), stopped: 'cancelled' });
      // The greedy continuation is the most likely of these candidates, and the scores are log-probabilities.
      const scores = await generator.scoreCandidates(prompt, [generated.slice(0, 3), [generated[0], 7, 9], [11, 12]]);
      expect(scores.every((s) => s < 0)).toBe(true);
      expect(scores[0]).toBeGreaterThan(scores[1]);
      expect(scores[0]).toBeGreaterThan(scores[2]);
      generator.destroy();
    }, 600_000);
  });
}
