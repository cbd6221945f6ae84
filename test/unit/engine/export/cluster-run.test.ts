import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { unzipSync } from 'fflate';
import { afterAll, describe, expect, it } from 'vitest';
import { exportRunCommand } from '../../../../src/cli/export-run-command';
import { parseFlags } from '../../../../src/cli/args';
import { cliTrainConfig, TRAIN_FLAGS } from '../../../../src/cli/train-command';
import { ADAPTER_CONFIG, ADAPTER_WEIGHTS } from '../../../../src/engine/adapters/files';
import { tokenizeInstructionData } from '../../../../src/engine/data/template';
import { clusterRunFiles, clusterRunZip, type ClusterRun } from '../../../../src/engine/export/cluster-run';
import type { TrainConfig } from '../../../../src/engine/train/trainer';
import { makeAdapter } from '../../../support/adapters';

/**
 * The cluster folder checked with Python itself (python3 and PyYAML): train.py compiles, its SETTINGS
 * equal the run's configuration field by field, its tokenizing gives the app's tokens and labels, the
 * accelerate configs parse as the launchers expect, and train.jsonl holds the prepared rows.
 */

const dir = mkdtempSync(join(tmpdir(), 'cluster-run-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const python = (code: string, ...args: string[]) => execFileSync('python3', ['-c', code, ...args], { encoding: 'utf8' });

/** SETTINGS of a train.py, as Python evaluates the literal. */
function settingsOf(trainPy: string): Record<string, unknown> {
  return JSON.parse(
    python(
      'import ast, json, sys\n' +
        'tree = ast.parse(open(sys.argv[1]).read())\n' +
        'node = next(n for n in tree.body if isinstance(n, ast.Assign) and n.targets[0].id == "SETTINGS")\n' +
        'print(json.dumps(ast.literal_eval(node.value)))',
      trainPy,
    ),
  );
}

function writeAll(files: Map<string, Uint8Array>, into: string): void {
  for (const [path, bytes] of files) {
    mkdirSync(dirname(join(into, path)), { recursive: true });
    writeFileSync(join(into, path), bytes);
  }
}

const CONFIG: TrainConfig = {
  lora: { r: 16, alpha: 24, dropout: 0.07, useRslora: true, targets: ['q_proj', 'dense', 'fc2'], layers: [0, 2, 5] },
  schedule: { kind: 'cosine', lr: 3e-4, warmupSteps: 3, totalSteps: 7 },
  batchSize: 3,
  gradAccumulation: 4,
  maxLength: 77,
  weightDecay: 0.01,
  maxGradNorm: 0.5,
  residDropout: 0.07,
  seed: 1234,
  checkpointEvery: 25,
  maxNonFiniteSteps: 5,
  optimizer: { kind: 'adamw' },
};

const ROWS = [
  { prompt: '### Instruct: Capital of France?\n ### Output: ', completion: 'Paris' },
  { prompt: '### Instruct: Say "hi" \\ twice\n ### Output: ', completion: 'hi hi\nline two\u2028after a separator 🙂' },
  { prompt: '### Instruct: nothing to learn\n ### Output: ', completion: '' },
  { prompt: `### Instruct: ${'many words '.repeat(45)}\n ### Output: `, completion: 'cut off' },
];

const RUN: ClusterRun = {
  name: 'phi-2 "quoted" run',
  baseModel: 'microsoft/phi-2',
  baseRevision: 'ef382358ec9e382308935a992d908de099b64c23',
  config: CONFIG,
  length: { unit: 'steps', steps: 7 },
  lossOn: 'response',
  appendEos: true,
  dropRowsCutByMaxLength: true,
  rows: ROWS,
  initAdapter: null,
};

describe('the cluster run folder', () => {
  const out = join(dir, 'steps');
  writeAll(clusterRunFiles(RUN), out);

  it('has train.py that Python compiles, with SETTINGS equal to the run configuration', () => {
    execFileSync('python3', ['-m', 'py_compile', join(out, 'train.py')]);
    const s = settingsOf(join(out, 'train.py'));
    const c = CONFIG;
    expect(s).toEqual({
      name: RUN.name,
      base_model: 'microsoft/phi-2',
      base_revision: RUN.baseRevision,
      r: c.lora.r,
      lora_alpha: c.lora.alpha,
      lora_dropout: c.lora.dropout,
      use_rslora: true,
      target_modules: ['q_proj', 'dense', 'fc2'],
      layers_to_transform: [0, 2, 5],
      learning_rate: c.schedule.lr,
      schedule: 'cosine',
      warmup_steps: c.schedule.warmupSteps,
      steps: 7,
      epochs: null,
      batch_size: c.batchSize,
      gradient_accumulation: c.gradAccumulation,
      max_length: c.maxLength,
      loss_on: 'response',
      append_eos: true,
      drop_rows_cut_by_max_length: true,
      weight_decay: c.weightDecay,
      max_grad_norm: c.maxGradNorm,
      optimizer: 'adamw_torch',
      resid_dropout: c.residDropout,
      seed: c.seed,
      checkpoint_every: c.checkpointEvery,
    });
    // Every setting reaches TRL or PEFT: each SETTINGS key is read in the script.
    const script = readFileSync(join(out, 'train.py'), 'utf8');
    for (const key of Object.keys(s).filter((k) => k !== 'name')) expect(script, key).toMatch(new RegExp(`s\\["${key}"\\]|SETTINGS\\["${key}"\\]`));
  });

  it("an 8-bit AdamW run trains with bitsandbytes' 8-bit AdamW and says which blocks it keeps", () => {
    for (const blockSize of [256, 2048] as const) {
      const files = clusterRunFiles({ ...RUN, config: { ...CONFIG, optimizer: { kind: 'adamw-8bit', blockSize } } });
      const folder = join(dir, `eight-bit-${blockSize}`);
      writeAll(files, folder);
      expect(settingsOf(join(folder, 'train.py')).optimizer).toBe('adamw_bnb_8bit');
      expect(readFileSync(join(folder, 'requirements.txt'), 'utf8')).toMatch(/^bitsandbytes>=0\.44$/m);
      const readme = readFileSync(join(folder, 'README.md'), 'utf8');
      expect(readme).toContain('adamw_bnb_8bit');
      if (blockSize === 2048) expect(readme).toMatch(/blocks of 2048 values/);
    }
    expect(readFileSync(join(out, 'requirements.txt'), 'utf8')).not.toMatch(/bitsandbytes/);
  });

  it('writes train.jsonl with exactly the prepared rows, in TRL prompt/completion form', () => {
    const lines = readFileSync(join(out, 'train.jsonl'), 'utf8');
    // Python reads it line by line (splitlines would also split at U+2028, so that is escaped).
    const parsed = JSON.parse(python('import json, sys\nprint(json.dumps([json.loads(l) for l in open(sys.argv[1], encoding="utf-8").read().splitlines()]))', join(out, 'train.jsonl')));
    expect(parsed).toEqual(ROWS);
    expect(lines.split('\n').filter(Boolean)).toHaveLength(4);
  });

  it('has accelerate configs for one GPU, DDP, DeepSpeed ZeRO-2 and FSDP that parse', () => {
    const configs = JSON.parse(
      python('import json, sys, yaml\nprint(json.dumps({p: yaml.safe_load(open(p)) for p in sys.argv[1:]}))', ...['single_gpu', 'multi_gpu', 'deepspeed_zero2', 'fsdp'].map((n) => join(out, 'accelerate', `${n}.yaml`))),
    );
    const get = (n: string) => configs[join(out, 'accelerate', `${n}.yaml`)];
    expect(get('single_gpu')).toMatchObject({ distributed_type: 'NO', num_processes: 1, num_machines: 1 });
    expect(get('multi_gpu')).toMatchObject({ distributed_type: 'MULTI_GPU', num_machines: 1 });
    expect(get('deepspeed_zero2')).toMatchObject({ distributed_type: 'DEEPSPEED', deepspeed_config: { zero_stage: 2 }, num_machines: 2, main_process_port: 29500 });
    expect(get('fsdp')).toMatchObject({ distributed_type: 'FSDP', fsdp_config: { fsdp_transformer_layer_cls_to_wrap: 'PhiDecoderLayer' }, num_machines: 2 });
    for (const c of Object.values(configs) as Array<Record<string, unknown>>) expect(c.compute_environment).toBe('LOCAL_MACHINE');
    const readme = readFileSync(join(out, 'README.md'), 'utf8');
    for (const n of ['single_gpu', 'multi_gpu', 'deepspeed_zero2', 'fsdp']) expect(readme).toContain(`accelerate launch --config_file accelerate/${n}.yaml`);
  });

  it("tokenizes in Python exactly as the app does (the same tokens and the same masked prompt)", () => {
    // A toy BPE-like tokenizer in both languages: words with their leading space, so "Output: " + "Paris"
    // merges across the prompt/completion boundary as Phi-2's tokenizer does.
    const vocabulary = (t: string) => [...t].reduce((h, ch) => (h * 31 + ch.codePointAt(0)!) % 50000, 7);
    const toy = { encode: (text: string) => (text.match(/ ?[^ ]+| +$/gu) ?? []).map(vocabulary) };
    const app = tokenizeInstructionData(
      ROWS.map((r) => ({ question: r.prompt, response: r.completion })),
      toy,
      '{question}{response}',
      { maxTokens: CONFIG.maxLength, lossOn: 'response', eosTokenId: 50256 },
    ).rows.map((r, i) => ({
      input_ids: r.input_ids,
      mask: r.labels.map((l) => (l === -100 ? 0 : 1)),
      // What the Train page leaves out of symbol-tuning data: the text alone longer than the maximum.
      cut: toy.encode(ROWS[i].prompt + ROWS[i].completion).length > CONFIG.maxLength,
    }));
    const py = JSON.parse(
      python(
        'import ast, json, re, sys\n' +
          'src = open(sys.argv[1]).read()\n' +
          'tree = ast.parse(src)\n' +
          'ns = {}\n' +
          'for n in tree.body:\n' +
          '    if (isinstance(n, ast.Assign) and n.targets[0].id == "SETTINGS") or (isinstance(n, ast.FunctionDef) and n.name == "tokenize"):\n' +
          '        exec(compile(ast.Module([n], []), "train.py", "exec"), ns)\n' +
          'def vocabulary(t):\n' +
          '    h = 7\n' +
          '    for ch in t: h = (h * 31 + ord(ch)) % 50000\n' +
          '    return h\n' +
          'class Toy:\n' +
          '    eos_token_id = 50256\n' +
          '    def __call__(self, text, add_special_tokens=True):\n' +
          '        return {"input_ids": [vocabulary(t) for t in re.findall(r" ?[^ ]+| +$", text)]}\n' +
          'rows = [json.loads(l) for l in open(sys.argv[2], encoding="utf-8").read().splitlines()]\n' +
          'out = [ns["tokenize"](r, Toy()) for r in rows]\n' +
          'print(json.dumps([{"input_ids": o["input_ids"], "mask": o["completion_mask"], "cut": o["cut"]} for o in out]))',
        join(out, 'train.py'),
        join(out, 'train.jsonl'),
      ),
    );
    expect(py).toEqual(app);
    expect(app.map((r) => r.cut)).toEqual([false, false, false, true]);
    expect(app[3].input_ids).toHaveLength(CONFIG.maxLength);
    // The boundary token " Paris" is trained; the prompt's last word is not.
    expect(app[0].mask.slice(-3)).toEqual([0, 1, 1]);
  });

  it('writes epochs when the run is measured in epochs, and carries the adapter a run continues', () => {
    const init = makeAdapter(3);
    const files = clusterRunFiles({ ...RUN, length: { unit: 'epochs', epochs: 2.5 }, lossOn: 'all', appendEos: false, initAdapter: init });
    const out2 = join(dir, 'epochs');
    writeAll(files, out2);
    const s = settingsOf(join(out2, 'train.py'));
    expect(s).toMatchObject({ steps: null, epochs: 2.5, loss_on: 'all', append_eos: false });
    expect(Buffer.from(files.get(`init_adapter/${ADAPTER_WEIGHTS}`)!).equals(Buffer.from(init[ADAPTER_WEIGHTS]))).toBe(true);
    expect(files.get(`init_adapter/${ADAPTER_CONFIG}`)).toEqual(init[ADAPTER_CONFIG]);
    const zip = unzipSync(clusterRunZip(RUN, 'my-run'));
    expect(Object.keys(zip).sort()).toEqual(
      ['README.md', 'accelerate/deepspeed_zero2.yaml', 'accelerate/fsdp.yaml', 'accelerate/multi_gpu.yaml', 'accelerate/single_gpu.yaml', 'requirements.txt', 'train.jsonl', 'train.py'].map((p) => `my-run/${p}`),
    );
  });

  it('export-run writes the folder train would train with the same flags', async () => {
    const data = join(dir, 'rows.jsonl');
    writeFileSync(data, ['{"question":"2+2?","response":"4"}', '{"question":"Capital of France?","response":"Paris"}', '{"question":"Sky colour?","response":"Blue"}'].join('\n'));
    const flags = ['--steps', '9', '--batch', '2', '--accumulation', '3', '--lr', '1e-4', '--r', '8', '--alpha', '16', '--rslora', 'true', '--targets', 'q_proj,fc2',
      '--loss-on', 'response', '--max-length', '64', '--seed', '5', '--schedule', 'cosine', '--warmup', '2', '--weight-decay', '0.1', '--clip', '0.5'];
    const out = join(dir, 'cli-run');
    const model = join(import.meta.dirname, '../../../../../shared/fixtures/tiny-phi');
    expect(await exportRunCommand(['--data', data, '--out', out, '--model', model, '--base-model', 'microsoft/phi-2', ...flags])).toBe(0);
    execFileSync('python3', ['-m', 'py_compile', join(out, 'train.py')]);
    // The run's configuration, as train computes it from the same flags (tiny-phi's resid_pdrop 0.1).
    const c = cliTrainConfig(parseFlags(flags, TRAIN_FLAGS, ''), 3, 0.1);
    expect(settingsOf(join(out, 'train.py'))).toEqual({
      name: 'cli-run',
      base_model: 'microsoft/phi-2',
      base_revision: 'ef382358ec9e382308935a992d908de099b64c23',
      r: 8,
      lora_alpha: 16,
      lora_dropout: c.lora.dropout,
      use_rslora: true,
      target_modules: ['q_proj', 'fc2'],
      layers_to_transform: null,
      learning_rate: 1e-4,
      schedule: 'cosine',
      warmup_steps: 2,
      steps: 9,
      epochs: null,
      batch_size: 2,
      gradient_accumulation: 3,
      max_length: 64,
      loss_on: 'response',
      append_eos: false,
      drop_rows_cut_by_max_length: false,
      weight_decay: 0.1,
      max_grad_norm: 0.5,
      optimizer: 'adamw_torch',
      resid_dropout: c.residDropout,
      seed: 5,
      checkpoint_every: 0,
    });
    expect(c).toMatchObject({ batchSize: 2, gradAccumulation: 3, seed: 5, maxGradNorm: 0.5, weightDecay: 0.1 });
    const rows = readFileSync(join(out, 'train.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(rows).toEqual([
      { prompt: '### Instruct: 2+2?\n ### Output: ', completion: '4' },
      { prompt: '### Instruct: Capital of France?\n ### Output: ', completion: 'Paris' },
      { prompt: '### Instruct: Sky colour?\n ### Output: ', completion: 'Blue' },
    ]);

    // The paper's symbol-tuning preset continues an adapter: it travels in init_adapter/, its LoRA kept; epochs by default.
    const from = join(dir, 'from');
    mkdirSync(from);
    const base = makeAdapter(9, { r: 4, alpha: 8, dropout: 0, useRslora: false, targets: ['q_proj', 'v_proj', 'fc1'], layers: 'all' }, { hidden: 64, intermediate: 256, layers: 2 });
    writeFileSync(join(from, ADAPTER_CONFIG), base[ADAPTER_CONFIG]);
    writeFileSync(join(from, ADAPTER_WEIGHTS), base[ADAPTER_WEIGHTS]);
    const out2 = join(dir, 'cli-symbol');
    expect(await exportRunCommand(['--data', data, '--out', out2, '--model', model, '--preset', 'symbol', '--from', from])).toBe(0);
    const s = settingsOf(join(out2, 'train.py'));
    expect(s).toMatchObject({ r: 4, lora_alpha: 8, target_modules: ['q_proj', 'v_proj', 'fc1'], steps: null, epochs: 1, base_model: 'microsoft/phi-2' });
    expect(readFileSync(join(out2, 'init_adapter', ADAPTER_WEIGHTS)).equals(Buffer.from(base[ADAPTER_WEIGHTS]))).toBe(true);
    await expect(exportRunCommand(['--data', data, '--out', out2, '--preset', 'symbol'])).rejects.toThrow(/--from ADAPTER_DIR/);
    await expect(exportRunCommand(['--data', data, '--out', out2, '--bogus', '1'])).rejects.toThrow(/unknown option --bogus/);
  });
});
