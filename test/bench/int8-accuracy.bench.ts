import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { directorySource } from '../../src/cli/node-files';
import { LORA_TARGETS } from '../../src/shared/lora';
import type { ComputePath } from '../../src/engine/model/phi2/frozen-linear';
import { Phi2Model } from '../../src/engine/model/phi2/forward';
import { loadPhi2FromSource } from '../../src/engine/model/phi2/load';
import { LoraState } from '../../src/engine/model/phi2/lora-state';
import { destroyParams } from '../../src/engine/model/phi2/params';
import { DEFAULT_OPTIMIZER } from '../../src/shared/optimizer';
import type { TrainExample } from '../../src/engine/train/batches';
import { Trainer, type TrainConfig } from '../../src/engine/train/trainer';
import { freshRuntime, type BenchEnv, type BenchRow } from './harness';
import { lossCurvesSvg } from './curve-chart';
import { XorShift32 } from './random';

/**
 * train.int8-accuracy: what the int8 compute path costs a real run. The fixtures' two models (tiny-phi:
 * Phi-2's vocabulary at toy width; golden: Phi-2's head geometry at toy width) are trained with LoRA
 * for the same steps on the same data, with the same seed, once on the f32 path and once on the int8
 * path, and their loss curves are compared. Only the compute path differs: the batches, LoRA's
 * initialisation and every dropout mask are the same.
 *
 * The data is learnable by construction: sequences from a seeded first-order Markov chain over 512
 * tokens in which each token has four successors (probabilities 0.4, 0.3, 0.2, 0.1), so a model
 * that learns the chain reaches its entropy, 1.28 nats a token, from about ln(vocab) at the start.
 */

const FIXTURES = process.env.PHI2_FIXTURES ?? resolve('../shared/fixtures');
const MODELS = { golden: 'golden', 'tiny-phi': 'tiny-phi' } as const;
/**
 * INT8_ACCURACY_MODELS=golden (or tiny-phi) and INT8_ACCURACY_PATHS=f32 (or int8) run a part of the
 * comparison: on a CPU-only machine the four runs can then go as four processes, each writing its
 * curve, step by step, to its own .bench/int8-accuracy-<model>-<path>.json.
 */
function chosenPaths(): ComputePath[] {
  const only = process.env.INT8_ACCURACY_PATHS?.split(',').map((m) => m.trim()).filter(Boolean);
  if (!only) return ['f32', 'int8'];
  const unknown = only.filter((p) => p !== 'f32' && p !== 'int8');
  if (unknown.length) throw new Error(`train.int8-accuracy: INT8_ACCURACY_PATHS names ${unknown.join(', ')}; the paths are f32 and int8`);
  return (['f32', 'int8'] as const).filter((p) => only.includes(p));
}

function chosenModels(): Array<[string, string]> {
  const only = process.env.INT8_ACCURACY_MODELS?.split(',').map((m) => m.trim()).filter(Boolean);
  const all = Object.entries(MODELS);
  if (!only) return all;
  const unknown = only.filter((m) => !(m in MODELS));
  if (unknown.length) throw new Error(`train.int8-accuracy: INT8_ACCURACY_MODELS names ${unknown.join(', ')}; the models are ${Object.keys(MODELS).join(', ')}`);
  return all.filter(([label]) => only.includes(label));
}
const CHAIN_TOKENS = 512;
const SUCCESSOR_P = [0.4, 0.3, 0.2, 0.1];
/** The chain's entropy rate in nats: the best loss a model can reach on this data. */
export const CHAIN_ENTROPY = -SUCCESSOR_P.reduce((s, p) => s + p * Math.log(p), 0);

export interface Int8AccuracyOptions {
  steps: number;
  batch: number;
  seq: number;
  examples: number;
}

