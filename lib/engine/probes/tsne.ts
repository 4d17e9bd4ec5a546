// t-SNE (van der Maaten & Hinton, 2008) for "model insight": a 2-D picture of how a layer
// represents a dataset, one point per row, so a job can colour it by class and show whether the
// classes separate.
//
// Our own implementation, not a package. The candidates on the npm registry, checked at the time
// of writing:
//   - tsne (karpathy's tsnejs, MIT), @keckelt/tsne (a TypeScript port of it, MIT) and tsne-js
//     (scienceai, Apache-2.0): exact t-SNE only — a dense n×n P (200 MB at 5,000 points) and an
//     O(n²) gradient every iteration — the registry lists one version of each and no recent
//     release, all draw the initial embedding from Math.random (no seed), and they take arrays of
//     arrays; tsne-js also pulls in five ndarray packages.
//   - @tensorflow/tfjs-tsne (0.2.0): throws without the WebGL backend, which Node has not.
//   - bhtsne (MIT): Barnes–Hut (the C++ reference code), but a native addon built by node-gyp at
//     install, seeded through C's rand() (differs by platform), and its JS wrapper chdir()s the
//     whole process into a temp dir and forks a child per run: unfit for a server.
// None is seeded, pure JS, and fast at a few thousand points, so this file does what bhtsne and
// openTSNE do:
//   - inputs with more than PCA_DIMS dimensions are first projected on their top PCA_DIMS principal
//     components (randomized PCA on a seeded sample of up to PCA_SAMPLE rows), which keeps the
//     O(n²·d) neighbour pass affordable at the limits and drops noise, as the reference code does;
//   - sparse input affinities: the 3·perplexity nearest neighbours of each point (an exact O(n²)
//     pass, fine for n ≤ 10,000), a binary search per point for the Gaussian width that gives the
//     perplexity, then P = (P_j|i + P_i|j) / 2n;
//   - gradient descent with early exaggeration 12 and momentum 0.5 for the first 250 iterations,
//     momentum 0.8 after, and per-coordinate gains (Jacobs, 1988);
//   - attraction over the sparse P exactly, repulsion by Barnes–Hut (θ = 0.5) over a quadtree of
//     the embedding, rebuilt every iteration: O(n log n) per iteration instead of O(n²).
// Initial embedding: seeded Gaussian with σ = 1e-4 (the paper's), so a seed fixes the whole run:
// nothing here reads Math.random. The learning rate defaults to max(200, n/12) (Belkina et al.,
// 2019, as openTSNE): the classic 200 converges too slowly beyond a few thousand points. Like
// bhtsne and openTSNE, the gradient omits the paper's constant factor 4, so learning rates compare
// with theirs.

import { deriveSeed, mulberry32, permutation, seededRandom } from "../../random/seeded-random.ts";

export interface TsneOptions {
  /** Effective number of neighbours each point's Gaussian covers; 5–50 is usual. */
  perplexity: number;
  iterations: number;
  seed: number;
  /** Default max(200, rows / 12). */
  learningRate?: number;
  /**
   * Called every PROGRESS_EVERY iterations and after the last, with the iterations done and the
   * KL divergence of the current embedding (against the true, unexaggerated P), so a job can
   * report progress and be cancelled: returning false stops early and returns the embedding as it is.
   */
  onProgress?: (iteration: number, klDivergence?: number) => boolean | void;
}

/**
 * Bounds that keep one run under about a minute on one core. The neighbour pass is O(rows²·50)
 * and each iteration O(rows·log rows); dims only cost the PCA's passes over the data. Measured on
 * a busy 2-core machine: 10,000 × 50 takes ~7 s to prepare and ~42 ms an iteration; the PCA of
 * 10,000 × 4,096 should add ~10 s (scaled from 5,000 × 1,000: 1.7 s). Hence 1,000 iterations, the
 * usual length of a full run.
 */
export const TSNE_LIMITS: Readonly<{ maxRows: number; maxDims: number; maxIterations: number; minPerplexity: number; maxPerplexity: number }> = Object.freeze({
  maxRows: 10_000,
  maxDims: 4_096,
  maxIterations: 1_000,
  minPerplexity: 2,
  maxPerplexity: 100,
});

const PCA_DIMS = 50;
const PCA_SAMPLE = 2_000;
const EXAGGERATION = 12;
const EXAGGERATION_ITERATIONS = 250;
const THETA = 0.5;
const PROGRESS_EVERY = 50;
const MIN_GAIN = 0.01;

