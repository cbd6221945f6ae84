import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { decodeAdapter, encodeAdapter, ADAPTER_CONFIG, ADAPTER_WEIGHTS } from '../engine/adapters/files';
import { LORA_TARGETS, PAPER_LORA, validateLoraSettings, type LoraSettings, type LoraTarget } from '../engine/adapters/lora-config';
import { parseTemplate, tokenizeInstructionData, PAPER_TEMPLATE } from '../engine/data/template';
import { parseUpload } from '../engine/data/parse';
import { mapRows, toInstructionExamples } from '../engine/data/mapping';
import { Engine } from '../engine/engine';
import type { GpuRuntime } from '../engine/gpu/runtime';
import { KvCache, Phi2Model, Phi2Workspace } from '../engine/model/phi2/forward';
import { Generator } from '../engine/model/phi2/generate';
import { loadPhi2FromSource } from '../engine/model/phi2/load';
import { LoraState } from '../engine/model/phi2/lora-state';
import { Phi2TrainStep } from '../engine/model/phi2/train-step';
import { nodePlatform } from '../engine/platform/node';
import { Trainer, type TrainConfig } from '../engine/train/trainer';
import { loadTokenizer } from '../engine/tokenizer';
import type { QuantScheme } from '../engine/weights/layout';
import { serializeSafetensors } from '../engine/weights/safetensors';
import { CliUsageError, idMatrix, intFlag, numberFlag, parseFlags, required } from './args';
import { directorySource } from './node-files';

/** The model commands of the CLI: forward, generate, lora-grad, train. Each loads a Hub-style checkpoint directory. */

async function openModel(dir: string, weights: string | undefined): Promise<{ gpu: GpuRuntime; model: Phi2Model; scheme: QuantScheme }> {
  const scheme = (weights ?? 'int8') as QuantScheme;
  if (scheme !== 'int8' && scheme !== 'f16') throw new CliUsageError(`--weights must be int8 or f16, got "${weights}"`);
  const engine = new Engine(await nodePlatform());
  const gpu = await engine.runtime();
  const { params } = await loadPhi2FromSource(gpu, await directorySource(dir), scheme);
  return { gpu, model: new Phi2Model(gpu, params), scheme };
}

async function openTokenizer(dir: string) {
  const read = (name: string) => {
    try {
      return readFileSync(join(dir, name), 'utf8');
    } catch {
      throw new Error(`${dir} has no ${name}; the text commands need the model's tokenizer files beside its weights`);
    }
  };
  return loadTokenizer({ 'tokenizer.json': read('tokenizer.json'), 'tokenizer_config.json': read('tokenizer_config.json') });
}

export const FORWARD_USAGE = "usage: forward --model DIR --input-ids '[[1,2,3],[4,5,6]]' --out FILE.safetensors [--weights int8|f16]";

export async function forwardCommand(args: string[]): Promise<number> {
  const f = parseFlags(args, ['model', 'input-ids', 'out', 'weights'], FORWARD_USAGE);
  const ids = idMatrix(required(f, 'input-ids', FORWARD_USAGE), 'input-ids');
  const out = required(f, 'out', FORWARD_USAGE);
  const { gpu, model } = await openModel(required(f, 'model', FORWARD_USAGE), f.get('weights'));
  const B = ids.length;
  const T = ids[0].length;
  const ws = new Phi2Workspace(gpu, model.dims, B * T);
  const cache = new KvCache(gpu, model.dims, B, T);
  const logits = model.forward(ws, cache, { ids: Uint32Array.from(ids.flat()), batch: B, seq: T, logits: 'all' })!;
  const data = await gpu.readF32(logits);
  writeFileSync(out, serializeSafetensors([{ name: 'logits', dtype: 'F32', shape: [B, T, model.dims.vocab], data }]));
  console.error(`wrote logits [${B}, ${T}, ${model.dims.vocab}] to ${out}`);
  return 0;
}

export const GENERATE_USAGE =
  'usage: generate --model DIR --prompt TEXT [--max-new-tokens N] [--weights int8|f16] [--temperature T --top-k K --top-p P --seed S] [--adapter DIR]';

