import 'fake-indexeddb/auto';
import { IDBFactory } from 'fake-indexeddb';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { encodeAdapter } from '../../../../src/engine/adapters/files';
import { LORA_TARGETS, loraModules, type LoraSettings } from '../../../../src/shared/lora';
import { adapterTensorNames } from '../../../../src/engine/adapters/peft';
import { Engine } from '../../../../src/engine/engine';
import { Session } from '../../../../src/engine/session/session';
import { importFromFiles } from '../../../../src/engine/weights';
import { adaptersApi } from '../../../../src/worker/adapters-api';
import { trainApi, type TrainEvent } from '../../../../src/worker/train-api';
import { paperPlan, planProblems, type TrainPlan } from '../../../../src/shared/train-plan';
import { UserDataStore } from '../../../../src/engine/store/datasets';
import { HubServer } from '../../../support/hub-server';
import { tokenizeInstructionData } from '../../../../src/engine/data/template';
import { PAPER_TEMPLATE } from '../../../../src/shared/template';
import type { GpuRuntime } from '../../../../src/engine/gpu/runtime';
import { countLabels, IGNORE_INDEX } from '../../../../src/engine/kernels/cross-entropy';
import { Phi2Model } from '../../../../src/engine/model/phi2/forward';
import { loadPhi2FromSource } from '../../../../src/engine/model/phi2/load';
import { LoraState } from '../../../../src/engine/model/phi2/lora-state';
import { destroyParams } from '../../../../src/engine/model/phi2/params';
import { Phi2TrainStep, shiftLabels, type TrainBatch } from '../../../../src/engine/model/phi2/train-step';
import { WeightStore } from '../../../../src/engine/store/store';
import { parseSafetensors } from '../../../../src/engine/weights/safetensors';
import { loadTokenizer } from '../../../../src/engine/tokenizer';
import { MAX_BUCKETS, nextBatch, type TrainExample } from '../../../../src/engine/train/batches';
import { CheckpointStore } from '../../../../src/engine/train/checkpoints';
import { Trainer, TrainingError, type TrainCheckpoint, type TrainConfig } from '../../../../src/engine/train/trainer';
import type { OptimizerState } from '../../../../src/engine/optim/adamw-state';
import { describeOptimizer, type OptimizerSettings } from '../../../../src/shared/optimizer';
import type { QuantScheme } from '../../../../src/engine/weights/layout';
import { compareTensors, randomArray, rng } from '../../../support/compare';
import { directoryFiles, directorySource, MODELS } from '../../../support/fixtures';
import { testGpu } from '../../../support/gpu';

// The training loop in both weight modes, on the golden fixture model (Phi-2's head geometry, 2 layers,
// a 512-token vocabulary). tiny-phi's real 51200-token vocabulary would make every micro-step's fused
// lm_head + cross-entropy about 90% of its time on SwiftShader (measured: 8.4 of 9.3 s at 24 tokens) and
// this file minutes long, while nothing tested here depends on the vocabulary's size. tiny-phi's
// tokenizer drives the test of the response-only loss mask.
const models = new Map<QuantScheme, Promise<Phi2Model>>();
function model(gpu: GpuRuntime, scheme: QuantScheme): Promise<Phi2Model> {
  if (!models.has(scheme)) models.set(scheme, (async () => new Phi2Model(gpu, (await loadPhi2FromSource(gpu, await directorySource(MODELS.golden), scheme)).params))());
  return models.get(scheme)!;
}
afterAll(async () => {
  for (const m of models.values()) {
    const loaded = await m;
    loaded.destroy();
    destroyParams(loaded.params);
  }
});

const LORA: LoraSettings = { r: 4, alpha: 8, dropout: 0.1, useRslora: false, targets: [...LORA_TARGETS], layers: 'all' };

/** Seven sequences of 3 to 10 random tokens, the first third of each label masked: batches wrap epochs. */
function syntheticData(seed: number, vocab: number): TrainExample[] {
  const random = rng(seed);
  return Array.from({ length: 7 }, () => {
    const n = 3 + Math.floor(random() * 8);
    const ids = Array.from({ length: n }, () => Math.floor(random() * vocab));
    return { input_ids: ids, labels: ids.map((id, t) => (t < Math.floor(n / 3) ? IGNORE_INDEX : id)) };
  });
}

