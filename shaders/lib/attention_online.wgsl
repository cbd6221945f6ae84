// The online softmax the flash-attention forward kernels share (attention.fwd.wgsl, attention.decode.wgsl):
// each thread keeps, for its query row, the running max m and sum l of exp(score - m) (as one
// vec2 ml = (m, l)) and the unnormalised output o = sum exp(score - m) * value row, in registers, so
// that no score row is ever stored; states of threads that saw different keys merge exactly. Needs
// D4 (prepended), p.head_dim, p.key_pairs and a binding `q`; lib/kv_order.wgsl before it.

// A finite stand-in for -infinity (WGSL implementations may assume no infinities).
const NEG_BIG: f32 = -1.0e30;

// Elements 4c..4c+3 of the query's head row at `base`, in the keys' order (lib/kv_order.wgsl);
// zero past the head's end.
fn query4(base: u32, c: u32) -> vec4<f32> {
  var r = vec4<f32>(0.0);
  for (var e = 0u; e < 4u; e++) {
    let s = 4u * c + e;
    if (s < p.head_dim) { r[e] = q[base + key_dim(s, p.key_pairs)]; }
  }
  return r;
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

// Merges another thread's (m, l) into this one's, rescaling o; returns the factor the caller
// multiplies the other thread's o by before adding it.
fn softmax_merge(ml: ptr<function, vec2<f32>>, o: ptr<function, array<vec4<f32>, D4>>, other: vec2<f32>) -> f32 {
  let m_new = max((*ml).x, other.x);
  let a = exp((*ml).x - m_new);
  let a_other = exp(other.x - m_new);
  (*ml).y = (*ml).y * a + other.y * a_other;
  for (var c = 0u; c < D4; c++) { (*o)[c] *= a; }
  (*ml).x = m_new;
  return a_other;
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
