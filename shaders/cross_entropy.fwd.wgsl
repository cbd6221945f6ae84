// Fused lm_head + cross-entropy forward, pass 1 of 2 (lib/lm_head_tile.wgsl and lib/lm_head_logits.wgsl
// prepended: 2 FMAs per shared-memory load, no bank conflicts; see lm_head_tile.wgsl). Each
// workgroup computes a 64 x 64 tile of logits in registers, never storing them, and writes per row
// of the tile its max and sum(exp(logit - max)) to partials; the workgroup whose tile holds a row's
// label writes that logit to target_logit[row]. cross_entropy.reduce.wgsl merges the partials.

struct Params {
  M: u32,            // rows (tokens)
  C: u32,            // hidden size
  chunk_rows: u32,   // vocabulary entries in this dispatch
  buffer_row: u32,   // their first row within the weight buffer
  vocab_offset: u32, // their first index in the whole vocabulary
  tile_offset: u32,  // partials column of this dispatch's first tile
  total_tiles: u32,  // partials columns per row
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> partials: array<vec2<f32>>; // [M, total_tiles]
@group(0) @binding(2) var<storage, read_write> target_logit: array<f32>;    // [M]
@group(0) @binding(3) var<storage, read> hidden: array<f32>;
@group(0) @binding(4) var<storage, read> weight: array<u32>;
@group(0) @binding(5) var<storage, read> bias: array<f32>;
@group(0) @binding(6) var<storage, read> labels: array<i32>;

// Per-row partial results [TILE rows][16 column groups], kept in the tile's tile_a: the workgroup
// storage limit has no room for another array, and the tile is done with it. Writes: a warp's 32
// lanes (tx 0..15 of two rows) write 32 consecutive words; reads: each lane reads its row's words in
// turn, two rows 16 words apart per warp. No bank conflicts either way.
fn part_index(r: u32, g: u32) -> u32 {
  return r * 16u + g;
}

fn masked_max(row: vec4<f32>, valid: vec4<bool>) -> f32 {
  let m = select(vec4<f32>(-3.4028234663852886e38), row, valid);
  return max(max(m.x, m.y), max(m.z, m.w));
}

// Columns past the chunk are masked before exp(): their placeholder logits could exceed row_max.
fn masked_sum_exp(row: vec4<f32>, row_max: f32, valid: vec4<bool>) -> f32 {
  return dot(exp(select(vec4<f32>(-3.4028234663852886e38), row - row_max, valid)), vec4<f32>(1.0));
}

fn group_max(r: u32) -> f32 {
  var m = tile_a[part_index(r, 0u)];
  for (var g = 1u; g < 16u; g++) { m = max(m, tile_a[part_index(r, g)]); }
  return m;
}

fn group_sum(r: u32) -> f32 {
  var s = 0.0;
  for (var g = 0u; g < 16u; g++) { s += tile_a[part_index(r, g)]; }
  return s;
}

// The label's logit, if this invocation holds it (one invocation in the whole grid does).
fn write_target(m: u32, row: vec4<f32>, vocab_ids: vec4<u32>, valid: vec4<bool>) {
  if (m >= p.M) { return; }
  let hit = valid & (vec4<i32>(vocab_ids) == vec4<i32>(labels[m]));
  if (any(hit)) { target_logit[m] = dot(select(vec4<f32>(0.0), row, hit), vec4<f32>(1.0)); }
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let at = tile_spot(wid, lid);
  let tile = lm_head_tile(at.m0, at.n0, lid);
  let valid = at.cols < vec4<u32>(p.chunk_rows);

  for (var i = 0u; i < 4u; i++) { tile_a[part_index(at.ty + 16u * i, at.tx)] = masked_max(tile_row(tile, i), valid); }
  workgroupBarrier();
  let row_max = vec4<f32>(group_max(at.ty), group_max(at.ty + 16u), group_max(at.ty + 32u), group_max(at.ty + 48u));
  workgroupBarrier();
  for (var i = 0u; i < 4u; i++) { tile_a[part_index(at.ty + 16u * i, at.tx)] = masked_sum_exp(tile_row(tile, i), row_max[i], valid); }
  workgroupBarrier();
  if (at.tx == 0u) {
    for (var i = 0u; i < 4u; i++) {
      let m = at.m0 + at.ty + 16u * i;
      if (m < p.M) { partials[m * p.total_tiles + p.tile_offset + wid.x] = vec2<f32>(row_max[i], group_sum(at.ty + 16u * i)); }
    }
  }
  let vocab_ids = p.vocab_offset + at.cols;
  for (var i = 0u; i < 4u; i++) { write_target(at.m0 + at.ty + 16u * i, tile_row(tile, i), vocab_ids, valid); }
}
