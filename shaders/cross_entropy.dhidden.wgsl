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

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let c0 = wid.x * TILE;
  let m0 = wid.y * TILE;
  let tile = tile_product(m0, c0, p.chunk_rows, lid);
  let tx = lid % 16u;
  let ty = lid / 16u;
  let cols = c0 + tx + vec4<u32>(0u, 16u, 32u, 48u);
  store_row(m0 + ty, tile.r0, cols);
  store_row(m0 + ty + 16u, tile.r1, cols);
  store_row(m0 + ty + 32u, tile.r2, cols);
  store_row(m0 + ty + 48u, tile.r3, cols);
}

// A: the loss gradient of the chunk's logits, k over its vocabulary entries.
fn a_at(m: u32, k: u32) -> f32 {
  if (m < p.M && k < p.chunk_rows) { return grad_chunk[m * p.chunk_stride + k]; }
  return 0.0;
}

// W's slice as it is stored: lane idx unpacks columns (n, n + 1) of vocabulary row k.
fn stage_b(c0: u32, k0: u32, lid: u32) {
  let words_per_row = p.C / 2u;
  for (var e = 0u; e < TILE * TK / 512u; e++) {
    let idx = lid + 256u * e;
    let k = idx / (TILE / 2u);
    let w = idx % (TILE / 2u);
    var pair = vec2<f32>(0.0);
    if (k0 + k < p.chunk_rows && c0 / 2u + w < words_per_row) {
      pair = unpack2x16float(weight[(p.buffer_row + k0 + k) * words_per_row + c0 / 2u + w]);
    }
    tile_b[b_index(k, 2u * w)] = pair.x;
    tile_b[b_index(k, 2u * w + 1u)] = pair.y;
  }
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
