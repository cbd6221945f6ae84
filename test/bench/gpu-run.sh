#!/usr/bin/env bash
# The one command a session with a GPU runs on the device machine, from the repository root, with the
# git-ignored .gpu and .bench carried (made by test/bench/gpu-prepare.sh on the development machine):
#
#   bash test/bench/gpu-run.sh [all|webgpu|pytorch] [more bench.mjs options, e.g. --filter model]
#
# PYTORCH_ARGS passes options to reference.py (e.g. "--skip fp32" or "--quick").
# Writes into $OUT (the folder that comes back; ./bench-out elsewhere):
#   webgpu.json, webgpu.log     our engine under Node + Dawn on the GPU (bench.mjs, Phi-2's real shapes)
#   pytorch.json, pytorch.log   the PyTorch + PEFT reference on the same GPU (pytorch/reference.py)
#   rows.md                     the BENCHMARKS.md rows: ours beside PyTorch
#   gpu.txt                     nvidia-smi's view of the GPU
# Both halves together take a few minutes on an H100; each can also run alone (10 minutes a command).
set -uo pipefail
out=${OUT:-bench-out}
mkdir -p "$out"
part=${1:-all}
shift || true
case "$part" in all | webgpu | pytorch) ;; *) echo "usage: $0 [all|webgpu|pytorch] [bench.mjs options]" >&2; exit 2 ;; esac
status=0

nvidia-smi > "$out/gpu.txt" 2>&1 || echo "nvidia-smi failed" >> "$out/gpu.txt"

if [ "$part" != pytorch ]; then
  if [ ! -f .bench/bench.mjs ] || [ ! -f .gpu/enter.sh ]; then
    echo "missing .bench/bench.mjs or .gpu/enter.sh: run test/bench/gpu-prepare.sh first and carry .gpu and .bench" >&2
    exit 2
  fi
  echo "== WebGPU (Dawn) benchmarks" >&2
  bash .gpu/enter.sh node .bench/bench.mjs --out "$out/webgpu.json" "$@" 2>&1 | tee "$out/webgpu.log"
  [ "${PIPESTATUS[0]}" -eq 0 ] || status=1
fi

if [ "$part" != webgpu ]; then
  echo "== PyTorch reference" >&2
  # shellcheck disable=SC2086 # PYTORCH_ARGS is a list of options
  python3 test/bench/pytorch/reference.py ${PYTORCH_ARGS:-} > "$out/pytorch.json" 2> >(tee "$out/pytorch.log" >&2) || status=1
fi

if [ -s "$out/webgpu.json" ] && [ -f .gpu/enter.sh ]; then
  args=(--webgpu "$out/webgpu.json")
  [ -s "$out/pytorch.json" ] && args+=(--pytorch "$out/pytorch.json")
  # enter.sh prints nvidia-smi's line first: keep only the table rows.
  bash .gpu/enter.sh node .bench/bench.mjs report "${args[@]}" | grep '^|' > "$out/rows.md" || status=1
  echo "== rows for BENCHMARKS.md" >&2
  cat "$out/rows.md"
fi
exit $status
