// Merges the partial softmax states that attention.decode.wgsl wrote for each split of the key
// range into out [B*T, H*D] and lse [B, H, T]: with M = max m_s, L = sum l_s e^(m_s - M),
// out = sum o_s e^(m_s - M) / L and lse = M + log L. One workgroup per (sequence, head, query).
// No workgroup memory (so no bank conflicts): it reads each split's partial row once.

struct Params {
  query_rows: u32,   // B*H*T
  seq: u32,          // T
  heads: u32,
  head_dim: u32,
  splits: u32,
  grid_x: u32,
  stats_offset: u32, // where the (m, l) pairs start in `partial`
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<storage, read_write> lse: array<f32>;
// [splits, B*H*T, D] unnormalised outputs, then from stats_offset [splits, B*H*T] (m, l) pairs.
@group(0) @binding(3) var<storage, read> partial: array<f32>;

fn partial_ml(slot: u32) -> vec2<f32> {
  return vec2<f32>(partial[p.stats_offset + 2u * slot], partial[p.stats_offset + 2u * slot + 1u]);
}

override WG: u32 = 64u;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let query_row = wid.x + wid.y * p.grid_x; // (b * H + h) * T + t
  if (query_row >= p.query_rows) { return; }
  let t = query_row % p.seq;
  let bh = query_row / p.seq;
  let b = bh / p.heads;
  let h = bh % p.heads;

  var m = -1.0e30;
  for (var s = 0u; s < p.splits; s++) { m = max(m, partial_ml(s * p.query_rows + query_row).x); }
  var l = 0.0;
  for (var s = 0u; s < p.splits; s++) {
    let ml = partial_ml(s * p.query_rows + query_row);
    l += ml.y * exp(ml.x - m);
  }
  let has_keys = l > 0.0; // false only for padded queries
  let inv_l = select(0.0, 1.0 / l, has_keys);
  let out_base = (b * p.seq + t) * p.heads * p.head_dim + h * p.head_dim;
  for (var d = lid; d < p.head_dim; d += WG) {
    var acc = 0.0;
    for (var s = 0u; s < p.splits; s++) {
      let slot = s * p.query_rows + query_row;
      acc += partial[slot * p.head_dim + d] * exp(partial_ml(slot).x - m);
    }
    out[out_base + d] = acc * inv_l;
  }
  if (lid == 0u) { lse[query_row] = select(0.0, m + log(l), has_keys); }
}
