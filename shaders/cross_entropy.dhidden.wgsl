// Fused lm_head + cross-entropy backward, pass 2 of 2: dhidden[M, C] (=, or += with accumulate)
// grad_chunk[M, chunk_rows] . W[buffer_row .., :], a tiled matmul over the chunk's vocabulary entries.
// W is f16 [rows, C] packed two per u32 word along C. 256 invocations per 64 x 64 output tile;
// invocation (ty, tx) owns rows ty + 16 i and columns tx + 16 j.

struct Params {
  M: u32,
  C: u32,
  chunk_rows: u32,
  buffer_row: u32,
  chunk_stride: u32,
  accumulate: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> dhidden: array<f32>;
@group(0) @binding(2) var<storage, read> grad_chunk: array<f32>;
@group(0) @binding(3) var<storage, read> weight: array<u32>;

const TILE: u32 = 64u;
const TK: u32 = 32u;

// 16 KiB together, WebGPU's default workgroup storage limit.
var<workgroup> tile_g: array<f32, 2048>; // [TILE rows][TK vocabulary entries]
var<workgroup> tile_w: array<f32, 2048>; // [TK vocabulary entries][TILE columns of C]

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let c0 = wid.x * TILE;
  let m0 = wid.y * TILE;
  let tx = lid % 16u;
  let ty = lid / 16u;
  let words_per_row = p.C / 2u;
  // acc{i}[j]: row ty + 16 i, column tx + 16 j. Four local vectors rather than an array, which may
  // live in memory rather than registers (SwiftShader's do, and run many times slower).
  var acc0 = vec4<f32>(0.0);
  var acc1 = vec4<f32>(0.0);
  var acc2 = vec4<f32>(0.0);
  var acc3 = vec4<f32>(0.0);
  for (var j0 = 0u; j0 < p.chunk_rows; j0 += TK) {
    for (var e = 0u; e < TILE * TK / 256u; e++) {
      let idx = lid + 256u * e;
      let r = idx / TK;
      let k = idx % TK;
      var g = 0.0;
      if (m0 + r < p.M && j0 + k < p.chunk_rows) { g = grad_chunk[(m0 + r) * p.chunk_stride + j0 + k]; }
      tile_g[idx] = g;
    }
    for (var e = 0u; e < TILE * TK / 512u; e++) {
      let idx = lid + 256u * e;
      let k = idx / (TILE / 2u);
      let w = idx % (TILE / 2u);
      var pair = vec2<f32>(0.0);
      if (j0 + k < p.chunk_rows && c0 / 2u + w < words_per_row) {
        pair = unpack2x16float(weight[(p.buffer_row + j0 + k) * words_per_row + c0 / 2u + w]);
      }
      tile_w[k * TILE + 2u * w] = pair.x;
      tile_w[k * TILE + 2u * w + 1u] = pair.y;
    }
    workgroupBarrier();
    for (var k = 0u; k < TK; k++) {
      let b = vec4<f32>(tile_w[k * TILE + tx], tile_w[k * TILE + tx + 16u], tile_w[k * TILE + tx + 32u], tile_w[k * TILE + tx + 48u]);
      acc0 = fma(vec4<f32>(tile_g[ty * TK + k]), b, acc0);
      acc1 = fma(vec4<f32>(tile_g[(ty + 16u) * TK + k]), b, acc1);
      acc2 = fma(vec4<f32>(tile_g[(ty + 32u) * TK + k]), b, acc2);
      acc3 = fma(vec4<f32>(tile_g[(ty + 48u) * TK + k]), b, acc3);
    }
    workgroupBarrier();
  }
  let cols = c0 + tx + vec4<u32>(0u, 16u, 32u, 48u);
  store_row(m0 + ty, acc0, cols);
  store_row(m0 + ty + 16u, acc1, cols);
  store_row(m0 + ty + 32u, acc2, cols);
  store_row(m0 + ty + 48u, acc3, cols);
}

fn store_one(idx: u32, v: f32) {
  if (p.accumulate != 0u) { dhidden[idx] += v; } else { dhidden[idx] = v; }
}

fn store_row(m: u32, row: vec4<f32>, cols: vec4<u32>) {
  if (m >= p.M) { return; }
  let base = m * p.C;
  if (cols.x < p.C) { store_one(base + cols.x, row.x); }
  if (cols.y < p.C) { store_one(base + cols.y, row.y); }
  if (cols.z < p.C) { store_one(base + cols.z, row.z); }
  if (cols.w < p.C) { store_one(base + cols.w, row.w); }
}
