import { copyFileSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { generateCommand } from '../../../../src/cli/model-commands';
import { parseAdapterConfig } from '../../../../src/engine/adapters/peft';
import { paperItems, parsePaperPrompts } from '../../../../src/engine/eval/paper';
import { wrapPaperPrompt } from '../../../../src/engine/data/prompts';
import {
  answerComplete,
  CandidateScorer,
  candidateText,
  describeFailure,
  EvalCancelledError,
  EvalSetupError,
  estimateWorkMs,
  evaluateItems,
  type EvalModel,
  prepareItems,
  promptAnswerLabels,
  rankAccuracy,
  RTX_4090_CLASS,
  type RunItemResult,
  runPrepared,
  type RunnerSettings,
  ThroughputMeter,
  type RunProgress,
  userDatasetItems,
  workloadOf,
} from '../../../../src/engine/eval/runner';
import { ModelBusyError, withModel } from '../../../../src/engine/session/session';
import { scoreAnswer, scoreStrict } from '../../../../src/engine/eval/scoring';
import { bigBenchItems, classificationItems } from '../../../../src/engine/eval/suites';
import { parsePoolRows, parseTaskCatalog, taskPool } from '../../../../src/engine/data/pools';
import type { EvalItem } from '../../../../src/engine/eval/types';
import type { GpuRuntime } from '../../../../src/engine/gpu/runtime';
import type { GpuTensor } from '../../../../src/engine/gpu/tensor';
import { KvCache, Phi2Model, Phi2Workspace } from '../../../../src/engine/model/phi2/forward';
import { Generator, type Generation } from '../../../../src/engine/model/phi2/generate';
import { loadPhi2FromSource } from '../../../../src/engine/model/phi2/load';
import { LoraState } from '../../../../src/engine/model/phi2/lora-state';
import { destroyParams } from '../../../../src/engine/model/phi2/params';
import { loadTokenizer, type PhiTokenizer } from '../../../../src/engine/tokenizer';
import type { SafetensorsDType } from '../../../../src/engine/weights/dtypes';
import { parseSafetensors } from '../../../../src/engine/weights/safetensors';
import { serializeSafetensors } from '../../../../src/engine/weights/safetensors-write';
import { directorySource, MODELS } from '../../../support/fixtures';
import { testGpu } from '../../../support/gpu';

// tiny-phi has random weights: its text is gibberish, so these tests check the mechanics (every item
// scored by the rule, log-likelihoods right, determinism, cancellation), not accuracy.
const DATA = join(import.meta.dirname, '../../../../public/data');
const now = () => performance.now();

let gpu: GpuRuntime;
let model: Phi2Model;
let tokenizer: PhiTokenizer;
let generator: Generator;
let evalModel: EvalModel;

beforeAll(async () => {
  gpu = await testGpu();
  model = new Phi2Model(gpu, (await loadPhi2FromSource(gpu, await directorySource(MODELS.tiny), 'int8')).params);
  const files = Object.fromEntries(['tokenizer.json', 'tokenizer_config.json'].map((f) => [f, readFileSync(join(MODELS.tiny, f), 'utf8')]));
  tokenizer = await loadTokenizer(files);
  generator = new Generator(model, { decodableVocab: tokenizer.vocabSize });
  evalModel = { model, tokenizer, generator };
});

afterAll(() => {
  generator?.destroy();
  model?.destroy();
  if (model) destroyParams(model.params);
});

const catalog = parseTaskCatalog(readFileSync(join(DATA, 'tasks.json'), 'utf8'));
const pool = (id: string) => taskPool(catalog.classification[id], parsePoolRows(readFileSync(join(DATA, catalog.classification[id].pool), 'utf8'), id));
const paperRows = parsePaperPrompts(readFileSync(join(DATA, 'paper/prompts.jsonl'), 'utf8'));

/** A small real suite: one dataset in two classification formats, and a BIG-bench prompt. */
function smallSuite(seed: number): EvalItem[] {
  return [
    ...classificationItems([pool('teh')], { seed, count: 1, formats: ['instruction_label', 'flipped'] }),
    ...bigBenchItems(paperRows, { seed, count: 1, categories: ['turing'] }),
  ];
}

/** Short classification items (few tokens) for the tests that only need mechanics. */
function shortItems(n: number): EvalItem[] {
  const words = ['good', 'bad', 'fine', 'awful', 'great', 'poor', 'nice', 'grim'];
  return Array.from({ length: n }, (_, k) => ({
    id: `short/${k}`,
    suite: 'in_context' as const,
    dataset: 'toy',
    format: 'instruction_label',
    prompt: `Question: ${words[k % 8]} day\nAnswer: Yes\nQuestion: ${words[(k + 3) % 8]} night\nAnswer: No\nQuestion: ${words[(k + 5) % 8]} one\nAnswer: \n`,
    target: k % 2 ? 'No' : 'Yes',
    labels: ['Yes', 'No'],
  }));
}

const SETTINGS: RunnerSettings = { wrapper: 'paper', decoding: 'greedy', maxNewTokens: 4, scoring: 'generation', rankCandidates: true, stopWhenAnswered: false };

/** tiny-phi's lm_head from its checkpoint, for the float64 reference below. */
const head = (() => {
  const file = parseSafetensors(new Uint8Array(readFileSync(join(MODELS.tiny, 'model-00002-of-00002.safetensors'))), 'shard 2');
  return { weight: file.float32('lm_head.weight'), bias: file.float32('lm_head.bias') };
})();

/**
 * Log-likelihood of `candidate` after `prompt`, independently of the scorer: one forward over the whole
 * sequence captures the final LayerNorm's output; the lm_head and the log-softmax of the rows that
 * predict the candidate's tokens run on the CPU in float64.
 */
async function referenceLogLikelihood(prompt: number[], candidate: number[], adapter: LoraState | null = null): Promise<number> {
  const ids = [...prompt, ...candidate];
  const { vocab: V, hidden: C, layers: L } = model.dims;
  const ws = new Phi2Workspace(gpu, model.dims, ids.length);
  const cache = new KvCache(gpu, model.dims, 1, ids.length);
  const capture: GpuTensor[] = [];
  capture[L] = gpu.tensor('final_hidden', [ids.length, C]);
  model.forward(ws, cache, { ids: Uint32Array.from(ids), batch: 1, seq: ids.length, logits: 'none', captureHidden: capture, adapter });
  const hidden = await gpu.readF32(capture[L]);
  for (const t of [capture[L].buffer]) t.destroy();
  ws.destroy();
  cache.destroy();
  let sum = 0;
  const logits = new Float64Array(V);
  candidate.forEach((token, j) => {
    const h = hidden.subarray((prompt.length - 1 + j) * C, (prompt.length + j) * C);
    let max = -Infinity;
    for (let v = 0; v < V; v++) {
      let acc = head.bias[v];
      for (let c = 0; c < C; c++) acc += h[c] * head.weight[v * C + c];
      logits[v] = acc;
      if (acc > max) max = acc;
    }
    let z = 0;
    for (let v = 0; v < V; v++) z += Math.exp(logits[v] - max);
    sum += logits[token] - max - Math.log(z);
  });
  return sum;
}

function tinyAdapter(): LoraState {
  const dir = MODELS.tiny;
  const settings = parseAdapterConfig(JSON.parse(readFileSync(join(dir, 'golden/adapter/adapter_config.json'), 'utf8')));
  const file = parseSafetensors(new Uint8Array(readFileSync(join(dir, 'golden/adapter/adapter_model.safetensors'))), 'adapter_model.safetensors');
  const lora = new LoraState(gpu, model.dims, settings);
  lora.setWeights((name) => file.float32(name));
  return lora;
}

describe('evaluation runner on tiny-phi', () => {
  let suiteRun: Awaited<ReturnType<typeof evaluateItems>>;
  const progress: RunProgress[] = [];

  it('runs a small real suite end to end: every item generated, scored by the rule, candidates ranked', async () => {
    const items = smallSuite(11);
    expect(items.map((i) => i.suite)).toEqual(['in_context', 'flipped', 'bigbench']);
    suiteRun = await evaluateItems(evalModel, items, SETTINGS, { now, onProgress: (p) => progress.push(p) });
    const { results } = suiteRun;
    expect(suiteRun.cancelled).toBe(false);
    expect(results.map((r) => r.id)).toEqual(items.map((i) => i.id));
    for (const [k, r] of results.entries()) {
      const item = items[k];
      const input = wrapPaperPrompt(item.prompt);
      expect(suiteRun.prepared[k].input).toBe(input);
      expect(r.promptTokens).toBe(tokenizer.encode(input).length);
      expect(r.generatedTokens).toBeGreaterThanOrEqual(0);
      expect(r.generatedTokens).toBeLessThanOrEqual(SETTINGS.maxNewTokens);
      // Both automatic verdicts of the generation, whatever the model said; the answer one counts.
      expect(r.strict).toEqual(scoreStrict(r.generation, item.target));
      expect(r.answer).toEqual(scoreAnswer(r.generation, item.target, { prompt: item.prompt, labels: item.labels }));
      expect(r.verdict).toEqual(r.answer);
      expect(r.scoredBy).toBe('generation');
      if (item.labels) {
        expect(r.logLikelihoods).toHaveLength(item.labels.length);
        for (const ll of r.logLikelihoods!) expect(ll).toBeLessThan(0);
      } else {
        expect(r.logLikelihoods).toBeUndefined();
      }
      console.log(`${r.id}: ${r.promptTokens} prompt tokens -> ${JSON.stringify(r.generation)} (${r.stopped}) target ${JSON.stringify(r.target)} ll ${r.logLikelihoods?.map((x) => x.toFixed(3))}`);
    }
    expect(suiteRun.generatedTokens).toBe(results.reduce((a, r) => a + r.generatedTokens, 0));
    expect(suiteRun.rates.prefillTokensPerSecond).toBeGreaterThan(0);
    expect(suiteRun.rates.rankTokensPerSecond).toBeGreaterThan(0);
  });

  it('generates exactly what the Generator gives for the same prompt, greedy', async () => {
    const p = suiteRun.prepared[2];
    const direct = await generator.generate(p.promptIds, { maxNewTokens: SETTINGS.maxNewTokens });
    expect(suiteRun.results[2].generation).toBe(tokenizer.decode(direct.tokens));
    expect(suiteRun.results[2].generatedTokens).toBe(direct.tokens.length);
  });

  it('generates in batches with exactly the results of generating item by item', async () => {
    const items = [...smallSuite(11), ...shortItems(4)];
    const settings = { ...SETTINGS, rankCandidates: false }; // candidate scoring does not batch
    const prepared = await prepareItems(evalModel, items, settings);
    expect(new Set(prepared.map((p) => p.promptIds.length)).size).toBeGreaterThan(2); // prompts of different lengths
    const run = async (generationBatch: number | undefined) => {
      const sizes: number[] = [];
      const order: number[] = [];
      const meter = new ThroughputMeter();
      const counting: EvalModel = {
        ...evalModel,
        generator: {
          generateBatch: (prompts, opts) => {
            sizes.push(prompts.length);
            return generator.generateBatch(prompts, opts);
          },
        },
      };
      const outcome = await runPrepared(counting, prepared, { ...settings, generationBatch }, { now, meter, onItem: (_r, i) => order.push(i) });
      return { outcome, sizes, order, meter };
    };
    const single = await run(1);
    const byDefault = await run(undefined);
    const threes = await run(3);
    expect(single.sizes).toEqual([1, 1, 1, 1, 1, 1, 1]);
    expect(byDefault.sizes).toEqual([4, 3]);
    expect(threes.sizes).toEqual([3, 3, 1]);
    const strip = (o: typeof single) => o.outcome.results.map(({ ms: _ms, ...r }) => r);
    for (const batched of [byDefault, threes]) {
      expect(batched.order).toEqual([0, 1, 2, 3, 4, 5, 6]);
      expect(batched.outcome.cancelled).toBe(false);
      expect(strip(batched)).toEqual(strip(single));
      expect([batched.outcome.promptTokens, batched.outcome.generatedTokens]).toEqual([single.outcome.promptTokens, single.outcome.generatedTokens]);
      // The meter counts the same work: every item's prompt and every sequence's decode tokens.
      for (const key of ['generations', 'generationSteps', 'prefillTokens', 'decodeSteps'] as const) expect(batched.meter[key]).toBe(single.meter[key]);
      expect(batched.meter.decodeMsPerToken).toBeGreaterThan(0);
      expect(batched.meter.prefillTokensPerSecond).toBeGreaterThan(0);
    }
    console.log(
      `decode ms/token: one by one ${single.meter.decodeMsPerToken?.toFixed(1)}, batches of 4 ${byDefault.meter.decodeMsPerToken?.toFixed(1)}, of 3 ${threes.meter.decodeMsPerToken?.toFixed(1)}`,
    );
    for (const r of single.outcome.results) console.log(`${r.id}: ${r.promptTokens} prompt tokens -> ${JSON.stringify(r.generation)} (${r.stopped})`);
  }, 600_000);

  it('reports progress per item, with time left once rates are known and 0 at the end', () => {
    expect(progress.map((p) => p.done)).toEqual([0, 1, 2, 3]);
    expect(progress.every((p) => p.total === 3)).toBe(true);
    expect(progress[0].etaMs).toBeNull();
    for (const p of progress.slice(1, -1)) expect(p.etaMs).toBeGreaterThan(0);
    expect(progress.at(-1)!.etaMs).toBe(0);
    expect(progress.at(-1)!.correct).toBe(suiteRun.results.filter((r) => r.verdict.correct).length);
    expect(progress.at(-1)!.decodeTokensPerSecond).toBeGreaterThan(0);
  });

  it('log-likelihoods match a float64 log-softmax of the forward, and rank classification picks the largest', async () => {
    const items = shortItems(4);
    const rank: RunnerSettings = { ...SETTINGS, scoring: 'rank', maxNewTokens: 0 };
    const { results, prepared } = await evaluateItems(evalModel, items, rank, { now });
    for (const [k, r] of results.entries()) {
      const p = prepared[k];
      expect(p.candidates!.texts).toEqual([' Yes', ' No']); // the wrapped input ends with "Output:"
      for (const [c, ids] of p.candidates!.ids.entries()) {
        const ref = await referenceLogLikelihood(p.promptIds, ids);
        expect(Math.abs(r.logLikelihoods![c] - ref), `${r.id} candidate ${c}: ours ${r.logLikelihoods![c]} float64 ${ref}`).toBeLessThan(1e-3 * Math.max(1, Math.abs(ref)));
      }
      if (k === 0) {
        // The padded-batch scorer of the Generator agrees (it runs the prompt once per candidate).
        const batched = await generator.scoreCandidates(p.promptIds, p.candidates!.ids);
        batched.forEach((ll, c) => expect(Math.abs(ll - r.logLikelihoods![c])).toBeLessThan(1e-4 * Math.max(1, Math.abs(ll))));
      }
      const best = r.logLikelihoods![0] >= r.logLikelihoods![1] ? 0 : 1;
      expect(r.scoredBy).toBe('rank');
      expect(r.generation).toBe('');
      expect(r.verdict).toEqual({ correct: items[k].labels![best] === items[k].target, extracted: items[k].labels![best] });
    }
    expect(rankAccuracy(results).total).toBe(4);
  });

  it('scores a one-token prompt, candidates of different lengths, and one longer than an alignment block', async () => {
    const scorer = new CandidateScorer(model);
    try {
      const long = tokenizer.encode(' and so on'.repeat(24)); // > 64 tokens: spans two storage-offset blocks
      const cases: Array<[number[], number[][]]> = [
        [[464], [[318], [407, 257, 1332], long]],
        [tokenizer.encode('Instruct: Is this hateful?\nOutput:'), [tokenizer.encode(' Hate'), tokenizer.encode(' Not Hate'), long]],
      ];
      for (const [prompt, candidates] of cases) {
        const ours = await scorer.score(prompt, candidates);
        for (const [c, ids] of candidates.entries()) {
          const ref = await referenceLogLikelihood(prompt, ids);
          expect(Math.abs(ours[c] - ref), `prompt of ${prompt.length}, candidate of ${ids.length}: ours ${ours[c]} float64 ${ref}`).toBeLessThan(1e-3 * Math.max(1, Math.abs(ref)));
        }
      }
      await expect(scorer.score([], [[1]])).rejects.toThrow(/prompt is empty/);
      await expect(scorer.score([1], [[1], []])).rejects.toThrow(/no tokens/);
    } finally {
      scorer.destroy();
    }
  });

  it('applies an adapter to generation and candidate scores (and a zero adapter changes nothing)', async () => {
    const items = shortItems(1);
    const base = await evaluateItems(evalModel, items, SETTINGS, { now });
    const lora = tinyAdapter();
    try {
      const adapted = await evaluateItems(evalModel, items, SETTINGS, { now, adapter: lora });
      const p = adapted.prepared[0];
      const ref = await referenceLogLikelihood(p.promptIds, p.candidates!.ids[0], lora);
      expect(Math.abs(adapted.results[0].logLikelihoods![0] - ref)).toBeLessThan(1e-3 * Math.max(1, Math.abs(ref)));
      // Generator.scoreCandidates and generate take the adapter too.
      const batched = await generator.scoreCandidates(p.promptIds, p.candidates!.ids, lora);
      expect(Math.abs(batched[0] - ref)).toBeLessThan(1e-3 * Math.max(1, Math.abs(ref)));
      const direct = await generator.generate(p.promptIds, { maxNewTokens: SETTINGS.maxNewTokens, adapter: lora });
      expect(adapted.results[0].generation).toBe(tokenizer.decode(direct.tokens));
      expect(adapted.results[0].logLikelihoods![0]).not.toBe(base.results[0].logLikelihoods![0]);
      // B = 0 (PEFT's initialisation) makes the adapter a no-op: the base model's numbers exactly.
      lora.initialise(() => 0.5);
      const zero = await evaluateItems(evalModel, items, SETTINGS, { now, adapter: lora });
      expect(zero.results.map((r) => [r.generation, r.logLikelihoods])).toEqual(base.results.map((r) => [r.generation, r.logLikelihoods]));
    } finally {
      lora.destroy();
    }
  });

  it('is deterministic from the seed: same seed, same items and results; another seed, other items', async () => {
    const again = await evaluateItems(evalModel, smallSuite(11).slice(0, 2), SETTINGS, { now });
    expect(again.results.map((r) => [r.id, r.prompt, r.generation, r.logLikelihoods, r.verdict])).toEqual(
      suiteRun.results.slice(0, 2).map((r) => [r.id, r.prompt, r.generation, r.logLikelihoods, r.verdict]),
    );
    const other = smallSuite(12);
    expect(other.map((i) => i.prompt)).not.toEqual(smallSuite(11).map((i) => i.prompt));
  });

  it('cancels between items and in the middle of a generation, keeping what finished', async () => {
    const items = shortItems(3);
    const prepared = await prepareItems(evalModel, items, SETTINGS);
    // Item by item (batches of one): results come a batch at a time, so a batch is whole or not there.
    const between = new AbortController();
    const first = await runPrepared(evalModel, prepared, { ...SETTINGS, generationBatch: 1 }, { now, signal: between.signal, onItem: () => between.abort() });
    expect(first.cancelled).toBe(true);
    expect(first.results.map((r) => r.id)).toEqual(['short/0']);

    // Item by item: abort while the second item's generation is under way, after its second token.
    const during = new AbortController();
    let batch = 0;
    let steps = 0;
    const watching: EvalModel = {
      ...evalModel,
      generator: {
        generateBatch: (prompts, opts) => {
          batch++;
          return generator.generateBatch(prompts, {
            ...opts,
            onToken: (s, t, i) => {
              steps++;
              if (batch === 2 && i === 1) during.abort();
              return opts.onToken?.(s, t, i);
            },
          });
        },
      },
    };
    const second = await runPrepared(watching, prepared, { ...SETTINGS, generationBatch: 1 }, { now, signal: during.signal });
    expect(second.cancelled).toBe(true);
    expect(second.results.map((r) => r.id)).toEqual(['short/0']);
    // The generation stopped at the next token: no further steps ran after the abort.
    expect(steps).toBe(first.results[0].generatedTokens + 2);

    // In one batch (all three items): an abort after the batch's second step drops the whole batch.
    const inBatch = new AbortController();
    let batchSize = 0;
    let lastStep = -1;
    const cut = await runPrepared(
      {
        ...evalModel,
        generator: {
          generateBatch: (prompts, opts) => {
            batchSize = prompts.length;
            return generator.generateBatch(prompts, {
              ...opts,
              onToken: (s, t, i) => {
                lastStep = i;
                if (i === 1 && s === prompts.length - 1) inBatch.abort();
                return opts.onToken?.(s, t, i);
              },
            });
          },
        },
      },
      prepared,
      SETTINGS,
      { now, signal: inBatch.signal },
    );
    expect(batchSize).toBe(3);
    expect(cut.cancelled).toBe(true);
    expect(cut.results).toEqual([]);
    expect(lastStep).toBe(1); // no step after the abort
    await expect(prepareItems(evalModel, items, SETTINGS, { signal: AbortSignal.abort() })).rejects.toBeInstanceOf(EvalCancelledError);
  });

  it('stops generating once the answer is complete, at the next step, with the same verdict', async () => {
    // A scripted generator (tiny-phi's gibberish never ends a line) that behaves as the Generator does:
    // it checks the signal before each step, reports each token as it is chosen, and ends a sequence
    // when onToken says so. Sequence b of a batch says scripts[b].
    const scripts = [' Yes\nQuestion: and then more words follow here', ' Answer: No\nQuestion: more words of another question'].map((t) => tokenizer.encode(t));
    const script = scripts[0];
    const newline = tokenizer.encode(' Yes\n').length;
    let steps = 0;
    const scripted: EvalModel = {
      ...evalModel,
      generator: {
        generateBatch: async (prompts, opts) => {
          const budget = prompts.map((_, b) => Math.min(typeof opts.maxNewTokens === 'number' ? opts.maxNewTokens : opts.maxNewTokens[b], scripts[b].length));
          const out: Generation[] = prompts.map(() => ({ tokens: [], stopped: 'max-tokens' }));
          const done = budget.map((n) => n === 0);
          for (let i = 0; !done.every(Boolean); i++) {
            if (opts.signal?.aborted) {
              done.forEach((d, b) => d || (out[b].stopped = 'cancelled'));
              break;
            }
            steps++;
            for (let b = 0; b < prompts.length; b++) {
              if (done[b]) continue;
              out[b].tokens.push(scripts[b][i]);
              if (opts.onToken?.(b, scripts[b][i], i) === true) [out[b].stopped, done[b]] = ['cancelled', true];
              else if (i + 1 === budget[b]) done[b] = true;
            }
          }
          return out;
        },
      },
    };
    const items = shortItems(1); // target "Yes"
    const settings = { ...SETTINGS, maxNewTokens: 20, rankCandidates: false };
    // Where each script's verdicts are settled: the first token after which answerComplete holds.
    const settledAt = (tokens: number[], item: EvalItem) => tokens.findIndex((_, n) => answerComplete(tokenizer.decode(tokens.slice(0, n + 1)), item)) + 1;
    const full = await evaluateItems(scripted, items, settings, { now });
    steps = 0;
    const early = await evaluateItems(scripted, items, { ...settings, stopWhenAnswered: true }, { now });
    const stop = settledAt(script, items[0]);
    // " Yes\n" ends the answer line; the answer verdict then reads far enough into the next line to
    // know it is no label (a second label there would make the answer a list of labels).
    expect(stop).toBeGreaterThan(newline);
    expect(stop).toBeLessThan(script.length);
    expect(full.results[0].generation).toBe(tokenizer.decode(script));
    expect(early.results[0].generation).toBe(tokenizer.decode(script.slice(0, stop)));
    expect(early.results[0]).toMatchObject({ stopped: 'answered', generatedTokens: stop });
    expect(steps).toBe(stop);
    expect(early.results[0].verdict).toEqual({ correct: true, extracted: 'Yes' });
    expect([early.results[0].verdict, early.results[0].strict]).toEqual([full.results[0].verdict, full.results[0].strict]);

    // Two items generated together: each ends at its own answer; the batch runs until the later one.
    const pair = shortItems(2); // targets "Yes", "No"
    const fullPair = await evaluateItems(scripted, pair, settings, { now });
    steps = 0;
    const earlyPair = await evaluateItems(scripted, pair, { ...settings, stopWhenAnswered: true }, { now });
    const stops = scripts.map((sc, b) => settledAt(sc, pair[b]));
    for (const [b, n] of stops.entries()) expect(n > 0 && n < scripts[b].length, `script ${b} settles at ${n}`).toBe(true);
    expect(earlyPair.results.map((r) => r.generation)).toEqual(scripts.map((sc, b) => tokenizer.decode(sc.slice(0, stops[b]))));
    expect(earlyPair.results.map((r) => [r.stopped, r.generatedTokens])).toEqual(stops.map((n) => ['answered', n]));
    expect(steps).toBe(Math.max(...stops));
    expect(earlyPair.results.map((r) => [r.verdict, r.strict])).toEqual(fullPair.results.map((r) => [r.verdict, r.strict]));
    expect(earlyPair.results.map((r) => r.verdict.correct)).toEqual([true, true]);

    // On the real model the rule's part is never complete in a few tokens of gibberish: nothing changes.
    const real = await evaluateItems(evalModel, items, { ...settings, maxNewTokens: 4, stopWhenAnswered: true }, { now });
    const plain = await evaluateItems(evalModel, items, { ...settings, maxNewTokens: 4 }, { now });
    expect(real.results[0].generation).toBe(plain.results[0].generation);
    expect(real.results[0].verdict).toEqual(plain.results[0].verdict);
  });

  it('hands results over a batch at a time; resumed after a batch it ends as an uninterrupted run; a failing batch is named', async () => {
    const items = shortItems(6);
    const settings: RunnerSettings = { ...SETTINGS, maxNewTokens: 3, rankCandidates: false, generationBatch: 2 };
    const prepared = await prepareItems(evalModel, items, settings);
    const strip = (results: RunItemResult[]) => results.map(({ ms: _ms, ...r }) => r);
    const handed: number[] = [];
    const full = await runPrepared(evalModel, prepared, settings, { now, onBatch: (batch, first) => void handed.push(first, batch.length) });
    expect(handed).toEqual([0, 2, 2, 2, 4, 2]);
    expect(full.failure).toBeNull();

    // Cut short after the first batch was handed over (saved), as a reload would.
    const stop = new AbortController();
    const cut = await runPrepared(evalModel, prepared, settings, { now, signal: stop.signal, onBatch: () => stop.abort() });
    expect(cut.cancelled).toBe(true);
    expect(cut.results.map((r) => r.id)).toEqual(['short/0', 'short/1']);
    const progress: RunProgress[] = [];
    const rest = await runPrepared(evalModel, prepared, settings, { now, done: cut.results, onProgress: (p) => progress.push(p) });
    expect(rest.results.map((r) => r.id)).toEqual(['short/2', 'short/3', 'short/4', 'short/5']);
    expect(strip([...cut.results, ...rest.results])).toEqual(strip(full.results));
    expect(progress.map((p) => p.done)).toEqual([2, 3, 4, 5, 6]);
    expect(progress.at(-1)!.correct).toBe(full.results.filter((r) => r.verdict.correct).length);
    await expect(runPrepared(evalModel, prepared, settings, { now, done: cut.results.slice(0, 1) })).rejects.toThrow(/do not end where a batch of this run ends/);

    // A batch that fails (the GPU, here a thrown error) stops the run there, naming its first item.
    let calls = 0;
    const failing: EvalModel = {
      ...evalModel,
      generator: { generateBatch: (prompts, opts) => (++calls === 2 ? Promise.reject(new Error('the GPU device was lost')) : generator.generateBatch(prompts, opts)) },
    };
    const failed = await runPrepared(failing, prepared, settings, { now });
    expect(failed.results.map((r) => r.id)).toEqual(['short/0', 'short/1']);
    expect(failed.failure).toEqual({ itemId: 'short/2', index: 2, batchSize: 2, message: 'the GPU device was lost' });
    expect(failed.cancelled).toBe(false);
    expect(describeFailure(failed.failure!, 6)).toBe('item short/2 (3 of 6, with the 1 item generated with it) failed: the GPU device was lost');
    // So does a batch whose results cannot be saved: nothing after it runs.
    const unsaved = await runPrepared(evalModel, prepared, settings, {
      now,
      onBatch: (_batch, first) => {
        if (first === 4) throw new Error("The browser's storage is full");
      },
    });
    expect(unsaved.results.map((r) => r.id)).toEqual(['short/0', 'short/1', 'short/2', 'short/3']);
    expect(unsaved.failure).toMatchObject({ itemId: 'short/4', message: "The browser's storage is full" });
  }, 600_000);

  it('refuses bad settings and prompts that do not fit, naming the item', async () => {
    const items = shortItems(1);
    await expect(prepareItems(evalModel, items, { ...SETTINGS, maxNewTokens: -1 })).rejects.toThrow(/max new tokens/);
    await expect(prepareItems(evalModel, items, { ...SETTINGS, scoring: 'rank', rankCandidates: false })).rejects.toThrow(/rank scoring/);
    await expect(prepareItems(evalModel, [], SETTINGS)).rejects.toThrow(/no items/);
    await expect(prepareItems(evalModel, [...items, ...items], SETTINGS)).rejects.toThrow(/appears twice/);
    const bigbench = bigBenchItems(paperRows, { seed: 1, count: 1, categories: ['turing'] });
    await expect(prepareItems(evalModel, bigbench, { ...SETTINGS, scoring: 'rank', maxNewTokens: 0 })).rejects.toThrow(/only be scored on a generation/);
    const long = { ...items[0], id: 'long', prompt: 'word '.repeat(3000) };
    await expect(prepareItems(evalModel, [long], SETTINGS)).rejects.toThrow(/item long has \d+ prompt tokens; the model takes at most 2047/);
    await expect(prepareItems(evalModel, [{ ...items[0], target: 'Maybe' }], SETTINGS)).rejects.toBeInstanceOf(EvalSetupError);
  });

  it('lets one task at a time use the model', async () => {
    let release!: () => void;
    const first = withModel(generator, 'an evaluation', () => new Promise<void>((r) => (release = r)));
    await expect(withModel(generator, 'the demo', async () => 1)).rejects.toThrow(ModelBusyError);
    await expect(withModel(generator, 'the demo', async () => 1)).rejects.toThrow(/busy with an evaluation/);
    release();
    await first;
    await expect(withModel(generator, 'the demo', async () => 2)).resolves.toBe(2);
  });
});

describe('evaluation helpers', () => {
  it('writes candidates the way the model would continue the input', () => {
    expect(candidateText('Instruct: x\nOutput:', 'Hate')).toBe(' Hate');
    expect(candidateText('Question: x\nAnswer: \n', 'Hate')).toBe('Hate');
  });

  it('knows when neither verdict of a generation can change any more', () => {
    const hate = { target: 'Hate', prompt: 'Question: q\nAnswer: No Hate\nQuestion: r\nAnswer: \n', labels: ['No Hate', 'Hate'] };
    expect(answerComplete(' Hate', hate)).toBe(false);
    expect(answerComplete(' Answer:\n', hate)).toBe(false);
    // The answer line is done, but the next line could still name the other label.
    expect(answerComplete(' Answer:\n Hate\nNo', hate)).toBe(false);
    expect(answerComplete(' Answer:\n Hate\nQuestion: the next tweet', hate)).toBe(true);
    expect(answerComplete(' Hate\nHate', hate)).toBe(true);
    const list = { target: '[1, 2, 3]', prompt: 'Input: [3, 2, 1]\nOutput:' };
    expect(answerComplete(' [1, 2', list)).toBe(false);
    expect(answerComplete(' it is\n[1, 2, 3] and', list)).toBe(true);
  });

  it('turns saved datasets into items, with candidates from the prompt or the dataset', () => {
    const symbolPrompt = 'Input: great film\nAnswer: Zujib\nInput: dull film\nAnswer: 77696\nInput: fine film\nAnswer:';
    expect(promptAnswerLabels(symbolPrompt)).toEqual(['Zujib', '77696']);
    expect(promptAnswerLabels('no answer line at the end')).toEqual([]);
    const rows = [
      { prompt: symbolPrompt, completion: ' Zujib' },
      { prompt: '### Instruct: 2+2?\n ### Output:', completion: ' 4' },
      { prompt: '### Instruct: 3+3?\n ### Output:', completion: ' 6' },
      { prompt: 'empty', completion: '  ' },
    ];
    const items = userDatasetItems({ name: 'mine', kind: 'symbol-tuning' }, rows, { seed: 1, count: 10 });
    expect(items.map((i) => [i.id, i.target, i.labels])).toEqual([
      ['user/mine/0', 'Zujib', ['Zujib', '77696']],
      ['user/mine/1', '4', ['Zujib', '4', '6']],
      ['user/mine/2', '6', ['Zujib', '4', '6']],
    ]);
    expect(items.every((i) => i.suite === 'user' && i.dataset === 'mine' && i.format === 'symbol-tuning')).toBe(true);
    const two = userDatasetItems({ name: 'mine', kind: 'instruction' }, rows, { seed: 5, count: 2 });
    expect(two).toEqual(userDatasetItems({ name: 'mine', kind: 'instruction' }, rows, { seed: 5, count: 2 }));
    expect(two).toHaveLength(2);
    expect(() => userDatasetItems({ name: 'void', kind: 'instruction' }, [rows[3]], { seed: 1, count: 1 })).toThrow(/no rows with both/);
  });

  it('estimates the paper replication on an RTX 4090-class GPU as the runner documents', () => {
    // The documented workload: 241,780 prompt tokens; at most 50 new tokens for each of 730 prompts.
    const paper = { items: 730, promptTokens: 241_780, decodeSteps: 730 * 49, rankTokens: 0 };
    const minutes = estimateWorkMs(paper, RTX_4090_CLASS) / 60_000;
    expect(minutes).toBeGreaterThan(2.5);
    expect(minutes).toBeLessThan(3.2);
    // The 730 prompts exist and build into items (their tokens are counted in the comment's numbers).
    const items = paperItems(paperRows);
    expect(items).toHaveLength(730);
    expect(items.filter((i) => i.labels).length).toBe(400);
  });
});

describe('workload', () => {
  it('counts prefill, decode and candidate work of prepared items', async () => {
    const prepared = await prepareItems(evalModel, shortItems(2), SETTINGS);
    const w = workloadOf(prepared);
    const prompt = prepared.reduce((a, p) => a + p.promptIds.length, 0);
    expect(w).toEqual({
      items: 2,
      promptTokens: prompt,
      decodeSteps: 2 * (SETTINGS.maxNewTokens - 1),
      rankTokens: prepared.reduce((a, p) => a + p.promptIds.length - 1 + p.candidates!.ids.reduce((n, c) => n + c.length, 0), 0),
    });
  });
});

/**
 * tiny-phi with its lm_head's bias raised by 30 on the rows the tokenizer has no token for (50,295 of
 * 51,200, as Phi-2): every one of those ids outscores every real token, at every step.
 */
function checkpointFavouringUndecodableIds(decodable: number): string {
  const dir = mkdtempSync(join(tmpdir(), 'phi2-undecodable-'));
  for (const f of ['config.json', 'model.safetensors.index.json', 'model-00001-of-00002.safetensors', 'tokenizer.json', 'tokenizer_config.json']) {
    copyFileSync(join(MODELS.tiny, f), join(dir, f));
  }
  const shard = 'model-00002-of-00002.safetensors';
  const file = parseSafetensors(new Uint8Array(readFileSync(join(MODELS.tiny, shard))), shard);
  const tensors = file.header.tensors.map((t) => {
    const data = file.bytes(t.name).slice();
    if (t.name === 'lm_head.bias') {
      expect(t.dtype).toBe('F16');
      new Uint16Array(data.buffer, data.byteOffset, data.byteLength / 2).fill(0x4f80, decodable); // 30.0 in f16
    }
    return { name: t.name, dtype: t.dtype as SafetensorsDType, shape: t.shape, data };
  });
  writeFileSync(join(dir, shard), serializeSafetensors(tensors));
  return dir;
}

describe('a checkpoint whose lm_head favours ids the tokenizer cannot decode', () => {
  let dir: string;
  let biased: Phi2Model;

  beforeAll(async () => {
    dir = checkpointFavouringUndecodableIds(tokenizer.vocabSize);
    biased = new Phi2Model(gpu, (await loadPhi2FromSource(gpu, await directorySource(dir), 'int8')).params);
  });

  afterAll(() => {
    biased?.destroy();
    if (biased) destroyParams(biased.params);
  });

  it('generates only decodable ids: greedy, sampled, batched, evaluated and from the CLI, the same text as the plain checkpoint', async () => {
    expect(tokenizer.vocabSize).toBe(50_295);
    expect(biased.dims.vocab).toBe(51_200);
    const prompts = ['Instruct: Is this tweet hateful?\nOutput:', 'Question: 2 + 2\nAnswer:', 'Hello'].map((t) => tokenizer.encode(t));
    const unmasked = new Generator(biased);
    const masked = new Generator(biased, { decodableVocab: tokenizer.vocabSize });
    try {
      // Without the mask the raised rows win every step: the checkpoint does what the test needs.
      const raw = await unmasked.generate(prompts[0], { maxNewTokens: 6, stopTokens: [] });
      expect(raw.tokens.length).toBe(6);
      expect(raw.tokens.every((id) => id >= tokenizer.vocabSize)).toBe(true);
      expect(() => tokenizer.decode(raw.tokens)).toThrow(/not in the vocabulary/);

      // With it: the plain checkpoint's tokens exactly (only the masked rows differ), greedy and sampled.
      const sampled = { sampling: { temperature: 0.9, topK: 40, topP: 0.95 }, seed: 7 };
      for (const [opts, some] of [[{}, prompts], [sampled, prompts.slice(0, 1)]] as const) {
        for (const prompt of some) {
          const ours = await masked.generate(prompt, { maxNewTokens: 8, stopTokens: [], ...opts });
          const plain = await generator.generate(prompt, { maxNewTokens: 8, stopTokens: [], ...opts });
          expect(ours.tokens).toEqual(plain.tokens);
          expect(ours.tokens.every((id) => id < tokenizer.vocabSize)).toBe(true);
          expect(typeof tokenizer.decode(ours.tokens)).toBe('string');
        }
      }
      const batch = await masked.generateBatch(prompts, { maxNewTokens: 5, stopTokens: [] });
      const plainBatch = await generator.generateBatch(prompts, { maxNewTokens: 5, stopTokens: [] });
      expect(batch.map((g) => g.tokens)).toEqual(plainBatch.map((g) => g.tokens));
      console.log(`masked generations: ${batch.map((g) => JSON.stringify(tokenizer.decode(g.tokens))).join(', ')}`);

      // The evaluation runner (the Evaluate page's path): every item finishes with its text.
      const items = shortItems(3);
      const run = await evaluateItems({ model: biased, tokenizer, generator: masked }, items, SETTINGS, { now });
      const plainRun = await evaluateItems(evalModel, items, SETTINGS, { now });
      expect(run.results.map((r) => r.generation)).toEqual(plainRun.results.map((r) => r.generation));
      // Rank classification reads log-probabilities, never the mask: the raised rows take their share.
      expect(run.results[0].logLikelihoods![0]).toBeLessThan(plainRun.results[0].logLikelihoods![0] - 1);
    } finally {
      unmasked.destroy();
      masked.destroy();
    }

    // The CLI's generate: its own generator, masked by the tokenizer it reads from the directory.
    const written: string[] = [];
    const spy = vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
      written.push(String(chunk));
      return true;
    });
    try {
      expect(await generateCommand(['--model', dir, '--prompt', 'Hello', '--max-new-tokens', '6'])).toBe(0);
    } finally {
      spy.mockRestore();
    }
    const plain = await generator.generate(tokenizer.encode('Hello'), { maxNewTokens: 6 });
    expect(written.join('')).toBe(`${tokenizer.decode(plain.tokens)}\n`);
  }, 600_000);
});
