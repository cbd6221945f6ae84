// One 8-bit AdamW step, bitsandbytes' block-wise format (src/engine/optim/blockwise.ts says where each
// rule comes from). One workgroup per block of BLOCK values of one tensor; each thread owns two u32 words
// of codes, so 8 values, kept in registers between the passes:
//   1. dequantise m and v with the block's old absmax (code -> map value x absmax), update them in f32
//      from g = grad * stats[1] * grad_scale, and take the parameter step from the updated moments:
//        p += step_size * m / (sqrt(v) + eps_c2);  p *= decay
//      (step_size = -lr sqrt(1 - b2^t) / (1 - b1^t), eps_c2 = eps sqrt(1 - b2^t), decay = 1 - lr wd,
//      computed on the CPU in float64 as bitsandbytes' scalars are);
//   2. the block's new absmax of |m| and of |v| (workgroup max);
//   3. m / absmax and v / absmax rounded to the nearest entry of the signed and the unsigned map (binary
//      search over the 256 sorted entries in workgroup memory), a first-moment code of the wrong sign
//      moved one towards its sign, and the codes written back four to a word.
// Bytes of a word past the block's end (padding between tensors) are written back unchanged.
// Cost: bandwidth-bound like f32 AdamW, with fewer bytes: 20 a value (param and gradient read and written,
// two 1-byte codes read and written) against f32 AdamW's 32, plus 16 a block; one dispatch over the whole
// adapter. The compute per value is two 8-probe binary searches in workgroup memory and a sqrt, far below
// what the bytes take on any GPU; the workgroup max is log2(WG) barrier steps per block of 256 or 2048.
// A NaN or infinite gradient element leaves its parameter alone and its moments become 0. When
// skip_non_finite is set and stats[2] says some gradient was not finite, nothing changes at all.
// With zero_grad the gradient is cleared for the next accumulation either way.

struct Params {
  n_blocks: u32,
  grid_x: u32,
  beta1: f32,
  beta2: f32,
  one_minus_beta1: f32,
  one_minus_beta2: f32,
  step_size: f32,
  eps_c2: f32,
  decay: f32,
  grad_scale: f32,
  skip_non_finite: u32,
  zero_grad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> param: array<f32>;
@group(0) @binding(2) var<storage, read_write> grad: array<f32>;
@group(0) @binding(3) var<storage, read_write> codes_m: array<u32>;
@group(0) @binding(4) var<storage, read_write> codes_v: array<u32>;
@group(0) @binding(5) var<storage, read_write> absmax: array<vec2<f32>>;  // per block: (m, v)
@group(0) @binding(6) var<storage, read> blocks: array<vec2<u32>>;        // per block: (first value, count)
@group(0) @binding(7) var<storage, read> maps: array<f32, 512>;           // signed map, then unsigned
@group(0) @binding(8) var<storage, read> stats: array<f32>;

// WG (from row_reduce.wgsl) = BLOCK / 8: two words of four codes per thread.
const WORDS: u32 = 2u;

var<workgroup> map_s: array<f32, 512>;
var<workgroup> skip_all: u32;

fn not_finite(x: f32) -> bool {
  return (bitcast<u32>(x) & 0x7f800000u) == 0x7f800000u;
}

// Index of the entry of map_s[base .. base + 256] nearest x (the lower one on a tie).
fn nearest(base: u32, x: f32) -> u32 {
  var lo = 0u;
  var hi = 255u;
  for (var s = 0u; s < 8u; s++) {
    if (lo < hi) {
      let mid = (lo + hi) >> 1u;
      if (map_s[base + mid] < x) { lo = mid + 1u; } else { hi = mid; }
    }
  }
  if (lo > 0u && abs(x - map_s[base + lo - 1u]) <= abs(map_s[base + lo] - x)) { return lo - 1u; }
  return lo;
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let b = wid.x + wid.y * p.grid_x;
  if (b >= p.n_blocks) { return; }
  for (var i = lid; i < 512u; i += WG) { map_s[i] = maps[i]; }
  if (lid == 0u) { skip_all = select(0u, 1u, p.skip_non_finite != 0u && stats[2] != 0.0); }
  let skip = workgroupUniformLoad(&skip_all) != 0u;

  let block = blocks[b];
  let start = block.x;
  let count = block.y;
  let word0 = start / 4u;
  if (skip) {
    if (p.zero_grad != 0u) {
      for (var w = 0u; w < WORDS; w++) {
        for (var j = 0u; j < 4u; j++) {
          let e = (lid + w * WG) * 4u + j;
          if (e < count) { grad[start + e] = 0.0; }
        }
      }
    }
    return;
  }

  let old = absmax[b];
  let g_factor = stats[1] * p.grad_scale;
  var m: array<f32, 8>;
  var v: array<f32, 8>;
  var max_m = 0.0;
  var max_v = 0.0;
  for (var w = 0u; w < WORDS; w++) {
    let word = lid + w * WG;
    if (word * 4u >= count) { continue; }
    let cm = codes_m[word0 + word];
    let cv = codes_v[word0 + word];
    for (var j = 0u; j < 4u; j++) {
      let e = word * 4u + j;
      let k = w * 4u + j;
      m[k] = 0.0;
      v[k] = 0.0;
      if (e >= count) { continue; }
      let i = start + e;
      let raw = grad[i];
      if (p.zero_grad != 0u) { grad[i] = 0.0; }
      if (not_finite(raw)) { continue; }
      let g = raw * g_factor;
      m[k] = map_s[(cm >> (8u * j)) & 0xffu] * old.x * p.beta1 + p.one_minus_beta1 * g;
      v[k] = map_s[256u + ((cv >> (8u * j)) & 0xffu)] * old.y * p.beta2 + p.one_minus_beta2 * g * g;
      param[i] = (param[i] + p.step_size * (m[k] / (sqrt(v[k]) + p.eps_c2))) * p.decay;
      max_m = max(max_m, abs(m[k]));
      max_v = max(max_v, abs(v[k]));
    }
  }
  let new_m = wg_max(lid, max_m);
  let new_v = wg_max(lid, max_v);
  if (lid == 0u) { absmax[b] = vec2<f32>(new_m, new_v); }

  for (var w = 0u; w < WORDS; w++) {
    let word = lid + w * WG;
    if (word * 4u >= count) { continue; }
    var cm = codes_m[word0 + word];
    var cv = codes_v[word0 + word];
    for (var j = 0u; j < 4u; j++) {
      let e = word * 4u + j;
      if (e >= count) { continue; }
      let k = w * 4u + j;
      let xm = select(0.0, m[k] / new_m, new_m > 0.0);
      let xv = select(0.0, v[k] / new_v, new_v > 0.0);
      var c = nearest(0u, xm);
      // bitsandbytes keeps the first moment's sign: a code of the other sign moves one towards it.
      if ((bitcast<u32>(map_s[c]) >> 31u) != (bitcast<u32>(m[k]) >> 31u)) {
        if (m[k] > 0.0) { c = c + 1u; } else { c = c - 1u; }
      }
      let shift = 8u * j;
      cm = (cm & ~(0xffu << shift)) | (c << shift);
      cv = (cv & ~(0xffu << shift)) | (nearest(256u, xv) << shift);
    }
    codes_m[word0 + word] = cm;
    codes_v[word0 + word] = cv;
  }
}