function config(overrides: Partial<TrainConfig> = {}): TrainConfig {
  return {
    lora: LORA,
    schedule: { kind: 'cosine', lr: 5e-3, warmupSteps: 1, totalSteps: 4 },
    batchSize: 2,
    gradAccumulation: 2,
    maxLength: 8,
    weightDecay: 0.01,
    maxGradNorm: 1.0,
    residDropout: 0.1,
    seed: 1234,
    checkpointEvery: 0,
    maxNonFiniteSteps: 3,
    optimizer: { kind: 'adamw' },
    ...overrides,
  };
}

/** Parameters and optimiser state of a run, read back. */
async function runState(lora: LoraState): Promise<{ params: Float32Array; optimizer: OptimizerState }> {
  return { params: await lora.readFlat('params'), optimizer: await lora.optimizer!.read() };
}

/** The same run state: f32 moments and weights to 1e-6, 8-bit codes and block absmaxes exactly. */
function expectSameState(tag: string, got: Awaited<ReturnType<typeof runState>>, want: Awaited<ReturnType<typeof runState>>): void {
  expect(compareTensors(`${tag} params`, got.params, want.params).maxAbsDiff).toBeLessThanOrEqual(1e-6);
  expect(got.optimizer.kind).toBe(want.optimizer.kind);
  if (got.optimizer.kind === 'adamw' && want.optimizer.kind === 'adamw') {
    expect(compareTensors(`${tag} expAvg`, got.optimizer.expAvg, want.optimizer.expAvg).maxAbsDiff).toBeLessThanOrEqual(1e-6);
    expect(compareTensors(`${tag} expAvgSq`, got.optimizer.expAvgSq, want.optimizer.expAvgSq).maxAbsDiff).toBeLessThanOrEqual(1e-6);
  } else {
    expect(got.optimizer, `${tag} 8-bit state`).toEqual(want.optimizer);
  }
}

/** A fresh adapter with PEFT's initialisation from a fixed seed. */
function freshLora(m: Phi2Model, seed: number): LoraState {
  const lora = new LoraState(m.gpu, m.dims, LORA);
  lora.initialise(rng(seed));
  return lora;
}

const clock = { now: () => performance.now() };

