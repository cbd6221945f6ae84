import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ADAPTER_CONFIG, ADAPTER_WEIGHTS } from '../engine/adapters/files';
import { LORA_TARGETS, validateLoraSettings, type LoraSettings, type LoraTarget } from '../shared/lora';
import { mapRows, toInstructionExamples } from '../engine/data/mapping';
import { parseUpload } from '../engine/data/parse';
import { parseTemplate, PAPER_TEMPLATE, splitPromptCompletion } from '../shared/template';
import { ADAMW_8BIT_BLOCK_SIZES, DEFAULT_8BIT_BLOCK_SIZE, DEFAULT_OPTIMIZER, describeOptimizer, type Adam8bitBlockSize, type OptimizerSettings } from '../shared/optimizer';
import { paperTrainConfig } from '../engine/train/paper';
import { APP_TRAINING_CHOICES, PAPER_TRAINING, stepsForEpochs, type PaperPreset } from '../shared/paper-training';
import type { ScheduleKind } from '../shared/paper-training';
import type { TrainingExample } from '../engine/store/datasets';
import { tokenizeTrainingRows } from '../engine/train/examples';
import { trainAdapter } from '../engine/train/train-adapter';
import { PADDINGS, type Padding } from '../engine/train/batches';
import type { TrainConfig } from '../engine/train/trainer';
import { CliUsageError, intFlag, numberFlag, parseFlags, required } from './args';
import { openModel, openTokenizer, readAdapterDir } from './model-commands';

/**
 * `train`: a LoRA adapter from question/response rows, with the paper's settings by default
 * (engine/train/paper.ts): one epoch, batch 2 (`--preset symbol`: batch 4, continuing the adapter given
 * with --from), lr 2.5e-5, 512 tokens, r 64 / alpha 64 / dropout 0.05 on all six linear layers. Every
 * setting can be changed; the ones the paper does not state are the app's choices, and the usage says so.
 */

const P = PAPER_TRAINING;
const A = APP_TRAINING_CHOICES;

export const TRAIN_USAGE = [
  'usage: train --model DIR --data FILE --out ADAPTER_DIR [options]',
  '  data: JSONL, JSON, CSV or TSV with question/response columns (--input COL --output COL to choose)',
  "  the paper's settings (the defaults):",
  `    --preset instruction|symbol (instruction: batch ${P.batchSize.instruction}; symbol: batch ${P.batchSize.symbol}, continuing --from ADAPTER_DIR)`,
  `    --epochs X (${P.epochs}, or --steps N)  --batch N (the preset's)  --lr X (${P.learningRate.toExponential()})  --max-length N (${P.maxLength})`,
  `    --r N (${P.lora.r})  --alpha X (${P.lora.alpha})  --lora-dropout X (${P.lora.dropout})  --targets ${P.lora.targets.join(',')}  --loss-on all|response (${P.lossOn})`,
  "  where the paper is silent, the app's choices (transformers' Trainer defaults):",
  `    --schedule linear|cosine|constant (${A.schedule})  --warmup N (${A.warmupSteps})  --weight-decay X (${A.weightDecay})  --clip X (${A.maxGradNorm}, 0: off)`,
  `    --seed N (${A.seed})  --accumulation N (${A.gradAccumulation})`,
  "  --optimizer adamw|adamw-8bit (adamw: f32 moments, the app's default; adamw-8bit: bitsandbytes' 8-bit moments, the paper's)",
  `  --block-size ${ADAMW_8BIT_BLOCK_SIZES.join('|')} (values per absmax of the 8-bit moments: ${DEFAULT_8BIT_BLOCK_SIZE}, bitsandbytes since 0.44; 2048 before)`,
  '  --rslora true|false  --template TEXT  --weights int8|f16  --resid-dropout X (the model config\'s)',
].join('\n');

/** Every flag of `train` (export-run takes them too). */
export const TRAIN_FLAGS = [
  'model', 'data', 'out', 'preset', 'from', 'epochs', 'steps', 'batch', 'accumulation', 'lr', 'warmup', 'schedule', 'weight-decay', 'clip',
  'r', 'alpha', 'lora-dropout', 'targets', 'rslora', 'max-length', 'loss-on', 'template', 'seed', 'weights', 'input', 'output', 'resid-dropout',
  'optimizer', 'block-size', 'padding',
] as const;

function optimizerFlags(f: Map<string, string>): OptimizerSettings {
  const kind = f.get('optimizer') ?? DEFAULT_OPTIMIZER.kind;
  if (kind === 'adamw') {
    if (f.has('block-size')) throw new CliUsageError('--block-size is for --optimizer adamw-8bit');
    return { kind: 'adamw' };
  }
  if (kind !== 'adamw-8bit') throw new CliUsageError(`--optimizer must be adamw or adamw-8bit, got "${kind}"`);
  const blockSize = intFlag(f, 'block-size', DEFAULT_8BIT_BLOCK_SIZE, 1) as Adam8bitBlockSize;
  if (!ADAMW_8BIT_BLOCK_SIZES.includes(blockSize)) throw new CliUsageError(`--block-size must be ${ADAMW_8BIT_BLOCK_SIZES.join(' or ')}, got ${blockSize}`);
  return { kind: 'adamw-8bit', blockSize };
}

