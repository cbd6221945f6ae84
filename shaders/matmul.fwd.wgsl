// Linear layer forward, tiled GEMM: out[m, n] (= or +=) row_scale(n) * sum_k inp[m, k] * W[n, k] + bias[n]
// (PyTorch nn.Linear with W [N, K]). A weight format (matmul.int8 / matmul.f16: weight_quad,
// row_scale) is prepended by matmul.ts.
//
// 256 threads as 16 x 16 compute a 64 x 64 output tile, each thread a 4 x 4 block of it in four vec4
// registers, stepping through K by BK = 16 with both operands staged in workgroup memory transposed
// to [k][m] and [k][n], so each k step costs a thread two vec4 loads for 16 FMAs. Thread (ty, tx) owns
// rows 4ty..4ty+3 and columns 4tx..4tx+3: a warp's loads of the n operand are contiguous and its
// loads of the m operand are broadcasts. The code is unrolled by hand (no arrays indexed by loop
// variables) so that every backend keeps the accumulators in registers.
// The per-row scale is applied once at the end: sum_k x*q*s = s * sum_k x*q.

struct Params {
  M: u32,
  N: u32,
  K: u32,
  accumulate: u32, // 1: out += result (the parallel block adds both branches into the residual)
  has_bias: u32,   // 0: the bias slot holds another read-only tensor and is not read
  tiles_m: u32,
  tiles: u32,      // tiles_m * tiles_n
  grid_x: u32,     // workgroups along x; tiles past it fold into y
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<storage, read> inp: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read> weight: array<u32>;
@group(0) @binding(5) var<storage, read> scales: array<f32>;

const TILE = 64u; // output rows and columns per workgroup (matmul.ts GEMM_TILE)
const BK = 16u;
const V = TILE / 4u; // vec4s per k row of a staged tile

var<workgroup> x_tile: array<vec4<f32>, BK * V>; // [k][m / 4]
var<workgroup> w_tile: array<vec4<f32>, BK * V>; // [k][n / 4]

// Writes four consecutive columns of one output row, skipping those past N.
fn store(m: u32, n: u32, v: vec4<f32>, scale: vec4<f32>, b: vec4<f32>) {
  if (m >= p.M) { return; }
  let r = v * scale + b;
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
  // Consecutive workgroups share a weight tile and differ in rows of inp: the weights, usually the
  // larger operand, come from memory once and from cache for the other row tiles.
  let m0 = (tile % p.tiles_m) * TILE;
  let n0 = (tile / p.tiles_m) * TILE;
  let tx = lid % 16u;
  let ty = lid / 16u;
  // Staging: thread lid loads four consecutive k (one quad) of row lid / 4 of each operand.
  let load_row = lid / 4u;
  let load_quad = lid % 4u;
  let xm = m0 + load_row;
  let wn = n0 + load_row;
  let slot = load_row / 4u;
  let lane = load_row % 4u;

  var acc0 = vec4<f32>(0.0);
  var acc1 = vec4<f32>(0.0);
  var acc2 = vec4<f32>(0.0);
  var acc3 = vec4<f32>(0.0);
  for (var k0 = 0u; k0 < p.K; k0 += BK) {
    let k = k0 + 4u * load_quad;
    var x = vec4<f32>(0.0);
    if (xm < p.M) {
      let base = xm * p.K + k;
      // K is a multiple of 4 for int8 and of 2 for f16, so a quad is whole, half or absent.
      if (k + 3u < p.K) {
        x = vec4<f32>(inp[base], inp[base + 1u], inp[base + 2u], inp[base + 3u]);
      } else if (k + 1u < p.K) {
        x = vec4<f32>(inp[base], inp[base + 1u], 0.0, 0.0);
      }
    }
    var w = vec4<f32>(0.0);
    if (wn < p.N && k < p.K) { w = weight_quad(wn, k >> 2u); }
    let s = 4u * load_quad * V + slot;
    x_tile[s][lane] = x.x;
    x_tile[s + V][lane] = x.y;
    x_tile[s + 2u * V][lane] = x.z;
    x_tile[s + 3u * V][lane] = x.w;
    w_tile[s][lane] = w.x;
    w_tile[s + V][lane] = w.y;
    w_tile[s + 2u * V][lane] = w.z;
    w_tile[s + 3u * V][lane] = w.w;
    workgroupBarrier();
    for (var kk = 0u; kk < BK; kk++) {
      let a = x_tile[kk * V + ty];
      let b = w_tile[kk * V + tx];
      acc0 = fma(vec4<f32>(a.x), b, acc0);
      acc1 = fma(vec4<f32>(a.y), b, acc1);
      acc2 = fma(vec4<f32>(a.z), b, acc2);
      acc3 = fma(vec4<f32>(a.w), b, acc3);
    }
    workgroupBarrier();
  }

  let n = n0 + 4u * tx;
  var scale = vec4<f32>(1.0);
  var b = vec4<f32>(0.0);
  for (var j = 0u; j < 4u; j++) {
    if (n + j < p.N) {
      scale[j] = row_scale(n + j);
      if (p.has_bias != 0u) { b[j] = bias[n + j]; }
    }
  }
  let m = m0 + 4u * ty;
  store(m, n, acc0, scale, b);
  store(m + 1u, n, acc1, scale, b);
  store(m + 2u, n, acc2, scale, b);
  store(m + 3u, n, acc3, scale, b);
}