describe('Trainer', () => {
  const resumeCases: Array<[QuantScheme, OptimizerSettings]> = [
    ['f16', { kind: 'adamw' }],
    ['int8', { kind: 'adamw' }],
    ['int8', { kind: 'adamw-8bit', blockSize: 256 }],
  ];
  for (const [scheme, optimizer] of resumeCases) {
    it(`${scheme}, ${describeOptimizer(optimizer)}: pausing after 2 of 4 steps, saving to IndexedDB and resuming in a fresh trainer ends with the uninterrupted adapter`, async () => {
      const gpu = await testGpu();
      const m = await model(gpu, scheme);
      const data = syntheticData(7, m.dims.vocab);
      const cfg = config({ optimizer });

      // The reference: four steps without a stop.
      const loraA = freshLora(m, 99);
      const straight = new Trainer(m, loraA, cfg, data, clock);
      expect(await straight.run()).toBe('finished');
      const want = await runState(loraA);
      expect(want.optimizer.kind).toBe(optimizer.kind);
      const wantHistory = straight.records.map((r) => ({ ...r }));
      straight.destroy();
      loraA.destroy();
      expect(wantHistory.map((r) => r.step)).toEqual([1, 2, 3, 4]);
      expect(wantHistory.every((r) => Number.isFinite(r.loss) && !r.skipped)).toBe(true);

      // The same run, paused once step 1's numbers arrive (they are read one step late: it stops after step 2).
      const store = CheckpointStore.over<{ note: string }>(await WeightStore.open({ indexedDB: new IDBFactory(), storage: noStorage }, { name: `trainer-${scheme}-${optimizer.kind}` }));
      const loraB = freshLora(m, 99);
      let saved: TrainCheckpoint | null = null;
      const first: Trainer = new Trainer(m, loraB, cfg, data, {
        ...clock,
        onStep: (record) => {
          if (record.step === 1) first.pause();
        },
        saveCheckpoint: async (c) => {
          saved = c;
          await store.save('run-1', c, { note: 'resume test' });
        },
      });
      expect(await first.run()).toBe('paused');
      expect(first.completedSteps).toBe(2);
      expect(saved!.step).toBe(2);
      first.destroy();
      loraB.destroy();

      // A fresh LoraState and Trainer, from what IndexedDB gives back.
      const listed = await store.list();
      expect(listed.map((c) => [c.runId, c.step, c.totalSteps, c.meta.note])).toEqual([['run-1', 2, 4, 'resume test']]);
      const loaded = (await store.load('run-1'))!;
      expect(loaded.checkpoint.position).toEqual(saved!.position);
      expect(loaded.checkpoint.config.seed).toBe(cfg.seed);
      expect(loaded.checkpoint.config.optimizer).toEqual(optimizer);
      expect(loaded.checkpoint.optimizer.kind).toBe(optimizer.kind);
      expect(listed[0].optimizer).toEqual(optimizer);
      const loraC = new LoraState(gpu, m.dims, LORA);
      const resumed = new Trainer(m, loraC, loaded.checkpoint.config, data, clock);
      resumed.restore(loaded.checkpoint);
      expect(await resumed.run()).toBe('finished');
      const got = await runState(loraC);
      expectSameState(`${scheme} ${optimizer.kind} resumed`, got, want);
      // A trainer with the other optimiser cannot take this checkpoint, and says why.
      const loraD = new LoraState(gpu, m.dims, LORA);
      const other = new Trainer(m, loraD, config({ optimizer: optimizer.kind === 'adamw' ? { kind: 'adamw-8bit', blockSize: 2048 } : { kind: 'adamw' } }), data, clock);
      expect(() => other.restore(loaded.checkpoint)).toThrow(/This checkpoint cannot continue the run: The saved optimiser state is for/);
      other.destroy();
      loraD.destroy();
      // And the adapter moved: matching a run that never trained would prove nothing.
      const init = freshLora(m, 99);
      const initial = await init.readFlat('params');
      init.destroy();
      expect(compareTensors(`${scheme} trained vs initial params`, got.params, initial, true).maxAbsDiff).toBeGreaterThan(1e-4);
      expect(resumed.records.map((r) => [r.step, r.loss, r.lr])).toEqual(wantHistory.map((r) => [r.step, r.loss, r.lr]));
      resumed.destroy();
      loraC.destroy();
    });

    it(`${scheme}: steps with NaN or infinite gradients leave the weights alone and stop the run after maxNonFiniteSteps`, async () => {
      const gpu = await testGpu();
      const m = await model(gpu, scheme);
      const lora = new LoraState(gpu, m.dims, LORA);
      lora.enableTraining();
      // A poisoned adapter: x·Aᵀ·Bᵀ overflows f32, so the forward pass and every gradient are NaN/Inf.
      const poisoned = new Float32Array(lora.size).fill(1e19);
      lora.setFlat('params', poisoned);
      const steps: boolean[] = [];
      const trainer = new Trainer(m, lora, config({ maxNonFiniteSteps: 3, batchSize: 1, gradAccumulation: 1, schedule: { kind: 'constant', lr: 1e-3, warmupSteps: 0, totalSteps: 8 } }), syntheticData(8, m.dims.vocab), { ...clock, onStep: (r) => steps.push(r.skipped) });
      const error = await trainer.run().catch((e: unknown) => e);
      expect(error).toBeInstanceOf(TrainingError);
      expect((error as Error).message).toMatch(/3 steps in a row had NaN or infinite gradients \(the weights were left as they were before them\)/);
      expect(steps).toEqual([true, true, true]);
      // The third skipped step's numbers arrive while the fourth runs; the fourth is skipped too.
      expect(trainer.completedSteps).toBe(4);
      expect(trainer.records.every((r) => r.skipped)).toBe(true);
      const after = await lora.readFlat('params');
      expect(after.every((v, i) => v === poisoned[i])).toBe(true);
      const moments = await lora.optimizer!.read();
      if (moments.kind !== 'adamw') throw new Error('expected f32 moments');
      expect(moments.expAvg.every((v) => v === 0)).toBe(true);
      expect(moments.expAvgSq.every((v) => v === 0)).toBe(true);
      trainer.destroy();
      lora.destroy();
    });
  }
});

