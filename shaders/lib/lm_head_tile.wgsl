// The 64 x 64 register tile of the fused lm_head + cross-entropy kernels (prepended to them): a tile
// of C[m, n] = sum_k A[m, k] B[k, n] over shared-memory slices of TK along k, where W, the lm_head, is
// f16 [vocab rows, hidden] packed two per u32 word (low half first). Two products use it:
//   logits = hidden . W^T + bias, k over the hidden size (lib/lm_head_logits.wgsl: cross_entropy.fwd, .bwd);
//   dhidden = grad . W, k over a vocabulary chunk (cross_entropy.dhidden).
// The code after it supplies A and says which product B is:
//   fn a_at(m: u32, k: u32) -> f32     A's element, 0 outside the problem;
//   const B_IS_WT: bool                true: B = W^T (the logits), false: B = W (dhidden);
// and declares the binding `weight` (array<u32>) and `p` with C (the hidden size), chunk_rows (the
// vocabulary rows of this dispatch) and buffer_row (the first of them within `weight`).
//
// 256 invocations; invocation (ty, tx) = (lid / 16, lid % 16) owns rows ty + 16 i and columns
// tx + 16 j (i, j < 4) of the tile. Each k step reads 4 words of tile_a (one per row) and 4 of tile_b
// (one per column) for 16 FMAs: 2 FMAs per shared-memory load (the fetched words are reused across
// the 16 lanes that share a row or a column, so per 32-lane warp a k step is 8 load instructions, each
// one wavefront, for 512 FMAs). The accumulators are four function-local vectors, not an array or a
// module-scope private: those may live in memory rather than registers (SwiftShader's do, and run many
// times slower).
//
// Banks (32 banks of 4-byte words; a warp is lids 32w .. 32w + 31: tx 0..15 of two rows ty = 2w, 2w + 1):
//  - tile_a is [TILE rows][TK], element (r, k) at r * TK + (k ^ (r & 1)). Staging: a warp writes one
//    row's 32 consecutive k, a permutation of 32 banks. Reading: the warp reads (2w, k) and (2w + 1, k)
//    (each broadcast to 16 lanes); unswizzled both sit in bank k (2-way conflict), swizzled in k and k ^ 1.
//  - tile_b is [TK][TILE], element (k, n) at k * TILE + (n ^ (k & 30) ^ ((n >> 5) & 1)). Reading: for
//    one k, 16 columns tx + 16 j, one aligned block of 16 within a half-row of 32 (the XORs keep it one),
//    so 16 distinct banks, each broadcast to both rows. Staging, the two ways W arrives:
//      fwd/bwd (W^T: a lane unpacks the pair (k, k + 1) of one vocabulary row n): a warp stores k = 2u
//      (u < 16) for two adjacent n, then k = 2u + 1. Unswizzled every k of one n hits the same bank
//      (rows are 64 words apart): 16-way. Swizzled, n ^ 2u ^ h runs over all 32 banks.
//      dhidden (W as is: a lane unpacks columns (n, n + 1) of one row k): a warp stores n = 2u for
//      u < 32, then n = 2u + 1. Unswizzled n and n + 32 share a bank: 2-way. The (n >> 5) bit moves the
//      upper half to the other parity: 32 banks.

const TILE: u32 = 64u;  // rows and columns of the tile
const TK: u32 = 32u;    // the slice of k staged per step (even: whole f16 pairs)

// 16 KiB together, WebGPU's default workgroup storage limit. tile_a is free again when tile_product
// returns (it ends on a barrier): callers may reuse it as scratch.
var<workgroup> tile_a: array<f32, 2048>;  // [TILE rows][TK], swizzled (a_index)
var<workgroup> tile_b: array<f32, 2048>;  // [TK][TILE columns], swizzled (b_index)

fn a_index(r: u32, k: u32) -> u32 {
  return r * TK + (k ^ (r & 1u));
}

fn b_index(k: u32, n: u32) -> u32 {
  return k * TILE + (n ^ (k & 30u) ^ ((n >> 5u) & 1u));
}

// An invocation's 4 x 4 results: r{i}[j] is row ty + 16 i, column tx + 16 j of the tile.
struct LogitsTile {
  r0: vec4<f32>,
  r1: vec4<f32>,
  r2: vec4<f32>,
  r3: vec4<f32>,
}

