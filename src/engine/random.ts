/**
 * The engine's one seeded PRNG, for everything it draws at random on the CPU: a training run's data order
 * and LoRA initialisation, and the data and evaluation code's exemplars, shuffles and symbols. Same seed and key -> same numbers on every run and every JavaScript engine: only 32-bit
 * integer arithmetic (Math.imul, >>>), never Math.random or floating-point state.
 *
 * The generator is SFC32 (Chris Doty-Humphrey's "small fast counting" generator, public domain), seeded by
 * hashing a key path with the MurmurHash3 finaliser. Keys let independent streams be derived per item
 * (`SeededRandom.from(seed, 'in_context', 'teh', 7)`), so that asking for more items never changes the
 * earlier ones.
 */

const TWO_POW_32 = 0x1_0000_0000;

/** MurmurHash3's 32-bit finaliser: a bijection on u32 with full avalanche. */
function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** Folds one key part (string or non-negative safe integer) into a running 32-bit hash. */
function absorb(h: number, part: string | number): number {
  if (typeof part === 'number') {
    if (!Number.isSafeInteger(part) || part < 0) throw new Error(`random key parts must be non-negative safe integers, got ${part}`);
    h = fmix32((h ^ (part >>> 0)) + 0x9e3779b9);
    h = fmix32((h ^ Math.floor(part / TWO_POW_32)) + 0x7f4a7c15);
    return h;
  }
  // A type tag and the length keep ('ab','c') and ('a','bc') and 1 vs '1' apart.
  h = fmix32((h ^ 0x51ed27) + part.length);
  for (let i = 0; i < part.length; i++) h = fmix32((h ^ part.charCodeAt(i)) + 0x6a09e667);
  return h;
}

export class SeededRandom {
  private a: number;
  private b: number;
  private c: number;
  private d: number;

  private constructor(a: number, b: number, c: number, d: number) {
    this.a = a >>> 0;
    this.b = b >>> 0;
    this.c = c >>> 0;
    this.d = d >>> 0;
    // SFC32's recommended warm-up: the first outputs of a fresh state are poorly mixed.
    for (let i = 0; i < 12; i++) this.nextU32();
  }

  /** A generator for `seed` (a non-negative safe integer) and an optional key path naming the stream. */
  static from(seed: number, ...key: Array<string | number>): SeededRandom {
    let h = absorb(0x2545f491, seed);
    for (const part of key) h = absorb(h, part);
    // Four state words from one hash: a counter-mode expansion so no word repeats another.
    return new SeededRandom(fmix32(h ^ 0x1), fmix32(h ^ 0x2), fmix32(h ^ 0x3), 1);
  }

  /** An independent stream derived from this one's next output and a key. */
  fork(...key: Array<string | number>): SeededRandom {
    let h = this.nextU32();
    for (const part of key) h = absorb(h, part);
    return new SeededRandom(fmix32(h ^ 0x1), fmix32(h ^ 0x2), fmix32(h ^ 0x3), 1);
  }

  nextU32(): number {
    const t = (((this.a + this.b) >>> 0) + this.d) >>> 0;
    this.d = (this.d + 1) >>> 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) >>> 0;
    this.c = ((this.c << 21) | (this.c >>> 11)) >>> 0;
    this.c = (this.c + t) >>> 0;
    return t;
  }

  /** Uniform in [0, 1) with 32 bits of resolution. */
  nextFloat(): number {
    return this.nextU32() / TWO_POW_32;
  }

  /** Uniform integer in [min, max] (both inclusive), without modulo bias. */
  int(min: number, max: number): number {
    if (!Number.isSafeInteger(min) || !Number.isSafeInteger(max) || max < min) {
      throw new Error(`int(min, max) needs integers with min <= max, got ${min}, ${max}`);
    }
    const range = max - min + 1;
    if (range > TWO_POW_32) throw new Error(`int(min, max) supports ranges up to 2^32, got ${range}`);
    // Reject the top partial bucket so every value has exactly the same number of preimages.
    const limit = TWO_POW_32 - (TWO_POW_32 % range);
    let x = this.nextU32();
    while (x >= limit) x = this.nextU32();
    return min + (x % range);
  }

  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new Error('pick() from an empty list');
    return items[this.int(0, items.length - 1)];
  }

  /** Fisher-Yates, in place; returns the same array. */
  shuffle<A extends { length: number; [index: number]: unknown }>(items: A): A {
    for (let i = items.length - 1; i > 0; i--) {
      const j = this.int(0, i);
      const tmp = items[i];
      items[i] = items[j];
      items[j] = tmp;
    }
    return items;
  }

  /** k distinct indices of [0, n), in random order (partial Fisher-Yates over a sparse map: O(k)). */
  sampleIndices(n: number, k: number): number[] {
    if (!Number.isSafeInteger(n) || !Number.isSafeInteger(k) || k < 0 || k > n) {
      throw new Error(`cannot sample ${k} distinct indices from ${n}`);
    }
    const swapped = new Map<number, number>();
    const out: number[] = [];
    for (let i = 0; i < k; i++) {
      const j = this.int(i, n - 1);
      const atJ = swapped.get(j) ?? j;
      swapped.set(j, swapped.get(i) ?? i);
      out.push(atJ);
    }
    return out;
  }
}

/** A stable 32-bit hash of a string (for partitioning symbols, not for security). */
export function hashString32(text: string): number {
  return absorb(0x3c6ef372, text);
}