describe('training batches', () => {
  it('padding never counts: a padded batch of two has the gradients of the two sequences alone', async () => {
    const gpu = await testGpu();
    const m = await model(gpu, 'f16');
    const random = rng(5);
    const lora = new LoraState(gpu, m.dims, LORA);
    lora.enableTraining();
    // Non-zero A and B, so that both get gradients.
    lora.setFlat('params', randomArray(lora.size, random, 0.2));
    const vocab = m.dims.vocab;
    const s1 = Array.from({ length: 9 }, () => Math.floor(random() * vocab));
    const s2 = Array.from({ length: 5 }, () => Math.floor(random() * vocab));
    const labels1 = s1.map((id, t) => (t < 2 ? IGNORE_INDEX : id));
    const labels2 = [...s2];
    // Padding filled with arbitrary real tokens (not 0): they must change nothing.
    const pad = Array.from({ length: 4 }, () => Math.floor(random() * vocab));
    const padded: TrainBatch = {
      ids: Uint32Array.from([...s1, ...s2, ...pad]),
      labels: Int32Array.from([...labels1, ...labels2, ...pad.map(() => IGNORE_INDEX)]),
      batch: 2,
      seq: 9,
      lengths: [9, 5],
    };
    const step = new Phi2TrainStep(m, lora, 2, 9);
    const labelCount = step.countLabels(padded);
    expect(labelCount).toBe(7 + 4);
    const opts = { residDropout: 0, loraDropout: 0, seed: 3, labelCount };
    step.microStep(padded, opts);
    const lossPadded = (await gpu.readF32(step.loss))[0];
    const gradsPadded = await lora.readFlat('grads');

    step.zeroGrads();
    step.microStep({ ids: Uint32Array.from(s1), labels: Int32Array.from(labels1), batch: 1, seq: 9 }, opts);
    const loss1 = (await gpu.readF32(step.loss))[0];
    step.microStep({ ids: Uint32Array.from(s2), labels: Int32Array.from(labels2), batch: 1, seq: 5 }, opts);
    const loss2 = (await gpu.readF32(step.loss))[0];
    const gradsAlone = await lora.readFlat('grads');

    console.log(`padded loss ${lossPadded}, alone ${loss1} + ${loss2} = ${loss1 + loss2}`);
    expect(Math.abs(lossPadded - (loss1 + loss2)) / Math.abs(lossPadded)).toBeLessThan(1e-6);
    const c = compareTensors('LoRA grads, padded batch vs batch-1 runs', gradsPadded, gradsAlone);
    expect(c.relError).toBeLessThan(1e-5);
    expect(Math.max(...gradsAlone.map(Math.abs))).toBeGreaterThan(1e-4);
    step.destroy();
    lora.destroy();
  });

  it('two accumulated micro-batches of one take the same step as one batch of two', async () => {
    // Each micro-step uploads its tokens while the previous one's kernels may not have been submitted:
    // they must still see their own tokens.
    const gpu = await testGpu();
    const m = await model(gpu, 'f16');
    const data = syntheticData(11, m.dims.vocab);
    const run = async (batchSize: number, gradAccumulation: number) => {
      const lora = freshLora(m, 21);
      const cfg = config({ batchSize, gradAccumulation, residDropout: 0, lora: { ...LORA, dropout: 0 }, schedule: { kind: 'constant', lr: 1e-2, warmupSteps: 0, totalSteps: 1 } });
      const trainer = new Trainer(m, lora, cfg, data, clock);
      expect(await trainer.run()).toBe('finished');
      const out = { loss: trainer.records[0].loss, params: await lora.readFlat('params') };
      trainer.destroy();
      lora.destroy();
      return out;
    };
    const together = await run(2, 1);
    const accumulated = await run(1, 2);
    console.log(`loss: one batch of two ${together.loss}, two accumulated micro-batches ${accumulated.loss}`);
    expect(Math.abs(accumulated.loss - together.loss) / together.loss).toBeLessThan(1e-5);
    const c = compareTensors('LoRA weights after one step, accumulated vs batched', accumulated.params, together.params);
    expect(c.relError).toBeLessThan(1e-5);
  });

  it('a run over nine lengths padded to its 8 buckets records one micro-step a bucket and replays the rest (padded to the longest: nine shapes)', async () => {
    const gpu = await testGpu();
    const m = await model(gpu, 'int8');
    const random = rng(13);
    // Nine lengths, one batch each: padded to the longest, nine shapes, more than the train step keeps.
    const data: TrainExample[] = Array.from({ length: 9 }, (_, i) => {
      const ids = Array.from({ length: 2 + i }, () => Math.floor(random() * m.dims.vocab));
      return { input_ids: ids, labels: [...ids] };
    });
    const cfg = config({ padding: 'buckets', batchSize: 1, gradAccumulation: 1, maxLength: 16, schedule: { kind: 'constant', lr: 1e-3, warmupSteps: 0, totalSteps: 9 } });
    const shapes = new Set<number>();
    for (let i = 0, position = { epoch: 0, index: 0 }; i < 9; i++) {
      const b = nextBatch(data, cfg.seed, position, 1, cfg.maxLength);
      shapes.add(b.batch.seq);
      position = b.next;
    }
    expect(shapes.size).toBe(9);
    const lora = freshLora(m, 5);
    const trainer = new Trainer(m, lora, cfg, data, clock);
    expect(trainer.buckets!.length).toBe(MAX_BUCKETS);
    expect(await trainer.run()).toBe('finished');
    expect(trainer.records.every((r) => Number.isFinite(r.loss) && !r.skipped)).toBe(true);
    // Eight buckets, each recorded once; the ninth batch replays one.
    expect(trainer.microStepRecordings).toBe(MAX_BUCKETS);
    trainer.destroy();
    lora.destroy();
  });

  it('loss on the response only masks exactly the prompt tokens; loss on every token masks none', async () => {
    const read = (f: string) => readFileSync(join(MODELS.tiny, f), 'utf8');
    const tokenizer = await loadTokenizer({ 'tokenizer.json': read('tokenizer.json'), 'tokenizer_config.json': read('tokenizer_config.json') });
    const examples = [
      { question: 'What is two plus two?', response: 'Four.' },
      { question: 'Name a colour of the sky.', response: 'Blue, on a clear day.' },
    ];
    const all = tokenizeInstructionData(examples, tokenizer, PAPER_TEMPLATE, { lossOn: 'all', maxTokens: 64 });
    const response = tokenizeInstructionData(examples, tokenizer, PAPER_TEMPLATE, { lossOn: 'response', maxTokens: 64 });
    examples.forEach((ex, i) => {
      const a = all.rows[i];
      const r = response.rows[i];
      expect(r.input_ids).toEqual(a.input_ids);
      expect(a.labels).toEqual(a.input_ids);
      const masked = r.labels.findIndex((l) => l !== IGNORE_INDEX);
      expect(masked).toBeGreaterThan(0);
      expect(r.labels.slice(masked)).toEqual(r.input_ids.slice(masked));
      // The masked part is the prompt; what is trained on is the response (BPE may move a space across).
      const prompt = tokenizer.decode(r.input_ids.slice(0, masked));
      const trained = tokenizer.decode(r.input_ids.slice(masked));
      expect(`### Instruct: ${ex.question}\n ### Output: `.startsWith(prompt)).toBe(true);
      expect(trained.trim()).toBe(ex.response);
      // After the shift the loss counts every successor with 'all', only the response's tokens with 'response'.
      const n = a.input_ids.length;
      expect(countLabels(shiftLabels(Int32Array.from(a.labels), 1, n), tokenizer.vocabSize)).toBe(n - 1);
      expect(countLabels(shiftLabels(Int32Array.from(r.labels), 1, n), tokenizer.vocabSize)).toBe(n - masked);
    });
    expect(response.trainedTokens).toBe(response.rows.reduce((s, r) => s + r.labels.filter((l) => l !== IGNORE_INDEX).length, 0));
    expect(response.trainedTokens).toBeLessThan(all.trainedTokens);
    expect(all.trainedTokens).toBe(all.tokens);
  });
});