const SCHEDULES: readonly ScheduleKind[] = ['linear', 'cosine', 'constant'];

function presetFlag(f: Map<string, string>): PaperPreset {
  const preset = f.get('preset') ?? 'instruction';
  if (preset !== 'instruction' && preset !== 'symbol') throw new CliUsageError(`--preset must be instruction or symbol, got "${preset}"`);
  return preset;
}

/** The tokens each example keeps: --max-length, or the paper's 512. */
export function maxLengthFlag(f: Map<string, string>): number {
  return intFlag(f, 'max-length', P.maxLength, 2);
}

/**
 * The run's configuration from the flags: the paper's run for the preset (paperTrainConfig), each
 * flag given replacing its setting. `base` is the LoRA of the adapter given with --from, whose rank,
 * alpha and targets the run must keep.
 */
export function cliTrainConfig(f: Map<string, string>, examples: number, residDropout: number, base: LoraSettings | null = null): TrainConfig {
  const preset = presetFlag(f);
  const paper = paperTrainConfig(preset, examples, residDropout);
  const targets = f.has('targets') ? f.get('targets')!.split(',').map((t) => t.trim()) : [...(base ?? paper.lora).targets];
  const unknownTargets = targets.filter((t) => !LORA_TARGETS.includes(t as LoraTarget));
  if (unknownTargets.length) throw new CliUsageError(`--targets: unknown modules ${unknownTargets.join(', ')}`);
  const from = base ?? paper.lora;
  const lora: LoraSettings = {
    r: intFlag(f, 'r', from.r, 1),
    alpha: numberFlag(f, 'alpha', from.alpha),
    dropout: numberFlag(f, 'lora-dropout', paper.lora.dropout),
    useRslora: f.has('rslora') ? f.get('rslora') === 'true' : from.useRslora,
    targets: LORA_TARGETS.filter((t) => targets.includes(t)),
    layers: base?.layers ?? paper.lora.layers,
  };
  if (base && (lora.r !== base.r || lora.alpha !== base.alpha || lora.useRslora !== base.useRslora || lora.targets.join() !== base.targets.join())) {
    throw new CliUsageError(`--from: continuing an adapter keeps its r ${base.r}, alpha ${base.alpha} and targets ${base.targets.join(',')}; only --lora-dropout may change`);
  }
  const batchSize = intFlag(f, 'batch', paper.batchSize, 1);
  const gradAccumulation = intFlag(f, 'accumulation', paper.gradAccumulation, 1);
  if (f.has('steps') && f.has('epochs')) throw new CliUsageError('give --epochs or --steps, not both');
  const epochs = numberFlag(f, 'epochs', P.epochs);
  if (!(epochs > 0)) throw new CliUsageError(`--epochs must be above 0, got ${epochs}`);
  const totalSteps = f.has('steps') ? intFlag(f, 'steps', 1, 1) : stepsForEpochs(epochs, examples, batchSize, gradAccumulation);
  const kind = (f.get('schedule') ?? paper.schedule.kind) as ScheduleKind;
  if (!SCHEDULES.includes(kind)) throw new CliUsageError(`--schedule must be one of ${SCHEDULES.join(', ')}, got "${kind}"`);
  const weightDecay = numberFlag(f, 'weight-decay', paper.weightDecay);
  const maxGradNorm = numberFlag(f, 'clip', paper.maxGradNorm);
  if (weightDecay < 0 || maxGradNorm < 0) throw new CliUsageError('--weight-decay and --clip must be 0 or more');
  return {
    ...paper,
    lora,
    schedule: { kind, lr: numberFlag(f, 'lr', paper.schedule.lr), warmupSteps: Math.min(intFlag(f, 'warmup', A.warmupSteps), totalSteps), totalSteps },
    batchSize,
    gradAccumulation,
    maxLength: maxLengthFlag(f),
    weightDecay,
    maxGradNorm,
    residDropout: numberFlag(f, 'resid-dropout', residDropout),
    seed: intFlag(f, 'seed', paper.seed),
    checkpointEvery: 0,
    optimizer: optimizerFlags(f),
    padding: paddingFlag(f, paper.padding ?? 'buckets'),
  };
}

function paddingFlag(f: Map<string, string>, fallback: Padding): Padding {
  const padding = f.get('padding') ?? fallback;
  if (!PADDINGS.includes(padding as Padding)) throw new CliUsageError(`--padding must be ${PADDINGS.join(' or ')}, got "${padding}"`);
  return padding as Padding;
}

