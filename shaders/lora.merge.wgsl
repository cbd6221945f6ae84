// Merging a LoRA adapter into a frozen linear layer's weight, in place:
//   W'[n, k] = W[n, k] + scaling * sum_j B[n, j] * A[j, k],   A [r, K], B [N, r], f32.
//
// main_int8: W is int8 with one f32 scale per row (W = q * scales[n], four int8 per u32 word along K).
//   One workgroup per row: dequantise and add (pass 1, for the row's new absmax), then add again and
//   requantise with the new scale absmax / 127, rounding half away from zero (pass 2). Recomputing the
//   row beats keeping it: a row of Phi-2's fc2 is 10240 floats, more than workgroup memory holds.
// main_f16: W is F16, two halves per u32 word (low half first). One thread per word.
//
// Each word is read and rewritten by one thread only, and every read of pass 1 ends before the
// reduction's barriers, so updating in place is safe.

struct Params {
  N: u32,
  K: u32,
  r: u32,
  scaling: f32,
  grid_x: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> weight: array<u32>;
@group(0) @binding(2) var<storage, read> A: array<f32>;
@group(0) @binding(3) var<storage, read> B: array<f32>;
// Bound by main_int8 only (last, so that main_f16's bindings stay 1..3).
@group(0) @binding(4) var<storage, read_write> scales: array<f32>;

const WG: u32 = 256u;
const MAX_R: u32 = 1024u; // lora-config.ts: r <= 1024

var<workgroup> b_row: array<f32, MAX_R>;
var<workgroup> partial: array<f32, WG>;

fn workgroup_max(lid: u32, v: f32) -> f32 {
  partial[lid] = v;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s = s >> 1u) {
    if (lid < s) { partial[lid] = max(partial[lid], partial[lid + s]); }
    workgroupBarrier();
  }
  return partial[0];
}

// The row's merged values at columns 4*quad .. 4*quad + 3; b_row holds B[n, :].
fn merged_quad(n: u32, quad: u32, old_scale: f32) -> vec4<f32> {
  let w = bitcast<i32>(weight[n * (p.K >> 2u) + quad]);
  let q = vec4<f32>(vec4<i32>(extractBits(w, 0u, 8u), extractBits(w, 8u, 8u), extractBits(w, 16u, 8u), extractBits(w, 24u, 8u)));
  let k = 4u * quad;
  var acc = vec4<f32>(0.0);
  for (var j = 0u; j < p.r; j++) {
    let a = j * p.K + k;
    acc += b_row[j] * vec4<f32>(A[a], A[a + 1u], A[a + 2u], A[a + 3u]);
  }
  return q * old_scale + p.scaling * acc;
}

fn quantise(v: vec4<f32>, scale: f32) -> u32 {
  if (scale == 0.0) { return 0u; }
  let x = v / scale;
  let q = vec4<i32>(clamp(sign(x) * floor(abs(x) + 0.5), vec4<f32>(-127.0), vec4<f32>(127.0)));
  return (u32(q.x) & 0xffu) | ((u32(q.y) & 0xffu) << 8u) | ((u32(q.z) & 0xffu) << 16u) | ((u32(q.w) & 0xffu) << 24u);
}

@compute @workgroup_size(WG)
fn main_int8(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let n = wid.x + wid.y * p.grid_x;
  if (n >= p.N) { return; } // uniform across the workgroup, so the barriers stay uniform
  for (var j = lid; j < p.r; j += WG) { b_row[j] = B[n * p.r + j]; }
  let old_scale = scales[n];
  workgroupBarrier();
  let quads = p.K >> 2u;
  var amax = 0.0;
  for (var c = lid; c < quads; c += WG) {
    let v = abs(merged_quad(n, c, old_scale));
    amax = max(amax, max(max(v.x, v.y), max(v.z, v.w)));
  }
  let scale = workgroup_max(lid, amax) / 127.0;
  for (var c = lid; c < quads; c += WG) {
    weight[n * quads + c] = quantise(merged_quad(n, c, old_scale), scale);
  }
  if (lid == 0u) { scales[n] = scale; }
}

@compute @workgroup_size(WG)
fn main_f16(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let o = (wid.x + wid.y * p.grid_x) * WG + lid;
  let pairs = p.K >> 1u;
  if (o >= p.N * pairs) { return; }
  let n = o / pairs;
  let k = 2u * (o % pairs);
  var acc = vec2<f32>(0.0);
  for (var j = 0u; j < p.r; j++) {
    let a = j * p.K + k;
    acc += B[n * p.r + j] * vec2<f32>(A[a], A[a + 1u]);
  }
  weight[o] = pack2x16float(unpack2x16float(weight[o]) + p.scaling * acc);
}
