// The f32 matrix products of LoRA, forward and backward: C (= or +=) alpha * op(A) · op(B), with the
// operands addressed through strides so that one pipeline covers every transpose LoRA needs
// (x·Aᵀ, xa·Bᵀ, dY·B, dYᵀ·xa, dxaᵀ·x, dxa·A). rng.wgsl is prepended by lora.ts.
//
//   A element (i, l) at a[i * a_row + l * a_red]     (i < M, l < L)
//   B element (l, j) at b[l * b_red + j * b_col]     (j < N)
//   C element (i, j) at c[i * N + j]
//
// LoRA's reductions run over K, N (large) or over tokens, and its outputs can be as small as r x r,
// so the reduction is split into `chunks` slices of `chunk_len`, one workgroup per (tile, slice):
// with chunks = 1 a workgroup writes C itself; otherwise it writes its partial sum to
// c[chunk][i][j] and lora.reduce adds the slices in a fixed order (deterministic, no atomics).
//
// Dropout (LoRA's, on its input x) is replayed from (seed, salt) wherever x is involved: on the A
// operand (x·Aᵀ in the forward pass), on the B operand (dxaᵀ·x for dA), or on C's product (the input
// gradient, which only flows through kept elements). The mask index is x's flat index m * K + k,
// which is the operand's memory offset, or C's, in each of those products.
//
// Tiles: 64 x 64 of C per 256 threads, 4 x 4 per thread in vec4 registers, BK = 16, as in matmul.fwd.
// Each operand tile is staged with whichever thread mapping reads its memory contiguously.

struct Params {
  M: u32,
  N: u32,
  L: u32,
  a_row: u32,
  a_red: u32,
  b_red: u32,
  b_col: u32,
  alpha: f32,
  accumulate: u32,
  chunk_len: u32,   // a multiple of BK
  chunks: u32,
  tiles_m: u32,
  tiles: u32,       // tiles_m * tiles_n
  grid_x: u32,
  drop_target: u32, // 0 none, 1 the A operand, 2 the B operand, 3 C's product
  drop_seed: u32,
  drop_salt: u32,
  drop_threshold: u32,
  keep_scale: f32,  // 1 / (1 - p)
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> c: array<f32>;
@group(0) @binding(2) var<storage, read> a: array<f32>;
@group(0) @binding(3) var<storage, read> b: array<f32>;

const TILE = 64u;
const BK = 16u;
const V = TILE / 4u;
const DROP_A = 1u;
const DROP_B = 2u;
const DROP_C = 3u;

var<workgroup> a_tile: array<vec4<f32>, BK * V>; // [l][i / 4]
var<workgroup> b_tile: array<vec4<f32>, BK * V>; // [l][j / 4]

fn dropped(index: u32, v: f32) -> f32 {
  return select(0.0, v * p.keep_scale, rng_keep(p.drop_seed, p.drop_salt, index, p.drop_threshold));
}

fn load_a(i: u32, l: u32, l_end: u32) -> f32 {
  if (i >= p.M || l >= l_end) { return 0.0; }
  let index = i * p.a_row + l * p.a_red;
  if (p.drop_target == DROP_A) { return dropped(index, a[index]); }
  return a[index];
}

fn load_b(l: u32, j: u32, l_end: u32) -> f32 {
  if (j >= p.N || l >= l_end) { return 0.0; }
  let index = l * p.b_red + j * p.b_col;
  if (p.drop_target == DROP_B) { return dropped(index, b[index]); }
  return b[index];
}

fn store(i: u32, j: u32, chunk: u32, v: vec4<f32>) {
  if (i >= p.M) { return; }
  for (var t = 0u; t < 4u; t++) {
    let jt = j + t;
    if (jt >= p.N) { return; }
    let o = i * p.N + jt;
    if (p.chunks > 1u) {
      c[chunk * p.M * p.N + o] = v[t];
    } else {
      var r = p.alpha * v[t];
      if (p.drop_target == DROP_C) { r = dropped(o, r); }
      if (p.accumulate != 0u) { c[o] += r; } else { c[o] = r; }
    }
  }
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let group = wid.x + wid.y * p.grid_x;
  if (group >= p.tiles * p.chunks) { return; } // uniform per workgroup
  let chunk = group / p.tiles;
  let tile = group % p.tiles;
  let i0 = (tile % p.tiles_m) * TILE;
  let j0 = (tile / p.tiles_m) * TILE;
  let l_begin = chunk * p.chunk_len;
  let l_end = min(p.L, l_begin + p.chunk_len);
  let tx = lid % 16u;
  let ty = lid / 16u;
  // Two staging maps: "across" puts four consecutive l of one of 64 rows in a thread (for memory
  // contiguous along l); "along" puts four consecutive rows at one of 16 l (contiguous along i or j).
  let across_row = lid / 4u;
  let across_l = 4u * (lid % 4u);
  let along_l = lid / V;
  let along_row = 4u * (lid % V);
  let a_across = p.a_red == 1u;
  let b_across = p.b_col != 1u;

  var acc0 = vec4<f32>(0.0);
  var acc1 = vec4<f32>(0.0);
  var acc2 = vec4<f32>(0.0);
  var acc3 = vec4<f32>(0.0);
  for (var l0 = l_begin; l0 < l_end; l0 += BK) {
    if (a_across) {
      let i = i0 + across_row;
      let s = across_l * V + across_row / 4u;
      let lane = across_row % 4u;
      for (var t = 0u; t < 4u; t++) { a_tile[s + t * V][lane] = load_a(i, l0 + across_l + t, l_end); }
    } else {
      let i = i0 + along_row;
      let l = l0 + along_l;
      a_tile[along_l * V + along_row / 4u] =
        vec4<f32>(load_a(i, l, l_end), load_a(i + 1u, l, l_end), load_a(i + 2u, l, l_end), load_a(i + 3u, l, l_end));
    }
    if (b_across) {
      let j = j0 + across_row;
      let s = across_l * V + across_row / 4u;
      let lane = across_row % 4u;
      for (var t = 0u; t < 4u; t++) { b_tile[s + t * V][lane] = load_b(l0 + across_l + t, j, l_end); }
    } else {
      let j = j0 + along_row;
      let l = l0 + along_l;
      b_tile[along_l * V + along_row / 4u] =
        vec4<f32>(load_b(l, j, l_end), load_b(l, j + 1u, l_end), load_b(l, j + 2u, l_end), load_b(l, j + 3u, l_end));
    }
    workgroupBarrier();
    for (var kk = 0u; kk < BK; kk++) {
      let x = a_tile[kk * V + ty];
      let y = b_tile[kk * V + tx];
      acc0 = fma(vec4<f32>(x.x), y, acc0);
      acc1 = fma(vec4<f32>(x.y), y, acc1);
      acc2 = fma(vec4<f32>(x.z), y, acc2);
      acc3 = fma(vec4<f32>(x.w), y, acc3);
    }
    workgroupBarrier();
  }

  let i = i0 + 4u * ty;
  let j = j0 + 4u * tx;
  store(i, j, chunk, acc0);
  store(i + 1u, j, chunk, acc1);
  store(i + 2u, j, chunk, acc2);
  store(i + 3u, j, chunk, acc3);
}
