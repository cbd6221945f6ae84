import { strToU8, zipSync } from 'fflate';
import { ADAPTER_CONFIG, ADAPTER_WEIGHTS, type AdapterFiles } from '../adapters/files';
import { peftLoraFields, type PeftLoraFields } from '../adapters/peft';
import type { TrainConfig } from '../train/trainer';
import { trainPy } from './train-py';

/**
 * "Run this on a cluster": a training run as a folder that runs the same training with the tools that
 * scale (TRL's SFTTrainer + PEFT under accelerate: one GPU, DDP, DeepSpeed ZeRO-2 or FSDP on several
 * machines), and writes a standard PEFT adapter the Adapters page imports as it is.
 *
 *   train.jsonl        the prepared rows, {"prompt", "completion"} per line (TRL's prompt-completion type)
 *   train.py           SFTTrainer + LoraConfig, every setting in its SETTINGS literal (train-py.ts)
 *   accelerate/*.yaml  single_gpu, multi_gpu (DDP), deepspeed_zero2 and fsdp (both for several machines)
 *   requirements.txt   the Python packages
 *   init_adapter/      the adapter the run continues, when it continues one
 *   README.md          one command per setup
 *
 * Every setting comes from the run's own TrainConfig (and the plan's loss, EOS and length choices):
 * nothing here has defaults of its own.
 */

export interface ClusterRun {
  /** The run's (and its adapter's) name. */
  name: string;
  /** The base model's Hub id, and the revision when pinned. */
  baseModel: string;
  baseRevision: string | null;
  /** The run's trainer configuration: LoRA, schedule, batch, accumulation, length, decay, clipping, dropout, seed. */
  config: TrainConfig;
  /** How long: optimizer steps, or passes over the examples (train.py counts the examples as the app does). */
  length: { unit: 'steps'; steps: number } | { unit: 'epochs'; epochs: number };
  lossOn: 'all' | 'response';
  appendEos: boolean;
  /** Leave out rows whose text the maximum length would cut (symbol-tuning prompts end with their answer). */
  dropRowsCutByMaxLength: boolean;
  /** The prepared rows: the template already applied, split where the response starts. */
  rows: ReadonlyArray<{ prompt: string; completion: string }>;
  /** The adapter the run continues from (symbol tuning after instruction tuning). */
  initAdapter: AdapterFiles | null;
}

/** What train.py's SETTINGS holds: snake_case, as Python reads it. */
export interface ClusterSettings extends PeftLoraFields {
  name: string;
  base_model: string;
  base_revision: string | null;
  learning_rate: number;
  schedule: 'linear' | 'cosine' | 'constant';
  warmup_steps: number;
  steps: number | null;
  epochs: number | null;
  batch_size: number;
  gradient_accumulation: number;
  max_length: number;
  loss_on: 'all' | 'response';
  append_eos: boolean;
  drop_rows_cut_by_max_length: boolean;
  weight_decay: number;
  max_grad_norm: number;
  /** transformers' optim name: torch's AdamW, or bitsandbytes' 8-bit AdamW for an 8-bit run. */
  optimizer: 'adamw_torch' | 'adamw_bnb_8bit';
  resid_dropout: number;
  seed: number;
  checkpoint_every: number;
}

export function clusterSettings(run: ClusterRun): ClusterSettings {
  const c = run.config;
  return {
    name: run.name,
    base_model: run.baseModel,
    base_revision: run.baseRevision,
    ...peftLoraFields(c.lora),
    learning_rate: c.schedule.lr,
    schedule: c.schedule.kind,
    warmup_steps: c.schedule.warmupSteps,
    steps: run.length.unit === 'steps' ? run.length.steps : null,
    epochs: run.length.unit === 'epochs' ? run.length.epochs : null,
    batch_size: c.batchSize,
    gradient_accumulation: c.gradAccumulation,
    max_length: c.maxLength,
    loss_on: run.lossOn,
    append_eos: run.appendEos,
    drop_rows_cut_by_max_length: run.dropRowsCutByMaxLength,
    weight_decay: c.weightDecay,
    max_grad_norm: c.maxGradNorm,
    optimizer: c.optimizer.kind === 'adamw-8bit' ? 'adamw_bnb_8bit' : 'adamw_torch',
    resid_dropout: c.residDropout,
    seed: c.seed,
    checkpoint_every: c.checkpointEvery,
  };
}

