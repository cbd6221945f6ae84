// Linear layer forward in int8 x int8 (the int8 compute path, after SwitchBack, Wortsman et al. 2023):
//   out[m, n] (= or +=) inp_scale[m] * weight_scale[n] * sum_k xq[m, k] * wq[n, k] + bias[n]
// with xq the activations quantised per row by quantize.rows (inp_scale[m] = absmax / 127) and wq
// the frozen int8 weights (weight_scale[n] per output row). Products are summed exactly in i32 by
// dot4I8Packed (4 multiply-adds of bytes a call, one DP4A instruction where the GPU has it; Tint
// emulates it elsewhere) and rescaled once at the end. |sum| <= 127 * 127 * K < 2^31 for K < 133,000.
// The `requires` directive is prepended by matmul-i8i8.ts.
//
// Both operands are [rows][K / 4] words, four int8 along K a word. 256 threads as 16 x 16 compute a
// 64 x 64 output tile, each thread a 4 x 4 block in four vec4<i32> registers, stepping through K by
// BW = 16 words (64 k) a stage:
//  - staging: thread (g, w) = (lid / 16, lid % 16) reads word w of rows 4g..4g+3 of each operand (a
//    warp's loads are 64 contiguous bytes of two rows: 2 sectors a row) and stores them as one vec4
//    at tile[w][g]. The tile's word rows are padded to 17 vec4s, so the 8 threads of a 128-bit store
//    phase (w = 0..7) hit 8 different groups of 4 banks: conflict free.
//  - inner loop, per word: one vec4 load of a (rows 4ty.., a broadcast within the half-warp) and one
//    of b (columns 4tx..; 8 consecutive tx a phase: conflict free), then 16 dot4I8Packed = 64
//    multiply-adds: 32 int8 MACs per 16-byte shared-memory load (the f32 GEMM's 4 x 4 tile does 8
//    FMAs per 16-byte load), 256 dot4I8Packed a thread a stage between two barriers.
// Occupancy: 8.7 KB of workgroup memory and about 40 registers a thread; Phi-2's 512 x 2560 output is
// 320 workgroups. On GPUs whose DP4A rate is 4x their f32 FMA rate (NVIDIA since Pascal, AMD RDNA2+,
// Intel Xe) that is up to 4x the f32 GEMM's arithmetic, and the operands stream at a quarter of the
// f32 path's bytes.

struct Params {
  M: u32,
  N: u32,
  K: u32,          // a multiple of 4
  accumulate: u32, // 1: out += result
  has_bias: u32,   // 0: the bias slot holds another read-only tensor and is not read
  tiles_m: u32,
  tiles: u32,      // tiles_m * tiles_n
  grid_x: u32,     // workgroups along x; tiles past it fold into y
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<storage, read> inp: array<u32>;          // [M][K / 4] quantised activations
@group(0) @binding(3) var<storage, read> inp_scales: array<f32>;   // [M]
@group(0) @binding(4) var<storage, read> bias: array<f32>;         // [N]
@group(0) @binding(5) var<storage, read> weight: array<u32>;       // [N][K / 4] int8 weights
@group(0) @binding(6) var<storage, read> weight_scales: array<f32>; // [N]

const TILE = 64u; // output rows and columns per workgroup (matmul-i8i8.ts TILE)
const BW = 16u;   // words of K per stage
const STRIDE = 17u; // vec4s per staged word row: 16 + 1 of padding

var<workgroup> a_tile: array<vec4<u32>, BW * STRIDE>; // [word][row / 4]: four rows' words
var<workgroup> b_tile: array<vec4<u32>, BW * STRIDE>; // [word][col / 4]

fn inp_word(m: u32, w: u32, words: u32) -> u32 {
  if (m >= p.M || w >= words) { return 0u; }
  return inp[m * words + w];
}

fn weight_word(n: u32, w: u32, words: u32) -> u32 {
  if (n >= p.N || w >= words) { return 0u; }
  return weight[n * words + w];
}

fn dot_row(a: u32, b: vec4<u32>) -> vec4<i32> {
  return vec4<i32>(dot4I8Packed(a, b.x), dot4I8Packed(a, b.y), dot4I8Packed(a, b.z), dot4I8Packed(a, b.w));
}

fn store(m: u32, n: u32, acc: vec4<i32>, scale: vec4<f32>, b: vec4<f32>) {
  if (m >= p.M) { return; }
  let r = vec4<f32>(acc) * (inp_scales[m] * scale) + b;
  for (var j = 0u; j < 4u; j++) {
    if (n + j < p.N) {
      let o = m * p.N + n + j;
      if (p.accumulate != 0u) { out[o] += r[j]; } else { out[o] = r[j]; }
    }
  }
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let tile = wid.x + wid.y * p.grid_x;
  if (tile >= p.tiles) { return; } // uniform per workgroup
  // Consecutive workgroups share a weight tile and differ in rows of inp (weights from cache).
  let m0 = (tile % p.tiles_m) * TILE;
  let n0 = (tile / p.tiles_m) * TILE;
  let words = p.K / 4u;
  let tx = lid % 16u;
  let ty = lid / 16u;
  let sw = lid % BW;
  let sg = lid / BW;
  let srow = 4u * sg;

  var acc0 = vec4<i32>(0);
  var acc1 = vec4<i32>(0);
  var acc2 = vec4<i32>(0);
  var acc3 = vec4<i32>(0);
  for (var w0 = 0u; w0 < words; w0 += BW) {
    let w = w0 + sw;
    a_tile[sw * STRIDE + sg] = vec4<u32>(
      inp_word(m0 + srow, w, words), inp_word(m0 + srow + 1u, w, words),
      inp_word(m0 + srow + 2u, w, words), inp_word(m0 + srow + 3u, w, words));
    b_tile[sw * STRIDE + sg] = vec4<u32>(
      weight_word(n0 + srow, w, words), weight_word(n0 + srow + 1u, w, words),
      weight_word(n0 + srow + 2u, w, words), weight_word(n0 + srow + 3u, w, words));
    workgroupBarrier();
    for (var kw = 0u; kw < BW; kw++) {
      let a = a_tile[kw * STRIDE + ty];
      let b = b_tile[kw * STRIDE + tx];
      acc0 += dot_row(a.x, b);
      acc1 += dot_row(a.y, b);
      acc2 += dot_row(a.z, b);
      acc3 += dot_row(a.w, b);
    }
    workgroupBarrier();
  }

  let n = n0 + 4u * tx;
  var scale = vec4<f32>(0.0);
  var b = vec4<f32>(0.0);
  for (var j = 0u; j < 4u; j++) {
    if (n + j < p.N) {
      scale[j] = weight_scales[n + j];
      if (p.has_bias != 0u) { b[j] = bias[n + j]; }
    }
  }
  let m = m0 + 4u * ty;
  store(m, n, acc0, scale, b);
  store(m + 1u, n, acc1, scale, b);
  store(m + 2u, n, acc2, scale, b);
  store(m + 3u, n, acc3, scale, b);
}
