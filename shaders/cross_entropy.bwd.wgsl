// Fused lm_head + cross-entropy backward, pass 1 of 2 (lib/lm_head_tile.wgsl and lib/lm_head_logits.wgsl
// prepended: 2 FMAs per shared-memory load, no bank conflicts; see lm_head_tile.wgsl): recomputes
// a chunk of logits tile by tile and stores the loss gradient with respect to them,
//   grad[m, v] = (softmax(logits[m, :])[v] - [v == label[m]]) / count,   0 for ignored rows,
// into grad_chunk [M, chunk_stride] (columns 0 .. chunk_rows - 1). cross_entropy.dhidden.wgsl then
// multiplies it into the hidden-state gradient.

struct Params {
  M: u32,
  C: u32,
  chunk_rows: u32,
  buffer_row: u32,
  vocab_offset: u32,
  chunk_stride: u32,
  inv_count: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> grad_chunk: array<f32>;
@group(0) @binding(2) var<storage, read> lse: array<f32>;
@group(0) @binding(3) var<storage, read> hidden: array<f32>;
@group(0) @binding(4) var<storage, read> weight: array<u32>;
@group(0) @binding(5) var<storage, read> bias: array<f32>;
@group(0) @binding(6) var<storage, read> labels: array<i32>;

const IGNORE_INDEX: i32 = -100;

fn write_row(m: u32, row: vec4<f32>, cols: vec4<u32>) {
  if (m >= p.M) { return; }
  let label = labels[m];
  var g = vec4<f32>(0.0);
  if (label != IGNORE_INDEX) {
    let onehot = select(vec4<f32>(0.0), vec4<f32>(1.0), vec4<i32>(p.vocab_offset + cols) == vec4<i32>(label));
    g = (exp(row - lse[m]) - onehot) * p.inv_count;
  }
  let base = m * p.chunk_stride;
  if (cols.x < p.chunk_rows) { grad_chunk[base + cols.x] = g.x; }
  if (cols.y < p.chunk_rows) { grad_chunk[base + cols.y] = g.y; }
  if (cols.z < p.chunk_rows) { grad_chunk[base + cols.z] = g.z; }
  if (cols.w < p.chunk_rows) { grad_chunk[base + cols.w] = g.w; }
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let at = tile_spot(wid, lid);
  let tile = lm_head_tile(at.m0, at.n0, lid);
  for (var i = 0u; i < 4u; i++) { write_row(at.m0 + at.ty + 16u * i, tile_row(tile, i), at.cols); }
}
