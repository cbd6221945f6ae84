// What the flash-attention backward kernels that recompute the probabilities share
// (attention.bwd_dq.wgsl, attention.bwd_dkv.wgsl): their uniforms and the read of dout's head rows.
// Training only: no cache (keys = queries, natural order), causal, right padding through
// valid_lengths. The kernels bind their outputs around these inputs: dq at 1; dk at 1 and dv at 8.

struct Params {
  seq: u32,
  heads: u32,
  head_dim: u32,
  use_lengths: u32,
  scale: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(2) var<storage, read> dout: array<f32>;
@group(0) @binding(3) var<storage, read> q: array<f32>;
@group(0) @binding(4) var<storage, read> k: array<KvElem>;
@group(0) @binding(5) var<storage, read> v: array<KvElem>;
@group(0) @binding(6) var<storage, read> stats: array<vec2<f32>>; // (lse, delta) [B, H, T]
@group(0) @binding(7) var<storage, read> valid_lengths: array<u32>;

// Elements 4c..4c+3 of dout's head row at `base`; zero past the head's end.
fn dout4(base: u32, c: u32) -> vec4<f32> {
  var r = vec4<f32>(0.0);
  for (var e = 0u; e < 4u; e++) {
    if (4u * c + e < p.head_dim) { r[e] = dout[base + 4u * c + e]; }
  }
  return r;
}

// Sequence b's valid length: T, or less with right padding.
fn valid_length(b: u32) -> u32 {
  if (p.use_lengths != 0u) { return min(p.seq, valid_lengths[b]); }
  return p.seq;
}
