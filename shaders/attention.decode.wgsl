// Flash-attention forward, one query per workgroup (decode: T = 1, or a few new tokens after a
// KV cache). No query block shares the keys, so nothing is staged in workgroup memory: each of the
// WG threads streams its own keys (j = lid, lid + WG, ...) from k and v, a head row of each as D4
// 16-byte loads (320 contiguous bytes of k and of v per key at head_dim 80, every sector used whole),
// keeping an online-softmax state (m, l, o) in registers, and the states merge in a tree at the end.
// Bytes read per query and head: 2 * head_dim * 4 per key, once; the splits (attention.ts) give a
// 512-position cache at batch 1 on Phi-2 8 splits x 32 heads = 256 workgroups of 64 threads, one
// key each per thread, so the 10.5 MB a layer reads stream from every SM rather than from 32. For long caches the key
// range is also split over `splits` workgroups (flash-decoding): each writes its partial state and
// attention.combine.wgsl merges them; with one split the result goes straight to out and lse.
// Masking (causal, cache positions, valid_lengths, left_pad) as in attention.fwd.wgsl. The splits
// divide each sequence's own rows (from left_pad[b] on), so a padded sequence's splits hold the same
// keys as the sequence's alone, and none is wasted on padding.
//
// Prepended by src/engine/kernels/attention.ts:  const D4: u32 = ceil(D / 4). Per-thread head rows
// are arrays of D4 vec4s indexed only in loops over that constant, which unroll, keeping them in registers.

struct Params {
  seq: u32,          // T
  heads: u32,        // H
  head_dim: u32,     // D
  past_len: u32,
  kv_len: u32,       // past_len + T
  kv_rows: u32,      // rows per sequence in k and v
  use_lengths: u32,
  scale: f32,
  splits: u32,
  query_rows: u32,   // B*H*T: the stride of one split in the partials
  stats_offset: u32, // where the (m, l) pairs start in `partial`
  use_left_pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<storage, read_write> lse: array<f32>;
// [splits, B*H*T, D] unnormalised outputs, then from stats_offset [splits, B*H*T] (m, l) pairs: one
// binding, so that the kernel stays within the 8 storage buffers every WebGPU device offers.
@group(0) @binding(3) var<storage, read_write> partial: array<f32>;
@group(0) @binding(4) var<storage, read> q: array<f32>;
// Bindings 5 and 6 (k and v) and their loads key4 / value4 are prepended (attention.ts): as vec4
// arrays where head_dim % 4 == 0, so a key or value row is D4 16-byte loads, else as scalars.
@group(0) @binding(7) var<storage, read> valid_lengths: array<u32>;
@group(0) @binding(8) var<storage, read> left_pad: array<u32>;

override WG: u32 = 64u; // a power of two

const NEG_BIG: f32 = -1.0e30;

var<workgroup> merge_o: array<vec4<f32>, WG / 2u * D4>;
var<workgroup> merge_ml: array<vec2<f32>, WG / 2u>;


// Elements 4c..4c+3 of the query's head row at `base`; zero past the head's end.
fn query4(base: u32, c: u32) -> vec4<f32> {
  var r = vec4<f32>(0.0);
  for (var e = 0u; e < 4u; e++) {
    if (4u * c + e < p.head_dim) { r[e] = q[base + 4u * c + e]; }
  }
  return r;
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let split = wid.x;
  let bh = wid.y; // b * H + h
  let t = wid.z;
  let b = bh / p.heads;
  let h = bh % p.heads;
  let width = p.heads * p.head_dim;

  var valid_len = p.kv_len;
  if (p.use_lengths != 0u) { valid_len = min(valid_len, valid_lengths[b]); }
  var key_first = 0u; // rows before it are left padding
  if (p.use_left_pad != 0u) { key_first = min(left_pad[b], p.kv_len); }
  let pos = p.past_len + t;
  var key_end = 0u; // exclusive; 0 for a padded query
  if (pos < valid_len && pos >= key_first) { key_end = pos + 1u; }
  let chunk = (p.kv_len - key_first + p.splits - 1u) / p.splits; // keys per split
  let key_begin = key_first + split * chunk;
  let key_stop = min(key_begin + chunk, key_end);

  var qr: array<vec4<f32>, D4>;
  var o: array<vec4<f32>, D4>;
  let q_base = (b * p.seq + t) * width + h * p.head_dim;
  for (var c = 0u; c < D4; c++) { qr[c] = query4(q_base, c) * p.scale; }
  var m = NEG_BIG;
  var l = 0.0;

  for (var key = key_begin + lid; key < key_stop; key += WG) {
    let base = (b * p.kv_rows + key) * width + h * p.head_dim;
    var s = 0.0;
    for (var c = 0u; c < D4; c++) { s += dot(qr[c], key4(base, c)); }
    if (s > m) {
      let a = exp(m - s);
      l *= a;
      for (var c = 0u; c < D4; c++) { o[c] *= a; }
      m = s;
    }
    let e = exp(s - m);
    l += e;
    for (var c = 0u; c < D4; c++) { o[c] += e * value4(base, c); }
  }

  for (var half = WG / 2u; half > 0u; half /= 2u) {
    if (lid >= half && lid < 2u * half) {
      let slot = lid - half;
      merge_ml[slot] = vec2<f32>(m, l);
      for (var c = 0u; c < D4; c++) { merge_o[slot * D4 + c] = o[c]; }
    }
    workgroupBarrier();
    if (lid < half) {
      let other = merge_ml[lid];
      let m_new = max(m, other.x);
      let a = exp(m - m_new);
      let a_other = exp(other.x - m_new);
      l = l * a + other.y * a_other;
      for (var c = 0u; c < D4; c++) { o[c] = o[c] * a + merge_o[lid * D4 + c] * a_other; }
      m = m_new;
    }
    workgroupBarrier();
  }

  if (lid == 0u) {
    let query_row = bh * p.seq + t;
    if (p.splits == 1u) {
      let has_keys = l > 0.0;
      let inv_l = select(0.0, 1.0 / l, has_keys);
      for (var c = 0u; c < D4; c++) {
        for (var e = 0u; e < 4u; e++) {
          if (4u * c + e < p.head_dim) { out[q_base + 4u * c + e] = o[c][e] * inv_l; }
        }
      }
      lse[query_row] = select(0.0, m + log(l), has_keys);
    } else {
      let slot = split * p.query_rows + query_row;
      partial[p.stats_offset + 2u * slot] = m;
      partial[p.stats_offset + 2u * slot + 1u] = l;
      for (var c = 0u; c < D4; c++) {
        for (var e = 0u; e < 4u; e++) {
          if (4u * c + e < p.head_dim) { partial[slot * p.head_dim + 4u * c + e] = o[c][e]; }
        }
      }
    }
  }
}
