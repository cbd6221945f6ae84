// Token sampling from logits rows, one workgroup per row, lib/row_reduce.wgsl and lib/row_logits.wgsl
// prepended.
// Only the first `valid` entries of a row are candidates: the lm_head may have more rows than the
// tokenizer has tokens (Phi-2: 51,200 against 50,295), and an id past the tokenizer's cannot be decoded.
// The procedure, which test/reference/sampling.ts repeats on the CPU over those entries:
//  1. Order the row by (logit descending, index ascending): "pi". Greedy (temperature <= 0 or
//     top_k == 1) returns pi's first element, the argmax (first index among equal maxima).
//  2. Weights w_i = exp((x_i - max) / temperature).
//  3. top-k keeps the first k of pi: K. top-p keeps the shortest prefix of pi within K whose weight
//     reaches top_p * sum_K w: P (never empty; P = K when top_p >= 1).
//  4. With u = uniforms[row] in [0, 1), return the first index i of P, in index order, at which the
//     running sum of w over P exceeds u * sum_P w.
// Nothing is sorted: a prefix of pi is {i : key_i > cut_key or (key_i == cut_key and i <= cut_index)},
// key_i the order-preserving u32 image of x_i. cut_key is found bit by bit from the top (32 passes
// over the row, each a count or a weight sum), cut_index among the ties likewise over index bits.
// Counting is exact, and a float sum over a subset never exceeds the sum over a superset (rounding
// is monotone), so every search is exact with respect to the sums it computes.