/** rows × dims values, row-major → rows × 2 coordinates. Deterministic for a seed. */
export function tsne(data: Float32Array, rows: number, dims: number, o: TsneOptions): Float32Array {
  const run = steps(data, rows, dims, o);
  let r = run.next();
  while (!r.done) r = run.next(o.onProgress?.(r.value.iteration, r.value.klDivergence) !== false);
  return r.value;
}

/**
 * The same run, awaiting `onProgress` at each report, so that a job's event loop turns between
 * reports (to write its progress, to see a cancel). The same seed gives the same coordinates.
 */
export async function tsneAsync(data: Float32Array, rows: number, dims: number, o: Omit<TsneOptions, "onProgress"> & { onProgress?: (iteration: number, klDivergence: number) => Promise<boolean | void> }): Promise<Float32Array> {
  const run = steps(data, rows, dims, o);
  let r = run.next();
  while (!r.done) r = run.next((await o.onProgress?.(r.value.iteration, r.value.klDivergence)) !== false);
  return r.value;
}

interface Report {
  iteration: number;
  klDivergence: number;
}

/** The run as a generator: yields a report every PROGRESS_EVERY iterations and after the last; sent false, it stops there. */
function* steps(data: Float32Array, rows: number, dims: number, o: Omit<TsneOptions, "onProgress">): Generator<Report, Float32Array, boolean> {
  validate(data, rows, dims, o);
  const x = dims > PCA_DIMS ? pca(data, rows, dims, PCA_DIMS, deriveSeed(o.seed, 1)) : Float64Array.from(data);
  const d = Math.min(dims, PCA_DIMS);
  const k = Math.min(rows - 1, Math.floor(3 * o.perplexity));
  const { index, distance } = nearestNeighbours(x, rows, d, k);
  const conditional = conditionalAffinities(distance, rows, k, o.perplexity);
  const p = symmetrize(index, conditional, rows, k);
  return yield* optimize(p, rows, o);
}

function validate(data: Float32Array, rows: number, dims: number, o: Omit<TsneOptions, "onProgress">): void {
  const L = TSNE_LIMITS;
  if (!Number.isInteger(rows) || rows < 1 || rows > L.maxRows) throw new RangeError(`rows must be an integer in [1, ${L.maxRows}] (got ${rows})`);
  if (!Number.isInteger(dims) || dims < 1 || dims > L.maxDims) throw new RangeError(`dims must be an integer in [1, ${L.maxDims}] (got ${dims})`);
  if (!(data instanceof Float32Array) || data.length !== rows * dims) {
    throw new RangeError(`data must be a Float32Array of rows × dims = ${rows * dims} values (got ${data?.length})`);
  }
  for (let i = 0; i < data.length; i++) {
    if (!Number.isFinite(data[i])) throw new RangeError(`data must be finite (row ${Math.floor(i / dims)}, column ${i % dims} is ${data[i]})`);
  }
  const perp = o.perplexity;
  if (!Number.isFinite(perp) || perp < L.minPerplexity || perp > L.maxPerplexity) {
    throw new RangeError(`perplexity must be in [${L.minPerplexity}, ${L.maxPerplexity}] (got ${perp})`);
  }
  // Each point needs 3·perplexity neighbours besides itself.
  if (perp >= rows / 3) throw new RangeError(`perplexity must be below rows / 3 = ${(rows / 3).toFixed(2)} (got ${perp} for ${rows} rows)`);
  if (!Number.isInteger(o.iterations) || o.iterations < 1 || o.iterations > L.maxIterations) {
    throw new RangeError(`iterations must be an integer in [1, ${L.maxIterations}] (got ${o.iterations})`);
  }
  // Seeds are used as 32-bit integers: 1.2 and 1.7 would silently give the same run.
  if (!Number.isSafeInteger(o.seed)) throw new RangeError(`seed must be an integer (got ${o.seed})`);
  if (o.learningRate !== undefined && !(Number.isFinite(o.learningRate) && o.learningRate > 0)) {
    throw new RangeError(`learningRate must be a positive finite number (got ${o.learningRate})`);
  }
}

// ---- PCA ----------------------------------------------------------------------------------------

