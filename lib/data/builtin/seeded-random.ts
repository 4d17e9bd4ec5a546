// The random numbers of the generators: seeded, so the same parameters and seed give the same
// bytes. A copy of the engine's mulberry32 (lib/data may not import lib/engine), plus Gaussians.

/** mulberry32: tiny and fast; plenty for toy data. Uniform in [0, 1). */
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

export interface Random {
  /** Uniform in [0, 1). */
  uniform(): number;
  /** Uniform in [lo, hi). */
  between(lo: number, hi: number): number;
  /** An integer in [0, n). */
  int(n: number): number;
  /** Standard normal (Box–Muller). */
  gaussian(): number;
}

export function seededRandom(seed: number): Random {
  const next = mulberry32(seed);
  return {
    uniform: next,
    between: (lo, hi) => lo + (hi - lo) * next(),
    int: (n) => Math.floor(next() * n),
    gaussian: () => {
      // 1 − u keeps the logarithm finite; one pair of uniforms per value keeps the stream simple.
      const u = 1 - next();
      const v = next();
      return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
    },
  };
}
