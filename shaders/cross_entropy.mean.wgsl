// loss = sum(row_loss) / count: the mean over the counted (non-ignored) rows, in one workgroup
// (lib/row_reduce.wgsl prepended), so the trainer can read one number asynchronously.

struct Params {
  M: u32,
  count: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> loss: array<f32>;
@group(0) @binding(2) var<storage, read> row_loss: array<f32>;

@compute @workgroup_size(WG)
fn main(@builtin(local_invocation_index) lid: u32) {
  var s = 0.0;
  for (var r = lid; r < p.M; r += WG) { s += row_loss[r]; }
  let total = wg_sum(lid, s);
  if (lid == 0u) { loss[0] = total / p.count; }
}
