import 'fake-indexeddb/auto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gguf } from '@huggingface/gguf';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeAdapter, encodeAdapter } from '../../../../../src/engine/adapters/files';
import { encodeGgufAdapter } from '../../../../../src/engine/adapters/gguf';
import { adapterTensorNames } from '../../../../../src/engine/adapters/peft';
import { loraModules, type LoraSettings } from '../../../../../src/shared/lora';
import { evaluateItems, type EvalModel, type RunnerSettings } from '../../../../../src/engine/eval/runner';
import type { EvalItem } from '../../../../../src/engine/eval/types';
import type { GpuRuntime } from '../../../../../src/engine/gpu/runtime';
import { phi2ParamsFromWeights } from '../../../../../src/engine/model/phi2/build';
import { KvCache, Phi2Model, Phi2Workspace } from '../../../../../src/engine/model/phi2/forward';
import { Generator } from '../../../../../src/engine/model/phi2/generate';
import { LoraState } from '../../../../../src/engine/model/phi2/lora-state';
import { destroyParams } from '../../../../../src/engine/model/phi2/params';
import { Phi2TrainStep } from '../../../../../src/engine/model/phi2/train-step';
import { WeightStore } from '../../../../../src/engine/store/store';
import { loadTokenizer, type PhiTokenizer } from '../../../../../src/engine/tokenizer';
import { Trainer, type StepRecord, type TrainConfig } from '../../../../../src/engine/train/trainer';
import { parsePhiConfig } from '../../../../../src/engine/weights/config';
import { importFromFiles } from '../../../../../src/engine/weights/index';
import type { QuantScheme } from '../../../../../src/engine/weights/layout';
import { loadModelToGpu } from '../../../../../src/engine/weights/upload';
import { compareTensors, rng } from '../../../../support/compare';
import { directoryFiles } from '../../../../support/fixtures';
import { testGpu } from '../../../../support/gpu';
import { referenceLogits, referenceLoss, TINY_PHI1_CONFIG, writeTinyPhi1, type TinyWeights } from '../../../../support/tiny-phi1';
import { testPlatform } from '../../../../support/idb';
import { halfToNumberRef, numberToHalfRef } from '../../../../reference/quantize';

/**
 * Phi-1.5 and Phi-1 end to end on a tiny checkpoint of their geometry (heads of 64, 32 rotary dims, no
 * bos/eos in config.json) made here: imported into the store from files (F16 like Phi-1.5, F32 like
 * Phi-1), loaded onto the GPU in both weight modes, and checked against a float64 forward composed
 * from the kernels' references: logits, greedy generation (which ends at the tokenizer's
 * <|endoftext|>), LoRA gradients against finite differences of the float64 loss (rsLoRA), a training
 * run, an evaluation's log-likelihoods, and the trained adapter exported as PEFT files and GGUF.
 */

const work = mkdtempSync(join(tmpdir(), 'phi1-geometry-'));
const config = parsePhiConfig(TINY_PHI1_CONFIG);
const platform = testPlatform();
let gpu: GpuRuntime;
let store: WeightStore;
let tokenizer: PhiTokenizer;
const models = new Map<string, Promise<{ model: Phi2Model; weights: TinyWeights }>>();

/** Writes the checkpoint, imports it into the store and loads it: once per name and mode, on first use. */
function importAndLoad(name: string, dtype: 'F16' | 'F32', scheme: QuantScheme, seed: number): Promise<{ model: Phi2Model; weights: TinyWeights }> {
  const key = `${name}:${scheme}`;
  let loaded = models.get(key);
  if (!loaded) {
    loaded = (async () => {
      const dir = join(work, name);
      const weights = writeTinyPhi1(dir, { seed, dtype });
      const manifest = await importFromFiles(platform, store, await directoryFiles(dir), { scheme, displayName: name });
      return { model: new Phi2Model(gpu, phi2ParamsFromWeights(await loadModelToGpu(gpu, store, manifest.id))), weights };
    })();
    models.set(key, loaded);
  }
  return loaded;
}

/** Phi-1.5's dtype in f16 mode: the model every test after the imports uses. */
const phi15Like = () => importAndLoad('phi-1_5-like', 'F16', 'f16', 3);

beforeAll(async () => {
  gpu = await testGpu();
  store = await WeightStore.open(platform, { name: 'phi1-geometry' });
  const tok = Object.fromEntries(['tokenizer.json', 'tokenizer_config.json'].map((f) => [f, readFileSync(join(import.meta.dirname, '../../../../../../shared/fixtures/tiny-phi', f), 'utf8')]));
  tokenizer = await loadTokenizer(tok);
}, 120_000);

