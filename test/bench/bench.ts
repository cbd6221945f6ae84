/**
 * `npm run bench`: benchmarks under Node on Dawn. Bundled into one file (`vite build --mode node`, into
 * .bench/bench.mjs) so it runs on the GPU machine with only Dawn beside it:
 *   bash .gpu/enter.sh node .bench/bench.mjs [--out results.json] [--filter text]
 * On SwiftShader the numbers only prove the harness; the figures that count come from a real GPU.
 */
import { writeFileSync } from 'node:fs';
import { formatTable, openBenchGpu, runCase, type BenchCase, type BenchRow } from './harness';
import { layernormCases } from './kernels.bench';

const args = process.argv.slice(2);
const flag = (name: string) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
};

async function main(): Promise<void> {
  const env = await openBenchGpu();
  const swiftshader = /swiftshader/i.test(env.describe);
  console.log(`GPU: ${env.describe}${swiftshader ? ' (CPU emulation: numbers prove the harness only)' : ''}`);
  const filter = flag('--filter');
  const cases: BenchCase[] = [...layernormCases()].filter((c) => !filter || c.name.includes(filter));
  const rows: BenchRow[] = [];
  for (const c of cases) {
    rows.push(await runCase(env, c, swiftshader ? 3 : 20, swiftshader ? 1 : 3));
    console.log(`  ${c.name}: ${rows.at(-1)!.ms.toFixed(3)} ms`);
  }
  console.log('\n' + formatTable(rows));
  const out = flag('--out');
  if (out) writeFileSync(out, JSON.stringify({ gpu: env.describe, date: new Date().toISOString(), rows }, null, 2));
  env.profiler?.destroy();
  env.gpu.device.destroy();
}

main().then(
  () => process.exit(0),
  (err) => {
    console.error(err);
    process.exit(1);
  },
);