/**
 * rows × dims → rows × k scores on the top k principal components. The components come from
 * randomized PCA (Halko, Martinsson & Tropp, 2011: a Gaussian sketch, one power iteration, then an
 * exact eigensolve of the small sketch) on at most PCA_SAMPLE rows, drawn with the seed; every row
 * is then projected on them. A full covariance would cost rows·dims² — minutes at 10,000 × 4,096 —
 * while this is four sketch passes over the sample and one projection pass over the data; the top
 * 50 directions of a few thousand rows are those of the whole set, to within sampling noise that
 * t-SNE cannot see. The data are centred implicitly, never copied.
 */
function pca(data: Float32Array, rows: number, dims: number, k: number, seed: number): Float64Array {
  const mean = new Float64Array(dims);
  for (let i = 0; i < rows; i++) for (let t = 0, o = i * dims; t < dims; t++) mean[t] += data[o + t];
  for (let t = 0; t < dims; t++) mean[t] /= rows;

  const sample =
    rows <= PCA_SAMPLE ? identity(rows) : permutation(rows, mulberry32(seed)).subarray(0, PCA_SAMPLE).sort(); // sorted: sequential reads
  const m = sample.length;
  const l = Math.min(k + 10, m, dims);
  const random = seededRandom(deriveSeed(seed, 1));
  const omega = new Float64Array(dims * l);
  for (let i = 0; i < omega.length; i++) omega[i] = random.gaussian();

  // Q = orth(Xc Ω); one power iteration, Q = orth(Xc Xcᵀ Q), sharpens the spectrum's top.
  let q = timesRight(data, sample, dims, mean, omega, l);
  orthonormalize(q, m, l);
  const z = timesLeft(data, sample, dims, mean, q, l);
  orthonormalize(z, dims, l);
  q = timesRight(data, sample, dims, mean, z, l);
  orthonormalize(q, m, l);

  // B = Qᵀ Xc (l × dims) = U S Vᵀ with U S² Uᵀ = B Bᵀ, so the components are V = Bᵀ U S⁻¹.
  const bt = timesLeft(data, sample, dims, mean, q, l); // dims × l, = Bᵀ
  const bbt = new Float64Array(l * l);
  for (let t = 0; t < dims; t++) {
    const o = t * l;
    for (let a = 0; a < l; a++) {
      const v = bt[o + a];
      if (v === 0) continue;
      for (let b = a; b < l; b++) bbt[a * l + b] += v * bt[o + b];
    }
  }
  for (let a = 0; a < l; a++) for (let b = 0; b < a; b++) bbt[a * l + b] = bbt[b * l + a];
  const { values, vectors } = symmetricEigen(bbt, l);
  const order = Array.from({ length: l }, (_, i) => i).sort((a, b) => values[b] - values[a] || a - b);
  const top = Math.sqrt(Math.max(values[order[0]], 0));
  // U S⁻¹ for the top k; directions with no variance (rank-deficient data) stay zero columns, so
  // callers always get k columns.
  const w = new Float64Array(l * k);
  for (let c = 0; c < Math.min(k, l); c++) {
    const e = order[c];
    const s = Math.sqrt(Math.max(values[e], 0));
    if (s <= 1e-10 * top) continue;
    for (let r = 0; r < l; r++) w[r * k + c] = vectors[r * l + e] / s;
  }
  const components = new Float64Array(dims * k);
  for (let t = 0; t < dims; t++) {
    for (let r = 0; r < l; r++) {
      const v = bt[t * l + r];
      if (v === 0) continue;
      for (let c = 0; c < k; c++) components[t * k + c] += v * w[r * k + c];
    }
  }
  return timesRight(data, identity(rows), dims, mean, components, k);
}

function identity(n: number): Int32Array {
  const out = new Int32Array(n);
  for (let i = 0; i < n; i++) out[i] = i;
  return out;
}

/** (X − 1μᵀ) M over the rows listed in `which`, for M dims × l: which.length × l. */
function timesRight(x: Float32Array, which: Int32Array, dims: number, mean: Float64Array, m: Float64Array, l: number): Float64Array {
  const out = new Float64Array(which.length * l);
  const shift = new Float64Array(l); // μᵀ M
  for (let t = 0; t < dims; t++) for (let c = 0; c < l; c++) shift[c] += mean[t] * m[t * l + c];
  for (let i = 0; i < which.length; i++) {
    const o = i * l;
    for (let t = 0, xo = which[i] * dims; t < dims; t++) {
      const v = x[xo + t];
      if (v === 0) continue; // post-ReLU activations are mostly zeros
      const mo = t * l;
      for (let c = 0; c < l; c++) out[o + c] += v * m[mo + c];
    }
    for (let c = 0; c < l; c++) out[o + c] -= shift[c];
  }
  return out;
}

