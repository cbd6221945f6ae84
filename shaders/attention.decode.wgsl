// Flash-attention forward, one query per workgroup (decode: T = 1, or a few new tokens after a
// KV cache). No query block shares the keys, so nothing is staged in workgroup memory: each of the
// WG threads streams its own keys (j = lid, lid + WG, ...) from k and v, a head row of each as D4
// 16-byte loads (320 contiguous bytes of k and of v per key at head_dim 80, every sector used whole;
// 160 from an f16 cache), keeping an online-softmax state (m, l, o) in registers
// (lib/attention_online.wgsl), and the states merge in a tree at the end.
// Bytes read per query and head: 2 * head_dim * 4 per key (2 for an f16 cache), once; the splits
// (attention.ts) give a 512-position cache at batch 1 on Phi-2 8 splits x 32 heads = 256 workgroups of
// 64 threads, one key each per thread, so the 10.5 MB a layer reads stream from every SM rather than
// from 32. For long caches the key range is also split over `splits` workgroups (flash-decoding): each
// writes its partial state and attention.combine.wgsl merges them; with one split the result goes
// straight to out and lse. Masking (causal, cache positions, valid_lengths, left_pad) as in
// attention.fwd.wgsl. The splits divide each sequence's own rows (from left_pad[b] on), so a padded
// sequence's splits hold the same keys as the sequence's alone, and none is wasted on padding.
// Workgroup memory holds only the final merge (slots STRIDE apart: free of bank conflicts,
// lib/attention_rows.wgsl); the key loop reads none, so it has no FMAs per shared load to speak of:
// it is bound by the bytes of k and v.
//
// Prepended by src/engine/kernels/attention.ts: const D4: u32 = ceil(D / 4); lib/kv_order.wgsl; the
// key and value reads for the cache's format (lib/kv_read_*.wgsl: KvElem, key4, value4);
// lib/attention_rows.wgsl and lib/attention_online.wgsl. Per-thread head rows are arrays of D4 vec4s
// indexed only in loops over that constant, which unroll, keeping them in registers.

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<storage, read_write> lse: array<f32>;
// [splits, B*H*T, D] unnormalised outputs, then from stats_offset [splits, B*H*T] (m, l) pairs: one
// binding, so that the kernel stays within the 8 storage buffers every WebGPU device offers.
@group(0) @binding(3) var<storage, read_write> partial: array<f32>;
@group(0) @binding(4) var<storage, read> q: array<f32>;
// f32 KV caches are read as vec4 arrays where head_dim % 4 == 0 (a key or value row is D4 16-byte
// loads), else as scalars; f16 caches as packed words (lib/kv_read_f16*.wgsl).
@group(0) @binding(5) var<storage, read> k: array<KvElem>;
@group(0) @binding(6) var<storage, read> v: array<KvElem>;
@group(0) @binding(7) var<storage, read> valid_lengths: array<u32>;
@group(0) @binding(8) var<storage, read> left_pad: array<u32>;

override WG: u32 = 64u; // a power of two
// The whole workgroup is one query's lanes.
override LANES: u32 = WG;

var<workgroup> tile: array<vec4<f32>, WG / 2u * STRIDE>; // the merge's o rows
var<workgroup> merge_ml: array<vec2<f32>, WG / 2u>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let split = wid.x;
  let bh = wid.y; // b * H + h
  let t = wid.z;
  let b = bh / p.heads;
  let h = bh % p.heads;
  let width = p.heads * p.head_dim;

  let range = key_range(b);
  let key_first = range.y;
  let pos = p.past_len + t;
  var key_end = 0u; // exclusive; 0 for a padded query
  if (pos < range.x && pos >= key_first) { key_end = pos + 1u; }
  let chunk = (p.kv_len - key_first + p.splits - 1u) / p.splits; // keys per split
  let key_begin = key_first + split * chunk;
  let key_stop = min(key_begin + chunk, key_end);

  var qr: array<vec4<f32>, D4>;
  var o: array<vec4<f32>, D4>;
  let q_base = (b * p.seq + t) * width + h * p.head_dim;
  for (var c = 0u; c < D4; c++) { qr[c] = query4(q_base, c, p.key_pairs) * p.scale; }
  var ml = vec2<f32>(NEG_BIG, 0.0);

  for (var key = key_begin + lid; key < key_stop; key += WG) {
    let base = (b * p.kv_rows + key) * width + h * p.head_dim;
    var s = 0.0;
    for (var c = 0u; c < D4; c++) { s += dot(qr[c], key4(base, c)); }
    let e = softmax_add(&ml, &o, s);
    for (var c = 0u; c < D4; c++) { o[c] += e * value4(base, c); }
  }

  lanes_softmax_merge(&ml, &o, 0u, lid);

  if (lid == 0u) {
    let query_row = bh * p.seq + t;
    if (p.splits == 1u) {
      store_output(q_base, ml, &o);
      lse[query_row] = softmax_lse(ml);
    } else {
      let slot = split * p.query_rows + query_row;
      partial[p.stats_offset + 2u * slot] = ml.x;
      partial[p.stats_offset + 2u * slot + 1u] = ml.y;
      for (var c = 0u; c < D4; c++) {
        for (var e = 0u; e < 4u; e++) {
          if (4u * c + e < p.head_dim) { partial[slot * p.head_dim + 4u * c + e] = o[c][e]; }
        }
      }
    }
  }
}
