// Tiled GEMM body of the linear layers' forward (prefill, training, scoring): for each K segment s of
// the kernel (one, or two whose sums add: dense(attn) + fc2(gelu)), out[m, n] gets
// sum_k act_s[m, k] * W_s[n, k], handed to the kernel's epilogue two columns at a time. The register
// block, staged tiles and their costs are lib/gemm_core.wgsl's (8 x 8 a thread, 128 x BN a workgroup).
// Prepended, in order: `const BN`, `const STAGES`; a weight format (row_words, chunk_values,
// CHUNK_VALUES); the operands (lib/linear_operands_vec4.wgsl where rows are whole 16-byte chunks, else
// lib/linear_operands_words.wgsl: load_w4, load_x4); the kernel (Params with M, N, tiles_m, tiles,
// grid_x; bindings from 4 on; the hooks seg_count, seg_k, row_word, store_pair); lib/gemm_core.wgsl.
//
// Staging per BK = 16 step: A (activations) is 128 rows x 4 vec4, two or four 16-byte loads a thread,
// a warp taking one vec4 of 32 consecutive rows, stored transposed without bank conflicts; B (weights)
// is BN rows of 16 elements: one vec4<u32> of 4 words a row for int8 (16 weights), two for f16, one
// load a thread, dequantised (unscaled) as staged. The per-row scale is applied in the epilogue:
// sum_k x*q*s = s * sum_k x*q.

const CHUNKS_PER_STEP = BK / CHUNK_VALUES; // weight chunks per row per step: 1 (int8) or 2 (f16)

var<private> staged_w: vec4<u32>;

@compute @workgroup_size(GEMM_THREADS)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let tile = wid.x + wid.y * p.grid_x;
  if (tile >= p.tiles) { return; } // uniform per workgroup
  // Consecutive workgroups share a weight tile and differ in rows of activations: the weights,
  // usually the larger operand, come from memory once and from cache for the other row tiles.
  let m0 = (tile % p.tiles_m) * BM;
  let n0 = (tile / p.tiles_m) * BN;
  let tx = lid % TN;
  let ty = lid / TN;
  // The weight chunk this thread stages each step: row w_n of the tile, chunk w_c of the step.
  let w_n = lid % BN;
  let w_c = lid / BN;
  let stages_w = w_c < CHUNKS_PER_STEP && n0 + w_n < p.N;

  for (var s = 0u; s < seg_count(); s++) {
    let K = seg_k(s);
    let steps = (K + BK - 1u) / BK;
    var w_row = 0u;
    if (stages_w) { w_row = row_word(s, n0 + w_n); }
    clear_acc();

    // Step t's global loads go to registers, then (after step t - 1 is computed) to a stage.
    for (var t = 0u; t <= steps; t++) {
      // t < steps: load step t; t > 0: compute step t - 1 while step t's loads are in flight.
      if (t < steps) {
        load_a_step(s, m0, t * BK, K, lid);
        staged_w = vec4<u32>(0u);
        if (stages_w) { staged_w = load_w4(w_row, t * CHUNKS_PER_STEP + w_c, K); }
      }
      if (t > 0u) { tile_fma((t - 1u) % STAGES, tx, ty); }
      if (STAGES == 1u) { workgroupBarrier(); } // the one stage is free only once every thread has used it
      if (t < steps) {
        let stage = t % STAGES;
        stage_a_step(stage, lid);
        if (w_c < CHUNKS_PER_STEP) {
          let values = chunk_values(staged_w);
          for (var j = 0u; j < CHUNK_VALUES / 4u; j++) {
            for (var e = 0u; e < 4u; e++) { stage_b(stage, w_c * CHUNK_VALUES + 4u * j + e, w_n, values[j][e]); }
          }
        }
      }
      workgroupBarrier();
    }

    for (var i = 0u; i < 8u; i++) {
      let m = m0 + acc_row(ty, i);
      for (var h = 0u; h < 2u; h++) {
        let n = n0 + acc_col(tx, h);
        let v = acc[2u * i + h];
        store_pair(m, n, s, v.xy);
        store_pair(m, n + 2u, s, v.zw);
      }
    }
  }
}
