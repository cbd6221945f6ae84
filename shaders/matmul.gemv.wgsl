// Linear layer forward for a few rows of inp (decoding, one token per sequence): the result of
// matmul.fwd, organised for memory bandwidth, which bounds it. Each weight is read once and used for
// up to four rows of inp. A weight format (matmul.int8 / matmul.f16: weight_quad, row_scale) is
// prepended by matmul.ts.
//
// LANES consecutive threads share one output row n and stride through its quads together, so a warp
// reads one contiguous run of the row per step; they then reduce their partial sums in workgroup
// memory. A workgroup covers 256 / LANES output rows and one chunk of four rows of inp.

struct Params {
  M: u32,
  N: u32,
  K: u32,
  accumulate: u32,
  has_bias: u32,
  row_groups: u32, // ceil(N / (256 / LANES))
  groups: u32,     // row_groups * ceil(M / 4)
  grid_x: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<storage, read> inp: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read> weight: array<u32>;
@group(0) @binding(5) var<storage, read> scales: array<f32>;

override LANES: u32 = 64u; // threads per output row: a power of two, at most 256
const WG = 256u;

var<workgroup> partial: array<vec4<f32>, WG>; // one sum per row of inp in the chunk

// inp[m, 4*quad .. 4*quad + 3], or zeros for a row past the chunk. Elements past K (the half-filled
// last quad of an f16 row) read as zero.
fn inp_quad(m: u32, quad: u32, present: bool) -> vec4<f32> {
  if (!present) { return vec4<f32>(0.0); }
  let base = m * p.K + 4u * quad;
  if (4u * quad + 2u < p.K) { return vec4<f32>(inp[base], inp[base + 1u], inp[base + 2u], inp[base + 3u]); }
  return vec4<f32>(inp[base], inp[base + 1u], 0.0, 0.0);
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let group = wid.x + wid.y * p.grid_x;
  if (group >= p.groups) { return; } // uniform per workgroup
  let n = (group % p.row_groups) * (WG / LANES) + lid / LANES;
  let m0 = (group / p.row_groups) * 4u;
  let lane = lid % LANES;
  let rows = p.M - m0; // rows of inp in this chunk: 1..4 (more means 4)

  var acc = vec4<f32>(0.0);
  if (n < p.N) {
    let quads = (p.K + 3u) / 4u;
    for (var q = lane; q < quads; q += LANES) {
      let w = weight_quad(n, q);
      acc += vec4<f32>(
        dot(w, inp_quad(m0, q, true)),
        dot(w, inp_quad(m0 + 1u, q, rows > 1u)),
        dot(w, inp_quad(m0 + 2u, q, rows > 2u)),
        dot(w, inp_quad(m0 + 3u, q, rows > 3u)),
      );
    }
  }
  partial[lid] = acc;
  workgroupBarrier();
  for (var s = LANES / 2u; s > 0u; s >>= 1u) {
    if (lane < s) { partial[lid] += partial[lid + s]; }
    workgroupBarrier();
  }
  if (lane == 0u && n < p.N) {
    let scale = row_scale(n);
    var b = 0.0;
    if (p.has_bias != 0u) { b = bias[n]; }
    let sums = partial[lid] * scale + b;
    for (var i = 0u; i < min(rows, 4u); i++) {
      let o = (m0 + i) * p.N + n;
      if (p.accumulate != 0u) { out[o] += sums[i]; } else { out[o] = sums[i]; }
    }
  }
}
