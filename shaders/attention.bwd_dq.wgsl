// Flash-attention backward, step 2 of 3: dq, recomputing the probabilities from q, k and the saved
// lse (no T x T matrix). Tiled like attention.fwd.wgsl: a workgroup takes ROWS queries of one
// (sequence, head), LANES threads per query split every tile of BK keys and values, and per key
//   P = exp(q.k * scale - lse),  dS = P * (dout.v - delta),  dq += dS * k
// with the lanes' partial dq summed at the end; dq is scaled by 1/sqrt(D) once. Training only:
// no cache (past_len 0, keys = queries), causal, right padding through valid_lengths.
//
// Work per shared-memory load: per key and vec4 of the head a thread loads the key twice (for q.k and
// for dq), the value once and its own dout once (dout is staged rather than held, leaving registers to
// q and dq: ~200 a thread at head_dim 80) for 3 vec4 FMAs: 3 FMAs per 16-byte load, and each staged
// vec4 serves the ROWS queries of the block. Free of bank conflicts: lib/attention_rows.wgsl (the dout
// rows are the owned rows, two a phase).
//
// Prepended by src/engine/kernels/attention.ts: const D4: u32 = ceil(D / 4); lib/kv_order.wgsl;
// lib/kv_read_f32*.wgsl (KvElem, key4, value4); lib/attention_rows.wgsl, lib/attention_tile.wgsl and
// lib/attention_backward.wgsl. Per-thread head rows are arrays of D4 vec4s indexed only in loops over
// that constant, which unroll, keeping them in registers.

// Bindings 0 and 2-7 (the uniforms and the inputs) are lib/attention_backward.wgsl's.
@group(0) @binding(1) var<storage, read_write> dq: array<f32>;

override ROWS: u32 = 16u;
override LANES: u32 = 4u; // a power of two, at least 2
override BK: u32 = 32u;   // ROWS * LANES <= 4 * BK

var<workgroup> tile: array<vec4<f32>, 2u * BK * STRIDE>; // keys, then values; then the lane merge
var<workgroup> dout_rows: array<vec4<f32>, ROWS * STRIDE>;

@compute @workgroup_size(ROWS * LANES)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let th = tile_block(wid, ROWS);
  let me = tile_thread(th, lid);
  let valid_len = valid_length(th.b);
  let row_active = me.t < valid_len;
  var key_end = 0u;
  if (th.first < valid_len) { key_end = min(th.first + ROWS, valid_len); }

  for (var i = lid; i < ROWS * D4P; i += th.threads) {
    let r = i / D4P;
    let c = i % D4P;
    if (c < D4) {
      var x = vec4<f32>(0.0);
      if (th.first + r < valid_len) { x = dout4((th.b * p.seq + th.first + r) * th.width + th.h * p.head_dim, c); }
      dout_rows[r * STRIDE + c] = x;
    }
  }
  var qr: array<vec4<f32>, D4>;
  var dqr: array<vec4<f32>, D4>;
  var stat = vec2<f32>(0.0);
  if (row_active) {
    let base = (th.b * p.seq + me.t) * th.width + th.h * p.head_dim;
    for (var c = 0u; c < D4; c++) { qr[c] = query4(base, c, 0u) * p.scale; }
    stat = stats[wid.y * p.seq + me.t];
  }

  for (var k0 = 0u; k0 < key_end; k0 += BK) {
    stage_kv((th.b * p.seq + k0) * th.width + th.h * p.head_dim, min(BK, key_end - k0), th.width, lid, th.threads);
    workgroupBarrier(); // also publishes dout_rows on the first pass
    if (row_active) {
      for (var j = me.lane; j < BK && k0 + j <= me.t; j += LANES) {
        var s = 0.0;
        var dp = 0.0;
        for (var c = 0u; c < D4; c++) {
          s += dot(qr[c], tile[j * STRIDE + c]);
          dp += dot(dout_rows[me.row * STRIDE + c], tile[(BK + j) * STRIDE + c]);
        }
        let ds = exp(s - stat.x) * (dp - stat.y);
        for (var c = 0u; c < D4; c++) { dqr[c] += ds * tile[j * STRIDE + c]; }
      }
    }
    workgroupBarrier();
  }

  lanes_sum(&dqr, me.row, me.lane);

  if (me.lane == 0u && me.t < p.seq) {
    let base = (th.b * p.seq + me.t) * th.width + th.h * p.head_dim;
    for (var c = 0u; c < D4; c++) {
      for (var e = 0u; e < 4u; e++) {
        if (4u * c + e < p.head_dim) { dq[base + 4u * c + e] = dqr[c][e] * p.scale; }
      }
    }
  }
}
