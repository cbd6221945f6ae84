// Flash-attention backward, step 3 of 3: dk and dv, recomputing the probabilities from q, k and the
// saved lse. A workgroup takes KROWS keys of one (sequence, head), keeps their k and v rows in
// workgroup memory, and streams the queries that can see them (causal: queries at or after the key)
// through a tile of BQ query and dout rows. LANES threads per key split every tile's queries:
//   P = exp(q.k * scale - lse),  dv += P * dout,  dS = P * (dout.v - delta),  dk += dS * q
// Each thread sums into registers and the lanes' partial sums are added at the end, so no float
// atomics are needed; dk is scaled by 1/sqrt(D) once. Training only (past_len 0), right padding
// through valid_lengths: padded keys get zero gradients.
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
@group(0) @binding(1) var<storage, read_write> dk: array<f32>;
@group(0) @binding(2) var<storage, read_write> dv: array<f32>;
@group(0) @binding(3) var<storage, read> dout: array<f32>;
@group(0) @binding(4) var<storage, read> q: array<f32>;
@group(0) @binding(5) var<storage, read> k: array<f32>;
@group(0) @binding(6) var<storage, read> v: array<f32>;
@group(0) @binding(7) var<storage, read> stats: array<vec2<f32>>; // (lse, delta) [B, H, T]
@group(0) @binding(8) var<storage, read> valid_lengths: array<u32>;

override KROWS: u32 = 16u;
override LANES: u32 = 4u; // a power of two, at least 2
override BQ: u32 = 16u;   // KROWS * LANES <= 4 * BQ

const STRIDE: u32 = D4 | 1u;

var<workgroup> own: array<vec4<f32>, 2u * KROWS * STRIDE>;  // this block's keys, then its values
var<workgroup> tile: array<vec4<f32>, 2u * BQ * STRIDE>;    // queries, then dout; then the lane merge
var<workgroup> tile_stats: array<vec2<f32>, BQ>;

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

// Adds the lanes' partial sums of acc into lane 0 of each key, through the tile memory.
fn merge_lanes(acc: ptr<function, array<vec4<f32>, D4>>, row: u32, lane: u32) {
  for (var half = LANES / 2u; half > 0u; half /= 2u) {
    if (lane >= half && lane < 2u * half) {
      let slot = row * half + lane - half;
      for (var c = 0u; c < D4; c++) { tile[slot * D4 + c] = (*acc)[c]; }
    }
    workgroupBarrier();
    if (lane < half) {
      let slot = row * half + lane;
      for (var c = 0u; c < D4; c++) { (*acc)[c] += tile[slot * D4 + c]; }
    }
    workgroupBarrier();
  }
}

@compute @workgroup_size(KROWS * LANES)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let b = wid.y / p.heads;
  let h = wid.y % p.heads;
  let row = lid / LANES;
  let lane = lid % LANES;
  let j0 = wid.x * KROWS;
  let j = j0 + row;
  let width = p.heads * p.head_dim;
  let threads = KROWS * LANES;

  var valid_len = p.seq;
  if (p.use_lengths != 0u) { valid_len = min(valid_len, valid_lengths[b]); }
  let key_active = j < valid_len;
  var query_end = 0u; // queries j0.. see this block; none if the whole block is padding
  if (j0 < valid_len) { query_end = valid_len; }

  for (var i = lid; i < KROWS * D4; i += threads) {
    let r = i / D4;
    let c = i % D4;
    var kx = vec4<f32>(0.0);
    var vx = vec4<f32>(0.0);
    if (j0 + r < valid_len) {
      let base = (b * p.seq + j0 + r) * width + h * p.head_dim;
      kx = load_head4(K, base, c) * p.scale;
      vx = load_head4(V, base, c);
    }
    own[r * STRIDE + c] = kx;
    own[(KROWS + r) * STRIDE + c] = vx;
  }

  var dkr: array<vec4<f32>, D4>;
  var dvr: array<vec4<f32>, D4>;
  for (var i0 = j0; i0 < query_end; i0 += BQ) {
    for (var i = lid; i < BQ * D4; i += threads) {
      let r = i / D4;
      let c = i % D4;
      var qx = vec4<f32>(0.0);
      var gx = vec4<f32>(0.0);
      if (i0 + r < query_end) {
        let base = (b * p.seq + i0 + r) * width + h * p.head_dim;
        qx = load_head4(Q, base, c);
        gx = load_head4(DOUT, base, c);
      }
      tile[r * STRIDE + c] = qx;
      tile[(BQ + r) * STRIDE + c] = gx;
    }
    for (var r = lid; r < BQ; r += threads) {
      var st = vec2<f32>(0.0);
      if (i0 + r < query_end) { st = stats[wid.y * p.seq + i0 + r]; }
      tile_stats[r] = st;
    }
    workgroupBarrier(); // also publishes own on the first pass
    if (key_active) {
      for (var r = lane; r < BQ && i0 + r < query_end; r += LANES) {
        if (i0 + r < j) { continue; } // causal: this query comes before the key
        var s = 0.0;
        var dp = 0.0;
        for (var c = 0u; c < D4; c++) {
          s += dot(tile[r * STRIDE + c], own[row * STRIDE + c]);
          dp += dot(tile[(BQ + r) * STRIDE + c], own[(KROWS + row) * STRIDE + c]);
        }
        let st = tile_stats[r];
        let pr = exp(s - st.x);
        let ds = pr * (dp - st.y);
        for (var c = 0u; c < D4; c++) {
          dvr[c] += pr * tile[(BQ + r) * STRIDE + c];
          dkr[c] += ds * tile[r * STRIDE + c];
        }
      }
    }
    workgroupBarrier();
  }

  merge_lanes(&dkr, row, lane);
  merge_lanes(&dvr, row, lane);

  if (lane == 0u && j < p.seq) {
    let base = (b * p.seq + j) * width + h * p.head_dim;
    for (var c = 0u; c < D4; c++) {
      for (var e = 0u; e < 4u; e++) {
        if (4u * c + e < p.head_dim) {
          dk[base + 4u * c + e] = dkr[c][e] * p.scale;
          dv[base + 4u * c + e] = dvr[c][e];
        }
      }
    }
  }
}
