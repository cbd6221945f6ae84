// Flash-attention backward, step 3 of 3: dk and dv, recomputing the probabilities from q, k and the
// saved lse. A workgroup takes KROWS keys of one (sequence, head), keeps their k and v rows in
// workgroup memory, and streams the queries that can see them (causal: queries at or after the key)
// through a tile of BQ query and dout rows. LANES threads per key split every tile's queries:
//   P = exp(q.k * scale - lse),  dv += P * dout,  dS = P * (dout.v - delta),  dk += dS * q
// Each thread sums into registers and the lanes' partial sums are added at the end, so no float
// atomics are needed; dk is scaled by 1/sqrt(D) once. Training only (past_len 0), right padding
// through valid_lengths: padded keys get zero gradients.
//
// Work per shared-memory load: per query and vec4 of the head a thread loads q and dout twice each
// (for the scores and for dk and dv) and its own k and v once each, for 4 vec4 FMAs: 2.7 FMAs per
// 16-byte load. Holding the own k and v rows in registers would make it 4, but they would need 2 x D4
// more vec4s a thread beside dk and dv (160 registers at head_dim 80), which spills. Free of bank
// conflicts: lib/attention_rows.wgsl (own rows are the owned rows; the query tile is read by lane).
//
// Prepended by src/engine/kernels/attention.ts: const D4: u32 = ceil(D / 4); lib/kv_order.wgsl;
// lib/kv_read_f32*.wgsl (KvElem, key4, value4); lib/attention_rows.wgsl, lib/attention_tile.wgsl and
// lib/attention_backward.wgsl. Per-thread head rows are arrays of D4 vec4s indexed only in loops over
// that constant, which unroll, keeping them in registers.

// Bindings 0 and 2-7 (the uniforms and the inputs) are lib/attention_backward.wgsl's.
@group(0) @binding(1) var<storage, read_write> dk: array<f32>;
@group(0) @binding(8) var<storage, read_write> dv: array<f32>;

override KROWS: u32 = 16u;
override LANES: u32 = 4u; // a power of two, at least 2
override BQ: u32 = 16u;   // KROWS * LANES <= 4 * BQ
// The staged tile here is queries; lib/attention_tile.wgsl's stage_kv is not used.
override BK: u32 = BQ;

var<workgroup> own: array<vec4<f32>, 2u * KROWS * STRIDE>;  // this block's keys, then its values
var<workgroup> tile: array<vec4<f32>, 2u * BQ * STRIDE>;    // queries, then dout; then the lane merge
var<workgroup> tile_stats: array<vec2<f32>, BQ>;

@compute @workgroup_size(KROWS * LANES)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let th = tile_block(wid, KROWS);
  let me = tile_thread(th, lid);
  let valid_len = valid_length(th.b);
  let key_active = me.t < valid_len;
  var query_end = 0u; // queries from the block's first key on see it; none if the whole block is padding
  if (th.first < valid_len) { query_end = valid_len; }

  for (var i = lid; i < KROWS * D4P; i += th.threads) {
    let r = i / D4P;
    let c = i % D4P;
    if (c < D4) {
      var kx = vec4<f32>(0.0);
      var vx = vec4<f32>(0.0);
      if (th.first + r < valid_len) {
        let base = (th.b * p.seq + th.first + r) * th.width + th.h * p.head_dim;
        kx = key4(base, c) * p.scale;
        vx = value4(base, c);
      }
      own[r * STRIDE + c] = kx;
      own[(KROWS + r) * STRIDE + c] = vx;
    }
  }

  var dkr: array<vec4<f32>, D4>;
  var dvr: array<vec4<f32>, D4>;
  for (var i0 = th.first; i0 < query_end; i0 += BQ) {
    for (var i = lid; i < BQ * D4P; i += th.threads) {
      let r = i / D4P;
      let c = i % D4P;
      if (c < D4) {
        var qx = vec4<f32>(0.0);
        var gx = vec4<f32>(0.0);
        if (i0 + r < query_end) {
          let base = (th.b * p.seq + i0 + r) * th.width + th.h * p.head_dim;
          qx = query4(base, c, 0u);
          gx = dout4(base, c);
        }
        tile[r * STRIDE + c] = qx;
        tile[(BQ + r) * STRIDE + c] = gx;
      }
    }
    for (var r = lid; r < BQ; r += th.threads) {
      var st = vec2<f32>(0.0);
      if (i0 + r < query_end) { st = stats[wid.y * p.seq + i0 + r]; }
      tile_stats[r] = st;
    }
    workgroupBarrier(); // also publishes own on the first pass
    if (key_active) {
      for (var r = me.lane; r < BQ && i0 + r < query_end; r += LANES) {
        if (i0 + r < me.t) { continue; } // causal: this query comes before the key
        var s = 0.0;
        var dp = 0.0;
        for (var c = 0u; c < D4; c++) {
          s += dot(tile[r * STRIDE + c], own[me.row * STRIDE + c]);
          dp += dot(tile[(BQ + r) * STRIDE + c], own[(KROWS + me.row) * STRIDE + c]);
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

  lanes_sum(&dkr, me.row, me.lane);
  lanes_sum(&dvr, me.row, me.lane);

  if (me.lane == 0u && me.t < p.seq) {
    let base = (th.b * p.seq + me.t) * th.width + th.h * p.head_dim;
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
