// Second pass of a split LoRA product (lora.gemm with chunks > 1): C (= or +=) alpha * the sum of the
// chunks' partial products, added in chunk order so the result is deterministic. Applies the dropout
// mask of C's product as lora.gemm would have. rng.wgsl is prepended by lora.ts.

struct Params {
  count: u32,       // M * N elements of C
  chunks: u32,
  alpha: f32,
  accumulate: u32,
  grid_x: u32,
  drop_c: u32,      // 1: multiply by LoRA's dropout mask at C's index
  drop_seed: u32,
  drop_salt: u32,
  drop_threshold: u32,
  keep_scale: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> c: array<f32>;
@group(0) @binding(2) var<storage, read> partials: array<f32>; // [chunks][count]

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let o = (wid.x + wid.y * p.grid_x) * 256u + lid;
  if (o >= p.count) { return; }
  var s = 0.0;
  for (var k = 0u; k < p.chunks; k++) { s += partials[k * p.count + o]; }
  var r = p.alpha * s;
  if (p.drop_c != 0u) {
    r = select(0.0, r * p.keep_scale, rng_keep(p.drop_seed, p.drop_salt, o, p.drop_threshold));
  }
  if (p.accumulate != 0u) { c[o] += r; } else { c[o] = r; }
}
