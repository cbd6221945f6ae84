// Linear layer input gradient, tiled GEMM: dinp[m, k] (= or +=) sum_n dout[m, n] * W[n, k], with W the
// dequantised frozen weight [N, K] (no weight gradient: the base model is frozen under LoRA).
// A weight format (matmul.int8 / matmul.f16: quad_values, row_words) is prepended by matmul.ts.
//
// The scheme of matmul.fwd with the roles turned: a 64 x 64 tile of dinp per 256 threads, each thread
// a 4 x 4 block in vec4 registers, stepping through N by BR = 16. The weight tile is read along its
// rows (k), already the layout the inner loop wants, so each quad is stored whole, scaled by its row's
// scale (which here varies along the reduction).
//
// LoRA's share of the same reduction rides along: with lora_tiles > 0 the grid has that many more
// column tiles, which stage the adapter's B [N, r] (f32, times its scaling) in place of W and write
// dxa[m, j] = scaling * sum_n dout[m, n] * B[n, j] instead of dinp: the adapter's input gradient
// then needs no reduction of its own over N (lora-step.ts adds dxa · A under the dropout mask).

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
@group(0) @binding(1) var<storage, read_write> dinp: array<f32>;
@group(0) @binding(2) var<storage, read> dout: array<f32>;
@group(0) @binding(3) var<storage, read> weight: array<u32>;
@group(0) @binding(4) var<storage, read> scales: array<f32>; // unread for f16 weights (another tensor is bound)
@group(0) @binding(5) var<storage, read> lora_b: array<f32>;
@group(0) @binding(6) var<storage, read_write> dxa: array<f32>;

// W[n, 4*quad .. 4*quad + 3] unscaled; the caller guarantees 4*quad < K.
fn weight_quad(n: u32, quad: u32) -> vec4<f32> {
  let i = n * row_words(p.K) + quad * QUAD_WORDS;
  var hi = 0u;
  if (QUAD_WORDS == 2u && 4u * quad + 2u < p.K) { hi = weight[i + 1u]; }
  return quad_values(weight[i], hi);
}

fn row_scale(n: u32) -> f32 {
  if (HAS_SCALES) { return scales[n]; }
  return 1.0;
}

const TILE = 64u;
const BR = 16u;
const V = TILE / 4u;

var<workgroup> d_tile: array<vec4<f32>, BR * V>; // [n][m / 4]
var<workgroup> w_tile: array<vec4<f32>, BR * V>; // [n][k / 4]

fn store(m: u32, k: u32, lora: bool, v: vec4<f32>) {
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

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let tile = wid.x + wid.y * p.grid_x;
  if (tile >= p.tiles) { return; } // uniform per workgroup
  // Keeps `scales` in the pipeline's layout for f16 weights too, which never read it: the bindings
  // after it (LoRA's) then keep their numbers.
  _ = arrayLength(&scales);
  let m0 = (tile % p.tiles_m) * TILE;
  let col = tile / p.tiles_m;
  let lora = col >= p.k_tiles; // uniform per workgroup
  let k0 = select(col, col - p.k_tiles, lora) * TILE;
  let tx = lid % 16u;
  let ty = lid / 16u;
  // dout staging: four consecutive n of row lid / 4; weight staging: quad lid % 16 of row lid / 16.
  let d_row = lid / 4u;
  let d_quad = lid % 4u;
  let dm = m0 + d_row;
  let w_row = lid / V;
  let w_quad = lid % V;
  let wk = k0 + 4u * w_quad;

  var acc0 = vec4<f32>(0.0);
  var acc1 = vec4<f32>(0.0);
  var acc2 = vec4<f32>(0.0);
  var acc3 = vec4<f32>(0.0);
  for (var n0 = 0u; n0 < p.N; n0 += BR) {
    let n = n0 + 4u * d_quad;
    var d = vec4<f32>(0.0);
    if (dm < p.M) {
      let base = dm * p.N + n;
      for (var j = 0u; j < 4u; j++) {
        if (n + j < p.N) { d[j] = dout[base + j]; }
      }
    }
    let s = 4u * d_quad * V + d_row / 4u;
    let lane = d_row % 4u;
    d_tile[s][lane] = d.x;
    d_tile[s + V][lane] = d.y;
    d_tile[s + 2u * V][lane] = d.z;
    d_tile[s + 3u * V][lane] = d.w;
    let wn = n0 + w_row;
    var w = vec4<f32>(0.0);
    if (lora) {
      if (wn < p.N) {
        let b = p.b_off + wn * p.r + wk;
        for (var j = 0u; j < 4u; j++) {
          if (wk + j < p.r) { w[j] = lora_b[b + j] * p.scaling; }
        }
      }
    } else if (wn < p.N && wk < p.K) { w = weight_quad(wn, wk >> 2u) * row_scale(wn); }
    w_tile[w_row * V + w_quad] = w;
    workgroupBarrier();
    for (var nn = 0u; nn < BR; nn++) {
      let a = d_tile[nn * V + ty];
      let b = w_tile[nn * V + tx];
      acc0 = fma(vec4<f32>(a.x), b, acc0);
      acc1 = fma(vec4<f32>(a.y), b, acc1);
      acc2 = fma(vec4<f32>(a.z), b, acc2);
      acc3 = fma(vec4<f32>(a.w), b, acc3);
    }
    workgroupBarrier();
  }

  let m = m0 + 4u * ty;
  let k = k0 + 4u * tx;
  store(m, k, lora, acc0);
  store(m + 1u, k, lora, acc1);
  store(m + 2u, k, lora, acc2);
  store(m + 3u, k, lora, acc3);
}
