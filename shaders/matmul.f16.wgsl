// Weight access for f16 weights, prepended to a matmul kernel (matmul.fwd, projection.in, matmul.bwd).
// Pure functions of the words read, so that each body declares the weight binding as it loads it
// (u32 words, or vec4 of them). Rows hold K IEEE halves (K even), two to a word along K, the
// lower-indexed element in the low half; unpack2x16float needs no shader-f16 feature. There are no
// scales (HAS_SCALES): kernels skip reading them.

const HAS_SCALES = false;
// Words holding four consecutive elements; elements in a vec4 of words.
const QUAD_WORDS = 2u;
const CHUNK_VALUES = 8u;

// Words of one row of `k_len` elements.
fn row_words(k_len: u32) -> u32 {
  return k_len >> 1u;
}

// Four consecutive elements from their two words; a row's last quad may hold two, and the caller
// passes 0 for the missing word (two zeros) rather than the start of the next row.
fn quad_values(lo: u32, hi: u32) -> vec4<f32> {
  return vec4<f32>(unpack2x16float(lo), unpack2x16float(hi));
}

// sum of the 8 elements of four words times x[0..1] (x[2], x[3] unused).
fn chunk_dot(w: vec4<u32>, x: array<vec4<f32>, 4>) -> f32 {
  return dot(vec4<f32>(unpack2x16float(w.x), unpack2x16float(w.y)), x[0]) + dot(vec4<f32>(unpack2x16float(w.z), unpack2x16float(w.w)), x[1]);
}

// The 8 elements of four words in the first two vec4s (the other two zero).
fn chunk_values(w: vec4<u32>) -> array<vec4<f32>, 4> {
  return array<vec4<f32>, 4>(vec4<f32>(unpack2x16float(w.x), unpack2x16float(w.y)), vec4<f32>(unpack2x16float(w.z), unpack2x16float(w.w)), vec4<f32>(0.0), vec4<f32>(0.0));
}
