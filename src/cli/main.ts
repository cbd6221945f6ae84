/**
 * `npm run cli -- <command> ...`: the engine under Node with Dawn (SwiftShader where there is no GPU).
 * Each command lives in its own module; this file only dispatches.
 */
import { nodePlatform } from '../engine/platform/node';
import { Engine } from '../engine/engine';

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