/**
 * The training rows of --data as the Data page prepares them: parsed, mapped to question/response
 * (--input/--output), rendered with --template and split into prompt + completion. Bad rows are said on
 * stderr and left out.
 */
export function readTrainingRows(f: Map<string, string>, dataPath: string, say: 'details' | 'count'): TrainingExample[] {
  const parsed = parseUpload(new Uint8Array(readFileSync(dataPath)), { fileName: dataPath });
  const mapped = mapRows(parsed, { input: f.get('input') ?? 'question', output: f.get('output') ?? 'response' });
  if (mapped.problems.length && say === 'details') {
    for (const p of mapped.problems.slice(0, 10)) console.error(`${dataPath}: ${JSON.stringify(p)}`);
    console.error(`${mapped.badRowCount} bad rows left out${mapped.problems.length > 10 ? ' (first 10 problems shown)' : ''}`);
  } else if (mapped.problems.length) {
    console.error(`${mapped.badRowCount} bad rows of ${dataPath} left out (run train for the details)`);
  }
  const template = parseTemplate(f.get('template') ?? PAPER_TEMPLATE);
  const rows = toInstructionExamples(mapped.rows).map((e) => splitPromptCompletion(template, e));
  if (!rows.length) throw new CliUsageError(`${dataPath} has no usable rows`);
  return rows;
}

/** --loss-on, or the paper's. */
export function lossOnFlag(f: Map<string, string>): 'all' | 'response' {
  const lossOn = f.get('loss-on') ?? P.lossOn;
  if (lossOn !== 'all' && lossOn !== 'response') throw new CliUsageError(`--loss-on must be all or response, got "${lossOn}"`);
  return lossOn;
}

export async function trainCommand(args: string[]): Promise<number> {
  const f = parseFlags(args, TRAIN_FLAGS, TRAIN_USAGE);
  const dir = required(f, 'model', TRAIN_USAGE);
  const dataPath = required(f, 'data', TRAIN_USAGE);
  const outDir = required(f, 'out', TRAIN_USAGE);
  if (presetFlag(f) === 'symbol' && !f.has('from')) throw new CliUsageError('--preset symbol continues an instruction adapter: give it with --from ADAPTER_DIR');
  const lossOn = lossOnFlag(f);
  const tokenizer = await openTokenizer(dir);
  const rows = readTrainingRows(f, dataPath, 'details');
  // Tokenised as the Train page tokenises a saved dataset: the same examples, cuts and left-out rows.
  const data = await tokenizeTrainingRows(rows, tokenizer, { maxLength: maxLengthFlag(f), lossOn });
  if (!data.examples.length) throw new CliUsageError(`${dataPath} has no row with a token to learn from at ${maxLengthFlag(f)} tokens`);
  const { model } = await openModel(dir, f.get('weights'));
  const base = f.has('from') ? readAdapterDir(model, f.get('from')!) : null;
  const config = cliTrainConfig(f, data.examples.length, model.dims.residDropout, base?.settings ?? null);
  const problems = validateLoraSettings(config.lora, model.dims.layers);
  if (problems.length) throw new CliUsageError(problems.join(' '));
  const { skipped } = data;
  console.error(
    `training on ${data.examples.length} rows (${skipped.truncated} truncated, ${skipped.empty + skipped.noLoss} left out with nothing to learn, ${data.tokens} tokens): ` +
      `${config.schedule.totalSteps} steps of batch ${config.batchSize}${config.gradAccumulation > 1 ? ` x ${config.gradAccumulation} accumulated` : ''}, ` +
      `lr ${config.schedule.lr}, ${describeOptimizer(config.optimizer)}`,
  );
  const result = await trainAdapter({
    model,
    config,
    examples: data.examples,
    // Same rank, alpha, targets and layers (checked in cliTrainConfig): continue from its weights.
    start: base ? { kind: 'weights', tensors: base.tensors } : { kind: 'seed' },
    baseModel: dir,
    now: () => performance.now(),
    onStep: (rec, p) =>
      console.error(`step ${rec.step}/${p.totalSteps}  loss ${rec.loss.toFixed(4)}  |g| ${rec.gradNorm.toFixed(3)}  lr ${rec.lr.toExponential(2)}  ${p.tokensPerSecond.toFixed(0)} tok/s  eta ${p.etaSeconds?.toFixed(0) ?? '?'} s${rec.skipped ? '  (skipped: non-finite)' : ''}`),
  });
  if (result.status !== 'finished') throw new Error(`training stopped early (${result.status})`);
  mkdirSync(outDir, { recursive: true });
  writeFileSync(join(outDir, ADAPTER_CONFIG), result.files[ADAPTER_CONFIG]);
  writeFileSync(join(outDir, ADAPTER_WEIGHTS), result.files[ADAPTER_WEIGHTS]);
  console.error(`wrote the adapter to ${outDir}`);
  return 0;
}
