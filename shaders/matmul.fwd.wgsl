// Linear layer forward: out[m, n] (= or +=) sum over segments s of
//   scale_s(n) * sum_k act_s[m, k] * q_s[n, k] + bias_s[n]
// (PyTorch nn.Linear with W [N, K]; int8 q scaled per row, f16 q unscaled). One segment is a plain
// linear layer; two add two layers' outputs in one pass: Phi's dense(attn) + fc2(gelu), both into the
// residual. A weight format (matmul.int8 / matmul.f16) goes before this file and a body
// (lib/linear_gemm.wgsl or lib/linear_gemv.wgsl) after it; see matmul.ts.
//
// Both segments' weights live in `weight` and their scales and biases in `scales` and `bias`, at the
// offsets the uniforms give (a layer's packed buffers, weights/gpu-weights.ts).

struct Params {
  M: u32,
  N: u32,
  accumulate: u32, // 1: out += result (the parallel block adds both branches into the residual)
  has_bias: u32,   // 0: the bias slot holds another read-only tensor and is not read
  segs: u32,       // 1 or 2
  k0: u32,         // row lengths of the two segments
  k1: u32,
  w_off0: u32,     // word of row 0 of each segment's weights
  w_off1: u32,
  s_off0: u32,     // element of row 0 of each segment's scales (int8) and biases
  s_off1: u32,
  b_off0: u32,
  b_off1: u32,
  tiles_m: u32,    // GEMM: row tiles, tiles in all
  tiles: u32,
  row_groups: u32, // GEMV: groups of output rows, groups in all (row groups x chunks of 4 rows)
  groups: u32,
  grid_x: u32,     // workgroups along x; the rest fold into y
}

// Bindings 1-3 (weights, activations of segments 0 and 1) are declared by the body.
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;
@group(0) @binding(5) var<storage, read> bias: array<f32>;
@group(0) @binding(6) var<storage, read> scales: array<f32>; // unread for f16 weights (another tensor is bound)

fn seg_count() -> u32 {
  return p.segs;
}

fn seg_k(s: u32) -> u32 {
  return select(p.k0, p.k1, s == 1u);
}

fn row_word(s: u32, n: u32) -> u32 {
  return select(p.w_off0, p.w_off1, s == 1u) + n * row_words(seg_k(s));
}

fn finish(m: u32, n: u32, s: u32, v: f32) {
  var scale = 1.0;
  if (HAS_SCALES) { scale = scales[select(p.s_off0, p.s_off1, s == 1u) + n]; }
  var b = 0.0;
  if (p.has_bias != 0u) { b = bias[select(p.b_off0, p.b_off1, s == 1u) + n]; }
  let r = v * scale + b;
  let o = m * p.N + n;
  // Segment 1 adds to what segment 0 wrote: the same invocation wrote it.
  if (p.accumulate != 0u || s > 0u) { out[o] += r; } else { out[o] = r; }
}

// Columns n and n + 1 (n even) of row m, from segment s's raw sums.
fn store_pair(m: u32, n: u32, s: u32, v: vec2<f32>) {
  if (m >= p.M || n >= p.N) { return; }
  finish(m, n, s, v.x);
  if (n + 1u < p.N) { finish(m, n + 1u, s, v.y); }
}
