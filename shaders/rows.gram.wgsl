// Dot products of the rows of two row-major matrices, x [p, n] and y [q, n], over one chunk of n:
//   partial[c, i, j] = sum over k in chunk c of x[i, k] * y[j, k]
// (rows.sum_chunks.wgsl then adds the chunks in a fixed order: no float atomics, same result every run).
// A workgroup computes a 16 x 16 tile of (i, j) over its chunk, staging 16 columns of both
// operands in workgroup memory per step: each loaded value serves 16 multiply-adds.

struct Params {
  p: u32,
  q: u32,
  n: u32,
  chunk_len: u32,
  chunks: u32,
  tiles_i: u32,
  tiles: u32,
  grid_x: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read_write> partial: array<f32>;
@group(0) @binding(2) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read> y: array<f32>;

const TILE: u32 = 16u;
const BK: u32 = 16u;

var<workgroup> xs: array<f32, 256>; // [TILE][BK]
var<workgroup> ys: array<f32, 256>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let g = wid.x + wid.y * params.grid_x;
  if (g >= params.tiles * params.chunks) { return; } // uniform across the workgroup
  let tile = g % params.tiles;
  let c = g / params.tiles;
  let i0 = (tile % params.tiles_i) * TILE;
  let j0 = (tile / params.tiles_i) * TILE;
  let k0 = c * params.chunk_len;
  let k1 = min(k0 + params.chunk_len, params.n);
  // This thread's output, and the element it stages each step.
  let li = lid / TILE;
  let lj = lid % TILE;
  let sr = lid / BK;
  let sk = lid % BK;
  var acc = 0.0;
  for (var k = k0; k < k1; k += BK) {
    let col = k + sk;
    var xv = 0.0;
    var yv = 0.0;
    if (col < k1 && i0 + sr < params.p) { xv = x[(i0 + sr) * params.n + col]; }
    if (col < k1 && j0 + sr < params.q) { yv = y[(j0 + sr) * params.n + col]; }
    xs[lid] = xv;
    ys[lid] = yv;
    workgroupBarrier();
    for (var t = 0u; t < BK; t++) { acc += xs[li * BK + t] * ys[lj * BK + t]; }
    workgroupBarrier();
  }
  let i = i0 + li;
  let j = j0 + lj;
  if (i < params.p && j < params.q) { partial[(c * params.p + i) * params.q + j] = acc; }
}
