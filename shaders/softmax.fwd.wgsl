// Log-softmax over each row (the vocabulary), one workgroup per row, with lib/row_reduce.wgsl and
// lib/row_logits.wgsl prepended: lse = max + log(sum(exp(x - max))) (row_logsumexp), then
// out = x - lse. Logits must be finite.

struct Params {
  rows: u32,
  cols: u32,
  grid_x: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<storage, read_write> lse: array<f32>;
@group(0) @binding(3) var<storage, read> logits: array<f32>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let row = wid.x + wid.y * p.grid_x;
  if (row >= p.rows) { return; } // uniform across the workgroup
  let base = row * p.cols;
  let row_lse = row_logsumexp(lid, base, p.cols);
  for (var c = lid; c < p.cols; c += WG) { out[base + c] = logits[base + c] - row_lse; }
  if (lid == 0u) { lse[row] = row_lse; }
}
