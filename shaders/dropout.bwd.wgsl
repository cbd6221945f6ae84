// Dropout backward: dinp[i] = keep(i) ? dout[i] / (1 - p) : 0 with the forward's (seed, salt), so the
// mask is recomputed bit-identically rather than stored. With accumulate = 1 the result is added to
// dinp. `in_place` overwrites dinp (holding dout) itself. `two_sites` writes the gradients of two
// dropout sites that read the same output gradient (a block's two branches), the second at element
// `stride` of dinp with its own salt, in one pass.

struct Params {
  n: u32,
  grid_x: u32,
  seed: u32,
  salt: u32,
  drop_threshold: u32,
  scale: f32,
  accumulate: u32,
  salt2: u32,      // two_sites: the second site's salt, and where its gradient starts in dinp
  stride: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> dinp: array<f32>;
@group(0) @binding(2) var<storage, read> dout: array<f32>;

override WG: u32 = 256u;

fn masked(i: u32, g: f32) -> f32 {
  return rng_dropout(g, p.seed, p.salt, i, p.drop_threshold, p.scale);
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let i = (wid.x + wid.y * p.grid_x) * WG + lid;
  if (i >= p.n) { return; }
  let d = masked(i, dout[i]);
  if (p.accumulate != 0u) { dinp[i] += d; } else { dinp[i] = d; }
}

@compute @workgroup_size(WG)
fn in_place(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let i = (wid.x + wid.y * p.grid_x) * WG + lid;
  if (i >= p.n) { return; }
  dinp[i] = masked(i, dinp[i]);
}

@compute @workgroup_size(WG)
fn two_sites(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let i = (wid.x + wid.y * p.grid_x) * WG + lid;
  if (i >= p.n) { return; }
  let g = dout[i];
  dinp[i] = masked(i, g);
  dinp[p.stride + i] = rng_dropout(g, p.seed, p.salt2, i, p.drop_threshold, p.scale);
}
