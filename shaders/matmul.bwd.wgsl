// Linear layer input gradient: dinp[m, k] (= or +=) sum_n dout[m, n] * W[n, k], with W the dequantised
// frozen weight [N, K] (no weight gradient: the base model is frozen under LoRA), on the register-
// blocked GEMM of lib/gemm_core.wgsl (8 x 8 a thread, 128 x BN a workgroup, 16 FMAs per 16-byte shared
// load, BK = 16 steps through N, double-buffered where workgroup memory allows) with A = dout and
// B = W. Prepended by matmul.ts, in order: `const BN`, `const STAGES`; a weight format (matmul.int8 /
// matmul.f16); the operands (lib/linear_operands_vec4.wgsl where dout's rows and W's rows are whole
// 16-byte chunks, else lib/linear_operands_words.wgsl: `weight`, `inp` = dout, load_w4, load_x4);
// after it lib/gemm_core.wgsl.
//
// Staging per step: dout is the forward's activations again (128 rows x 4 vec4, stored transposed
// without bank conflicts: lib/linear_gemm.wgsl). W is already k-major: step rows n0 .. n0 + 15, each a
// run of BN consecutive k, which one vec4<u32> load a thread reads as a whole 16-byte chunk (16 int8
// or 8 f16 values, BN / CHUNK_VALUES chunks a row), scaled by its row's scale (which here varies along
// the reduction, so it cannot wait for the epilogue) and stored as 4 (int8) or 2 (f16) vec4. Banks:
// a 16-byte store is served 8 lanes at a time; the 8 lanes' chunks start 16 (int8) or 8 (f16) words
// apart, so their j-th vec4s would share a bank 2 (f16) or 4 (int8) ways. Each lane instead writes
// its vec4s in an order rotated by its place among the 8 (`rot`), so that at every store the 8 lanes
// cover 32 distinct banks.
//
// LoRA's share of the same reduction rides along: with r > 0 the grid has more column tiles, which
// stage the adapter's B [N, r] (f32, times its scaling; 8 values a thread, stored as f16's are) in
// place of W and write dxa[m, j] = scaling * sum_n dout[m, n] * B[n, j] instead of dinp: the adapter's
// input gradient then needs no reduction of its own over N (lora-step.ts adds dxa · A under the
// dropout mask).
//
// Summation order: each output is one FMA chain over n ascending, zero-padded to whole steps, as in
// the 64 x 64 kernel this replaces, so the results are the same bits.