export async function generateCommand(args: string[]): Promise<number> {
  const f = parseFlags(args, ['model', 'prompt', 'max-new-tokens', 'weights', 'temperature', 'top-k', 'top-p', 'seed', 'adapter'], GENERATE_USAGE);
  const dir = required(f, 'model', GENERATE_USAGE);
  const prompt = required(f, 'prompt', GENERATE_USAGE);
  const tokenizer = await openTokenizer(dir);
  const { model } = await openModel(dir, f.get('weights'));
  const adapter = f.has('adapter') ? loadAdapterDir(model, f.get('adapter')!) : null;
  const ids = tokenizer.encode(prompt);
  const generator = new Generator(model, { decodableVocab: Math.min(tokenizer.vocabSize, model.dims.vocab), endOfText: tokenizer.eosTokenId });
  const tokens: number[] = [];
  let printed = '';
  const result = await generator.generate(ids, {
    maxNewTokens: intFlag(f, 'max-new-tokens', 50, 1),
    sampling: { temperature: numberFlag(f, 'temperature', 0), topK: intFlag(f, 'top-k', 0), topP: numberFlag(f, 'top-p', 1) },
    seed: intFlag(f, 'seed', 0),
    ...(adapter ? { adapter } : {}),
    onToken: (t) => {
      // Stream whole characters: decode everything so far and print what is new.
      tokens.push(t);
      const text = tokenizer.decode(tokens);
      if (!text.endsWith('\uFFFD')) {
        process.stdout.write(text.slice(printed.length));
        printed = text;
      }
    },
  });
  const text = tokenizer.decode(result.tokens);
  process.stdout.write(text.slice(printed.length) + '\n');
  console.error(`(${result.tokens.length} tokens, stopped: ${result.stopped})`);
  return 0;
}

function loadAdapterDir(model: Phi2Model, dir: string): LoraState {
  const read = (name: string) => new Uint8Array(readFileSync(join(dir, name)));
  const d = model.dims;
  const a = decodeAdapter({ [ADAPTER_CONFIG]: read(ADAPTER_CONFIG), [ADAPTER_WEIGHTS]: read(ADAPTER_WEIGHTS) }, { hidden: d.hidden, intermediate: d.intermediate, layers: d.layers });
  const state = new LoraState(model.gpu, d, a.settings);
  state.setWeights((name) => a.tensors.get(name)!.data);
  return state;
}

export const LORA_GRAD_USAGE =
  "usage: lora-grad --model DIR --adapter DIR --input-ids '[[...]]' --labels '[[...]]' --out FILE.safetensors [--weights int8|f16]";

export async function loraGradCommand(args: string[]): Promise<number> {
  const f = parseFlags(args, ['model', 'adapter', 'input-ids', 'labels', 'out', 'weights'], LORA_GRAD_USAGE);
  const ids = idMatrix(required(f, 'input-ids', LORA_GRAD_USAGE), 'input-ids');
  const labels = idMatrix(required(f, 'labels', LORA_GRAD_USAGE), 'labels');
  if (labels.length !== ids.length || labels[0].length !== ids[0].length) throw new CliUsageError('--labels must have the shape of --input-ids');
  const out = required(f, 'out', LORA_GRAD_USAGE);
  const { gpu, model } = await openModel(required(f, 'model', LORA_GRAD_USAGE), f.get('weights'));
  const lora = loadAdapterDir(model, required(f, 'adapter', LORA_GRAD_USAGE));
  const batch = { ids: Uint32Array.from(ids.flat()), labels: Int32Array.from(labels.flat()), batch: ids.length, seq: ids[0].length };
  const step = new Phi2TrainStep(model, lora, batch.batch, batch.seq);
  // Dropout off: the gradient of the loss as PEFT's model.eval() computes it.
  step.microStep(batch, { residDropout: 0, loraDropout: 0, seed: 0, labelCount: step.countLabels(batch) });
  const loss = await gpu.readF32(step.loss);
  const grads = lora.unflatten(await lora.readFlat('grads'));
  writeFileSync(
    out,
    serializeSafetensors([
      { name: 'loss', dtype: 'F32', shape: [1], data: loss },
      ...[...grads].map(([name, g]) => ({ name, dtype: 'F32' as const, shape: g.shape, data: g.data })),
    ]),
  );
  console.error(`loss ${loss[0]}; wrote it and ${grads.size} LoRA gradients to ${out}`);
  return 0;
}

export const TRAIN_USAGE = [
  'usage: train --model DIR --data FILE --out ADAPTER_DIR [options]',
  '  data: JSONL, JSON, CSV or TSV with question/response columns (--input COL --output COL to choose)',
  '  --steps N (100)  --batch N (1)  --accumulation N (1)  --lr X (2.5e-5)  --warmup N (10)  --schedule linear|cosine|constant',
  '  --r N (64)  --alpha X (64)  --lora-dropout X (0.05)  --targets q_proj,k_proj,v_proj,dense,fc1,fc2  --rslora true|false',
  '  --max-length N (512)  --loss-on all|response  --template TEXT  --seed N (42)  --weights int8|f16  --resid-dropout X (config)',
].join('\n');