/** (X − 1μᵀ)ᵀ M over the rows listed in `which`, for M which.length × l: dims × l. */
function timesLeft(x: Float32Array, which: Int32Array, dims: number, mean: Float64Array, m: Float64Array, l: number): Float64Array {
  const out = new Float64Array(dims * l);
  const colSum = new Float64Array(l); // 1ᵀ M
  for (let i = 0; i < which.length; i++) {
    const mo = i * l;
    for (let c = 0; c < l; c++) colSum[c] += m[mo + c];
    for (let t = 0, xo = which[i] * dims; t < dims; t++) {
      const v = x[xo + t];
      if (v === 0) continue;
      const o = t * l;
      for (let c = 0; c < l; c++) out[o + c] += v * m[mo + c];
    }
  }
  for (let t = 0; t < dims; t++) for (let c = 0; c < l; c++) out[t * l + c] -= mean[t] * colSum[c];
  return out;
}

/** Orthonormal columns in place (modified Gram–Schmidt, twice, for rank-deficient sketches). */
function orthonormalize(a: Float64Array, n: number, l: number): void {
  for (let pass = 0; pass < 2; pass++) {
    for (let c = 0; c < l; c++) {
      for (let b = 0; b < c; b++) {
        let dot = 0;
        for (let i = 0; i < n; i++) dot += a[i * l + c] * a[i * l + b];
        for (let i = 0; i < n; i++) a[i * l + c] -= dot * a[i * l + b];
      }
      let norm = 0;
      for (let i = 0; i < n; i++) norm += a[i * l + c] ** 2;
      norm = Math.sqrt(norm);
      // A column in the span of the others (data of lower rank) carries nothing: zero it.
      const inv = norm > 1e-12 ? 1 / norm : 0;
      for (let i = 0; i < n; i++) a[i * l + c] *= inv;
    }
  }
}