// Where workgroup wid's tile sits (rows m0.., columns n0..: wid.y and wid.x count tiles) and which
// of its elements invocation lid holds: (ty, tx), its rows m0 + ty + 16 i and its columns cols[j].
struct TileSpot {
  m0: u32,
  n0: u32,
  ty: u32,
  tx: u32,
  cols: vec4<u32>,
}

fn tile_spot(wid: vec3u, lid: u32) -> TileSpot {
  let n0 = wid.x * TILE;
  let tx = lid % 16u;
  return TileSpot(wid.y * TILE, n0, lid / 16u, tx, n0 + tx + vec4<u32>(0u, 16u, 32u, 48u));
}

// Row i (< 4) of an invocation's results: row ty + 16 i of the tile.
fn tile_row(t: LogitsTile, i: u32) -> vec4<f32> {
  switch i {
    case 0u: { return t.r0; }
    case 1u: { return t.r1; }
    case 2u: { return t.r2; }
    default: { return t.r3; }
  }
}

// W's f16 pair at (vocabulary row `row` of this dispatch's chunk, word `word`: halves 2 word, 2 word + 1
// of the hidden size), zeros outside the chunk or the row.
fn weight_pair(row: u32, word: u32) -> vec2<f32> {
  let words_per_row = p.C / 2u;
  if (row < p.chunk_rows && word < words_per_row) {
    return unpack2x16float(weight[(p.buffer_row + row) * words_per_row + word]);
  }
  return vec2<f32>(0.0);
}

// B's TK x TILE slice at k0, n0 into tile_b, a whole word of W a lane per element pair, stored as the
// bank notes above say. B = W^T: lane idx unpacks the pair (k, k + 1) of vocabulary row n; B = W: the
// columns (n, n + 1) of vocabulary row k.
fn stage_b(n0: u32, k0: u32, lid: u32) {
  let pairs_per_line = select(TILE / 2u, TK / 2u, B_IS_WT); // a line: n for W^T, k for W
  for (var e = 0u; e < TILE * TK / 512u; e++) {
    let idx = lid + 256u * e;
    let line = idx / pairs_per_line;
    let w = idx % pairs_per_line;
    if (B_IS_WT) {
      let pair = weight_pair(n0 + line, k0 / 2u + w);
      tile_b[b_index(2u * w, line)] = pair.x;
      tile_b[b_index(2u * w + 1u, line)] = pair.y;
    } else {
      let pair = weight_pair(k0 + line, n0 / 2u + w);
      tile_b[b_index(line, 2u * w)] = pair.x;
      tile_b[b_index(line, 2u * w + 1u)] = pair.y;
    }
  }
}

// The tile at rows m0.., columns n0.., k over [0, K). Uniform control flow only.
fn tile_product(m0: u32, n0: u32, K: u32, lid: u32) -> LogitsTile {
  let tx = lid % 16u;
  let ty = lid / 16u;
  var acc0 = vec4<f32>(0.0);
  var acc1 = vec4<f32>(0.0);
  var acc2 = vec4<f32>(0.0);
  var acc3 = vec4<f32>(0.0);
  for (var k0 = 0u; k0 < K; k0 += TK) {
    for (var e = 0u; e < TILE * TK / 256u; e++) {
      let idx = lid + 256u * e;
      let r = idx / TK;
      let k = idx % TK;
      tile_a[a_index(r, k)] = a_at(m0 + r, k0 + k);
    }
    stage_b(n0, k0, lid);
    workgroupBarrier();
    for (var k = 0u; k < TK; k++) {
      let b = vec4<f32>(tile_b[b_index(k, tx)], tile_b[b_index(k, tx + 16u)], tile_b[b_index(k, tx + 32u)], tile_b[b_index(k, tx + 48u)]);
      acc0 = fma(vec4<f32>(tile_a[a_index(ty, k)]), b, acc0);
      acc1 = fma(vec4<f32>(tile_a[a_index(ty + 16u, k)]), b, acc1);
      acc2 = fma(vec4<f32>(tile_a[a_index(ty + 32u, k)]), b, acc2);
      acc3 = fma(vec4<f32>(tile_a[a_index(ty + 48u, k)]), b, acc3);
    }
    workgroupBarrier();
  }
  return LogitsTile(acc0, acc1, acc2, acc3);
}
