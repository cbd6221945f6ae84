/**
 * `npm run cli -- <command> ...`: the engine under Node with Dawn (SwiftShader where there is no GPU).
 * Each command lives in its own module; this file only dispatches.
 */
import { readFile } from 'node:fs/promises';
import { Engine } from '../engine/engine';
import { nodePlatform } from '../engine/platform/node';
import { contrastCommand, CONTRAST_USAGE } from './contrast';
import { exportGgufCommand, EXPORT_GGUF_USAGE } from './adapter-commands';
import { exportRunCommand, EXPORT_RUN_USAGE } from './export-run-command';
import { CliUsageError, scoreCommand, SCORE_USAGE } from './score';
import {
  forwardCommand,
  FORWARD_USAGE,
  generateCommand,
  GENERATE_USAGE,
  loraGradCommand,
  LORA_GRAD_USAGE,
} from './model-commands';
import { trainCommand, TRAIN_USAGE } from './train-command';

/** Runs a command, turning usage errors into exit code 2 with the message, other errors into 1. */
function guarded(run: Command): Command {
  return async (args) => {
    try {
      return await run(args);
    } catch (err) {
      console.error(err instanceof Error ? err.message : err);
      return err instanceof CliUsageError ? 2 : 1;
    }
  };
}

type Command = (args: string[]) => Promise<number>;

const COMMANDS: Record<string, { summary: string; run: Command }> = {
  gpu: {
    summary: 'show the WebGPU adapter, limits and features Dawn finds',
    run: async () => {
      const engine = new Engine(await nodePlatform());
      const status = await engine.gpuStatus();
      console.log(JSON.stringify(status, null, 2));
      return status.state === 'ready' ? 0 : 1;
    },
  },
  forward: { summary: FORWARD_USAGE.replace('usage: ', ''), run: guarded(forwardCommand) },
  generate: { summary: GENERATE_USAGE.replace('usage: ', ''), run: guarded(generateCommand) },
  'lora-grad': { summary: LORA_GRAD_USAGE.replace('usage: ', ''), run: guarded(loraGradCommand) },
  train: { summary: TRAIN_USAGE.replace('usage: ', ''), run: guarded(trainCommand) },
  contrast: { summary: CONTRAST_USAGE.replace('usage: ', ''), run: guarded((args) => contrastCommand(args)) },
  'export-run': { summary: EXPORT_RUN_USAGE.replace('usage: ', ''), run: guarded(exportRunCommand) },
  'export-gguf': { summary: EXPORT_GGUF_USAGE.replace('usage: ', ''), run: guarded(exportGgufCommand) },
  score: {
    summary: `score generations: ${SCORE_USAGE.replace(/^usage: score /, '')}`,
    run: async (args) => {
      try {
        await scoreCommand(args, {
          readFile: (path) => readFile(path, 'utf8'),
          stdout: (text) => process.stdout.write(text),
          stderr: (text) => process.stderr.write(text),
        });
        return 0;
      } catch (err) {
        console.error((err as Error).message);
        return err instanceof CliUsageError ? 2 : 1;
      }
    },
  },
};

function usage(): string {
  const lines = Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(12)} ${c.summary}`);
  return `usage: npm run cli -- <command> [options]\n\ncommands:\n${lines.join('\n')}`;
}

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h') {
    console.log(usage());
    return name ? 0 : 2;
  }
  const command = COMMANDS[name];
  if (!command) {
    console.error(`unknown command "${name}"\n\n${usage()}`);
    return 2;
  }
  return command.run(rest);
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err) => {
    console.error(err instanceof Error ? err.message : err);
    process.exit(1);
  },
);