/**
 * 200 steps of 2 sequences of 32 tokens: on SwiftShader, on 2 cores shared with other work, a golden-model
 * step of 4 x 64 took 6 to 7 s, and the four runs would not fit in a working session; at 2 x 32 a golden step
 * takes about 2.5 s of CPU (tiny-phi's, with its 51,200-row head, several times that). Both paths still see the
 * same data, seed and masks. A GPU runs 4 x 64 in well under a second a step.
 */
export const INT8_ACCURACY_RUN: Int8AccuracyOptions = { steps: 200, batch: 2, seq: 32, examples: 256 };

/** Sequences of the chain, every token a label (loss on every token). */
export function markovData(vocab: number, o: Int8AccuracyOptions, seed = 7): TrainExample[] {
  const V = Math.min(vocab, CHAIN_TOKENS);
  const rng = new XorShift32(seed);
  const next = Array.from({ length: V }, () => SUCCESSOR_P.map(() => Math.floor(rng.next() * V)));
  const cumulative = SUCCESSOR_P.map((_, i) => SUCCESSOR_P.slice(0, i + 1).reduce((a, b) => a + b, 0));
  return Array.from({ length: o.examples }, () => {
    const ids = [Math.floor(rng.next() * V)];
    while (ids.length < o.seq) {
      const u = rng.next();
      const choice = cumulative.findIndex((c) => u < c);
      ids.push(next[ids[ids.length - 1]][choice < 0 ? SUCCESSOR_P.length - 1 : choice]);
    }
    return { input_ids: ids, labels: [...ids] };
  });
}

function runConfig(o: Int8AccuracyOptions, compute: ComputePath): TrainConfig {
  return {
    lora: { r: 16, alpha: 32, dropout: 0.05, useRslora: false, targets: [...LORA_TARGETS], layers: 'all' },
    schedule: { kind: 'linear', lr: 3e-3, warmupSteps: Math.min(10, o.steps), totalSteps: o.steps },
    batchSize: o.batch,
    gradAccumulation: 1,
    maxLength: o.seq,
    weightDecay: 0,
    maxGradNorm: 1,
    residDropout: 0.1,
    seed: 42,
    checkpointEvery: 0,
    maxNonFiniteSteps: 3,
    optimizer: DEFAULT_OPTIMIZER,
    compute,
  };
}

export interface Curve {
  model: string;
  compute: ComputePath;
  losses: number[];
  ms: number;
}

/** Mean of the last n values. */
const tailMean = (v: readonly number[], n: number) => v.slice(-n).reduce((a, b) => a + b, 0) / Math.min(n, v.length);