/** Cyclic Jacobi eigensolver for a small symmetric n × n matrix (row-major; destroyed). */
function symmetricEigen(a: Float64Array, n: number): { values: Float64Array; vectors: Float64Array } {
  const v = new Float64Array(n * n);
  for (let i = 0; i < n; i++) v[i * n + i] = 1;
  for (let sweep = 0; sweep < 100; sweep++) {
    let off = 0;
    let diag = 0;
    for (let p = 0; p < n; p++) {
      diag += a[p * n + p] ** 2;
      for (let q = p + 1; q < n; q++) off += a[p * n + q] ** 2;
    }
    if (off <= 1e-30 * diag || off === 0) break;
    for (let p = 0; p < n; p++) {
      for (let q = p + 1; q < n; q++) {
        const apq = a[p * n + q];
        if (apq === 0) continue;
        const theta = (a[q * n + q] - a[p * n + p]) / (2 * apq);
        const t = Math.sign(theta || 1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
        const c = 1 / Math.sqrt(t * t + 1);
        const s = t * c;
        for (let r = 0; r < n; r++) {
          const arp = a[r * n + p];
          const arq = a[r * n + q];
          a[r * n + p] = c * arp - s * arq;
          a[r * n + q] = s * arp + c * arq;
        }
        for (let r = 0; r < n; r++) {
          const apr = a[p * n + r];
          const aqr = a[q * n + r];
          a[p * n + r] = c * apr - s * aqr;
          a[q * n + r] = s * apr + c * aqr;
        }
        for (let r = 0; r < n; r++) {
          const vrp = v[r * n + p];
          const vrq = v[r * n + q];
          v[r * n + p] = c * vrp - s * vrq;
          v[r * n + q] = s * vrp + c * vrq;
        }
      }
    }
  }
  const values = new Float64Array(n);
  for (let i = 0; i < n; i++) values[i] = a[i * n + i];
  return { values, vectors: v };
}

// ---- input affinities ---------------------------------------------------------------------------

/**
 * The k nearest neighbours of each row by squared Euclidean distance, exactly: every pair once,
 * offered to both rows' bounded max-heaps. Row i's neighbours are index/distance[i·k … i·k+k).
 */
function nearestNeighbours(x: Float64Array, rows: number, d: number, k: number): { index: Int32Array; distance: Float64Array } {
  const index = new Int32Array(rows * k);
  const distance = new Float64Array(rows * k);
  const size = new Int32Array(rows);
  const offer = (i: number, j: number, dist: number): void => {
    const base = i * k;
    let n = size[i];
    let at: number;
    if (n < k) {
      at = n;
      size[i] = ++n;
      // Sift up.
      while (at > 0) {
        const parent = (at - 1) >> 1;
        if (distance[base + parent] >= dist) break;
        distance[base + at] = distance[base + parent];
        index[base + at] = index[base + parent];
        at = parent;
      }
    } else {
      if (dist >= distance[base]) return;
      // Replace the farthest and sift down.
      at = 0;
      for (;;) {
        const l = 2 * at + 1;
        if (l >= n) break;
        const r = l + 1;
        const c = r < n && distance[base + r] > distance[base + l] ? r : l;
        if (distance[base + c] <= dist) break;
        distance[base + at] = distance[base + c];
        index[base + at] = index[base + c];
        at = c;
      }
    }
    distance[base + at] = dist;
    index[base + at] = j;
  };
  for (let i = 0; i < rows; i++) {
    const oi = i * d;
    for (let j = i + 1; j < rows; j++) {
      const oj = j * d;
      let s = 0;
      for (let t = 0; t < d; t++) {
        const diff = x[oi + t] - x[oj + t];
        s += diff * diff;
      }
      // Cheap rejections first: most pairs are far from both rows' current k-th neighbour.
      if (size[i] < k || s < distance[i * k]) offer(i, j, s);
      if (size[j] < k || s < distance[j * k]) offer(j, i, s);
    }
  }
  return { index, distance };
}

/**
 * P_j|i over each row's neighbours: the Gaussian whose entropy is log(perplexity), its precision
 * found by bisection. Distances are shifted by the row's nearest one, which leaves P unchanged but
 * keeps exp from underflowing to all zeros when the data's scale is large.
 */
function conditionalAffinities(distance: Float64Array, rows: number, k: number, perplexity: number): Float64Array {
  const p = new Float64Array(rows * k);
  const target = Math.log(perplexity);
  const shifted = new Float64Array(k);
  for (let i = 0; i < rows; i++) {
    const base = i * k;
    let min = Infinity;
    for (let m = 0; m < k; m++) min = Math.min(min, distance[base + m]);
    let mean = 0;
    for (let m = 0; m < k; m++) {
      shifted[m] = distance[base + m] - min;
      mean += shifted[m];
    }
    mean /= k;
    // Start at the data's own scale so the bisection needs few steps whatever the units.
    let beta = mean > 0 ? 1 / mean : 1;
    let lo = -Infinity;
    let hi = Infinity;
    let sum = 0;
    for (let step = 0; step < 200; step++) {
      sum = 0;
      let weighted = 0;
      for (let m = 0; m < k; m++) {
        const e = Math.exp(-beta * shifted[m]);
        p[base + m] = e;
        sum += e;
        weighted += e * shifted[m];
      }
      const entropy = Math.log(sum) + (beta * weighted) / sum;
      const gap = entropy - target;
      if (Math.abs(gap) < 1e-5) break;
      if (gap > 0) {
        lo = beta;
        beta = hi === Infinity ? beta * 2 : (beta + hi) / 2;
      } else {
        hi = beta;
        beta = lo === -Infinity ? beta / 2 : (beta + lo) / 2;
      }
    }
    for (let m = 0; m < k; m++) p[base + m] /= sum;
  }
  return p;
}

interface SparseP {
  /** CSR: row i's entries are [start[i], start[i+1]). */
  start: Int32Array;
  column: Int32Array;
  value: Float64Array;
}

/** P = (P_j|i + P_i|j) / 2n as a symmetric sparse matrix (the union of both neighbour lists). */
function symmetrize(index: Int32Array, conditional: Float64Array, rows: number, k: number): SparseP {
  const count = new Int32Array(rows + 1);
  for (let i = 0; i < rows; i++) {
    for (let m = 0; m < k; m++) {
      count[i + 1]++;
      count[index[i * k + m] + 1]++;
    }
  }
  for (let i = 0; i < rows; i++) count[i + 1] += count[i];
  const fill = count.slice(0, rows);
  const col = new Int32Array(count[rows]);
  const val = new Float64Array(count[rows]);
  for (let i = 0; i < rows; i++) {
    for (let m = 0; m < k; m++) {
      const j = index[i * k + m];
      const v = conditional[i * k + m];
      col[fill[i]] = j;
      val[fill[i]++] = v;
      col[fill[j]] = i;
      val[fill[j]++] = v;
    }
  }
  // Sort each row by column and merge the duplicates (pairs in both lists).
  const start = new Int32Array(rows + 1);
  const column = new Int32Array(count[rows]);
  const value = new Float64Array(count[rows]);
  let out = 0;
  let total = 0;
  const order: number[] = [];
  for (let i = 0; i < rows; i++) {
    start[i] = out;
    order.length = 0;
    for (let e = count[i]; e < count[i + 1]; e++) order.push(e);
    order.sort((a, b) => col[a] - col[b]);
    for (let m = 0; m < order.length; m++) {
      const e = order[m];
      if (out > start[i] && column[out - 1] === col[e]) value[out - 1] += val[e];
      else {
        column[out] = col[e];
        value[out++] = val[e];
      }
      total += val[e];
    }
  }
  start[rows] = out;
  // Each conditional row sums to 1, so total is 2n; dividing by the sum itself absorbs rounding.
  for (let e = 0; e < out; e++) value[e] /= total;
  return { start, column: column.slice(0, out), value: value.slice(0, out) };
}

// ---- optimization -------------------------------------------------------------------------------

function* optimize(p: SparseP, rows: number, o: Omit<TsneOptions, "onProgress">): Generator<Report, Float32Array, boolean> {
  const n = rows;
  const eta = o.learningRate ?? Math.max(200, n / 12);
  const random = seededRandom(o.seed);
  const y = new Float64Array(2 * n);
  for (let i = 0; i < 2 * n; i++) y[i] = 1e-4 * random.gaussian();
  const grad = new Float64Array(2 * n);
  const update = new Float64Array(2 * n);
  const gains = new Float64Array(2 * n).fill(1);
  const repulsion = new Float64Array(2 * n);
  const tree = new QuadTree(n);

  for (let iter = 0; iter < o.iterations; iter++) {
    const early = iter < EXAGGERATION_ITERATIONS;
    const exaggeration = early ? EXAGGERATION : 1;
    const momentum = early ? 0.5 : 0.8;

    tree.build(y, n);
    const z = tree.repulsion(y, n, repulsion);
    attraction(p, y, exaggeration, grad);
    for (let i = 0; i < 2 * n; i++) grad[i] -= repulsion[i] / z;

    for (let i = 0; i < 2 * n; i++) {
      const g = grad[i];
      // Grow the step where the gradient keeps its direction, shrink it where it oscillates.
      gains[i] = Math.sign(g) !== Math.sign(update[i]) ? gains[i] + 0.2 : gains[i] * 0.8;
      if (gains[i] < MIN_GAIN) gains[i] = MIN_GAIN;
      update[i] = momentum * update[i] - eta * gains[i] * g;
      y[i] += update[i];
    }
    // t-SNE's cost ignores translation; recentring keeps the coordinates from drifting.
    let mx = 0;
    let my = 0;
    for (let i = 0; i < n; i++) {
      mx += y[2 * i];
      my += y[2 * i + 1];
    }
    mx /= n;
    my /= n;
    for (let i = 0; i < n; i++) {
      y[2 * i] -= mx;
      y[2 * i + 1] -= my;
    }

    const done = iter + 1;
    if (done % PROGRESS_EVERY === 0 || done === o.iterations) {
      // z belongs to the embedding before this step; a step is small, so the KL is close enough
      // for a progress report and costs no second tree pass.
      if (!(yield { iteration: done, klDivergence: klDivergence(p, y, z) })) break;
    }
  }
  return Float32Array.from(y);
}

/** The attractive half of the gradient: Σ_j exaggeration·p_ij·q_ij·(y_i − y_j), q unnormalized. */
function attraction(p: SparseP, y: Float64Array, exaggeration: number, grad: Float64Array): void {
  const { start, column, value } = p;
  const n = start.length - 1;
  for (let i = 0; i < n; i++) {
    const xi = y[2 * i];
    const yi = y[2 * i + 1];
    let gx = 0;
    let gy = 0;
    for (let e = start[i]; e < start[i + 1]; e++) {
      const j = column[e];
      const dx = xi - y[2 * j];
      const dy = yi - y[2 * j + 1];
      const w = (exaggeration * value[e]) / (1 + dx * dx + dy * dy);
      gx += w * dx;
      gy += w * dy;
    }
    grad[2 * i] = gx;
    grad[2 * i + 1] = gy;
  }
}

/** KL(P‖Q) over P's support (elsewhere P is 0), with Q's normalizer z from Barnes–Hut. */
function klDivergence(p: SparseP, y: Float64Array, z: number): number {
  const { start, column, value } = p;
  const n = start.length - 1;
  let kl = 0;
  for (let i = 0; i < n; i++) {
    for (let e = start[i]; e < start[i + 1]; e++) {
      const j = column[e];
      const dx = y[2 * i] - y[2 * j];
      const dy = y[2 * i + 1] - y[2 * j + 1];
      const q = 1 / (1 + dx * dx + dy * dy) / z;
      kl += value[e] * Math.log(Math.max(value[e], 1e-300) / Math.max(q, 1e-300));
    }
  }
  return kl;
}

/**
 * A quadtree over the embedding in flat typed arrays, reused across iterations so the optimizer
 * allocates nothing per step. Leaves hold one point, except at MAX_DEPTH, where points that close
 * (or identical) share a leaf and count as one mass — without the cap, duplicates would subdivide
 * forever.
 */
class QuadTree {
  private static readonly MAX_DEPTH = 40;
  private capacity: number;
  private size = 0;
  private centerX!: Float64Array;
  private centerY!: Float64Array;
  private half!: Float64Array;
  private mass!: Int32Array;
  private sumX!: Float64Array;
  private sumY!: Float64Array;
  /** 4 per node; 0 = none (the root is node 0, so never anyone's child). */
  private child!: Int32Array;
  /** A leaf's first point, −1 for an empty leaf or an internal node. */
  private point!: Int32Array;
  private leaf!: Uint8Array;
  private depth!: Uint8Array;
  /** The leaf that holds each point, to leave a point out of its own repulsion. */
  private readonly leafOf: Int32Array;
  private readonly stack = new Int32Array(4 * (QuadTree.MAX_DEPTH + 2));
  private packed = new Float64Array(0);

  constructor(points: number) {
    this.capacity = Math.max(16, 2 * points);
    this.allocate(this.capacity);
    this.leafOf = new Int32Array(points);
  }

  private allocate(capacity: number): void {
    const grow = <T extends Float64Array | Int32Array | Uint8Array>(old: T | undefined, make: (n: number) => T, per = 1): T => {
      const next = make(capacity * per);
      if (old) next.set(old as never);
      return next;
    };
    this.centerX = grow(this.centerX, (n) => new Float64Array(n));
    this.centerY = grow(this.centerY, (n) => new Float64Array(n));
    this.half = grow(this.half, (n) => new Float64Array(n));
    this.mass = grow(this.mass, (n) => new Int32Array(n));
    this.sumX = grow(this.sumX, (n) => new Float64Array(n));
    this.sumY = grow(this.sumY, (n) => new Float64Array(n));
    this.child = grow(this.child, (n) => new Int32Array(n), 4);
    this.point = grow(this.point, (n) => new Int32Array(n));
    this.leaf = grow(this.leaf, (n) => new Uint8Array(n));
    this.depth = grow(this.depth, (n) => new Uint8Array(n));
    this.capacity = capacity;
  }

  private node(cx: number, cy: number, half: number, depth: number): number {
    if (this.size === this.capacity) this.allocate(this.capacity * 2);
    const id = this.size++;
    this.centerX[id] = cx;
    this.centerY[id] = cy;
    this.half[id] = half;
    this.mass[id] = 0;
    this.sumX[id] = 0;
    this.sumY[id] = 0;
    this.child.fill(0, 4 * id, 4 * id + 4);
    this.point[id] = -1;
    this.leaf[id] = 1;
    this.depth[id] = depth;
    return id;
  }

  build(y: Float64Array, n: number): void {
    let minX = Infinity;
    let minY = Infinity;
    let maxX = -Infinity;
    let maxY = -Infinity;
    for (let i = 0; i < n; i++) {
      minX = Math.min(minX, y[2 * i]);
      maxX = Math.max(maxX, y[2 * i]);
      minY = Math.min(minY, y[2 * i + 1]);
      maxY = Math.max(maxY, y[2 * i + 1]);
    }
    // A hair wider than the points so none sits exactly on the outer edge.
    const half = Math.max(maxX - minX, maxY - minY, 1e-12) / 2 + 1e-9;
    this.size = 0;
    this.node((minX + maxX) / 2, (minY + maxY) / 2, half, 0);
    for (let i = 0; i < n; i++) this.insert(y, i);
  }

  private insert(y: Float64Array, i: number): void {
    const px = y[2 * i];
    const py = y[2 * i + 1];
    let id = 0;
    for (;;) {
      const wasEmpty = this.mass[id] === 0;
      this.mass[id]++;
      this.sumX[id] += px;
      this.sumY[id] += py;
      if (this.leaf[id]) {
        if (wasEmpty) {
          this.point[id] = i;
          this.leafOf[i] = id;
          return;
        }
        if (this.depth[id] >= QuadTree.MAX_DEPTH) {
          this.leafOf[i] = id;
          return;
        }
        // Split: the resident point moves down into its quadrant, then i goes on down.
        const resident = this.point[id];
        this.leaf[id] = 0;
        this.point[id] = -1;
        const r = this.childFor(id, y[2 * resident], y[2 * resident + 1]);
        this.mass[r] = 1;
        this.sumX[r] = y[2 * resident];
        this.sumY[r] = y[2 * resident + 1];
        this.point[r] = resident;
        this.leafOf[resident] = r;
      }
      id = this.childFor(id, px, py);
    }
  }

  /** The child of `id` whose quadrant holds (x, y), created empty if missing. */
  private childFor(id: number, x: number, y: number): number {
    const east = x >= this.centerX[id] ? 1 : 0;
    const north = y >= this.centerY[id] ? 1 : 0;
    const slot = 4 * id + east + 2 * north;
    let c = this.child[slot];
    if (c === 0) {
      const h = this.half[id] / 2;
      c = this.node(this.centerX[id] + (east ? h : -h), this.centerY[id] + (north ? h : -h), h, this.depth[id] + 1);
      this.child[slot] = c; // after node(): a resize replaces this.child
    }
    return c;
  }

  /**
   * For every point, Σ_j q_ij²·(y_i − y_j) into out[2i..2i+1], q unnormalized; returns
   * Z = Σ_i Σ_j≠i q_ij. A cell of side s at distance r from y_i counts as one mass at its centre of
   * mass when s/r < θ. A cell holding y_i never qualifies for θ < 1/√2 (then r ≤ s√2), so only
   * leaves need the self check. Arrays are read into locals once: this loop is the hot spot.
   */
  repulsion(y: Float64Array, n: number, out: Float64Array): number {
    const { mass, sumX, sumY, half, leaf, child, leafOf, stack } = this;
    // Per node, packed for locality: centre of mass x, y, side² (−1 for a leaf, which then always
    // "qualifies" as one mass) and the point count. Computed once per build, not once per visit.
    if (this.packed.length < 4 * this.size) this.packed = new Float64Array(4 * this.capacity);
    const node = this.packed;
    for (let id = 0; id < this.size; id++) {
      const m = mass[id];
      node[4 * id] = m > 0 ? sumX[id] / m : 0;
      node[4 * id + 1] = m > 0 ? sumY[id] / m : 0;
      node[4 * id + 2] = leaf[id] === 1 ? -1 : 4 * half[id] * half[id];
      node[4 * id + 3] = m;
    }
    const theta2 = THETA * THETA;
    let z = 0;
    for (let i = 0; i < n; i++) {
      const px = y[2 * i];
      const py = y[2 * i + 1];
      const own = leafOf[i];
      let top = 0;
      stack[top++] = 0;
      let fx = 0;
      let fy = 0;
      while (top > 0) {
        const id = stack[--top];
        const o = 4 * id;
        const m = node[o + 3];
        if (m === 0) continue;
        const dx = px - node[o];
        const dy = py - node[o + 1];
        const d2 = dx * dx + dy * dy;
        if (node[o + 2] < theta2 * d2) {
          const count = id === own ? m - 1 : m;
          if (count === 0) continue;
          const q = 1 / (1 + d2);
          z += count * q;
          const w = count * q * q;
          fx += w * dx;
          fy += w * dy;
        } else {
          const s = 4 * id;
          let c = child[s];
          if (c !== 0) stack[top++] = c;
          c = child[s + 1];
          if (c !== 0) stack[top++] = c;
          c = child[s + 2];
          if (c !== 0) stack[top++] = c;
          c = child[s + 3];
          if (c !== 0) stack[top++] = c;
        }
      }
      out[2 * i] = fx;
      out[2 * i + 1] = fy;
    }
    return z;
  }
}
