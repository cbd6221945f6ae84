import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { ADAPTER_CONFIG } from '../engine/adapters/files';
import { validateLoraSettings } from '../shared/lora';
import { parseAdapterConfig } from '../engine/adapters/peft';
import { clusterRunFiles, type ClusterRun } from '../engine/export/cluster-run';
import { PAPER_TRAINING } from '../shared/paper-training';
import { parsePhiConfig } from '../engine/weights/config';
import { PHI2_CONFIG_JSON } from '../shared/presets';
import { PHI2_REPO, PHI2_REVISION } from '../shared/hub';
import { readAdapterFolder } from './adapter-commands';
import { CliUsageError, numberFlag, parseFlags, required } from './args';
import { cliTrainConfig, lossOnFlag, readTrainingRows, TRAIN_FLAGS, TRAIN_USAGE } from './train-command';

/**
 * `export-run`: the run `train` would make with the same flags, written as a folder for TRL + PEFT under
 * accelerate (engine/export/cluster-run.ts) instead of trained here. No GPU: --model is read for its
 * config.json only (the base model's Hub id, its dropout and layer count); without it, Phi-2.
 */

export const EXPORT_RUN_USAGE = [
  'usage: export-run --data FILE --out DIR [--model DIR] [--base-model HUB_ID --revision REV] [the options of train]',
  '  writes train.jsonl, train.py, accelerate configs (one GPU, DDP, DeepSpeed ZeRO-2, FSDP) and a README to DIR',
  `  --base-model: the Hub id train.py fine-tunes (default: --model's config.json _name_or_path when it is one, else ${PHI2_REPO})`,
  TRAIN_USAGE.replace(/^usage: train[^\n]*\n/, ''),
].join('\n');

/** config.json of --model, or Phi-2's, and the Hub id and revision train.py should load. */
function baseOf(f: Map<string, string>): { config: ReturnType<typeof parsePhiConfig>; repo: string; revision: string | null } {
  const dir = f.get('model');
  let raw: Record<string, unknown> = PHI2_CONFIG_JSON;
  if (dir) {
    try {
      raw = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
    } catch (err) {
      throw new CliUsageError(`cannot read ${join(dir, 'config.json')}: ${(err as Error).message}`);
    }
  }
  const config = parsePhiConfig(raw);
  const named = typeof raw._name_or_path === 'string' && /^[\w.-]+\/[\w.-]+$/.test(raw._name_or_path) ? raw._name_or_path : null;
  const repo = f.get('base-model') ?? named ?? PHI2_REPO;
  const revision = f.get('revision') ?? (repo === PHI2_REPO ? PHI2_REVISION : null);
  return { config, repo, revision };
}

export async function exportRunCommand(args: string[]): Promise<number> {
  const f = parseFlags(args, [...TRAIN_FLAGS, 'base-model', 'revision'], EXPORT_RUN_USAGE);
  const dataPath = required(f, 'data', EXPORT_RUN_USAGE);
  const outDir = required(f, 'out', EXPORT_RUN_USAGE);
  if (f.get('preset') === 'symbol' && !f.has('from')) throw new CliUsageError('--preset symbol continues an instruction adapter: give it with --from ADAPTER_DIR');
  const lossOn = lossOnFlag(f);
  const base = baseOf(f);
  const rows = readTrainingRows(f, dataPath, 'count');
  const shapes = { hidden: base.config.hiddenSize, intermediate: base.config.intermediateSize, layers: base.config.numLayers };
  const initAdapter = f.has('from') ? readAdapterFolder(f.get('from')!) : null;
  const from = initAdapter ? parseAdapterConfig(JSON.parse(new TextDecoder().decode(initAdapter[ADAPTER_CONFIG])), ADAPTER_CONFIG, shapes) : null;
  const config = cliTrainConfig(f, rows.length, base.config.residPdrop, from);
  const problems = validateLoraSettings(config.lora, base.config.numLayers);
  if (problems.length) throw new CliUsageError(problems.join(' '));
  const run: ClusterRun = {
    name: outDir.replace(/[/\\]+$/, '').split(/[/\\]/).pop() || 'run',
    baseModel: base.repo,
    baseRevision: base.revision,
    config,
    // As train counts it: --steps, else epochs (train.py counts the steps from its examples, as the app does).
    length: f.has('steps') ? { unit: 'steps', steps: config.schedule.totalSteps } : { unit: 'epochs', epochs: numberFlag(f, 'epochs', PAPER_TRAINING.epochs) },
    lossOn,
    appendEos: false,
    dropRowsCutByMaxLength: false,
    rows,
    initAdapter,
  };
  const files = clusterRunFiles(run);
  for (const [path, bytes] of files) {
    mkdirSync(dirname(join(outDir, path)), { recursive: true });
    writeFileSync(join(outDir, path), bytes);
  }
  console.error(`wrote ${files.size} files to ${outDir}: ${rows.length} rows, train.py for ${base.repo}; ${join(outDir, 'README.md')} has the command for each setup`);
  return 0;
}