export async function int8AccuracyRows(env: BenchEnv, o: Int8AccuracyOptions = INT8_ACCURACY_RUN): Promise<BenchRow[]> {
  if (!env.ctx.hasInt8Dot) throw new Error("train.int8-accuracy: this WebGPU has no WGSL packed_4x8_integer_dot_product, so no int8 path to compare");
  const rows: BenchRow[] = [];
  const curves: Curve[] = [];
  const models = chosenModels();
  const paths = chosenPaths();
  const tag = [models.length === 1 ? models[0][0] : '', paths.length === 1 ? paths[0] : ''].filter(Boolean).join('-');
  const out = `.bench/int8-accuracy${tag ? `-${tag}` : ''}.json`;
  const save = () => {
    mkdirSync('.bench', { recursive: true });
    writeFileSync(out, JSON.stringify({ options: o, chainEntropy: CHAIN_ENTROPY, curves }, null, 1) + '\n');
  };
  for (const [label, folder] of models) {
    const dir = join(FIXTURES, folder);
    if (!existsSync(join(dir, 'config.json'))) throw new Error(`train.int8-accuracy: no fixture model at ${dir} (set PHI2_FIXTURES to the fixtures folder)`);
    const gpu = freshRuntime(env);
    const { params } = await loadPhi2FromSource(gpu, await directorySource(dir), 'int8');
    const model = new Phi2Model(gpu, params);
    try {
      const data = markovData(model.dims.vocab, o);
      for (const compute of paths) {
        const config = runConfig(o, compute);
        // Written as it grows: on a slow machine the first steps are worth having before the last.
        const curve: Curve = { model: label, compute, losses: [], ms: 0 };
        curves.push(curve);
        const lora = new LoraState(gpu, model.dims, config.lora);
        const rng = new XorShift32(config.seed);
        lora.initialise(() => rng.next());
        const trainer = new Trainer(model, lora, config, data, {
          now: () => performance.now(),
          onStep: (rec, p) => {
            curve.losses.push(rec.loss);
            if (rec.step % 10 === 0) save();
            if (rec.step % 10 === 0) console.log(`    ${label} ${compute} step ${rec.step}/${p.totalSteps}: loss ${rec.loss.toFixed(4)}, ${(p.elapsedMs / rec.step / 1e3).toFixed(2)} s a step`);
          },
        });
        const t0 = performance.now();
        await trainer.run();
        curve.ms = performance.now() - t0;
        const losses = trainer.records.map((r) => r.loss);
        curve.losses = losses;
        save();
        if (trainer.records.some((r) => r.skipped)) throw new Error(`train.int8-accuracy ${label} ${compute}: steps were skipped (non-finite gradients)`);
        const ms = curve.ms;
        console.log(`  ${label} ${compute}: loss ${losses[0].toFixed(4)} -> ${tailMean(losses, 20).toFixed(4)} (mean of the last 20 steps) in ${(ms / 1e3).toFixed(0)} s`);
        trainer.destroy();
        lora.destroy();
      }
    } finally {
      await gpu.finish();
      model.destroy();
      destroyParams(params);
      gpu.encoder.destroy();
    }
    if (paths.length < 2) continue;
    const [f32, int8] = curves.slice(-2);
    const gap = f32.losses.map((l, i) => Math.abs(int8.losses[i] - l));
    rows.push({
      id: 'train.int8-accuracy',
      name: `train.int8-accuracy ${label} ${o.steps} steps ${o.batch}x${o.seq}`,
      shape: `${label} ${o.steps} steps ${o.batch}x${o.seq}`,
      ms: int8.ms / o.steps,
      timing: 'wall-clock',
      notes: [
        `loss over the last 20 steps: f32 ${tailMean(f32.losses, 20).toFixed(4)}, int8 ${tailMean(int8.losses, 20).toFixed(4)} ` +
          `(start ${f32.losses[0].toFixed(4)}, chain entropy ${CHAIN_ENTROPY.toFixed(4)}); largest per-step difference ${Math.max(...gap).toFixed(4)}, mean ${(gap.reduce((a, b) => a + b, 0) / gap.length).toFixed(4)}`,
      ],
    });
  }
  for (const [model, [f32, int8]] of paths.length === 2 ? curvesByModel(curves) : []) console.log(`\n${comparisonTable(model, f32, int8, 20)}`);
  console.log(`\n(curves written to ${out}; \`node .bench/bench.mjs curves\` draws them)`);
  return rows;
}

/** The curves of one model, f32 first, as saved by the runs (each process writes its own file). */
export function curvesByModel(curves: readonly Curve[]): Map<string, Curve[]> {
  const byModel = new Map<string, Curve[]>();
  for (const c of curves) byModel.set(c.model, [...(byModel.get(c.model) ?? []), c]);
  for (const [model, list] of byModel) {
    list.sort((a, b) => (a.compute === b.compute ? 0 : a.compute === 'f32' ? -1 : 1));
    if (list.length !== 2 || list[0].compute !== 'f32' || list[1].compute !== 'int8') {
      throw new Error(`train.int8-accuracy: ${model} needs exactly one f32 and one int8 curve, got ${list.map((c) => c.compute).join(', ') || 'none'}`);
    }
    if (list[0].losses.length !== list[1].losses.length) {
      throw new Error(`train.int8-accuracy: ${model}'s curves have ${list[0].losses.length} and ${list[1].losses.length} steps; compare finished runs`);
    }
  }
  return byModel;
}