afterAll(async () => {
  for (const m of models.values()) {
    const loaded = await m.catch(() => null); // a load that failed has failed its test already
    if (!loaded) continue;
    const { model } = loaded;
    model.destroy();
    destroyParams(model.params);
  }
  rmSync(work, { recursive: true, force: true });
});

async function logitsOf(model: Phi2Model, ids: number[][]): Promise<Float32Array> {
  const B = ids.length;
  const T = ids[0].length;
  const ws = new Phi2Workspace(gpu, model.dims, B * T);
  const cache = new KvCache(gpu, model.dims, B, T);
  try {
    return await gpu.readF32(model.forward(ws, cache, { ids: Uint32Array.from(ids.flat()), batch: B, seq: T, logits: 'all' })!);
  } finally {
    ws.destroy();
    cache.destroy();
  }
}

/**
 * The weights as the int8 mode keeps them before quantising: the embedding and lm_head in F16 (F32
 * checkpoints are rounded), the linear weights as published (quantised from those values).
 */
function asStored(weights: TinyWeights, dtype: 'F16' | 'F32'): TinyWeights {
  if (dtype === 'F16') return weights;
  const half = (v: number) => halfToNumberRef(numberToHalfRef(v));
  return new Map(
    [...weights].map(([name, t]) => [name, name === 'model.embed_tokens.weight' || name === 'lm_head.weight' ? { shape: t.shape, data: t.data.map(half) } : t]),
  );
}

const IDS = [
  [464, 3139, 286, 4881, 318, 6342, 13, 383, 2068, 7586, 21831],
  [50256, 10248, 2068, 11, 995, 0, 1867, 318, 362, 10, 17],
];

