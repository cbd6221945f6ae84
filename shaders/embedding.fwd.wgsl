// Token embedding lookup from an f16 table: out[t, :] = f32(table[ids[t], :]).
// The table may be split into buffers of whole rows; one dispatch per chunk, and the workgroup of a
// token whose row lies in another chunk returns at once. Ids are clamped to [0, vocab - 1] so a bad
// id can never read outside the table (the CPU side rejects bad ids it knows of before dispatch).

struct Params {
  tokens: u32,
  hidden_words: u32, // hidden / 2: u32 words per row, each holding two f16 (low half first)
  vocab: u32,
  first_row: u32,    // this chunk's rows are first_row .. first_row + chunk_rows - 1
  chunk_rows: u32,
  ids_signed: u32,   // 1 when ids are i32: negative ids clamp to 0 rather than to vocab - 1
  grid_x: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> out: array<vec2<f32>>;
@group(0) @binding(2) var<storage, read> ids: array<u32>;
@group(0) @binding(3) var<storage, read> table: array<u32>;

override WG: u32 = 128u;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let t = wid.x + wid.y * p.grid_x;
  if (t >= p.tokens) { return; }
  var id = ids[t];
  if (p.ids_signed != 0u && bitcast<i32>(id) < 0) { id = 0u; }
  id = min(id, p.vocab - 1u);
  if (id < p.first_row || id - p.first_row >= p.chunk_rows) { return; }
  let src = (id - p.first_row) * p.hidden_words;
  let dst = t * p.hidden_words;
  for (var w = lid; w < p.hidden_words; w += WG) {
    out[dst + w] = unpack2x16float(table[src + w]);
  }
}
