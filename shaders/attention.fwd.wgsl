// Flash-attention forward, tiled over keys (training and prefill). A workgroup takes ROWS queries of
// one (sequence, head) and streams that head's keys and values through workgroup memory, BK rows at a
// time. LANES threads own each query row and split every tile's keys between them; each keeps its
// own online-softmax state in registers (lib/attention_online.wgsl) and the lanes' states merge at
// the end, so no T x T score matrix ever exists. Softmax is in f32; the score scale 1/sqrt(D) is
// folded into q. Writes out [B*T, H*D] and lse = m + log(l) [B, H, T].
//
// Causal with a KV cache: query t sits at position past_len + t and sees keys 0..past_len+t. With
// use_lengths, keys at or past valid_lengths[b] are masked and queries there write zeros (padding).
// With use_left_pad (batched generation), sequence b starts at cache row left_pad[b]: its keys before
// it are never loaded (whatever the padding rows hold cannot reach the softmax) and its queries there
// write zeros. The key loop starts at the sequence's first row, so its tiles and lanes see the same
// keys as the sequence run alone.
//
// Work per shared-memory load: each staged key and value vec4 is read by the ROWS queries' threads
// that reach it, and each read feeds 4 FMAs (q and o stay in registers): 4 FMAs per 16-byte load, or
// 2 * ROWS FMAs for every 16 bytes brought from global memory (16 x 4 x 32-row tiles at head_dim 80:
// 40 KB of keys and values a tile serve 16 queries). Free of bank conflicts: lib/attention_rows.wgsl.
//
// Prepended by src/engine/kernels/attention.ts: const D4: u32 = ceil(D / 4); lib/kv_order.wgsl; the
// key and value reads for k and v's format (lib/kv_read_*.wgsl: KvElem, key4, value4);
// lib/attention_rows.wgsl, lib/attention_online.wgsl and lib/attention_tile.wgsl. Per-thread head
// rows are arrays of D4 vec4s indexed only in loops over that constant, which unroll, keeping them
// in registers.

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<storage, read_write> lse: array<f32>;
@group(0) @binding(3) var<storage, read> q: array<f32>;
@group(0) @binding(4) var<storage, read> k: array<KvElem>;
@group(0) @binding(5) var<storage, read> v: array<KvElem>;
@group(0) @binding(6) var<storage, read> valid_lengths: array<u32>;
@group(0) @binding(7) var<storage, read> left_pad: array<u32>;

override ROWS: u32 = 16u;
override LANES: u32 = 4u; // a power of two, at least 2
override BK: u32 = 32u;   // ROWS * LANES <= 4 * BK, so the lane merge fits in the tile

var<workgroup> tile: array<vec4<f32>, 2u * BK * STRIDE>;     // BK key rows, then BK value rows
var<workgroup> merge_ml: array<vec2<f32>, ROWS * LANES / 2u>; // (m, l) handed over in the lane merge

@compute @workgroup_size(ROWS * LANES)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let th = tile_block(wid, ROWS);
  let me = tile_thread(th, lid);
  let range = key_range(th.b);
  let valid_len = range.x;
  let key_first = range.y;
  let pos = p.past_len + me.t;
  let row_active = me.t < p.seq && pos < valid_len && pos >= key_first;
  // Keys the block needs: from the sequence's first row through its last query's position, short of
  // the padding; none when every query of the block is padding (key_end <= key_first then). Uniform
  // across the workgroup, so the barriers below are too.
  var key_end = 0u;
  if (p.past_len + th.first < valid_len) { key_end = min(p.past_len + min(th.first + ROWS, p.seq), valid_len); }

  var qr: array<vec4<f32>, D4>;
  var o: array<vec4<f32>, D4>;
  if (me.t < p.seq) {
    let base = (th.b * p.seq + me.t) * th.width + th.h * p.head_dim;
    for (var c = 0u; c < D4; c++) { qr[c] = query4(base, c, p.key_pairs) * p.scale; }
  }
  var ml = vec2<f32>(NEG_BIG, 0.0);

  for (var k0 = key_first; k0 < key_end; k0 += BK) {
    stage_kv((th.b * p.kv_rows + k0) * th.width + th.h * p.head_dim, min(BK, key_end - k0), th.width, lid, th.threads);
    workgroupBarrier();
    if (row_active) {
      for (var j = me.lane; j < BK && k0 + j <= pos; j += LANES) {
        var s = 0.0;
        for (var c = 0u; c < D4; c++) { s += dot(qr[c], tile[j * STRIDE + c]); }
        let e = softmax_add(&ml, &o, s);
        for (var c = 0u; c < D4; c++) { o[c] += e * tile[(BK + j) * STRIDE + c]; }
      }
    }
    workgroupBarrier();
  }

  lanes_softmax_merge(&ml, &o, me.row, me.lane);

  if (me.lane == 0u && me.t < p.seq) {
    store_output((th.b * p.seq + me.t) * th.width + th.h * p.head_dim, ml, &o);
    lse[wid.y * p.seq + me.t] = softmax_lse(ml);
  }
}
