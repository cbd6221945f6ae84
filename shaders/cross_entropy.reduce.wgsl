// Fused lm_head + cross-entropy forward, pass 2 of 2 (lib/row_reduce.wgsl prepended), one workgroup
// per row: merges the row's tile partials (max, sum of exp) into lse = logsumexp(logits[row, :]), and
// turns the target logit that pass 1 left in row_loss into row_loss = lse - logit[label]: 0 for an
// ignored label (-100), NaN for a label outside the vocabulary.

struct Params {
  M: u32,
  vocab: u32,
  total_tiles: u32,
  grid_x: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> row_loss: array<f32>;
@group(0) @binding(2) var<storage, read_write> lse: array<f32>;
@group(0) @binding(3) var<storage, read> partials: array<vec2<f32>>;
@group(0) @binding(4) var<storage, read> labels: array<i32>;

const IGNORE_INDEX: i32 = -100;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let row = wid.x + wid.y * p.grid_x;
  if (row >= p.M) { return; }
  let base = row * p.total_tiles;
  var m = LOWEST_F32;
  for (var t = lid; t < p.total_tiles; t += WG) { m = max(m, partials[base + t].x); }
  m = wg_max(lid, m);
  var s = 0.0;
  for (var t = lid; t < p.total_tiles; t += WG) {
    let part = partials[base + t];
    s += part.y * exp(part.x - m);
  }
  let row_lse = m + log(wg_sum(lid, s));
  if (lid == 0u) {
    lse[row] = row_lse;
    let label = labels[row];
    if (label == IGNORE_INDEX) {
      row_loss[row] = 0.0;
    } else if (label >= 0 && u32(label) < p.vocab) {
      row_loss[row] = row_lse - row_loss[row];
    } else {
      row_loss[row] = bitcast<f32>(0x7fc00000u | (u32(label) & 0u)); // NaN, built at run time
    }
  }
}
