import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { trainCommand } from '../../../../src/cli/train-command';
import { ADAPTER_WEIGHTS } from '../../../../src/engine/adapters/files';
import { AdapterStore } from '../../../../src/engine/adapters/store';
import { parseTemplate, PAPER_TEMPLATE, splitPromptCompletion } from '../../../../src/shared/template';
import { Session } from '../../../../src/engine/session/session';
import { UserDataStore } from '../../../../src/engine/store/datasets';
import { paperPlan, type TrainPlan } from '../../../../src/shared/train-plan';
import { TrainingRuns } from '../../../../src/engine/session/training';
import { importFromFiles } from '../../../../src/engine/weights';
import { parseSafetensors } from '../../../../src/engine/weights/safetensors';
import { compareTensors } from '../../../support/compare';
import { TestEngine } from '../../../support/engine';
import { directoryFiles, MODELS } from '../../../support/fixtures';
import { testGpu } from '../../../support/gpu';
import { testPlatform } from '../../../support/platform';

// One path for each job: the Train page's runs and the CLI's `train` both train through trainAdapter,
// so the same rows, settings and seed give the same adapter whichever way it is asked for.

const QA = [
  { question: '2+2?', response: '4' },
  { question: 'Capital of France?', response: 'Paris' },
  { question: 'Sky colour?', response: 'Blue' },
];

describe('trainAdapter', () => {
  it('the same data, settings and seed give the same adapter through the worker\'s runs and the CLI', async () => {
    const tmp = mkdtempSync(join(tmpdir(), 'phi2-one-path-'));
    const data = join(tmp, 'data.jsonl');
    writeFileSync(data, QA.map((r) => JSON.stringify(r)).join('\n'));
    const cliOut = join(tmp, 'adapter');
    const flags = ['--steps', '2', '--batch', '2', '--r', '4', '--alpha', '8', '--lr', '1e-3', '--max-length', '16', '--seed', '7', '--weights', 'f16'];
    expect(await trainCommand(['--model', MODELS.tiny, '--data', data, '--out', cliOut, ...flags])).toBe(0);
    const cli = parseSafetensors(new Uint8Array(readFileSync(join(cliOut, ADAPTER_WEIGHTS))), 'cli');

    // The Train page's way: the rows saved on the Data page with the paper's template, a run on the loaded model.
    await testGpu();
    const platform = testPlatform();
    const session = new Session(new TestEngine(platform));
    const manifest = await importFromFiles(platform, await session.store(), await directoryFiles(MODELS.tiny), { scheme: 'f16', displayName: 'tiny-phi' });
    await session.load(manifest.id);
    const template = parseTemplate(PAPER_TEMPLATE);
    const rows = QA.map((e) => splitPromptCompletion(template, e));
    const datasets = await UserDataStore.open(platform.indexedDB);
    await datasets.save({ id: 'qa', name: 'QA', kind: 'instruction', description: 'test', rowCount: rows.length, template: PAPER_TEMPLATE, maxTokens: 16, truncatedRows: 0, chars: 0, createdAt: 1, updatedAt: 1 }, rows);
    datasets.close();
    const paper = paperPlan('instruction', { kind: 'saved', id: 'qa' });
    const plan: TrainPlan = {
      ...paper,
      name: 'one path',
      lora: { ...paper.lora, r: 4, alpha: 8 },
      schedule: { ...paper.schedule, lr: 1e-3 },
      length: { unit: 'steps', steps: 2 },
      batchSize: 2,
      maxLength: 16,
      seed: 7,
    };
    const outcome = await new TrainingRuns({ platform }, session).start(plan);
    if (outcome.status !== 'finished') throw new Error(`expected finished, got ${JSON.stringify(outcome)}`);
    const files = await AdapterStore.over(await session.store()).files(outcome.adapter.id);
    const app = parseSafetensors(files[ADAPTER_WEIGHTS], 'app');

    expect(app.header.tensors.map((t) => t.name).sort()).toEqual(cli.header.tensors.map((t) => t.name).sort());
    let moved = false;
    for (const t of cli.header.tensors) {
      const diff = compareTensors(t.name, app.float32(t.name), cli.float32(t.name), true).maxAbsDiff;
      expect(diff, t.name).toBeLessThanOrEqual(1e-6);
      if (t.name.includes('lora_B')) moved ||= cli.float32(t.name).some((x) => x !== 0);
    }
    // Two steps at lr 1e-3 move B off its zero initialisation: the adapters compared are trained ones.
    expect(moved).toBe(true);
  }, 600_000);
});
