// GEMV body of the linear layers' forward for a few rows of activations (decoding, one token per
// sequence): the result of lib/linear_gemm.wgsl, organised for memory bandwidth, which bounds it. Each
// weight is read once and used for up to four rows of activations. Prepended: a weight format
// (quad_values, row_words), the operands as words (lib/linear_operands_words.wgsl: weight, act) and
// the kernel (its Params with M, N, row_groups, groups, grid_x; bindings from 4 on; the hooks
// seg_count, seg_k, row_word and store_pair).
// It takes any K; lib/linear_gemv_vec4.wgsl is the faster body for rows of whole 16-byte chunks.
//
// LANES consecutive threads share one output row n and stride through its quads together, so a warp
// reads one contiguous run of the row per step; they then reduce their partial sums in workgroup
// memory. A workgroup covers 256 / LANES output rows (an even number, so both rows of every pair the
// epilogue takes are in it) and one chunk of four rows of activations.

override LANES: u32 = 64u; // threads per output row: a power of two, at most 128
const WG = 256u;

var<workgroup> partial: array<vec4<f32>, WG>; // one sum per row of activations in the chunk

// W_s[row at word `base`, 4*quad .. 4*quad + 3], unscaled; the caller guarantees 4*quad < K.
fn weight_quad(base: u32, quad: u32, K: u32) -> vec4<f32> {
  let i = base + quad * QUAD_WORDS;
  var hi = 0u;
  if (QUAD_WORDS == 2u && 4u * quad + 2u < K) { hi = weight[i + 1u]; }
  return quad_values(weight[i], hi);
}

// act(s, m, 4*quad .. 4*quad + 3), or zeros for a row past the chunk. Elements past K (the
// half-filled last quad of an f16 row) read as zero.
fn act_quad(s: u32, m: u32, K: u32, quad: u32, present: bool) -> vec4<f32> {
  if (!present) { return vec4<f32>(0.0); }
  let base = m * K + 4u * quad;
  if (4u * quad + 2u < K) { return vec4<f32>(act(s, base), act(s, base + 1u), act(s, base + 2u), act(s, base + 3u)); }
  return vec4<f32>(act(s, base), act(s, base + 1u), 0.0, 0.0);
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let group = wid.x + wid.y * p.grid_x;
  if (group >= p.groups) { return; } // uniform per workgroup
  let n = (group % p.row_groups) * (WG / LANES) + lid / LANES;
  let m0 = (group / p.row_groups) * 4u;
  let lane = lid % LANES;
  let rows = min(p.M - m0, 4u); // rows of activations in this chunk

  for (var s = 0u; s < seg_count(); s++) {
    let K = seg_k(s);
    var acc = vec4<f32>(0.0);
    if (n < p.N) {
      let base = row_word(s, n);
      let quads = (K + 3u) / 4u;
      for (var q = lane; q < quads; q += LANES) {
        let w = weight_quad(base, q, K);
        acc += vec4<f32>(
          dot(w, act_quad(s, m0, K, q, true)),
          dot(w, act_quad(s, m0 + 1u, K, q, rows > 1u)),
          dot(w, act_quad(s, m0 + 2u, K, q, rows > 2u)),
          dot(w, act_quad(s, m0 + 3u, K, q, rows > 3u)),
        );
      }
    }
    partial[lid] = acc;
    workgroupBarrier();
    for (var half = LANES / 2u; half > 0u; half >>= 1u) {
      if (lane < half) { partial[lid] += partial[lid + half]; }
      workgroupBarrier();
    }
    // The lane 0 of an even row hands the epilogue its row and the next one.
    if (lane == 0u && n % 2u == 0u && n < p.N) {
      let first = partial[lid];
      var second = vec4<f32>(0.0);
      if (n + 1u < p.N) { second = partial[lid + LANES]; }
      for (var i = 0u; i < rows; i++) { store_pair(m0 + i, n, s, vec2<f32>(first[i], second[i])); }
    }
    workgroupBarrier(); // the next segment reuses `partial`
  }
}
