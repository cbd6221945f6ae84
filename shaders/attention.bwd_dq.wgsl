// Flash-attention backward, step 2 of 3: dq, recomputing the probabilities from q, k and the saved
// lse (no T x T matrix). Tiled like attention.fwd.wgsl: a workgroup takes ROWS queries of one
// (sequence, head), LANES threads per query split every tile of BK keys and values, and per key
//   P = exp(q.k * scale - lse),  dS = P * (dout.v - delta),  dq += dS * k
// with the lanes' partial dq summed at the end; dq is scaled by 1/sqrt(D) once. Training only:
// no cache (past_len 0, keys = queries), causal, right padding through valid_lengths.
//
// Prepended by src/engine/kernels/attention.ts:  const D4: u32 = ceil(D / 4). Per-thread head rows
// are arrays of D4 vec4s indexed only in loops over that constant, which unroll, keeping them in registers.

struct Params {
  seq: u32,
  heads: u32,
  head_dim: u32,
  use_lengths: u32,
  scale: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> dq: array<f32>;
@group(0) @binding(2) var<storage, read> dout: array<f32>;
@group(0) @binding(3) var<storage, read> q: array<f32>;
@group(0) @binding(4) var<storage, read> k: array<f32>;
@group(0) @binding(5) var<storage, read> v: array<f32>;
@group(0) @binding(6) var<storage, read> stats: array<vec2<f32>>; // (lse, delta) [B, H, T]
@group(0) @binding(7) var<storage, read> valid_lengths: array<u32>;

override ROWS: u32 = 16u;
override LANES: u32 = 4u; // a power of two, at least 2
override BK: u32 = 32u;   // ROWS * LANES <= 4 * BK

const STRIDE: u32 = D4 | 1u;

var<workgroup> tile: array<vec4<f32>, 2u * BK * STRIDE>; // keys, then values; then the lane merge
var<workgroup> dout_rows: array<vec4<f32>, ROWS * STRIDE>;

const DOUT: u32 = 0u;
const Q: u32 = 1u;
const K: u32 = 2u;
const V: u32 = 3u;

// Elements 4c..4c+3 of the head row at `base` of dout, q, k or v; zero past the head's end.
fn load_head4(src: u32, base: u32, c: u32) -> vec4<f32> {
  var r = vec4<f32>(0.0);
  for (var e = 0u; e < 4u; e++) {
    let d = 4u * c + e;
    if (d < p.head_dim) {
      switch src {
        case DOUT: { r[e] = dout[base + d]; }
        case Q: { r[e] = q[base + d]; }
        case K: { r[e] = k[base + d]; }
        default: { r[e] = v[base + d]; }
      }
    }
  }
  return r;
}

@compute @workgroup_size(ROWS * LANES)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let b = wid.y / p.heads;
  let h = wid.y % p.heads;
  let row = lid / LANES;
  let lane = lid % LANES;
  let t0 = wid.x * ROWS;
  let t = t0 + row;
  let width = p.heads * p.head_dim;
  let threads = ROWS * LANES;

  var valid_len = p.seq;
  if (p.use_lengths != 0u) { valid_len = min(valid_len, valid_lengths[b]); }
  let row_active = t < valid_len;
  var key_end = 0u;
  if (t0 < valid_len) { key_end = min(t0 + ROWS, valid_len); }

  for (var i = lid; i < ROWS * D4; i += threads) {
    let r = i / D4;
    let c = i % D4;
    var x = vec4<f32>(0.0);
    if (t0 + r < valid_len) { x = load_head4(DOUT, (b * p.seq + t0 + r) * width + h * p.head_dim, c); }
    dout_rows[r * STRIDE + c] = x;
  }
  var qr: array<vec4<f32>, D4>;
  var dqr: array<vec4<f32>, D4>;
  var stat = vec2<f32>(0.0);
  if (row_active) {
    let base = (b * p.seq + t) * width + h * p.head_dim;
    for (var c = 0u; c < D4; c++) { qr[c] = load_head4(Q, base, c) * p.scale; }
    stat = stats[wid.y * p.seq + t];
  }

  for (var k0 = 0u; k0 < key_end; k0 += BK) {
    for (var i = lid; i < BK * D4; i += threads) {
      let j = i / D4;
      let c = i % D4;
      var kx = vec4<f32>(0.0);
      var vx = vec4<f32>(0.0);
      if (k0 + j < key_end) {
        let base = (b * p.seq + k0 + j) * width + h * p.head_dim;
        kx = load_head4(K, base, c);
        vx = load_head4(V, base, c);
      }
      tile[j * STRIDE + c] = kx;
      tile[(BK + j) * STRIDE + c] = vx;
    }
    workgroupBarrier(); // also publishes dout_rows on the first pass
    if (row_active) {
      for (var j = lane; j < BK && k0 + j <= t; j += LANES) {
        var s = 0.0;
        var dp = 0.0;
        for (var c = 0u; c < D4; c++) {
          s += dot(qr[c], tile[j * STRIDE + c]);
          dp += dot(dout_rows[row * STRIDE + c], tile[(BK + j) * STRIDE + c]);
        }
        let ds = exp(s - stat.x) * (dp - stat.y);
        for (var c = 0u; c < D4; c++) { dqr[c] += ds * tile[j * STRIDE + c]; }
      }
    }
    workgroupBarrier();
  }

  for (var half = LANES / 2u; half > 0u; half /= 2u) {
    if (lane >= half && lane < 2u * half) {
      let slot = row * half + lane - half;
      for (var c = 0u; c < D4; c++) { tile[slot * D4 + c] = dqr[c]; }
    }
    workgroupBarrier();
    if (lane < half) {
      let slot = row * half + lane;
      for (var c = 0u; c < D4; c++) { dqr[c] += tile[slot * D4 + c]; }
    }
    workgroupBarrier();
  }

  if (lane == 0u && t < p.seq) {
    let base = (b * p.seq + t) * width + h * p.head_dim;
    for (var c = 0u; c < D4; c++) {
      for (var e = 0u; e < 4u; e++) {
        if (4u * c + e < p.head_dim) { dq[base + 4u * c + e] = dqr[c][e] * p.scale; }
      }
    }
  }
}
