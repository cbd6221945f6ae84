import { ggufLoraAlpha } from './gguf';
import { loraScaling, type LoraSettings } from '../../shared/lora';
import type { TrainingRecord } from './store';

/**
 * The README.md of a published adapter: the Hub's model card, YAML metadata first (the Hub reads
 * `base_model`, `library_name`, `tags` and `pipeline_tag` from it; an adapter is listed under its base
 * model by the tag `base_model:adapter:<base>`), then what it is, how it was made, how well it did, and
 * how to use it. Everything in it comes from the adapter's own record; nothing is invented.
 */

export interface EvaluationSummary {
  /** "paper", or the suites run. */
  suite: string;
  /** ISO 8601. */
  startedAt: string;
  itemCount: number;
  correct: number;
  /** Accuracy per format over every dataset of the run ("all" rows). */
  formats: Array<{ suite: string; format: string; correct: number; total: number }>;
}

export interface ModelCardInput {
  /** The repository the card is for (owner/name). */
  repo: string;
  name: string;
  /** A Hub model id: the card's base_model and the adapter tag. */
  baseModel: string;
  settings: LoraSettings;
  /** How it was trained, when it was trained here. */
  training: (TrainingRecord & { dataset: string }) | null;
  evaluations: EvaluationSummary[];
}

/** The Hub's tags for a LoRA adapter of `baseModel`. */
export function adapterTags(baseModel: string): string[] {
  return [`base_model:adapter:${baseModel}`, 'peft', 'lora'];
}

/** A YAML double-quoted scalar (JSON strings are valid YAML). */
const yamlString = (s: string) => JSON.stringify(s);

/** Markdown table cells: pipes escaped, newlines flattened. */
const cell = (s: string | number) => String(s).replace(/\|/g, '\\|').replace(/\s*\n\s*/g, ' ');

/** Small numbers as people write learning rates: 2.5e-5, not 0.000025. */
const num = (x: number) => (x !== 0 && Math.abs(x) < 1e-3 ? x.toExponential() : String(x));

const pct = (correct: number, total: number) => (total ? `${((100 * correct) / total).toFixed(1)}%` : 'n/a');

export function modelCard(input: ModelCardInput): string {
  const s = input.settings;
  const lines: string[] = [
    '---',
    `base_model: ${yamlString(input.baseModel)}`,
    'library_name: peft',
    'pipeline_tag: text-generation',
    'tags:',
    ...adapterTags(input.baseModel).map((t) => `- ${yamlString(t)}`),
    '---',
    '',
    `# ${input.name}`,
    '',
    `A LoRA adapter for [${input.baseModel}](https://huggingface.co/${input.baseModel}) in PEFT's format` +
      (input.training ? ', trained in the browser on the user\'s own GPU (WebGPU).' : '.'),
    '',
    '## LoRA settings',
    '',
    '| setting | value |',
    '|---|---|',
    `| r | ${s.r} |`,
    `| alpha | ${s.alpha} |`,
    `| scaling | ${s.useRslora ? `alpha / sqrt(r) = ${loraScaling(s).toPrecision(6)} (rsLoRA)` : `alpha / r = ${loraScaling(s).toPrecision(6)}`} |`,
    `| dropout | ${s.dropout} |`,
    `| target modules | ${cell(s.targets.join(', '))} |`,
    `| layers | ${s.layers === 'all' ? 'all' : cell(s.layers.join(', '))} |`,
    '',
  ];
  const t = input.training;
  if (t) {
    lines.push(
      '## Training',
      '',
      '| setting | value |',
      '|---|---|',
      `| data | ${cell(t.dataset)} (${t.examples} examples, ${t.tokens} tokens) |`,
      `| base weights | ${cell(t.model)} |`,
      `| optimizer | AdamW (betas 0.9, 0.999; eps 1e-8), weight decay ${t.weightDecay} |`,
      `| learning rate | ${num(t.lr)}, ${t.schedule} schedule, ${t.warmupSteps} warm-up steps |`,
      `| steps | ${t.totalSteps} optimizer steps |`,
      `| batch | ${t.batchSize} x ${t.gradAccumulation} gradient accumulation = ${t.batchSize * t.gradAccumulation} sequences per step |`,
      `| maximum length | ${t.maxLength} tokens |`,
      `| loss on | ${t.lossOn === 'all' ? 'every token' : 'the response (completion) only'} |`,
      `| gradient clipping | ${t.maxGradNorm > 0 ? `max norm ${t.maxGradNorm}` : 'off'} |`,
      `| seed | ${t.seed} |`,
      '',
    );
  }
  if (input.evaluations.length) {
    lines.push('## Evaluation', '', 'Accuracy of the base model with this adapter by the evaluation\'s answer verdict (the answer read out of each generation, then compared with the target).', '', '| run | date | format | correct | accuracy |', '|---|---|---|---|---|');
    for (const e of input.evaluations) {
      const date = e.startedAt.slice(0, 10);
      lines.push(`| ${cell(e.suite)} (${e.itemCount} items) | ${date} | all | ${e.correct}/${e.itemCount} | ${pct(e.correct, e.itemCount)} |`);
      for (const f of e.formats) lines.push(`| ${cell(e.suite)} | ${date} | ${cell(f.suite === e.suite ? f.format : `${f.suite}: ${f.format}`)} | ${f.correct}/${f.total} | ${pct(f.correct, f.total)} |`);
    }
    lines.push('');
  }
  lines.push(
    '## Use',
    '',
    '```python',
    'from peft import AutoPeftModelForCausalLM',
    'from transformers import AutoTokenizer',
    '',
    `model = AutoPeftModelForCausalLM.from_pretrained(${yamlString(input.repo)})`,
    `tokenizer = AutoTokenizer.from_pretrained(${yamlString(input.baseModel)})`,
    '```',
    '',
    `With llama.cpp: convert it with \`convert_lora_to_gguf.py\`${s.useRslora ? ` (its adapter.lora.alpha must then be ${ggufLoraAlpha(s).toPrecision(6)}, alpha·√r, for rsLoRA's scale)` : ''}, then \`llama-cli -m base.gguf --lora adapter.gguf\`.`,
    '',
  );
  return lines.join('\n');
}