struct Params {
  M: u32,
  N: u32,
  K: u32,
  accumulate: u32, // 1: dinp += result (another branch's gradient is already there)
  tiles_m: u32,
  tiles: u32,
  grid_x: u32,
  k_tiles: u32,    // column tiles of dinp; those past it are LoRA's
  r: u32,
  b_off: u32,      // element of B[0, 0] in lora_b
  dxa_off: u32,    // element of dxa[0, 0] in dxa
  scaling: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
// Bindings 1-3 (weight, inp = dout, inp2 = dout again, unread) come with the operands.
@group(0) @binding(4) var<storage, read_write> dinp: array<f32>;
@group(0) @binding(5) var<storage, read> scales: array<f32>; // unread for f16 weights (another tensor is bound)
@group(0) @binding(6) var<storage, read> lora_b: array<f32>;
@group(0) @binding(7) var<storage, read_write> dxa: array<f32>;

const CHUNKS_PER_ROW = BN / CHUNK_VALUES; // W chunks in a step row of the tile
const VEC_PER_CHUNK = CHUNK_VALUES / 4u;  // vec4 stores of one chunk: 4 (int8) or 2 (f16)
const LORA_PER_ROW = BN / 8u;             // threads a step row of B (8 values each)

var<private> staged_w: vec4<u32>;
var<private> staged_l: array<vec4<f32>, 2>;

fn row_scale(n: u32) -> f32 {
  if (HAS_SCALES) { return scales[n]; }
  return 1.0;
}

fn store4(m: u32, k: u32, lora: bool, v: vec4<f32>) {
  if (m >= p.M) { return; }
  if (lora) {
    for (var j = 0u; j < 4u; j++) {
      if (k + j < p.r) { dxa[p.dxa_off + m * p.r + k + j] = v[j]; }
    }
    return;
  }
  for (var j = 0u; j < 4u; j++) {
    if (k + j < p.K) {
      let o = m * p.K + k + j;
      if (p.accumulate != 0u) { dinp[o] += v[j]; } else { dinp[o] = v[j]; }
    }
  }
}

@compute @workgroup_size(GEMM_THREADS)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let tile = wid.x + wid.y * p.grid_x;
  if (tile >= p.tiles) { return; } // uniform per workgroup
  // Keeps `scales` in the pipeline's layout for f16 weights too, which never read it.
  _ = arrayLength(&scales);
  let m0 = (tile % p.tiles_m) * BM;
  let col = tile / p.tiles_m;
  let lora = col >= p.k_tiles; // uniform per workgroup
  let k0 = select(col, col - p.k_tiles, lora) * BN;
  let tx = lid % TN;
  let ty = lid / TN;
  // W staging: chunk w_c of step row w_n (threads past 16 rows of chunks stage none).
  let w_n = lid / CHUNKS_PER_ROW;
  let w_c = lid % CHUNKS_PER_ROW;
  let stages_w = !lora && w_n < BK && k0 + w_c * CHUNK_VALUES < p.K;
  let w_rot = (lid % 8u) / (8u / VEC_PER_CHUNK);
  // LoRA staging: 8 values of step row l_n from column l_c (every thread).
  let l_n = lid / LORA_PER_ROW;
  let l_c = 8u * (lid % LORA_PER_ROW);
  let l_rot = ((lid % 8u) / 4u) % 2u;
  let steps = (p.N + BK - 1u) / BK;
  clear_acc();

  // Step t's global loads go to registers, then (after step t - 1 is computed) to a stage.
  for (var t = 0u; t <= steps; t++) {
    let n0 = t * BK;
    if (t < steps) {
      load_a_step(0u, m0, n0, p.N, lid);
      staged_w = vec4<u32>(0u);
      if (stages_w && n0 + w_n < p.N) { staged_w = load_w4((n0 + w_n) * row_words(p.K), k0 / CHUNK_VALUES + w_c, p.K); }
      if (lora) {
        for (var h = 0u; h < 2u; h++) {
          var v = vec4<f32>(0.0);
          for (var e = 0u; e < 4u; e++) {
            let c = k0 + l_c + 4u * h + e;
            if (n0 + l_n < p.N && c < p.r) { v[e] = lora_b[p.b_off + (n0 + l_n) * p.r + c] * p.scaling; }
          }
          staged_l[h] = v;
        }
      }
    }
    if (t > 0u) { tile_fma((t - 1u) % STAGES, tx, ty); }
    if (STAGES == 1u) { workgroupBarrier(); } // the one stage is free only once every thread has used it
    if (t < steps) {
      let stage = t % STAGES;
      stage_a_step(stage, lid);
      if (lora) {
        for (var h = 0u; h < 2u; h++) {
          let hh = (h + l_rot) % 2u;
          stage_b4(stage, l_n, l_c + 4u * hh, staged_l[hh]);
        }
      } else if (w_n < BK) {
        // Zeros where the chunk is past K or the row past N (staged_w stayed 0).
        let values = chunk_values(staged_w);
        var s = 0.0;
        if (n0 + w_n < p.N) { s = row_scale(n0 + w_n); }
        for (var j = 0u; j < VEC_PER_CHUNK; j++) {
          let jj = (j + w_rot) % VEC_PER_CHUNK;
          stage_b4(stage, w_n, w_c * CHUNK_VALUES + 4u * jj, values[jj] * s);
        }
      }
    }
    workgroupBarrier();
  }

  for (var i = 0u; i < 8u; i++) {
    let m = m0 + acc_row(ty, i);
    for (var h = 0u; h < 2u; h++) {
      store4(m, k0 + acc_col(tx, h), lora, acc[2u * i + h]);
    }
  }
}
