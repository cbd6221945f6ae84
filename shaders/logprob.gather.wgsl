// The log-probability of one given token per row: out[r] = logits[r, ids[r]] - logsumexp(logits[r, :]),
// one workgroup per row, with lib/row_reduce.wgsl and lib/row_logits.wgsl prepended. For scoring candidate continuations
// without writing a full log-softmax. An id outside [0, cols) gives NaN, so it cannot pass unnoticed.

struct Params {
  rows: u32,
  cols: u32,
  grid_x: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<storage, read> logits: array<f32>;
@group(0) @binding(3) var<storage, read> ids: array<u32>; // u32 or i32 bits

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let row = wid.x + wid.y * p.grid_x;
  if (row >= p.rows) { return; }
  let base = row * p.cols;
  let row_lse = row_logsumexp(lid, base, p.cols);
  if (lid == 0u) {
    let id = ids[row];
    let valid = id < p.cols; // a negative i32 id reads as a u32 past any vocabulary
    // A quiet NaN built from a runtime value: WGSL rejects NaN as a constant expression.
    let nan = bitcast<f32>(0x7fc00000u | (id & 0u));
    out[row] = select(nan, logits[base + min(id, p.cols - 1u)] - row_lse, valid);
  }
}
