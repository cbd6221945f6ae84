// Tiled GEMM body of the linear layers' forward: for each K segment s of the kernel (one, or two
// whose sums add: dense(attn) + fc2(gelu)), out[m, n] gets sum_k act_s[m, k] * W_s[n, k], handed to
// the kernel's epilogue two columns at a time. Prepended: a weight format (quad_values, row_words)
// and the kernel (its Params with M, N, tiles_m, tiles, grid_x; bindings from 4 on; the hooks
// seg_count, seg_k, row_word and store_pair). This body declares the operands: the weights of every
// segment, and the activations of segments 0 and 1 ([M, K_s] row-major each).
//
// 256 threads as 16 x 16 compute a 64 x 64 output tile, each thread a 4 x 4 block of it in four vec4
// registers, stepping through K by BK = 16 with both operands staged in workgroup memory transposed
// to [k][m] and [k][n], so each k step costs a thread two vec4 loads for 16 FMAs. Thread (ty, tx) owns
// rows 4ty..4ty+3 and columns 4tx..4tx+3: a warp's loads of the n operand are contiguous and its
// loads of the m operand are broadcasts. The code is unrolled by hand (no arrays indexed by loop
// variables) so that every backend keeps the accumulators in registers. The per-row scale is applied
// in the epilogue: sum_k x*q*s = s * sum_k x*q.

@group(0) @binding(1) var<storage, read> weight: array<u32>;
@group(0) @binding(2) var<storage, read> inp: array<f32>;
@group(0) @binding(3) var<storage, read> inp2: array<f32>; // segment 1's activations (inp again with one segment)

const TILE = 64u; // output rows and columns per workgroup (matmul.ts GEMM_TILE)
const BK = 16u;
const V = TILE / 4u; // vec4s per k row of a staged tile

var<workgroup> x_tile: array<vec4<f32>, BK * V>; // [k][m / 4]
var<workgroup> w_tile: array<vec4<f32>, BK * V>; // [k][n / 4]

fn act(s: u32, i: u32) -> f32 {
  if (s == 0u) { return inp[i]; }
  return inp2[i];
}

// W_s[row at word `base`, 4*quad .. 4*quad + 3], unscaled; the caller guarantees 4*quad < K.
fn weight_quad(base: u32, quad: u32, K: u32) -> vec4<f32> {
  let i = base + quad * QUAD_WORDS;
  var hi = 0u;
  if (QUAD_WORDS == 2u && 4u * quad + 2u < K) { hi = weight[i + 1u]; }
  return quad_values(weight[i], hi);
}

// Four consecutive columns n..n+3 of row m, as two pairs.
fn store_quad(m: u32, n: u32, s: u32, v: vec4<f32>) {
  store_pair(m, n, s, v.xy);
  store_pair(m, n + 2u, s, v.zw);
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

  for (var s = 0u; s < seg_count(); s++) {
    let K = seg_k(s);
    var w_base = 0u;
    if (wn < p.N) { w_base = row_word(s, wn); }
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    for (var k0 = 0u; k0 < K; k0 += BK) {
      let k = k0 + 4u * load_quad;
      var x = vec4<f32>(0.0);
      if (xm < p.M) {
        let base = xm * K + k;
        // K is a multiple of 4 for int8 and of 2 for f16, so a quad is whole, half or absent.
        if (k + 3u < K) {
          x = vec4<f32>(act(s, base), act(s, base + 1u), act(s, base + 2u), act(s, base + 3u));
        } else if (k + 1u < K) {
          x = vec4<f32>(act(s, base), act(s, base + 1u), 0.0, 0.0);
        }
      }
      var w = vec4<f32>(0.0);
      if (wn < p.N && k < K) { w = weight_quad(w_base, k >> 2u, K); }
      let st = 4u * load_quad * V + slot;
      x_tile[st][lane] = x.x;
      x_tile[st + V][lane] = x.y;
      x_tile[st + 2u * V][lane] = x.z;
      x_tile[st + 3u * V][lane] = x.w;
      w_tile[st][lane] = w.x;
      w_tile[st + V][lane] = w.y;
      w_tile[st + 2u * V][lane] = w.z;
      w_tile[st + 3u * V][lane] = w.w;
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
    let m = m0 + 4u * ty;
    store_quad(m, n, s, acc0);
    store_quad(m + 1u, n, s, acc1);
    store_quad(m + 2u, n, s, acc2);
    store_quad(m + 3u, n, s, acc3);
  }
}
