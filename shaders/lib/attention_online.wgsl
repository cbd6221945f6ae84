// What the flash-attention forward kernels share (attention.fwd.wgsl, attention.decode.wgsl): their
// uniforms, the keys a query may see, and the online softmax. Each thread keeps, for its query row,
// the running max m and sum l of exp(score - m) (one vec2 ml = (m, l)) and the unnormalised output
// o = sum exp(score - m) * value row in registers, so no score row is ever stored; states of threads
// that saw different keys merge exactly. Needs lib/attention_rows.wgsl; from the kernel the bindings
// out, valid_lengths and left_pad, `tile` (array<vec4<f32>>), `merge_ml` (array<vec2<f32>>) and the
// override LANES.

struct Params {
  seq: u32,          // T: queries per sequence
  heads: u32,        // H
  head_dim: u32,     // D
  past_len: u32,
  kv_len: u32,       // past_len + T
  kv_rows: u32,      // rows per sequence in k and v: T for fresh projections, Tmax for the cache
  use_lengths: u32,
  scale: f32,
  use_left_pad: u32,
  key_pairs: u32,    // keys stored in rotary-pair order (an f16 cache, lib/kv_order.wgsl); 0: natural
  splits: u32,       // decode: key-range splits (1 for the tiled kernel)
  query_rows: u32,   // decode: B*H*T, the stride of one split in the partials
  stats_offset: u32, // decode: where the (m, l) pairs start in `partial`
}

// A finite stand-in for -infinity (WGSL implementations may assume no infinities).
const NEG_BIG: f32 = -1.0e30;

// Sequence b's keys: (valid_len, key_first). Keys at or past valid_len are right padding (and queries
// there see nothing); rows before key_first are left padding, never read.
fn key_range(b: u32) -> vec2<u32> {
  var valid_len = p.kv_len;
  if (p.use_lengths != 0u) { valid_len = min(valid_len, valid_lengths[b]); }
  var key_first = 0u;
  if (p.use_left_pad != 0u) { key_first = min(left_pad[b], p.kv_len); }
  return vec2<u32>(valid_len, key_first);
}

// Folds score s into (m, l), rescaling o when s is a new maximum; returns the weight exp(s - m) that
// the caller adds s's value row with.
fn softmax_add(ml: ptr<function, vec2<f32>>, o: ptr<function, array<vec4<f32>, D4>>, s: f32) -> f32 {
  if (s > (*ml).x) {
    let a = exp((*ml).x - s);
    (*ml).y *= a;
    for (var c = 0u; c < D4; c++) { (*o)[c] *= a; }
    (*ml).x = s;
  }
  let e = exp(s - (*ml).x);
  (*ml).y += e;
  return e;
}

// Merges the LANES threads' states of each owned row into its lane 0 (a tree through `tile` and
// `merge_ml`, with slots STRIDE vec4s apart). Every thread calls it.
fn lanes_softmax_merge(ml: ptr<function, vec2<f32>>, o: ptr<function, array<vec4<f32>, D4>>, row: u32, lane: u32) {
  for (var half = LANES / 2u; half > 0u; half /= 2u) {
    if (lane >= half && lane < 2u * half) {
      let slot = row * half + lane - half;
      merge_ml[slot] = *ml;
      for (var c = 0u; c < D4; c++) { tile[slot * STRIDE + c] = (*o)[c]; }
    }
    workgroupBarrier();
    if (lane < half) {
      let slot = row * half + lane;
      let other = merge_ml[slot];
      let m_new = max((*ml).x, other.x);
      let a = exp((*ml).x - m_new);
      let a_other = exp(other.x - m_new);
      (*ml).y = (*ml).y * a + other.y * a_other;
      for (var c = 0u; c < D4; c++) { (*o)[c] = (*o)[c] * a + tile[slot * STRIDE + c] * a_other; }
      (*ml).x = m_new;
    }
    workgroupBarrier();
  }
}

// The log-sum-exp of the scores, or 0 for a query that saw no key (padding).
fn softmax_lse(ml: vec2<f32>) -> f32 {
  return select(0.0, ml.x + log(ml.y), ml.y > 0.0);
}

// Writes the normalised output o / l as the head row at `base` of `out` (zeros where l is 0).
fn store_output(base: u32, ml: vec2<f32>, o: ptr<function, array<vec4<f32>, D4>>) {
  let inv_l = select(0.0, 1.0 / ml.y, ml.y > 0.0);
  for (var c = 0u; c < D4; c++) {
    for (var e = 0u; e < 4u; e++) {
      if (4u * c + e < p.head_dim) { out[base + 4u * c + e] = (*o)[c][e] * inv_l; }
    }
  }
}
