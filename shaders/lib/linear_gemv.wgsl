// GEMV body of the linear layers' forward for a few rows of activations (decoding: one token per
// sequence), at the memory bandwidth, which bounds it: for each K segment s of the kernel, out[m, n]
// gets sum_k act_s[m, k] * W_s[n, k], handed to the kernel's epilogue two rows at a time. For rows of
// whole 16-byte chunks (int8 K % 16 == 0, f16 K % 8 == 0); lib/linear_gemv_words.wgsl takes any K.
// Prepended, in order: `const ROWS` (even) and `const MROWS` (1..4); a weight format (row_words,
// chunk_dot, CHUNK_VALUES); the operands as vectors (lib/linear_operands_vec4.wgsl: load_w4,
// load_x4); a workgroup reduction (lib/reduce_subgroup.wgsl or reduce_shared.wgsl: workgroup_sums);
// the kernel (its Params with M, N, row_groups, groups, grid_x; bindings from 4 on; the hooks
// seg_count, seg_k, row_word and store_pair).
//
// A workgroup computes ROWS output rows for MROWS rows of activations. Each of its WG threads takes
// the 16-byte chunks c = lid, lid + WG, ... of every one of the ROWS weight rows: one vec4<u32> load
// per row and chunk (16 int8 or 8 f16 weights), so a warp reads 512 contiguous bytes of each row per
// step and every thread has ROWS independent loads in flight. The chunk's activations (4 vec4 for
// int8, 2 for f16, per activation row) are loaded once into registers and used for all ROWS rows;
// they come from L1/L2, where every workgroup finds the same few kilobytes. Each thread so keeps
// ROWS * MROWS partial sums, reduced across the workgroup once at the end (subgroupAdd where the
// device has subgroups, a shared-memory tree otherwise).
//
// Bytes read per output (one activation row, int8): K weight bytes + 8 (scale, bias) from memory,
// plus 4K/ROWS of activations from cache. Phi-2 at decode reads 2.52 GB of int8 weights a token; with
// 8 rows a workgroup the q/k/v/fc1 pass has 2,240 workgroups and the dense+fc2 and fc2 passes 320,
// each thread with 8 loads of 16 bytes in flight: about 32 KB in flight per workgroup, well past the
// ~20 KB an H100 SM needs to cover its memory latency at its share of 3.35 TB/s, so the loop should
// run at the bandwidth; the reduction (two barriers) and epilogue are a few percent of a workgroup's
// time at K = 2560 and less at 10240.

override WG: u32 = 256u; // a power of two

const RM = ROWS * MROWS;
const XV = CHUNK_VALUES / 4u; // activation vec4s per chunk

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let group = wid.x + wid.y * p.grid_x;
  if (group >= p.groups) { return; } // uniform per workgroup
  let slot0 = (group % p.row_groups) * ROWS;
  let m0 = (group / p.row_groups) * MROWS;
  let rows = min(p.M - m0, MROWS);

  for (var s = 0u; s < seg_count(); s++) {
    let K = seg_k(s);
    let chunks = row_words(K) / 4u;
    // Each row's first word; rows past N read row 0's words, and their sums are dropped.
    var base: array<u32, ROWS>;
    for (var r = 0u; r < ROWS; r++) {
      if (slot0 + r < p.N) { base[r] = row_word(s, slot0 + r); }
    }
    // Zeroed explicitly each segment: a declaration in a loop body is not reliably re-initialised.
    var acc: array<f32, RM>;
    for (var i = 0u; i < RM; i++) { acc[i] = 0.0; }
    for (var c = lid; c < chunks; c += WG) {
      var x: array<array<vec4<f32>, 4>, MROWS>;
      for (var m = 0u; m < MROWS; m++) {
        if (m < rows) {
          for (var j = 0u; j < XV; j++) { x[m][j] = load_x4(s, m0 + m, c * CHUNK_VALUES + 4u * j, K); }
        }
      }
      for (var r = 0u; r < ROWS; r++) {
        let w = load_w4(base[r], c, K);
        for (var m = 0u; m < MROWS; m++) { acc[r * MROWS + m] += chunk_dot(w, x[m]); }
      }
    }
    workgroup_sums(lid, acc);
    // One thread per (pair of rows, activation row) hands the epilogue its two sums.
    if (lid < (ROWS / 2u) * MROWS) {
      let pair = lid / MROWS;
      let m = lid % MROWS;
      let slot = slot0 + 2u * pair;
      if (m < rows && slot < p.N) {
        store_pair(m0 + m, slot, s, vec2<f32>(sums[2u * pair * MROWS + m], sums[(2u * pair + 1u) * MROWS + m]));
      }
    }
    workgroupBarrier(); // the next segment reuses `sums`
  }
}
