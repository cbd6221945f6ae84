// Fused lm_head + cross-entropy backward, pass 2 of 2 (lib/lm_head_tile.wgsl prepended): dhidden[M, C]
// (=, or += with accumulate) grad_chunk[M, chunk_rows] . W[buffer_row .., :], the library's 64 x 64
// register tile with k over the chunk's vocabulary entries. W is f16 [rows, C] packed two per u32 word
// along C. 2 FMAs per shared-memory load, no bank conflicts in staging or reading: see the library.

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

const B_IS_WT = false; // W as it is stored: a lane unpacks two columns of one vocabulary row

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let at = tile_spot(wid, lid);
  let tile = tile_product(at.m0, at.n0, p.chunk_rows, lid);
  for (var i = 0u; i < 4u; i++) { store_row(at.m0 + at.ty + 16u * i, tile_row(tile, i), at.cols); }
}

// A: the loss gradient of the chunk's logits, k over its vocabulary entries.
fn a_at(m: u32, k: u32) -> f32 {
  if (m < p.M && k < p.chunk_rows) { return grad_chunk[m * p.chunk_stride + k]; }
  return 0.0;
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
