/**
 * How long the training batches pad to, and what rounding the padded length up to a bucket costs: the
 * measurement behind the bucket rule in src/engine/train/batches.ts. CPU only (the real Phi-2 tokenizer,
 * the bundled pools, no GPU). Run from the repository root:
 *
 *   npx esbuild test/bench/padding-lengths.ts --bundle --platform=node --format=esm --packages=external \
 *     --outfile=.bench/padding-lengths.mjs && node .bench/padding-lengths.mjs
 *
 * For each data set, one epoch in the trainer's own seeded order at the app's batch size and maximum
 * length: per batch the longest sequence (what padding to the longest gives), then for each rule the
 * padded tokens beyond the real ones (% of the real tokens) and the number of distinct padded lengths
 * (each one is a recorded micro-step; at most KEPT_MICRO_STEPS stay recorded).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { generateSymbolTuningData } from '../../src/engine/data/symbol-tuning';
import { parsePoolRows, parseTaskCatalog, taskPool } from '../../src/engine/data/pools';
import { loadTokenizer } from '../../src/engine/tokenizer/index';
import { epochOrder, planBuckets, type TrainExample } from '../../src/engine/train/batches';
import { DEMO_ROWS } from '../../src/engine/train/demo-set';
import { tokenizeTrainingRows } from '../../src/engine/train/examples';
import { PAPER_TRAINING } from '../../src/shared/paper-training';
import { PAPER_TEMPLATE, parseTemplate, renderTemplate, splitPromptCompletion } from '../../src/shared/template';
import type { TrainingExample } from '../../src/engine/store/datasets';

const DATA = 'public/data';
const TOKENIZER = process.env.PHI2_TOKENIZER ?? join('..', 'shared', 'fixtures', 'phi2-tokenizer');
const MAX_LENGTH = PAPER_TRAINING.maxLength;
const SEED = 42;
const EOS = 50256;

type Rule = { name: string; pad(longest: number, maxSeq: number, all: number[]): number };

const multipleOf = (w: number): Rule => ({ name: `x${w}`, pad: (l, max) => Math.min(max, Math.ceil(l / w) * w) });
const RULES: Rule[] = [
  { name: 'longest', pad: (l) => l },
  multipleOf(16),
  multipleOf(32),
  multipleOf(64),
  { name: 'pow2', pad: (l, max) => Math.min(max, 2 ** Math.ceil(Math.log2(l))) },
  // Powers of 2 and their 1.5x between (16, 24, 32, 48, 64, 96, ...).
  { name: 'pow2 x1.5', pad: (l, max) => Math.min(max, [...Array(24)].flatMap((_, i) => [2 ** i, 3 * 2 ** (i - 1)]).filter((b) => b >= l).sort((a, b) => a - b)[0]) },
  // maxSeq split into 8 equal widths, each a multiple of 16: at most 8 shapes for any maximum length.
  { name: 'maxSeq/8 x16', pad: (l, max) => multipleOf(Math.ceil(max / 8 / 16) * 16).pad(l, max, []) },
  // What the trainer does (batches.ts planBuckets): the 8 (or 4) lengths that pad the run's batches least.
  { name: 'best 8', pad: (l, _max, all) => planBuckets(all).find((b) => b >= l)! },
  { name: 'best 4', pad: (l, _max, all) => planBuckets(all, 4).find((b) => b >= l)! },
];

async function main() {
  const text = (name: string) => readFileSync(join(TOKENIZER, name), 'utf8');
  const tokenizer = await loadTokenizer({ 'tokenizer.json': text('tokenizer.json'), 'tokenizer_config.json': text('tokenizer_config.json') });
  const template = parseTemplate(PAPER_TEMPLATE);
  const catalog = parseTaskCatalog(readFileSync(`${DATA}/tasks.json`, 'utf8'));
  const pool = (id: string) => {
    const info = catalog.symbolTuningPools[id] ?? catalog.classification[id];
    const task = catalog.classification[id] ?? { ...info, instruction: '', flippedLabels: { '0': info.labels['1'], '1': info.labels['0'] } };
    return taskPool(task, parsePoolRows(readFileSync(`${DATA}/${info.pool}`, 'utf8'), info.pool));
  };
  const poolIds = [...Object.keys(catalog.symbolTuningPools), ...Object.keys(catalog.classification)];
  const tokens = (rows: TrainingExample[], answerLast = false) =>
    tokenizeTrainingRows(rows, tokenizer, { maxLength: MAX_LENGTH, lossOn: 'all', eosTokenId: EOS, answerLast }).then((t) => t.examples);

  // The Data page's symbol-tuning defaults: 200 prompts, 4 exemplars per class, every symbol kind, varied shapes, seed 0, fitted to 512.
  const symbolRows = (ids: string[], count: number) => {
    const data = generateSymbolTuningData(ids.map(pool), {
      seed: 0,
      count,
      perClass: 4,
      shapes: 'varied',
      instruction: 'none',
      fit: { maxLength: MAX_LENGTH, length: (e) => tokenizer.encode(renderTemplate(template, e)).length },
    });
    return data.examples.map((e) => splitPromptCompletion(template, e));
  };
  // The paper's 730 evaluation prompts in its training template: variable-length instruction rows (OpenOrca is not bundled).
  const paperPrompts = readFileSync(`${DATA}/paper/prompts.jsonl`, 'utf8')
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => JSON.parse(l) as { prompt: string; target: string })
    .map((p) => splitPromptCompletion(template, { question: p.prompt, response: p.target }));

  const sets: Array<{ name: string; batch: number; examples: TrainExample[] }> = [
    { name: 'demo set (built in)', batch: PAPER_TRAINING.batchSize.instruction, examples: await tokens([...DEMO_ROWS]) },
    { name: 'paper prompts as instruction rows', batch: PAPER_TRAINING.batchSize.instruction, examples: await tokens(paperPrompts) },
  ];
  for (const id of poolIds) sets.push({ name: `symbol tuning: ${id}`, batch: PAPER_TRAINING.batchSize.symbol, examples: await tokens(symbolRows([id], 200), true) });
  sets.push({ name: 'symbol tuning: all pools', batch: PAPER_TRAINING.batchSize.symbol, examples: await tokens(symbolRows(poolIds, 1200), true) });

  console.log(`maxLength ${MAX_LENGTH}, seed ${SEED}, one epoch; per rule: padding % of real tokens / distinct padded lengths`);
  console.log(['data set', 'rows', 'B', 'len p10/p50/p90', 'batch longest p10/p50/p90', ...RULES.map((r) => r.name)].join(' | '));
  for (const s of sets) {
    const n = s.examples.length;
    const maxSeq = Math.min(MAX_LENGTH, Math.max(...s.examples.map((e) => e.input_ids.length)));
    const order = epochOrder(n, SEED, 0);
    const batches: number[][] = [];
    for (let i = 0; i + s.batch <= n; i += s.batch) batches.push([...order.slice(i, i + s.batch)].map((k) => s.examples[k].input_ids.length));
    const real = batches.flat().reduce((a, b) => a + b, 0);
    const q = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.floor(p * (xs.length - 1))];
    const lens = s.examples.map((e) => e.input_ids.length);
    const longest = batches.map((b) => Math.max(...b));
    const cells = RULES.map((r) => {
      const padded = longest.map((l) => r.pad(l, maxSeq, longest));
      const total = padded.reduce((a, T) => a + T * s.batch, 0);
      return `${(((total - real) / real) * 100).toFixed(1)}% / ${new Set(padded).size}`;
    });
    console.log([s.name, n, s.batch, [0.1, 0.5, 0.9].map((p) => q(lens, p)).join('/'), [0.1, 0.5, 0.9].map((p) => q(longest, p)).join('/'), ...cells].join(' | '));
  }
}

await main();
