// Flash-attention backward, step 1 of 3: per query row, the two numbers the other steps need,
// packed as (lse, delta) with delta = rowsum(dout * out) = sum_j P_j dP_j (the softmax Jacobian's
// correction term). Packing them keeps the later kernels within 8 storage bindings. Padded queries get
// (0, 0). One thread per (token, head), heads fastest so neighbouring threads read neighbouring memory.
// No workgroup memory (so no bank conflicts): D FMAs per 2 x D floats read from global memory, a
// pass over dout and out that runs once per step, bound by those bytes.

struct Params {
  rows: u32,        // B*T*H
  seq: u32,         // T
  heads: u32,
  head_dim: u32,
  use_lengths: u32,
  grid_x: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> stats: array<vec2<f32>>; // [B, H, T]
@group(0) @binding(2) var<storage, read> dout: array<f32>;
@group(0) @binding(3) var<storage, read> out: array<f32>;
@group(0) @binding(4) var<storage, read> lse: array<f32>;
@group(0) @binding(5) var<storage, read> valid_lengths: array<u32>;

override WG: u32 = 64u;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let index = (wid.x + wid.y * p.grid_x) * WG + lid;
  if (index >= p.rows) { return; }
  let h = index % p.heads;
  let token = index / p.heads; // b * T + t
  let b = token / p.seq;
  let t = token % p.seq;
  let stat = (b * p.heads + h) * p.seq + t;
  if (p.use_lengths != 0u && t >= valid_lengths[b]) {
    stats[stat] = vec2<f32>(0.0);
    return;
  }
  let base = token * p.heads * p.head_dim + h * p.head_dim;
  var delta = 0.0;
  for (var d = 0u; d < p.head_dim; d++) { delta += dout[base + d] * out[base + d]; }
  stats[stat] = vec2<f32>(lse[stat], delta);
}