struct Params {
  rows: u32,
  vocab: u32,
  grid_x: u32,
  top_k: u32,       // 0 or >= vocab: no top-k
  temperature: f32, // <= 0: greedy
  top_p: f32,       // >= 1: no top-p; > 0
  index_bits: u32,  // 2^index_bits >= valid
  valid: u32,       // entries [0, valid) of a row are candidates; 1 <= valid <= vocab
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> ids: array<u32>;
@group(0) @binding(2) var<storage, read> logits: array<f32>;
@group(0) @binding(3) var<storage, read> uniforms: array<f32>;

// exp() of anything below this is 0 in f32; clamping keeps (x - max) / tiny temperature finite.
const MIN_EXPONENT: f32 = -110.0;

var<workgroup> block_sum: array<f32, WG>;
var<workgroup> block_prefix: array<f32, WG + 1u>;
var<workgroup> picked: u32;

// Larger floats map to larger keys (negative floats: all bits flipped; others: sign bit set).
fn order_key(x: f32) -> u32 {
  let b = bitcast<u32>(x);
  return select(b | 0x80000000u, ~b, (b & 0x80000000u) != 0u);
}

// Membership in a prefix of pi given its last element's key and index.
fn in_prefix(key: u32, i: u32, cut_key: u32, cut_index: u32) -> bool {
  return key > cut_key || (key == cut_key && i <= cut_index);
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let row = wid.x + wid.y * p.grid_x;
  if (row >= p.rows) { return; } // uniform across the workgroup
  let base = row * p.vocab;
  let n = p.valid;

  // 1. argmax: first strict maximum per invocation, merged keeping the smaller index on ties.
  let best = row_argmax(lid, base, n);
  let xmax = best.value;
  let argmax = best.index;
  if (p.temperature <= 0.0 || p.top_k == 1u) {
    if (lid == 0u) { ids[row] = argmax; }
    return;
  }
  let inv_t = 1.0 / p.temperature;

  // 3a. top-k: cut_key = the largest t with count(key >= t) >= k, then the (k - count(key > t))-th
  // tie in index order.
  var k_key = 0u;
  var k_index = NO_INDEX; // (0, NO_INDEX): every element
  if (p.top_k > 0u && p.top_k < n) {
    var t = 0u;
    for (var b = 0u; b < 32u; b++) {
      let cand = t | (0x80000000u >> b);
      var c = 0u;
      for (var i = lid; i < n; i += WG) { c += select(0u, 1u, order_key(logits[base + i]) >= cand); }
      if (wg_sum_u32(lid, c) >= p.top_k) { t = cand; }
    }
    var above = 0u;
    for (var i = lid; i < n; i += WG) { above += select(0u, 1u, order_key(logits[base + i]) > t); }
    let need = p.top_k - wg_sum_u32(lid, above); // >= 1
    var x = 0u; // the largest x with count(key == t, i < x) < need: the need-th tie's index
    for (var b = 0u; b < p.index_bits; b++) {
      let cand = x | (1u << (p.index_bits - 1u - b));
      var c = 0u;
      for (var i = lid; i < min(cand, n); i += WG) { c += select(0u, 1u, order_key(logits[base + i]) == t); }
      if (wg_sum_u32(lid, c) < need) { x = cand; }
    }
    k_key = t;
    k_index = x;
  }

  // 3b. top-p over K: cut_key = the largest t with sum(w over K, key >= t) >= top_p * sum_K w, then
  // the tie at which the running weight in index order reaches the goal.
  var p_key = 0u;
  var p_index = NO_INDEX;
  if (p.top_p < 1.0) {
    var wk = 0.0;
    for (var i = lid; i < n; i += WG) {
      let x = logits[base + i];
      if (in_prefix(order_key(x), i, k_key, k_index)) { wk += exp(max((x - xmax) * inv_t, MIN_EXPONENT)); }
    }
    let goal = p.top_p * wg_sum(lid, wk);
    var t = 0u;
    for (var b = 0u; b < 32u; b++) {
      let cand = t | (0x80000000u >> b);
      var m = 0.0;
      for (var i = lid; i < n; i += WG) {
        let x = logits[base + i];
        let key = order_key(x);
        if (key >= cand && in_prefix(key, i, k_key, k_index)) { m += exp(max((x - xmax) * inv_t, MIN_EXPONENT)); }
      }
      if (wg_sum(lid, m) >= goal) { t = cand; }
    }
    var above = 0.0;
    for (var i = lid; i < n; i += WG) {
      let x = logits[base + i];
      let key = order_key(x);
      if (key > t && in_prefix(key, i, k_key, k_index)) { above += exp(max((x - xmax) * inv_t, MIN_EXPONENT)); }
    }
    let mass_above = wg_sum(lid, above); // < goal
    var x = 0u; // the largest x with mass_above + sum(w over ties, i < x) < goal
    for (var b = 0u; b < p.index_bits; b++) {
      let cand = x | (1u << (p.index_bits - 1u - b));
      var m = 0.0;
      for (var i = lid; i < min(cand, n); i += WG) {
        let v = logits[base + i];
        let key = order_key(v);
        if (key == t && in_prefix(key, i, k_key, k_index)) { m += exp(max((v - xmax) * inv_t, MIN_EXPONENT)); }
      }
      if (mass_above + wg_sum(lid, m) < goal) { x = cand; }
    }
    p_key = t;
    p_index = x;
  }

  // 4. Inverse-CDF walk over P in index order: contiguous blocks per invocation, an exclusive scan
  // of the block sums, and the one invocation whose block holds u * total walks its block.
  let block = (n + WG - 1u) / WG;
  let start = min(lid * block, n);
  let end = min(start + block, n);
  var sum = 0.0;
  var last = NO_INDEX;
  for (var i = start; i < end; i++) {
    let x = logits[base + i];
    let key = order_key(x);
    if (in_prefix(key, i, k_key, k_index) && in_prefix(key, i, p_key, p_index)) {
      sum += exp(max((x - xmax) * inv_t, MIN_EXPONENT));
      last = i;
    }
  }
  block_sum[lid] = sum;
  if (lid == 0u) { picked = NO_INDEX; }
  // The fallback when rounding puts u * total at or past the end: P's last index.
  let last_in_p = wg_max_u32(lid, select(last + 1u, 0u, last == NO_INDEX)) - 1u;
  if (lid == 0u) {
    var run = 0.0;
    for (var j = 0u; j < WG; j++) {
      block_prefix[j] = run;
      run += block_sum[j];
    }
    block_prefix[WG] = run;
  }
  workgroupBarrier();
  let u = clamp(uniforms[row], 0.0, 0.99999994);
  let goal = u * block_prefix[WG];
  let lo = block_prefix[lid];
  if (lo <= goal && goal < block_prefix[lid + 1u]) {
    var run = lo;
    var choice = last; // if this block's own running sum falls short by rounding
    for (var i = start; i < end; i++) {
      let x = logits[base + i];
      let key = order_key(x);
      if (in_prefix(key, i, k_key, k_index) && in_prefix(key, i, p_key, p_index)) {
        run += exp(max((x - xmax) * inv_t, MIN_EXPONENT));
        if (run > goal) {
          choice = i;
          break;
        }
      }
    }
    picked = choice;
  }
  workgroupBarrier();
  if (lid == 0u) { ids[row] = select(picked, last_in_p, picked == NO_INDEX); }
}
