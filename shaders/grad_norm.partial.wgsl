// Global gradient norm, pass 1 of 2: each workgroup sums the squares of its slice of one gradient
// buffer and notes whether any element is not finite, into partials[slot + workgroup] =
// (sum of squares, 1 if a NaN or an infinity was seen else 0). One dispatch per buffer, each with its
// own range of slots; grad_norm.finalize.wgsl reduces all slots. Two passes because WGSL has no
// float atomics.

struct Params {
  n: u32,
  slot: u32,          // this buffer's first slot in partials
  per_workgroup: u32, // elements per workgroup (a multiple of WG)
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> partials: array<vec2<f32>>;
@group(0) @binding(2) var<storage, read> grad: array<f32>;

// Exponent bits all ones: an infinity or a NaN. A bit test, which no compiler may fold away (x != x
// may be, under fast-math assumptions WGSL permits).
fn not_finite(x: f32) -> bool {
  return (bitcast<u32>(x) & 0x7f800000u) == 0x7f800000u;
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let start = wid.x * p.per_workgroup;
  let end = min(start + p.per_workgroup, p.n);
  var s = 0.0;
  var bad = 0u;
  for (var i = start + lid; i < end; i += WG) {
    let g = grad[i];
    s = fma(g, g, s);
    bad = bad | select(0u, 1u, not_finite(g));
  }
  let total = wg_sum(lid, s);
  let any_bad = wg_max_u32(lid, bad);
  if (lid == 0u) { partials[p.slot + wid.x] = vec2<f32>(total, f32(any_bad)); }
}
