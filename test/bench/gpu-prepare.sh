#!/usr/bin/env bash
# Run on the development machine before a session's GPU run: bundles the benchmarks into .bench/,
# records the commit measured, and packs Node + Dawn into .gpu/ (../shared/gpu/README.md). Then hand
# the device machine the one command, carrying the two git-ignored folders:
#   run(command="bash test/bench/gpu-run.sh", carry=[".gpu", ".bench"])
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
shared=${SHARED_DIR:-../shared}

# Stale chunks of earlier builds would travel too (the carried tree must stay under 64 MiB).
rm -rf .bench/assets .bench/browser
npx vite build --mode node --logLevel warn
commit=$(git rev-parse HEAD)
if [ -n "$(git status --porcelain --untracked-files=no)" ]; then commit="$commit-dirty"; fi
echo "$commit" > .bench/commit

[ -f .gpu/enter.sh ] && [ -f .gpu/dawn.node.xz ] || bash "$shared/gpu/prepare.sh"

# The bench bundle must not pull in @huggingface/transformers (nor its ONNX runtime): follow
# bench.mjs's relative imports, static and dynamic, through the shared chunks.
node -e '
const { readFileSync } = require("node:fs");
const { dirname, resolve } = require("node:path");
const seen = new Set();
const visit = (file) => {
  if (seen.has(file)) return;
  seen.add(file);
  const text = readFileSync(file, "utf8");
  if (/from\s*["\x27](@huggingface\/transformers|onnxruntime[^"\x27]*)["\x27]/.test(text)) {
    console.error(`${file} imports @huggingface/transformers or onnxruntime; the bench bundle must not`);
    process.exit(1);
  }
  for (const m of text.matchAll(/(?:from|import\()\s*["\x27](\.{1,2}\/[^"\x27]+)["\x27]/g)) visit(resolve(dirname(file), m[1]));
};
visit(resolve(".bench/bench.mjs"));
console.log(`bench bundle: ${seen.size} files, none imports @huggingface/transformers`);
'
size=$(du -smc .gpu .bench | tail -1 | cut -f1)
du -sh .gpu .bench
echo "commit $commit; carried: ${size} MiB of the 64 MiB limit"
if [ "$size" -ge 64 ]; then echo "too large to carry" >&2; exit 1; fi
echo 'next: run(command="bash test/bench/gpu-run.sh", carry=[".gpu", ".bench"]), then'
echo '  node .bench/bench.mjs report --webgpu <files_at>/webgpu.json --pytorch <files_at>/pytorch.json --append BENCHMARKS.md'
