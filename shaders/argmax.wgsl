// Argmax of each row, one workgroup per row (lib/row_reduce.wgsl and lib/row_logits.wgsl prepended):
// the first index of the largest value on ties, like torch.argmax. Logits must not be NaN. Only the first `valid` columns are candidates (a vocabulary's ids the
// tokenizer can decode; the lm_head may have more rows).

struct Params {
  rows: u32,
  cols: u32,
  grid_x: u32,
  valid: u32, // 1 <= valid <= cols
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> ids: array<u32>;
@group(0) @binding(2) var<storage, read> logits: array<f32>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let row = wid.x + wid.y * p.grid_x;
  if (row >= p.rows) { return; } // uniform across the workgroup
  let best = row_argmax(lid, row * p.cols, p.valid);
  if (lid == 0u) { ids[row] = best.index; }
}