/**
 * One model's curves as BENCHMARKS.md shows them: the mean loss over each `every` steps both ways and
 * their difference, then the figures that say whether int8 costs accuracy (largest and mean per-step gap,
 * the means of the last 20 steps).
 */
export function comparisonTable(model: string, f32: Curve, int8: Curve, every: number): string {
  const mean = (v: readonly number[]) => v.reduce((a, b) => a + b, 0) / v.length;
  const steps = f32.losses.length;
  const lines = [`| ${model}: steps | f32 | int8 | int8 − f32 |`, '|---|---:|---:|---:|'];
  for (let start = 0; start < steps; start += every) {
    const end = Math.min(steps, start + every);
    const a = mean(f32.losses.slice(start, end));
    const b = mean(int8.losses.slice(start, end));
    const d = b - a;
    lines.push(`| ${start + 1}-${end} | ${a.toFixed(4)} | ${b.toFixed(4)} | ${d >= 0 ? '+' : ''}${d.toFixed(4)} |`);
  }
  const gap = f32.losses.map((l, i) => Math.abs(int8.losses[i] - l));
  const tailF32 = tailMean(f32.losses, 20);
  const tailInt8 = tailMean(int8.losses, 20);
  lines.push(
    '',
    `${model}, ${steps} steps: first step ${f32.losses[0].toFixed(4)} / ${int8.losses[0].toFixed(4)}; mean of the last 20 steps f32 ` +
      `${tailF32.toFixed(4)}, int8 ${tailInt8.toFixed(4)} (difference ${(tailInt8 - tailF32).toFixed(4)}); last step ` +
      `${f32.losses[steps - 1].toFixed(4)} / ${int8.losses[steps - 1].toFixed(4)}; per-step |int8 − f32| mean ${mean(gap).toFixed(4)}, largest ${Math.max(...gap).toFixed(4)}.`,
  );
  return lines.join('\n');
}

/** The saved curve files (`.bench/int8-accuracy*.json`) read back, checked to come from the same run settings. */
export function readCurveFiles(files: ReadonlyArray<{ name: string; text: string }>): { options: Int8AccuracyOptions; curves: Curve[] } {
  let options: Int8AccuracyOptions | null = null;
  const curves: Curve[] = [];
  for (const f of files) {
    let parsed: { options?: Int8AccuracyOptions; curves?: Curve[] };
    try {
      parsed = JSON.parse(f.text);
    } catch (err) {
      throw new Error(`${f.name}: not JSON (${(err as Error).message}); pass the files the int8-accuracy runs wrote`);
    }
    if (!parsed.options || !Array.isArray(parsed.curves)) throw new Error(`${f.name}: no options and curves; pass the files the int8-accuracy runs wrote`);
    if (options && JSON.stringify(options) !== JSON.stringify(parsed.options)) {
      throw new Error(`${f.name}: run with ${JSON.stringify(parsed.options)}, the others with ${JSON.stringify(options)}; compare runs of the same settings`);
    }
    options = parsed.options;
    curves.push(...parsed.curves);
  }
  if (!options) throw new Error('no curve files given');
  return { options, curves };
}

/** The chart of BENCHMARKS.md: a panel per model, f32 and int8 with their 10-step running means, and the gap. */
export function comparisonSvg(byModel: ReadonlyMap<string, Curve[]>): string {
  return lossCurvesSvg(
    [...byModel].map(([model, list]) => ({ title: `${model}, ${list[0].losses.length} steps`, curves: list.map((c) => ({ label: c.compute, losses: c.losses })) })),
    { smooth: 10, floor: { value: CHAIN_ENTROPY, label: `best reachable ${CHAIN_ENTROPY.toFixed(2)}` } },
  );
}
