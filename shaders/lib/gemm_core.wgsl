// The register block and staged tiles of a tiled GEMM, C[BM x BN] += A[BM x K] * B[K x BN], for the
// bodies that stage B and supply A's loads (lib/linear_gemm.wgsl: the linear forward; matmul.bwd.wgsl:
// the input gradient, dout as A and W as B), which A's staging reads through their load_x4 and p.M. Prepended before it: `const BN` (128 or 64) and
// `const STAGES` (2: double-buffered, or 1 where workgroup memory is short).
//
// BM = 128 rows by BN columns per workgroup of (BM / 8) * (BN / 8) threads, each thread an 8 x 8 block
// of C in 16 vec4 registers: rows 4ty..4ty+3 and BM/2 + 4ty.. , columns 4tx..4tx+3 and BN/2 + 4tx.. .
// Splitting a thread's rows and columns into two runs of four half a tile apart keeps every warp's
// 16-byte loads of a staged row consecutive (128 contiguous bytes per quarter-warp: no bank conflicts)
// while A's are broadcasts (two distinct addresses per warp). Per k a thread loads 4 vec4 from
// workgroup memory (8 values of A, 8 of B) for 64 FMAs: 16 FMAs per 16-byte shared load, against 8 for
// a 4 x 4 block. Tiles are staged k-major ([k][m] and [k][n]) in BK = 16 steps; with STAGES = 2 the
// next step's global loads are in flight while this one computes, and one barrier separates steps.
// Workgroup memory: STAGES * BK * (BM + BN) * 4 bytes, 32 KiB at BN = 128 double-buffered. Registers:
// 64 accumulators, 16 operands and 12 staging values a thread, about 100-128 in all: two 256-thread
// workgroups an H100 SM (16 warps, a quarter of its slots), enough with 16 independent FMA chains a
// thread; the loop should then run near the f32 FMA rate (~60 of 67 TFLOP/s in theory, 27-32 as
// Dawn/Vulkan's best f32 WGSL GEMMs reach on that GPU).

const BM = 128u;
const BK = 16u;
const TN = BN / 8u; // threads along n
const GEMM_THREADS = (BM / 8u) * TN;
const AV = BM / 4u; // vec4s in a staged k row of A
const BV = BN / 4u;

var<workgroup> a_tile: array<vec4<f32>, STAGES * BK * AV>; // [stage][k][m / 4]
var<workgroup> b_tile: array<vec4<f32>, STAGES * BK * BV>; // [stage][k][n / 4]
var<private> acc: array<vec4<f32>, 16>; // [row i of 8][half h of the columns]

fn clear_acc() {
  for (var i = 0u; i < 16u; i++) { acc[i] = vec4<f32>(0.0); }
}

// A[m, k0 + 4q .. + 3] (m, 0 <= q < BK / 4, within the tile) into the stage, transposed.
fn stage_a(stage: u32, m: u32, q: u32, v: vec4<f32>) {
  let base = (stage * BK + 4u * q) * AV + m / 4u;
  let e = m % 4u;
  a_tile[base][e] = v.x;
  a_tile[base + AV][e] = v.y;
  a_tile[base + 2u * AV][e] = v.z;
  a_tile[base + 3u * AV][e] = v.w;
}

const A_LOADS = BM * BK / 4u / GEMM_THREADS; // A's vec4s a thread stages per step
var<private> staged_a: array<vec4<f32>, A_LOADS>;

// A's step, rows m0.. (zeros past p.M) and columns k0.. of segment s (K columns, through the body's
// load_x4), into this thread's registers: a step's global loads, in flight while the one before computes.
fn load_a_step(s: u32, m0: u32, k0: u32, K: u32, lid: u32) {
  for (var j = 0u; j < A_LOADS; j++) {
    let i = lid + j * GEMM_THREADS;
    let m = m0 + i % BM;
    staged_a[j] = vec4<f32>(0.0);
    if (m < p.M) { staged_a[j] = load_x4(s, m, k0 + 4u * (i / BM), K); }
  }
}

// What load_a_step put in the registers, into the stage.
fn stage_a_step(stage: u32, lid: u32) {
  for (var j = 0u; j < A_LOADS; j++) {
    let i = lid + j * GEMM_THREADS;
    stage_a(stage, i % BM, i / BM, staged_a[j]);
  }
}

// B[k0 + k, n] (within the tile) into the stage.
fn stage_b(stage: u32, k: u32, n: u32, v: f32) {
  b_tile[(stage * BK + k) * BV + n / 4u][n % 4u] = v;
}

// B[k0 + k, n .. n + 3] (n a multiple of 4, within the tile) into the stage: one 16-byte store.
fn stage_b4(stage: u32, k: u32, n: u32, v: vec4<f32>) {
  b_tile[(stage * BK + k) * BV + n / 4u] = v;
}

// The thread's 8 x 8 block += the staged A and B over BK.
fn tile_fma(stage: u32, tx: u32, ty: u32) {
  for (var k = 0u; k < BK; k++) {
    let ab = (stage * BK + k) * AV;
    let bb = (stage * BK + k) * BV;
    let a0 = a_tile[ab + ty];
    let a1 = a_tile[ab + AV / 2u + ty];
    let b0 = b_tile[bb + tx];
    let b1 = b_tile[bb + BV / 2u + tx];
    for (var i = 0u; i < 4u; i++) {
      acc[2u * i] = fma(vec4<f32>(a0[i]), b0, acc[2u * i]);
      acc[2u * i + 1u] = fma(vec4<f32>(a0[i]), b1, acc[2u * i + 1u]);
      acc[8u + 2u * i] = fma(vec4<f32>(a1[i]), b0, acc[8u + 2u * i]);
      acc[8u + 2u * i + 1u] = fma(vec4<f32>(a1[i]), b1, acc[8u + 2u * i + 1u]);
    }
  }
}

// The tile row of the thread's accumulator row i (0..7), and the tile column of its half h (0, 1).
fn acc_row(ty: u32, i: u32) -> u32 {
  return select(4u * ty + i, BM / 2u + 4u * ty + i - 4u, i >= 4u);
}

fn acc_col(tx: u32, h: u32) -> u32 {
  return h * (BN / 2u) + 4u * tx;
}