const noStorage = { persist: async () => true, persisted: async () => true, estimate: async () => null };

// ---------------------------------------------------------------------------------------------------
// The Train and Adapters pages' worker APIs over a real Session: a model imported into IndexedDB and
// loaded from there, as in the browser. tiny-phi (for its tokenizer), batch 1 and 12 tokens to keep
// its 51200-token loss cheap.

/** The engine with the test file's shared device. */
class TestEngine extends Engine {
  override runtime(): Promise<GpuRuntime> {
    return testGpu();
  }
}

describe('the Train and Adapters worker APIs', () => {
  it('train, pause, resume, save, export, re-import with checks, load from a Hub, merge, delete', async () => {
    await testGpu();
    const platform = { kind: 'node' as const, gpu: null, gpuMissingReason: 'tests share one device', indexedDB: new IDBFactory(), now: () => performance.now(), fetch: globalThis.fetch.bind(globalThis), storage: noStorage };
    const engine = new TestEngine(platform);
    const session = new Session(engine);
    const manifest = await importFromFiles(platform, await session.store(), await directoryFiles(MODELS.tiny), { scheme: 'int8', displayName: 'tiny-phi' });
    await session.load(manifest.id);
    const train = trainApi(engine, session);
    const adapters = adaptersApi(engine, session);

    const setup = await train.trainingSetup();
    expect(setup.model).toMatchObject({ id: manifest.id, name: 'tiny-phi', weightMode: 'int8', shape: { hidden: 64, layers: 2, vocab: 51200 } });
    expect(setup.runs).toEqual([]);
    const plan: TrainPlan = {
      ...paperPlan('instruction', { kind: 'demo' }),
      name: 'Demo run',
      lora: { ...LORA, dropout: 0.05 },
      schedule: { kind: 'cosine', lr: 1e-3, warmupSteps: 1 },
      length: { unit: 'steps', steps: 3 },
      batchSize: 1,
      gradAccumulation: 1,
      maxLength: 12,
      checkpointEvery: 0,
    };
    expect(planProblems({ ...plan, lora: { ...plan.lora, r: 0 }, batchSize: 1.5 }, setup.model)).toEqual([
      'r must be a whole number from 1 to 1024 (got 0).',
      'Batch size must be a whole number from 1 to 256.',
    ]);

    // Start, and pause once step 1's numbers arrive: the run stops after step 2 with a checkpoint.
    const events: TrainEvent[] = [];
    const first = await train.startTraining(plan, (e) => {
      events.push(e);
      if (e.kind === 'step' && e.record.step === 1) void train.pauseTraining();
    });
    expect(first).toMatchObject({ status: 'paused', step: 2, totalSteps: 3 });
    const started = events.find((e) => e.kind === 'started');
    expect(started).toMatchObject({ kind: 'started', name: 'Demo run', totalSteps: 3, history: [], examples: 16, skipped: { empty: 0, noLoss: 0 } });
    expect(events.some((e) => e.kind === 'phase' && e.phase === 'tokenizing')).toBe(true);
    const runs = (await train.trainingSetup()).runs;
    expect(runs).toMatchObject([{ runId: first.runId, name: 'Demo run', datasetName: 'Demo set (built in)', step: 2, totalSteps: 3, modelId: manifest.id }]);

    // Resume: the history comes back, one more step, and the adapter is saved and loaded.
    const resumedEvents: TrainEvent[] = [];
    const done = await train.resumeTraining(first.runId!, (e) => resumedEvents.push(e));
    if (done.status !== 'finished') throw new Error(`expected finished, got ${JSON.stringify(done)}`);
    expect(resumedEvents.find((e) => e.kind === 'started')).toMatchObject({ history: [{ step: 1 }, { step: 2 }] });
    expect(done.history.map((r) => r.step)).toEqual([1, 2, 3]);
    expect(done.adapter).toMatchObject({ id: 'demo-run', name: 'Demo run', baseModel: 'tiny-phi', origin: { kind: 'training', steps: 3 } });
    expect(done.loaded).toBe(true);
    expect(session.activeAdapter).toBe('demo-run');
    expect((await train.trainingSetup()).runs).toEqual([]);

    // A run that does not fit the GPU memory the user stated is refused before anything is allocated.
    const tooBig = await train.startTraining({ ...plan, gpuMemoryBytes: 1024 });
    expect(tooBig).toMatchObject({ status: 'failed', problem: { code: 'memory', title: 'This run does not fit the GPU memory you stated' } });
    if (tooBig.status === 'failed') expect(tooBig.problem.tips).toContain('adapt fewer modules (for example q_proj and v_proj only)');

    // The symbol-tuning preset continues a stored adapter: with a negligible learning rate it ends where it started.
    const symbol: TrainPlan = { ...paperPlan('symbol', { kind: 'demo' }, 'demo-run'), ...plan, preset: 'symbol', baseAdapterId: 'demo-run', name: 'Symbol run', length: { unit: 'steps', steps: 1 }, schedule: { kind: 'constant', lr: 1e-9, warmupSteps: 0 } };
    const mismatch = await train.startTraining({ ...symbol, lora: { ...symbol.lora, r: 8 } });
    expect(mismatch).toMatchObject({ status: 'failed', problem: { code: 'invalid', title: 'The LoRA settings differ from the adapter being continued' } });
    const continued = await train.startTraining(symbol);
    if (continued.status !== 'finished') throw new Error(`expected finished, got ${JSON.stringify(continued)}`);
    const tensorsOf = async (id: string) => {
      const [, w] = await adapters.exportAdapter(id, 'files');
      return parseSafetensors(new Uint8Array(await w.blob.arrayBuffer()), id);
    };
    const base = await tensorsOf('demo-run');
    const after = await tensorsOf(continued.adapter.id);
    for (const t of base.header.tensors) expect(compareTensors(`continued ${t.name}`, after.float32(t.name), base.float32(t.name), true).maxAbsDiff, t.name).toBeLessThan(1e-6);
    await adapters.deleteAdapter(continued.adapter.id);

    // A dataset saved on the Data page, with the loss on the responses only.
    const userData = await UserDataStore.open(platform.indexedDB);
    const rows = [
      { prompt: '### Instruct: Say yes.\n ### Output: ', completion: 'Yes.' },
      { prompt: '### Instruct: Say no.\n ### Output: ', completion: 'No.' },
      { prompt: '### Instruct: Count to three.\n ### Output: ', completion: 'One, two, three.' },
    ];
    await userData.save({ id: 'ds-1', name: 'Tiny set', kind: 'instruction', description: 'test', rowCount: 3, template: '{question}{response}', maxTokens: 12, truncatedRows: 0, chars: 0, createdAt: 1, updatedAt: 1 }, rows);
    userData.close();
    expect((await train.trainingSetup()).datasets.map((d) => d.name)).toEqual(['Tiny set']);
    const savedEvents: TrainEvent[] = [];
    const fromSaved = await train.startTraining({ ...plan, name: 'From saved', data: { kind: 'saved', id: 'ds-1' }, lossOn: 'response', length: { unit: 'epochs', epochs: 1 }, batchSize: 3 }, (e) => savedEvents.push(e));
    expect(fromSaved).toMatchObject({ status: 'finished', adapter: { origin: { kind: 'training', dataset: 'Tiny set', steps: 1 } } });
    expect(savedEvents.find((e) => e.kind === 'started')).toMatchObject({ examples: 3, totalSteps: 1 });
    if (fromSaved.status === 'finished') await adapters.deleteAdapter(fromSaved.adapter.id);

    // A symbol-tuning set: a prompt that the maximum length would cut before its answer is left out, not trained on.
    const symbolData = await UserDataStore.open(platform.indexedDB);
    const symbolRows = [
      { prompt: 'x: a\ny: 1\nx: b\ny: ', completion: '2' },
      { prompt: 'x: c\ny: 2\nx: d\ny: ', completion: '1' },
      { prompt: `x: ${'a long premise that goes on '.repeat(3)}\ny: 1\nx: b\ny: `, completion: '2' },
    ];
    await symbolData.save({ id: 'ds-2', name: 'Symbols', kind: 'symbol-tuning', description: 'test', rowCount: 3, template: '{question}{response}', maxTokens: 16, truncatedRows: 1, chars: 0, createdAt: 2, updatedAt: 2 }, symbolRows);
    symbolData.close();
    const symbolEvents: TrainEvent[] = [];
    const fromSymbols = await train.startTraining({ ...plan, name: 'From symbols', data: { kind: 'saved', id: 'ds-2' }, maxLength: 16, appendEos: true, length: { unit: 'epochs', epochs: 1 }, batchSize: 2 }, (e) => symbolEvents.push(e));
    expect(fromSymbols).toMatchObject({ status: 'finished' });
    expect(symbolEvents.find((e) => e.kind === 'started')).toMatchObject({ examples: 2, skipped: { answerCut: 1, truncated: 0 } });
    if (fromSymbols.status === 'finished') await adapters.deleteAdapter(fromSymbols.adapter.id);
    const allCut = await train.startTraining({ ...plan, name: 'Cut', data: { kind: 'saved', id: 'ds-2' }, maxLength: 4 });
    expect(allCut).toMatchObject({ status: 'failed', problem: { code: 'data', message: expect.stringMatching(/would cut the answer off 3 of the 3 symbol-tuning prompts/) } });

    // The adapters page sees it on the GPU; its .zip imports again as a second adapter.
    await adapters.setActiveAdapter('demo-run');
    let overview = await adapters.listAdapters();
    expect(overview.adapters).toMatchObject([{ id: 'demo-run', loaded: true, fits: true, parameterCount: done.adapter.parameterCount }]);
    expect(overview.active).toBe('demo-run');
    const [zip] = await adapters.exportAdapter('demo-run', 'zip');
    expect(zip.fileName).toBe('demo-run.zip');
    const again = await adapters.importAdapterFiles([new File([zip.blob], 'demo-run.zip')]);
    expect(again).toMatchObject({ id: 'demo-run-2', name: 'demo-run', parameterCount: done.adapter.parameterCount });
    const [config, weights] = await adapters.exportAdapter('demo-run-2', 'files');
    expect([config.fileName, weights.fileName]).toEqual(['adapter_config.json', 'adapter_model.safetensors']);

    // An adapter for another model size is refused, saying which tensor and shapes.
    const wrong = makeAdapterFor({ hidden: 8, intermediate: 16, layers: 2 });
    await expect(adapters.importAdapterFiles([new File([wrong.config as BlobPart], 'adapter_config.json'), new File([wrong.weights as BlobPart], 'adapter_model.safetensors')])).rejects.toThrow(
      /has shape \[4,8\] but this model needs \[4,64\].*trained for a model of another size/,
    );

    // From a Hub: the fixture's real PEFT adapter, downloaded, stored and loaded beside the model.
    const hub = await HubServer.start({ repos: { 'test/tiny-adapter': join(MODELS.tiny, 'golden/adapter') } });
    try {
      const preview = await adapters.inspectAdapterSource('test/tiny-adapter', hub.url);
      expect(preview).toMatchObject({ kind: 'folder', label: 'test/tiny-adapter', fits: true, settings: { r: 4, alpha: 8 }, storedId: null });
      const fromHub = await adapters.loadAdapterFromHub('test/tiny-adapter', undefined, hub.url);
      expect(fromHub).toMatchObject({ id: 'tiny-adapter', origin: { kind: 'hub', repo: 'test/tiny-adapter' } });
      expect(session.loadedAdapters()).toContain('tiny-adapter');
      expect(session.activeAdapter).toBe('tiny-adapter');
      // A second time it comes from the store, without a download.
      const requests = hub.requests.length;
      expect((await adapters.loadAdapterFromHub('test/tiny-adapter', undefined, hub.url)).id).toBe('tiny-adapter');
      expect(hub.requests.length).toBe(requests);
    } finally {
      await hub.close();
    }

    // Merge: into the int8 weights, then no longer applied unmerged.
    const merged = await adapters.mergeAdapterIntoModel('tiny-adapter');
    expect(merged).toEqual({ id: 'tiny-adapter', modules: 12, weightMode: 'int8' });
    overview = await adapters.listAdapters();
    expect(overview.merged).toEqual(['tiny-adapter']);
    expect(session.loadedAdapters()).not.toContain('tiny-adapter');
    await expect(adapters.loadAdapter('tiny-adapter')).rejects.toThrow(/merged into the loaded weights already/);

    for (const id of ['demo-run', 'demo-run-2', 'tiny-adapter']) await adapters.deleteAdapter(id);
    expect((await adapters.listAdapters()).adapters).toEqual([]);
    expect(session.loadedAdapters()).toEqual([]);
    session.unload();
  });
});

function makeAdapterFor(shapes: { hidden: number; intermediate: number; layers: number }): { config: Uint8Array; weights: Uint8Array } {
  const tensors = new Map<string, { shape: number[]; data: Float32Array }>();
  for (const m of loraModules(LORA, shapes)) {
    const names = adapterTensorNames(m);
    tensors.set(names.a, { shape: [LORA.r, m.inFeatures], data: new Float32Array(LORA.r * m.inFeatures) });
    tensors.set(names.b, { shape: [m.outFeatures, LORA.r], data: new Float32Array(m.outFeatures * LORA.r) });
  }
  const files = encodeAdapter(LORA, 'other-model', tensors);
  return { config: files['adapter_config.json'], weights: files['adapter_model.safetensors'] };
}