/** A Python literal of JSON-like data (dicts, lists, strings, finite numbers, booleans, None), one key per line. */
export function pythonLiteral(value: unknown, indent = ''): string {
  if (value === null) return 'None';
  if (value === true) return 'True';
  if (value === false) return 'False';
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw new Error(`${value} has no Python literal here`);
    // Learning rates as people write them (2.5e-5, not 0.000025); both are Python float literals.
    if (Number.isInteger(value)) return String(value);
    return Math.abs(value) < 1e-3 ? value.toExponential() : JSON.stringify(value);
  }
  // A JSON string is a valid Python string literal (escapes included).
  if (typeof value === 'string') return JSON.stringify(value);
  if (Array.isArray(value)) return `[${value.map((v) => pythonLiteral(v, indent)).join(', ')}]`;
  if (typeof value === 'object') {
    const inner = `${indent}    `;
    const entries = Object.entries(value as Record<string, unknown>).map(([k, v]) => `${inner}${JSON.stringify(k)}: ${pythonLiteral(v, inner)},`);
    return `{\n${entries.join('\n')}\n${indent}}`;
  }
  throw new Error(`${typeof value} has no Python literal`);
}

/** The rows as TRL prompt-completion JSONL (U+2028/U+2029 escaped: Python's splitlines would break there). */
export function promptCompletionJsonl(rows: ClusterRun['rows']): string {
  return rows.map((r) => JSON.stringify({ prompt: r.prompt, completion: r.completion }).replace(/\u2028/g, '\\u2028').replace(/\u2029/g, '\\u2029')).join('\n') + (rows.length ? '\n' : '');
}

// accelerate's config files, in the keys TRL's examples/accelerate_configs use.
const COMMON = ['compute_environment: LOCAL_MACHINE', 'debug: false', "downcast_bf16: 'no'", 'main_training_function: main', 'rdzv_backend: static', 'same_network: true', 'use_cpu: false'];

// Two machines of 8 GPUs, the first one's address to be set on the cluster (accelerate launch --main_process_ip).
const TWO_NODES = ['machine_rank: 0', 'main_process_ip: 10.0.0.1', 'main_process_port: 29500', 'num_machines: 2', 'num_processes: 16'];

export const ACCELERATE_CONFIGS: Record<string, string> = {
  'single_gpu.yaml': [...COMMON, "distributed_type: 'NO'", "mixed_precision: 'no'", 'gpu_ids: all', 'machine_rank: 0', 'num_machines: 1', 'num_processes: 1'].join('\n') + '\n',
  'multi_gpu.yaml': [...COMMON, 'distributed_type: MULTI_GPU', "mixed_precision: 'no'", 'gpu_ids: all', 'machine_rank: 0', 'num_machines: 1', 'num_processes: 8'].join('\n') + '\n',
  'deepspeed_zero2.yaml': [
    ...COMMON,
    'distributed_type: DEEPSPEED',
    'deepspeed_config:',
    '  offload_optimizer_device: none',
    '  offload_param_device: none',
    '  zero3_init_flag: false',
    '  zero_stage: 2',
    "mixed_precision: 'no'",
    ...TWO_NODES,
  ].join('\n') + '\n',
  'fsdp.yaml': [
    ...COMMON,
    'distributed_type: FSDP',
    'fsdp_config:',
    '  fsdp_version: 2',
    '  fsdp_auto_wrap_policy: TRANSFORMER_BASED_WRAP',
    '  fsdp_transformer_layer_cls_to_wrap: PhiDecoderLayer',
    '  fsdp_cpu_ram_efficient_loading: true',
    '  fsdp_offload_params: false',
    '  fsdp_reshard_after_forward: true',
    '  fsdp_state_dict_type: SHARDED_STATE_DICT',
    '  fsdp_activation_checkpointing: false',
    'mixed_precision: bf16',
    ...TWO_NODES,
  ].join('\n') + '\n',
};

const REQUIREMENTS = ['torch>=2.4', 'transformers>=4.56', 'trl>=0.24', 'peft>=0.17', 'accelerate>=1.10', 'datasets>=3.0', 'deepspeed>=0.16  # only for accelerate/deepspeed_zero2.yaml'];

/** The Python packages; bitsandbytes for an 8-bit run (0.44 and later keep blocks of 256 values). */
export function requirements(s: ClusterSettings): string {
  return [...REQUIREMENTS, ...(s.optimizer === 'adamw_bnb_8bit' ? ['bitsandbytes>=0.44'] : [])].join('\n') + '\n';
}

/** What an 8-bit run's folder says of its optimiser: bitsandbytes' block size is its own, not a setting. */
function eightBitNote(run: ClusterRun): string {
  const o = run.config.optimizer;
  const blocks = o.kind === 'adamw-8bit' ? o.blockSize : 256;
  return (
    "The optimiser is bitsandbytes' 8-bit AdamW (transformers' `adamw_bnb_8bit`), as in the app" +
    (blocks === 256 ? '.' : `; the app's run kept blocks of ${blocks} values, bitsandbytes 0.44 and later use 256 (older versions 2048).`)
  );
}