export async function trainCommand(args: string[]): Promise<number> {
  const known = ['model', 'data', 'out', 'steps', 'batch', 'accumulation', 'lr', 'warmup', 'schedule', 'r', 'alpha', 'lora-dropout', 'targets', 'rslora', 'max-length', 'loss-on', 'template', 'seed', 'weights', 'input', 'output', 'resid-dropout'];
  const f = parseFlags(args, known, TRAIN_USAGE);
  const dir = required(f, 'model', TRAIN_USAGE);
  const dataPath = required(f, 'data', TRAIN_USAGE);
  const outDir = required(f, 'out', TRAIN_USAGE);
  const targets = (f.get('targets') ?? PAPER_LORA.targets.join(',')).split(',').map((t) => t.trim()) as LoraTarget[];
  const lora: LoraSettings = {
    r: intFlag(f, 'r', PAPER_LORA.r, 1),
    alpha: numberFlag(f, 'alpha', PAPER_LORA.alpha),
    dropout: numberFlag(f, 'lora-dropout', PAPER_LORA.dropout),
    useRslora: f.get('rslora') === 'true',
    targets: LORA_TARGETS.filter((t) => targets.includes(t)),
    layers: 'all',
  };
  const unknownTargets = targets.filter((t) => !LORA_TARGETS.includes(t));
  if (unknownTargets.length) throw new CliUsageError(`--targets: unknown modules ${unknownTargets.join(', ')}`);
  const tokenizer = await openTokenizer(dir);
  const parsed = parseUpload(new Uint8Array(readFileSync(dataPath)), { fileName: dataPath });
  const mapped = mapRows(parsed, { input: f.get('input') ?? 'question', output: f.get('output') ?? 'response' });
  if (mapped.problems.length) {
    for (const p of mapped.problems.slice(0, 10)) console.error(`${dataPath}: ${JSON.stringify(p)}`);
    console.error(`${mapped.badRowCount} bad rows left out${mapped.problems.length > 10 ? ' (first 10 problems shown)' : ''}`);
  }
  const template = f.get('template') ?? PAPER_TEMPLATE;
  parseTemplate(template);
  const lossOn = (f.get('loss-on') ?? 'all') as 'all' | 'response';
  const data = tokenizeInstructionData(toInstructionExamples(mapped.rows), tokenizer, template, { maxTokens: intFlag(f, 'max-length', 512, 2), lossOn });
  const { gpu, model } = await openModel(dir, f.get('weights'));
  const problems = validateLoraSettings(lora, model.dims.layers);
  if (problems.length) throw new CliUsageError(problems.join(' '));
  const steps = intFlag(f, 'steps', 100, 1);
  const config: TrainConfig = {
    lora,
    schedule: { kind: (f.get('schedule') ?? 'linear') as TrainConfig['schedule']['kind'], lr: numberFlag(f, 'lr', 2.5e-5), warmupSteps: intFlag(f, 'warmup', Math.min(10, steps - 1)), totalSteps: steps },
    batchSize: intFlag(f, 'batch', 1, 1),
    gradAccumulation: intFlag(f, 'accumulation', 1, 1),
    maxLength: intFlag(f, 'max-length', 512, 2),
    weightDecay: 0,
    maxGradNorm: 1,
    residDropout: numberFlag(f, 'resid-dropout', model.dims.residDropout),
    seed: intFlag(f, 'seed', 42),
    checkpointEvery: 0,
    maxNonFiniteSteps: 5,
  };
  const state = new LoraState(gpu, model.dims, lora);
  let s = config.seed >>> 0 || 1;
  state.initialise(() => ((s = (Math.imul(s, 16807) >>> 0) % 2147483647) / 2147483647));
  console.error(`training on ${data.rows.length} rows (${data.truncatedRows} truncated, ${data.trainedTokens} trained tokens), ${steps} steps`);
  const trainer = new Trainer(model, state, config, data.rows, {
    now: () => performance.now(),
    onStep: (rec, p) =>
      console.error(`step ${rec.step}/${p.totalSteps}  loss ${rec.loss.toFixed(4)}  |g| ${rec.gradNorm.toFixed(3)}  lr ${rec.lr.toExponential(2)}  ${p.tokensPerSecond.toFixed(0)} tok/s  eta ${p.etaSeconds?.toFixed(0) ?? '?'} s${rec.skipped ? '  (skipped: non-finite)' : ''}`),
  });
  await trainer.run();
  mkdirSync(outDir, { recursive: true });
  const files = encodeAdapter(lora, dir, state.unflatten(await state.readFlat('params')));
  writeFileSync(join(outDir, ADAPTER_CONFIG), files[ADAPTER_CONFIG]);
  writeFileSync(join(outDir, ADAPTER_WEIGHTS), files[ADAPTER_WEIGHTS]);
  console.error(`wrote the adapter to ${outDir}`);
  return 0;
}
