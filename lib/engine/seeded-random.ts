// Determinism for training. TensorFlow.js draws every unseeded random number — weight
// initializers, dropout masks, random kernels — from Math.random, so a job replaces Math.random
// with a seeded generator while it builds and trains. Each epoch reseeds from (seed, epoch): a job
// resumed from an epoch's checkpoint draws exactly the numbers the uninterrupted run would have.

/** mulberry32: tiny, fast, and good enough for shuffles, masks and initial weights. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Mixes a seed with a stream number (the epoch) into a new 32-bit seed. */
export function deriveSeed(seed: number, stream: number): number {
  let h = (seed ^ 0x9e3779b9) >>> 0;
  h = Math.imul(h ^ (stream + 0x85ebca6b), 0xc2b2ae35) >>> 0;
  h ^= h >>> 16;
  h = Math.imul(h, 0x27d4eb2f) >>> 0;
  return (h ^ (h >>> 15)) >>> 0;
}

/** Runs fn with Math.random seeded; restores the real one afterwards, even on error. */
export async function withSeededRandom<T>(seed: number, fn: () => Promise<T> | T): Promise<T> {
  const original = Math.random;
  Math.random = mulberry32(seed);
  try {
    return await fn();
  } finally {
    Math.random = original;
  }
}

/** Fisher–Yates shuffle of 0..n-1 with the given generator. */
export function permutation(n: number, random: () => number): Int32Array {
  const out = new Int32Array(n);
  for (let i = 0; i < n; i++) out[i] = i;
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    const t = out[i];
    out[i] = out[j];
    out[j] = t;
  }
  return out;
}
