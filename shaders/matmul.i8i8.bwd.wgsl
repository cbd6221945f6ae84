// Linear layer input gradient in int8 x int8 (the int8 compute path's backward, after SwitchBack):
//   dinp[m, k] (= or +=) dout_scale[m] * sum_n gq[m, n] * wq[n, k]
// where gq quantises dout[m, n] * weight_scale[n] per row m (quantize.rows with the weight's scales as
// column scales: the per-output-row weight scale varies along this product's reduction, so it is
// folded into the gradient before quantising, and the int8 weight is used exactly as stored).
// Sums are exact in i32 (dot4I8Packed); one rescale at the end. The `requires` directive is prepended
// by matmul-i8i8.ts.
//
// gq is [M][N / 4] words (four along n). The weight is [N][K / 4] words, four along k, but this
// product needs four consecutive n of one k in a word: staging transposes 4 x 4 blocks of bytes.
// 256 threads as 16 x 16 compute a 64 x 64 tile of dinp, each thread 4 x 4 in vec4<i32> registers,
// stepping through N by BW = 16 words (64 n) a stage:
//  - gq staging as matmul.i8i8.fwd's: thread (g, w) reads word w of rows 4g..4g+3, one vec4 store at
//    tile[w][g]; rows padded to 17 vec4s, conflict free.
//  - weight staging: thread (i, kw) = (lid / 16, lid % 16) reads word kw (four k) of weight rows
//    n = 4i..4i+3 (a warp reads 64 contiguous bytes of each of its rows), transposes the 4 x 4 bytes
//    in registers (SWAR masks and shifts, about 20 integer operations) into four words of
//    n = 4i..4i+3, one per k, and stores them as one vec4 at b_tile[i][kw]: the four columns
//    4kw..4kw+3 that thread tx = kw reads. Conflict free as above.
//  - inner loop as the forward's: 32 int8 MACs per 16-byte shared-memory load, 256 dot4I8Packed a
//    thread a stage; the transposition adds about 8% integer work.

struct Params {
  M: u32,
  N: u32,
  K: u32,          // a multiple of 4
  accumulate: u32, // 1: dinp += result (a second branch's gradient)
  tiles_m: u32,
  tiles: u32,      // tiles_m * tiles_k
  grid_x: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> dinp: array<f32>;
@group(0) @binding(2) var<storage, read> dout: array<u32>;        // [M][ceil(N / 4)] quantised gradient
@group(0) @binding(3) var<storage, read> dout_scales: array<f32>; // [M]
@group(0) @binding(4) var<storage, read> weight: array<u32>;      // [N][K / 4] int8 weights

const TILE = 64u;
const BW = 16u;
const STRIDE = 17u;

var<workgroup> a_tile: array<vec4<u32>, BW * STRIDE>; // [n word][row / 4]
var<workgroup> b_tile: array<vec4<u32>, BW * STRIDE>; // [n word][k / 4]

fn dout_word(m: u32, w: u32, words: u32) -> u32 {
  if (m >= p.M || w >= words) { return 0u; }
  return dout[m * words + w];
}

fn weight_word(n: u32, kw: u32, k_words: u32) -> u32 {
  if (n >= p.N || kw >= k_words) { return 0u; }
  return weight[n * k_words + kw];
}

// Rows r0..r3 hold bytes (k0..k3) each; the result's word j holds k_j of r0..r3 (byte i from r_i).
fn transpose_bytes(r0: u32, r1: u32, r2: u32, r3: u32) -> vec4<u32> {
  let even01 = (r0 & 0x00ff00ffu) | ((r1 & 0x00ff00ffu) << 8u);  // r0k0 r1k0 r0k2 r1k2
  let odd01 = ((r0 >> 8u) & 0x00ff00ffu) | (r1 & 0xff00ff00u);    // r0k1 r1k1 r0k3 r1k3
  let even23 = (r2 & 0x00ff00ffu) | ((r3 & 0x00ff00ffu) << 8u);
  let odd23 = ((r2 >> 8u) & 0x00ff00ffu) | (r3 & 0xff00ff00u);
  return vec4<u32>(
    (even01 & 0xffffu) | (even23 << 16u),
    (odd01 & 0xffffu) | (odd23 << 16u),
    (even01 >> 16u) | (even23 & 0xffff0000u),
    (odd01 >> 16u) | (odd23 & 0xffff0000u),
  );
}

fn dot_row(a: u32, b: vec4<u32>) -> vec4<i32> {
  return vec4<i32>(dot4I8Packed(a, b.x), dot4I8Packed(a, b.y), dot4I8Packed(a, b.z), dot4I8Packed(a, b.w));
}

fn store(m: u32, k: u32, acc: vec4<i32>) {
  if (m >= p.M) { return; }
  let r = vec4<f32>(acc) * dout_scales[m];
  for (var j = 0u; j < 4u; j++) {
    if (k + j < p.K) {
      let o = m * p.K + k + j;
      if (p.accumulate != 0u) { dinp[o] += r[j]; } else { dinp[o] = r[j]; }
    }
  }
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let tile = wid.x + wid.y * p.grid_x;
  if (tile >= p.tiles) { return; } // uniform per workgroup
  let m0 = (tile % p.tiles_m) * TILE;
  let k0 = (tile / p.tiles_m) * TILE;
  let n_words = (p.N + 3u) / 4u;
  let k_words = p.K / 4u;
  let tx = lid % 16u;
  let ty = lid / 16u;
  let sw = lid % BW;
  let sg = lid / BW;
  let srow = 4u * sg;
  let kw = k0 / 4u + sw;

  var acc0 = vec4<i32>(0);
  var acc1 = vec4<i32>(0);
  var acc2 = vec4<i32>(0);
  var acc3 = vec4<i32>(0);
  for (var w0 = 0u; w0 < n_words; w0 += BW) {
    a_tile[sw * STRIDE + sg] = vec4<u32>(
      dout_word(m0 + srow, w0 + sw, n_words), dout_word(m0 + srow + 1u, w0 + sw, n_words),
      dout_word(m0 + srow + 2u, w0 + sw, n_words), dout_word(m0 + srow + 3u, w0 + sw, n_words));
    // Weight rows n = 4 * (w0 + sg) .. + 3: n word sg of this stage.
    let n = 4u * (w0 + sg);
    b_tile[sg * STRIDE + sw] = transpose_bytes(
      weight_word(n, kw, k_words), weight_word(n + 1u, kw, k_words),
      weight_word(n + 2u, kw, k_words), weight_word(n + 3u, kw, k_words));
    workgroupBarrier();
    for (var j = 0u; j < BW; j++) {
      let a = a_tile[j * STRIDE + ty];
      let b = b_tile[j * STRIDE + tx];
      acc0 += dot_row(a.x, b);
      acc1 += dot_row(a.y, b);
      acc2 += dot_row(a.z, b);
      acc3 += dot_row(a.w, b);
    }
    workgroupBarrier();
  }

  let m = m0 + 4u * ty;
  let k = k0 + 4u * tx;
  store(m, k, acc0);
  store(m + 1u, k, acc1);
  store(m + 2u, k, acc2);
  store(m + 3u, k, acc3);
}
