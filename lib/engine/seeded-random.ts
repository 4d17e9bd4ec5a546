// Determinism for training. TensorFlow.js draws every unseeded random number — weight
// initializers, dropout masks, random kernels — from Math.random, so a job replaces Math.random
// with a seeded generator while it builds and trains. Each epoch reseeds from (seed, epoch): a job
// resumed from an epoch's checkpoint draws exactly the numbers the uninterrupted run would have.

import { mulberry32 } from "../random/seeded-random.ts";

export { deriveSeed, mulberry32, permutation } from "../random/seeded-random.ts";

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
