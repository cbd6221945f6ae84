import { describe, expect, it } from 'vitest';
import { parseFlags } from '../../../../src/cli/args';
import { cliTrainConfig, trainCommand, TRAIN_USAGE } from '../../../../src/cli/train-command';
import { LORA_TARGETS, PAPER_LORA } from '../../../../src/shared/lora';
import { DEFAULT_MAX_TOKENS } from '../../../../src/shared/data-limits';
import { paperTrainConfig } from '../../../../src/engine/train/paper';
import { APP_TRAINING_CHOICES, PAPER_TRAINING, stepsForEpochs } from '../../../../src/shared/paper-training';
import { trainConfigOf } from '../../../../src/engine/train/plan';
import { paperPlan, planProblems } from '../../../../src/shared/train-plan';

const EXAMPLES = 1001;
const RESID = 0.1;
const flags = (...args: string[]) =>
  parseFlags(args, ['preset', 'steps', 'epochs', 'batch', 'lr', 'r', 'alpha', 'lora-dropout', 'targets', 'seed', 'max-length', 'warmup', 'from', 'optimizer', 'block-size', 'padding'], TRAIN_USAGE);

describe("the paper's training settings", () => {
  it('are the values of section 5, defined once', () => {
    // Literal numbers on purpose: changing the definition must fail here.
    expect(PAPER_TRAINING).toEqual({
      lora: { r: 64, alpha: 64, dropout: 0.05, useRslora: false, targets: ['q_proj', 'k_proj', 'v_proj', 'dense', 'fc1', 'fc2'], layers: 'all' },
      learningRate: 2.5e-5,
      maxLength: 512,
      epochs: 1,
      batchSize: { instruction: 2, symbol: 4 },
      lossOn: 'all',
      optimizer: 'adamw-8bit',
    });
    expect(PAPER_TRAINING.lora).toBe(PAPER_LORA);
    expect(PAPER_LORA.targets).toEqual([...LORA_TARGETS]);
    expect(DEFAULT_MAX_TOKENS).toBe(PAPER_TRAINING.maxLength);
    expect(APP_TRAINING_CHOICES).toMatchObject({ schedule: 'linear', warmupSteps: 0, weightDecay: 0, maxGradNorm: 1, seed: 42, gradAccumulation: 1 });
  });

  for (const preset of ['instruction', 'symbol'] as const) {
    it(`${preset}: the Train page preset, the CLI defaults and paperTrainConfig are the same run`, () => {
      const want = paperTrainConfig(preset, EXAMPLES, RESID);
      expect(want).toMatchObject({
        batchSize: PAPER_TRAINING.batchSize[preset],
        gradAccumulation: 1,
        maxLength: 512,
        schedule: { kind: 'linear', lr: 2.5e-5, warmupSteps: 0, totalSteps: Math.ceil(EXAMPLES / PAPER_TRAINING.batchSize[preset]) },
        lora: PAPER_LORA,
      });
      // The page: the preset's plan, one epoch over the same examples.
      const plan = paperPlan(preset, { kind: 'demo' }, preset === 'symbol' ? 'instruction-adapter' : null);
      expect(plan.length).toEqual({ unit: 'epochs', epochs: 1 });
      expect(plan.lossOn).toBe('all');
      expect(trainConfigOf(plan, EXAMPLES, RESID)).toEqual(want);
      // The CLI with nothing but the preset (the checkpoint interval is the app's: the CLI keeps none).
      expect(cliTrainConfig(flags('--preset', preset), EXAMPLES, RESID)).toEqual({ ...want, checkpointEvery: 0 });
    });
  }

  it('the CLI defaults to instruction tuning, counts epochs rather than steps, and lets every flag change its setting', () => {
    expect(cliTrainConfig(flags(), EXAMPLES, RESID)).toEqual({ ...paperTrainConfig('instruction', EXAMPLES, RESID), checkpointEvery: 0 });
    expect(cliTrainConfig(flags('--epochs', '2', '--batch', '3'), 10, RESID).schedule.totalSteps).toBe(stepsForEpochs(2, 10, 3, 1));
    expect(cliTrainConfig(flags('--epochs', '2', '--batch', '3'), 10, RESID).schedule.totalSteps).toBe(7);
    const c = cliTrainConfig(flags('--steps', '5', '--lr', '1e-4', '--r', '8', '--alpha', '16', '--targets', 'fc1,q_proj', '--seed', '7', '--max-length', '64', '--warmup', '9'), EXAMPLES, RESID);
    expect(c).toMatchObject({ schedule: { lr: 1e-4, totalSteps: 5, warmupSteps: 5 }, lora: { r: 8, alpha: 16, targets: ['q_proj', 'fc1'] }, seed: 7, maxLength: 64 });
    expect(() => cliTrainConfig(flags('--steps', '5', '--epochs', '1'), EXAMPLES, RESID)).toThrow(/--epochs or --steps, not both/);
    expect(() => cliTrainConfig(flags('--preset', 'flan'), EXAMPLES, RESID)).toThrow(/--preset must be instruction or symbol/);
    expect(() => cliTrainConfig(flags('--targets', 'q_proj,lm_head'), EXAMPLES, RESID)).toThrow(/unknown modules lm_head/);
  });

  it('runs pad to planned buckets, page and CLI alike; --padding longest pads each batch to its longest, as runs before buckets did', () => {
    expect(paperTrainConfig('instruction', EXAMPLES, RESID).padding).toBe('buckets');
    expect(trainConfigOf(paperPlan('symbol', { kind: 'demo' }), EXAMPLES, RESID).padding).toBe('buckets');
    expect(cliTrainConfig(flags(), EXAMPLES, RESID).padding).toBe('buckets');
    expect(cliTrainConfig(flags('--padding', 'longest'), EXAMPLES, RESID).padding).toBe('longest');
    expect(() => cliTrainConfig(flags('--padding', 'max'), EXAMPLES, RESID)).toThrow(/--padding must be buckets or longest, got "max"/);
  });

  it("f32 AdamW is the app's default everywhere; the paper's 8-bit AdamW is an option of the page and the CLI", () => {
    expect(paperTrainConfig('instruction', EXAMPLES, RESID).optimizer).toEqual({ kind: 'adamw' });
    expect(paperPlan('symbol', { kind: 'demo' }).optimizer).toEqual({ kind: 'adamw' });
    expect(cliTrainConfig(flags('--optimizer', 'adamw-8bit'), EXAMPLES, RESID).optimizer).toEqual({ kind: 'adamw-8bit', blockSize: 256 });
    expect(cliTrainConfig(flags('--optimizer', 'adamw-8bit', '--block-size', '2048'), EXAMPLES, RESID).optimizer).toEqual({ kind: 'adamw-8bit', blockSize: 2048 });
    expect(() => cliTrainConfig(flags('--optimizer', 'adamw-8bit', '--block-size', '512'), EXAMPLES, RESID)).toThrow(/--block-size must be 256 or 2048, got 512/);
    expect(() => cliTrainConfig(flags('--block-size', '256'), EXAMPLES, RESID)).toThrow(/--block-size is for --optimizer adamw-8bit/);
    expect(() => cliTrainConfig(flags('--optimizer', 'sgd'), EXAMPLES, RESID)).toThrow(/--optimizer must be adamw or adamw-8bit/);
    const plan = { ...paperPlan('instruction', { kind: 'demo' }), optimizer: { kind: 'adamw-8bit' as const, blockSize: 2048 as const } };
    expect(trainConfigOf(plan, EXAMPLES, RESID).optimizer).toEqual({ kind: 'adamw-8bit', blockSize: 2048 });
    // A plan saved before the option existed (in a checkpoint's run meta) trains with f32 moments.
    const { optimizer: _o, ...older } = paperPlan('instruction', { kind: 'demo' });
    expect(trainConfigOf(older, EXAMPLES, RESID).optimizer).toEqual({ kind: 'adamw' });
    expect(planProblems({ ...plan, optimizer: { kind: 'adamw-8bit', blockSize: 100 as never } }, null)).toContain('8-bit AdamW needs a block size of 256 or 2048 (got 100).');
  });

  it('the CLI keeps the rank, alpha and targets of an adapter it continues', () => {
    const base = { ...PAPER_LORA, r: 16, alpha: 32, targets: ['q_proj' as const, 'v_proj' as const] };
    expect(cliTrainConfig(flags('--preset', 'symbol'), EXAMPLES, RESID, base).lora).toEqual({ ...base, dropout: 0.05 });
    expect(() => cliTrainConfig(flags('--preset', 'symbol', '--r', '64'), EXAMPLES, RESID, base)).toThrow(/keeps its r 16, alpha 32/);
  });

  it('the CLI refuses symbol tuning without an adapter to continue, before loading anything', async () => {
    await expect(trainCommand(['--model', 'm', '--data', 'd', '--out', 'o', '--preset', 'symbol'])).rejects.toThrow(/--preset symbol continues an instruction adapter: give it with --from ADAPTER_DIR/);
  });

  it("the CLI usage states the paper's values and marks the app's choices", () => {
    expect(TRAIN_USAGE).toContain('--preset instruction|symbol (instruction: batch 2; symbol: batch 4');
    expect(TRAIN_USAGE).toContain('--epochs X (1, or --steps N)');
    expect(TRAIN_USAGE).toContain('--lr X (2.5e-5)');
    expect(TRAIN_USAGE).toMatch(/where the paper is silent, the app's choices[^\n]*\n[^\n]*--warmup N \(0\)[^\n]*--weight-decay X \(0\)[^\n]*--clip X \(1, 0: off\)\n[^\n]*--seed N \(42\)/);
  });
});
