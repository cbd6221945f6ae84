// Weight access for int8 weights, prepended to a matmul kernel (matmul.fwd, projection.in, matmul.bwd).
// Pure functions of the words read, so that each body declares the weight binding as it loads it
// (u32 words, or vec4 of them). Rows hold K int8 values (K a multiple of 4), four to a word along K,
// element 4w+j in byte j, two's complement; one f32 scale per row n, which the kernel keeps:
// W[n, k] = q[n, k] * scale[n].

const HAS_SCALES = true;
// Words holding four consecutive elements; elements in a vec4 of words.
const QUAD_WORDS = 1u;
const CHUNK_VALUES = 16u;

// Words of one row of `k_len` elements.
fn row_words(k_len: u32) -> u32 {
  return k_len >> 2u;
}

// The four elements of a word, not yet scaled. extractBits on an i32 sign-extends each byte.
fn int8x4(word: u32) -> vec4<f32> {
  let w = bitcast<i32>(word);
  return vec4<f32>(vec4<i32>(extractBits(w, 0u, 8u), extractBits(w, 8u, 8u), extractBits(w, 16u, 8u), extractBits(w, 24u, 8u)));
}

// Four consecutive elements from their QUAD_WORDS words (`hi` unused).
fn quad_values(lo: u32, hi: u32) -> vec4<f32> {
  return int8x4(lo);
}

// sum of the 16 elements of four words times x[0..3] (x[j] the four activations of word j).
fn chunk_dot(w: vec4<u32>, x: array<vec4<f32>, 4>) -> f32 {
  return dot(int8x4(w.x), x[0]) + dot(int8x4(w.y), x[1]) + dot(int8x4(w.z), x[2]) + dot(int8x4(w.w), x[3]);
}

// The 16 elements of four words, four per vec4.
fn chunk_values(w: vec4<u32>) -> array<vec4<f32>, 4> {
  return array<vec4<f32>, 4>(int8x4(w.x), int8x4(w.y), int8x4(w.z), int8x4(w.w));
}