describe('Phi-1.5 / Phi-1 geometry (heads of 64, 32 rotary dims)', () => {
  it('has the geometry of the real models', () => {
    expect(config).toMatchObject({ headDim: 64, rotaryDim: 32, residPdrop: 0, eosTokenId: null, bosTokenId: null });
  });

  // Loading is the slow part on SwiftShader: Phi-1.5's dtype in f16 mode serves every later test (imported
  // by whichever test comes first); Phi-1's in int8.
  it.each([
    ['phi-1_5-like', 'F16', 'f16'],
    ['phi-1-like', 'F32', 'int8'],
  ] as const)('imports %s (%s weights) into the store, loads it in %s and matches the float64 forward', async (name, dtype, scheme) => {
    const { model, weights } = await importAndLoad(name, dtype, scheme, name === 'phi-1-like' ? 7 : 3);
    expect(model.dims).toMatchObject({ headDim: 64, rotaryDim: 32, heads: 2, layers: 2, hidden: 128 });
    const ours = await logitsOf(model, IDS);
    const ref = referenceLogits(asStored(weights, dtype), TINY_PHI1_CONFIG, IDS, { int8: scheme === 'int8' });
    expect(compareTensors(`${name} ${scheme} logits`, ours, ref).relError).toBeLessThan(1e-4);
  }, 600_000);

  it('generates greedily as the float64 forward does, and stops at the tokenizer’s <|endoftext|> though config.json names none', async () => {
    const { model, weights } = await phi15Like();
    const prompt = tokenizer.encode('Instruct: What is the capital of France?\nOutput:');
    const generator = new Generator(model, { decodableVocab: tokenizer.vocabSize, endOfText: tokenizer.eosTokenId });
    try {
      expect(generator.endOfText).toBe(50256);
      const result = await generator.generate(prompt, { maxNewTokens: 6 });
      const ref: number[] = [];
      for (let i = 0; i < 6; i++) {
        const ids = [...prompt, ...ref];
        const logits = referenceLogits(weights, TINY_PHI1_CONFIG, [ids]);
        const last = logits.subarray((ids.length - 1) * config.vocabSize, ids.length * config.vocabSize);
        let best = 0;
        for (let v = 1; v < tokenizer.vocabSize; v++) if (last[v] > last[best]) best = v;
        ref.push(best);
        if (best === 50256) break;
      }
      expect(result.tokens).toEqual(ref);
      // Without stop tokens in the call, the generator's end-of-text ends it (here: pretend the first token is it).
      const byDefault = new Generator(model, { endOfText: result.tokens[0] });
      try {
        // (The stop token itself is not part of the generation.)
        expect(await byDefault.generate(prompt, { maxNewTokens: 5 })).toEqual({ tokens: [], stopped: 'stop-token' });
      } finally {
        byDefault.destroy();
      }
    } finally {
      generator.destroy();
    }
  }, 600_000);

  const lora: LoraSettings = { r: 4, alpha: 8, dropout: 0, useRslora: true, targets: ['q_proj', 'k_proj', 'v_proj', 'dense', 'fc1', 'fc2'], layers: 'all' };
  const shapes = { hidden: 128, intermediate: 512, layers: 2 };

  /** A random adapter with B non-zero, so that every gradient flows. */
  function randomAdapter(seed: number): Map<string, Float32Array> {
    const random = rng(seed);
    const out = new Map<string, Float32Array>();
    for (const m of loraModules(lora, shapes)) {
      const { a, b } = adapterTensorNames(m);
      out.set(a, Float32Array.from({ length: lora.r * m.inFeatures }, () => (random() * 2 - 1) * 0.1));
      out.set(b, Float32Array.from({ length: m.outFeatures * lora.r }, () => (random() * 2 - 1) * 0.1));
    }
    return out;
  }

  it('trains: LoRA gradients (rsLoRA) equal finite differences of the float64 loss', async () => {
    const { model, weights } = await phi15Like();
    const adapter = randomAdapter(5);
    const state = new LoraState(gpu, model.dims, lora);
    state.setWeights((name) => adapter.get(name)!);
    const ids = IDS[0];
    const labels = ids.map((id, i) => (i < 3 ? -100 : id));
    const batch = { ids: Uint32Array.from(ids), labels: Int32Array.from(labels), batch: 1, seq: ids.length };
    const step = new Phi2TrainStep(model, state, 1, ids.length);
    try {
      step.microStep(batch, { residDropout: 0, loraDropout: 0, seed: 0, labelCount: step.countLabels(batch) });
      const loss = (await gpu.readF32(step.loss))[0];
      const grads = state.unflatten(await state.readFlat('grads'));
      const lossAt = (m: Map<string, Float32Array | Float64Array>) =>
        referenceLoss(referenceLogits(weights, TINY_PHI1_CONFIG, [ids], { lora: { settings: lora, tensors: new Map([...m].map(([k, v]) => [k, Float64Array.from(v)])) } }), config.vocabSize, labels);
      const refLoss = lossAt(adapter);
      expect(Math.abs(loss - refLoss) / refLoss).toBeLessThan(1e-5);
      const eps = 1e-3;
      const checked: string[] = [];
      for (const name of [
        'base_model.model.model.layers.1.self_attn.q_proj.lora_B.weight',
        'base_model.model.model.layers.0.self_attn.k_proj.lora_A.weight',
        'base_model.model.model.layers.0.self_attn.dense.lora_A.weight',
        'base_model.model.model.layers.1.mlp.fc1.lora_B.weight',
        'base_model.model.model.layers.0.mlp.fc2.lora_A.weight',
      ]) {
        const g = grads.get(name)!.data;
        let at = 0;
        for (let i = 1; i < g.length; i++) if (Math.abs(g[i]) > Math.abs(g[at])) at = i;
        const plus = new Map<string, Float64Array>([...adapter].map(([k, v]) => [k, Float64Array.from(v)]));
        const minus = new Map<string, Float64Array>([...adapter].map(([k, v]) => [k, Float64Array.from(v)]));
        plus.get(name)![at] += eps;
        minus.get(name)![at] -= eps;
        const fd = (lossAt(plus) - lossAt(minus)) / (2 * eps);
        checked.push(`${name.slice(24)}[${at}]: ${g[at].toExponential(4)} vs ${fd.toExponential(4)}`);
        expect(Math.abs(g[at] - fd), checked.at(-1)).toBeLessThan(1e-3 * Math.abs(fd));
      }
      console.log(`loss ${loss} (float64 ${refLoss}); gradients against finite differences:\n  ${checked.join('\n  ')}`);
    } finally {
      step.destroy();
      state.destroy();
    }
  }, 600_000);

  /**
   * The trainer's run on Phi-1.5's geometry, once (on first use): the trainer test checks it and the
   * export test writes its adapter, each able to run alone.
   */
  let trainerRun: Promise<{ outcome: Awaited<ReturnType<Trainer['run']>>; records: readonly StepRecord[]; trained: Map<string, { shape: number[]; data: Float32Array }> }> | null = null;
  const runTrainer = () => (trainerRun ??= trainOnce());

  async function trainOnce() {
    const { model } = await phi15Like();
    const text = ['Instruct: 2+2?\nOutput: 4', 'Instruct: Capital of Italy?\nOutput: Rome'];
    const rows = text.map((t) => {
      const ids = tokenizer.encode(t);
      return { input_ids: ids, labels: ids.slice() };
    });
    const cfg: TrainConfig = {
      lora,
      schedule: { kind: 'linear', lr: 1e-3, warmupSteps: 0, totalSteps: 1 },
      batchSize: 1,
      gradAccumulation: 2,
      maxLength: 32,
      weightDecay: 0.01,
      maxGradNorm: 1,
      residDropout: config.residPdrop,
      seed: 7,
      checkpointEvery: 0,
      maxNonFiniteSteps: 5,
      optimizer: { kind: 'adamw' },
    };
    const state = new LoraState(gpu, model.dims, lora);
    const random = rng(11);
    state.initialise(random);
    const trainer = new Trainer(model, state, cfg, rows, { now: () => performance.now() });
    try {
      const outcome = await trainer.run();
      return { outcome, records: [...trainer.records], trained: state.unflatten(await state.readFlat('params')) };
    } finally {
      trainer.destroy();
      state.destroy();
    }
  }

  it('runs the trainer (accumulation, clipping, AdamW) to a finite, changed adapter', async () => {
    const { outcome, records, trained } = await runTrainer();
    expect(outcome).toBe('finished');
    expect(records).toHaveLength(1);
    for (const r of records) {
      expect(Number.isFinite(r.loss) && !r.skipped).toBe(true);
    }
    const b = trained.get('base_model.model.model.layers.0.mlp.fc2.lora_B.weight')!.data;
    expect(b.some((x) => x !== 0)).toBe(true);
    console.log(`losses ${records.map((r) => r.loss.toFixed(4)).join(', ')}`);
  }, 600_000);

  it('evaluates: label log-likelihoods equal the float64 forward’s', async () => {
    const { model, weights } = await phi15Like();
    const generator = new Generator(model, { decodableVocab: tokenizer.vocabSize, endOfText: tokenizer.eosTokenId });
    const evalModel: EvalModel = { model, tokenizer, generator };
    const items: EvalItem[] = [0, 1].map((k) => ({
      id: `toy/${k}`,
      suite: 'in_context',
      dataset: 'toy',
      format: 'instruction_label',
      prompt: `Question: ${k ? 'grim' : 'sunny'} day\nAnswer: `,
      target: k ? 'No' : 'Yes',
      labels: ['Yes', 'No'],
    }));
    const settings: RunnerSettings = { wrapper: 'paper', decoding: 'greedy', maxNewTokens: 3, scoring: 'generation', rankCandidates: true, stopWhenAnswered: false };
    try {
      const { results, prepared } = await evaluateItems(evalModel, items, settings, { now: () => performance.now() });
      for (const [k, r] of results.entries()) {
        const p = prepared[k];
        for (const [c, ids] of p.candidates!.ids.entries()) {
          const all = [...p.promptIds, ...ids];
          const logits = referenceLogits(weights, TINY_PHI1_CONFIG, [all]);
          let ll = 0;
          for (let t = 0; t < ids.length; t++) {
            const row = logits.subarray((p.promptIds.length - 1 + t) * config.vocabSize, (p.promptIds.length + t) * config.vocabSize);
            let max = -Infinity;
            for (const z of row) max = Math.max(max, z);
            let s = 0;
            for (const z of row) s += Math.exp(z - max);
            ll += row[ids[t]] - max - Math.log(s);
          }
          expect(Math.abs(r.logLikelihoods![c] - ll), `${r.id} candidate ${c}`).toBeLessThan(1e-3 * Math.max(1, Math.abs(ll)));
        }
        expect(typeof r.generation).toBe('string');
        expect(r.verdict).toBeDefined();
      }
    } finally {
      generator.destroy();
    }
  }, 600_000);

  it('exports the trained adapter as PEFT files and as a GGUF adapter with this geometry', async () => {
    const { trained } = await runTrainer();
    const files = encodeAdapter(lora, 'microsoft/phi-1_5', trained);
    const back = decodeAdapter(files, shapes);
    expect(back.tensors.size).toBe(2 * 6 * 2);
    const path = join(work, 'adapter.gguf');
    writeFileSync(path, encodeGgufAdapter(files, { type: 'f32' }).bytes);
    const read = await gguf(path, { allowLocalFile: true });
    const meta = read.metadata as unknown as Record<string, unknown>;
    expect(meta['general.architecture']).toBe('phi2');
    // rsLoRA: llama.cpp's alpha / r is alpha / sqrt(r).
    expect((meta['adapter.lora.alpha'] as number) / lora.r).toBeCloseTo(lora.alpha / Math.sqrt(lora.r), 6);
    const shape = (n: string) => read.tensorInfos.find((t) => t.name === n)!.shape.map(Number);
    expect(shape('blk.1.attn_q.weight.lora_a')).toEqual([128, 4]);
    expect(shape('blk.1.ffn_up.weight.lora_b')).toEqual([4, 512]);
    expect(shape('blk.0.ffn_down.weight.lora_a')).toEqual([512, 4]);
  });
});