function readme(run: ClusterRun, s: ClusterSettings): string {
  const length = s.steps !== null ? `${s.steps} optimizer steps` : `${s.epochs} epoch${s.epochs === 1 ? '' : 's'} (train.py counts the steps from the examples, as the app does)`;
  return [
    `# ${run.name}: the same LoRA run on a cluster`,
    '',
    `LoRA on ${run.baseModel}${run.baseRevision ? ` (revision ${run.baseRevision})` : ''}: r ${s.r}, alpha ${s.lora_alpha}${s.use_rslora ? ' (rsLoRA)' : ''}, dropout ${s.lora_dropout}, ` +
      `on ${s.target_modules.join(', ')} of ${s.layers_to_transform ? `layers ${s.layers_to_transform.join(', ')}` : 'every layer'}; learning rate ${s.learning_rate}, ${s.schedule} schedule, ` +
      `${s.warmup_steps} warm-up steps; ${length} of ${s.batch_size} x ${s.gradient_accumulation} sequences of at most ${s.max_length} tokens; ` +
      `loss on ${s.loss_on === 'all' ? 'every token' : 'the response only'}; seed ${s.seed}. ${run.rows.length} rows in train.jsonl.` +
      (run.initAdapter ? ' It continues the adapter in init_adapter/.' : '') +
      (s.optimizer === 'adamw_bnb_8bit' ? ` ${eightBitNote(run)}` : ''),
    '',
    'Every setting is in `SETTINGS` at the top of train.py. The adapter lands in `adapter/` (adapter_config.json +',
    "adapter_model.safetensors): import that folder's two files on the app's Adapters page.",
    '',
    '## Set up (each machine)',
    '',
    '```bash',
    'python -m venv .venv && . .venv/bin/activate && pip install -r requirements.txt',
    '```',
    '',
    '## Run',
    '',
    'One GPU:',
    '',
    '```bash',
    'accelerate launch --config_file accelerate/single_gpu.yaml train.py',
    '```',
    '',
    'Several GPUs of one machine (DDP; set the number of GPUs):',
    '',
    '```bash',
    'accelerate launch --config_file accelerate/multi_gpu.yaml --num_processes 8 train.py',
    '```',
    '',
    'Several machines with DeepSpeed ZeRO-2, on every machine (machine_rank 0 on the first, whose address is',
    'main_process_ip; num_processes counts the GPUs of all machines):',
    '',
    '```bash',
    'accelerate launch --config_file accelerate/deepspeed_zero2.yaml --num_machines 2 --num_processes 16 \\',
    '  --machine_rank $RANK --main_process_ip $MAIN_ADDRESS --main_process_port 29500 train.py',
    '```',
    '',
    'Several machines with FSDP, the same way:',
    '',
    '```bash',
    'accelerate launch --config_file accelerate/fsdp.yaml --num_machines 2 --num_processes 16 \\',
    '  --machine_rank $RANK --main_process_ip $MAIN_ADDRESS --main_process_port 29500 train.py',
    '```',
    '',
    'The run keeps its global batch (batch x accumulation) on any number of processes: train.py divides the',
    'accumulation among them when it can, and says so when it cannot. It trains in bfloat16 where the GPU has it',
    "(float32 otherwise; the FSDP config asks for bf16: set its mixed_precision to 'no' on older GPUs).",
    '',
  ].join('\n');
}

/** Every file of the folder, by path. */
export function clusterRunFiles(run: ClusterRun): Map<string, Uint8Array> {
  if (!run.rows.length) throw new Error('The run has no rows to train on.');
  const settings = clusterSettings(run);
  const files = new Map<string, Uint8Array>([
    ['train.jsonl', strToU8(promptCompletionJsonl(run.rows))],
    ['train.py', strToU8(trainPy(run.name, pythonLiteral(settings)))],
    ['requirements.txt', strToU8(requirements(settings))],
    ['README.md', strToU8(readme(run, settings))],
  ]);
  for (const [name, text] of Object.entries(ACCELERATE_CONFIGS)) files.set(`accelerate/${name}`, strToU8(text));
  if (run.initAdapter) {
    files.set(`init_adapter/${ADAPTER_CONFIG}`, run.initAdapter[ADAPTER_CONFIG]);
    files.set(`init_adapter/${ADAPTER_WEIGHTS}`, run.initAdapter[ADAPTER_WEIGHTS]);
  }
  return files;
}

/** The folder as one .zip under a top folder named after the run. */
export function clusterRunZip(run: ClusterRun, folder: string): Uint8Array {
  const entries: Record<string, Uint8Array> = {};
  for (const [path, bytes] of clusterRunFiles(run)) entries[`${folder}/${path}`] = bytes;
  return zipSync(entries);
}
