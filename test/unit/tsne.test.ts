// t-SNE for model insight: separated clusters stay separated, a seed fixes the run, bad options
// are refused by name, progress can cancel, and a few thousand points take seconds.
import assert from "node:assert/strict";
import { test } from "node:test";
import { TSNE_LIMITS, tsne, tsneAsync } from "../../lib/engine/probes/tsne.ts";
import { setTimeout as sleep } from "node:timers/promises";
import { seededRandom } from "../../lib/random/seeded-random.ts";

/** `clusters` Gaussian blobs (σ = 1) whose centres are `separation` apart, labels 0..clusters−1. */
function blobs(clusters: number, perCluster: number, dims: number, separation: number, seed: number) {
  const random = seededRandom(seed);
  const rows = clusters * perCluster;
  const data = new Float32Array(rows * dims);
  const label = new Int32Array(rows);
  // Centres on scaled axes: every pair is exactly `separation` apart.
  const scale = separation / Math.SQRT2;
  for (let i = 0; i < rows; i++) {
    const c = i % clusters;
    label[i] = c;
    for (let t = 0; t < dims; t++) data[i * dims + t] = (t === c ? scale : 0) + random.gaussian();
  }
  return { data, rows, label };
}

/** Share of each point's k nearest embedded neighbours that carry its label. */
function neighbourPurity(y: Float32Array, label: Int32Array, k: number): number {
  const n = label.length;
  let same = 0;
  const d = new Float64Array(n);
  const order = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) {
      d[j] = j === i ? Infinity : (y[2 * i] - y[2 * j]) ** 2 + (y[2 * i + 1] - y[2 * j + 1]) ** 2;
      order[j] = j;
    }
    order.sort((a, b) => d[a] - d[b]);
    for (let m = 0; m < k; m++) if (label[order[m]] === label[i]) same++;
  }
  return same / (n * k);
}

/** Mean distance between points of one label over mean distance between points of different labels. */
function intraOverInter(y: Float32Array, label: Int32Array): number {
  let intra = 0;
  let nIntra = 0;
  let inter = 0;
  let nInter = 0;
  for (let i = 0; i < label.length; i++) {
    for (let j = i + 1; j < label.length; j++) {
      const dist = Math.hypot(y[2 * i] - y[2 * j], y[2 * i + 1] - y[2 * j + 1]);
      if (label[i] === label[j]) {
        intra += dist;
        nIntra++;
      } else {
        inter += dist;
        nInter++;
      }
    }
  }
  return intra / nIntra / (inter / nInter);
}

test("well-separated clusters stay separated in the embedding", () => {
  const { data, rows, label } = blobs(4, 100, 20, 10, 1);
  const y = tsne(data, rows, 20, { perplexity: 30, iterations: 500, seed: 7 });
  assert.equal(y.length, rows * 2);
  assert.ok(y.every(Number.isFinite));
  const purity = neighbourPurity(y, label, 10);
  const ratio = intraOverInter(y, label);
  assert.ok(purity >= 0.95, `10-NN purity ${purity}`);
  assert.ok(ratio < 0.3, `intra/inter distance ${ratio}`);
});

test("more than 50 dimensions go through PCA first and still separate", () => {
  const { data, rows, label } = blobs(4, 60, 300, 10, 2);
  const y = tsne(data, rows, 300, { perplexity: 20, iterations: 400, seed: 3 });
  assert.ok(y.every(Number.isFinite));
  assert.ok(neighbourPurity(y, label, 10) >= 0.95);
  assert.ok(intraOverInter(y, label) < 0.3);
});

test("the same seed gives the same embedding; another seed another one", () => {
  for (const dims of [10, 80]) {
    const { data, rows } = blobs(3, 50, dims, 6, 4);
    const o = { perplexity: 10, iterations: 300 };
    const a = tsne(data, rows, dims, { ...o, seed: 11 });
    const b = tsne(data, rows, dims, { ...o, seed: 11 });
    const c = tsne(data, rows, dims, { ...o, seed: 12 });
    assert.deepEqual(a, b, `dims ${dims}`);
    assert.notDeepEqual(a, c, `dims ${dims}`);
  }
});

test("the async run (a job's, which awaits its progress reports) is the same run, and stops when a report answers false", async () => {
  const { data, rows } = blobs(3, 40, 12, 6, 8);
  const o = { perplexity: 10, iterations: 200, seed: 5 };
  const reports: number[] = [];
  const y = await tsneAsync(data, rows, 12, { ...o, onProgress: async (iteration) => void reports.push(iteration) });
  assert.deepEqual(y, tsne(data, rows, 12, o));
  assert.deepEqual(reports, [50, 100, 150, 200]);
  // The event loop turns between reports: a timer set before the run fires during it.
  let fired = false;
  setTimeout(() => (fired = true), 0);
  let seenAt = -1;
  const early = await tsneAsync(data, rows, 12, {
    ...o,
    onProgress: async (iteration) => {
      await sleep(1);
      if (fired && seenAt < 0) seenAt = iteration;
      return iteration < 100;
    },
  });
  assert.equal(seenAt, 50);
  const stopped = tsne(data, rows, 12, { ...o, onProgress: (iteration) => iteration < 100 });
  assert.deepEqual(early, stopped, "stopped after the report at 100, as the synchronous run does");
});

test("Math.random is neither used nor replaced", () => {
  const original = Math.random;
  let calls = 0;
  Math.random = () => {
    calls++;
    return original();
  };
  try {
    const { data, rows } = blobs(2, 30, 5, 6, 5);
    tsne(data, rows, 5, { perplexity: 5, iterations: 60, seed: 1 });
  } finally {
    Math.random = original;
  }
  assert.equal(calls, 0);
});

test("bad options throw a RangeError naming the option", () => {
  const { data, rows } = blobs(2, 30, 4, 6, 6); // 60 rows
  const ok = { perplexity: 5, iterations: 10, seed: 1 };
  const throwsNaming = (name: RegExp, f: () => unknown) => assert.throws(f, (e: unknown) => e instanceof RangeError && name.test(e.message));

  throwsNaming(/^perplexity/, () => tsne(data, rows, 4, { ...ok, perplexity: 20 })); // = rows / 3
  throwsNaming(/^perplexity/, () => tsne(data, rows, 4, { ...ok, perplexity: 25 }));
  throwsNaming(/^perplexity/, () => tsne(data, rows, 4, { ...ok, perplexity: 1 }));
  throwsNaming(/^perplexity/, () => tsne(data, rows, 4, { ...ok, perplexity: NaN }));
  assert.doesNotThrow(() => tsne(data, rows, 4, { ...ok, perplexity: 19.9 }));

  const tooMany = TSNE_LIMITS.maxRows + 1;
  throwsNaming(/^rows/, () => tsne(new Float32Array(tooMany * 2), tooMany, 2, ok));
  throwsNaming(/^rows/, () => tsne(data, 0, 4, ok));
  throwsNaming(/^rows/, () => tsne(data, 1.5, 4, ok));
  throwsNaming(/^dims/, () => tsne(new Float32Array(60 * 5000), 60, 5000, ok));
  throwsNaming(/^data/, () => tsne(data, rows, 3, ok)); // length ≠ rows × dims

  for (const bad of [NaN, Infinity, -Infinity]) {
    const copy = data.slice();
    copy[4 * 17 + 2] = bad;
    throwsNaming(/^data.*row 17, column 2/, () => tsne(copy, rows, 4, ok));
  }

  throwsNaming(/^iterations/, () => tsne(data, rows, 4, { ...ok, iterations: 0 }));
  throwsNaming(/^iterations/, () => tsne(data, rows, 4, { ...ok, iterations: TSNE_LIMITS.maxIterations + 1 }));
  throwsNaming(/^seed/, () => tsne(data, rows, 4, { ...ok, seed: 1.5 }));
  throwsNaming(/^learningRate/, () => tsne(data, rows, 4, { ...ok, learningRate: 0 }));
  throwsNaming(/^learningRate/, () => tsne(data, rows, 4, { ...ok, learningRate: NaN }));
});

test("duplicate rows neither hang nor give NaN", () => {
  const rows = 90;
  const data = new Float32Array(rows * 3); // every row the same point…
  const same = tsne(data, rows, 3, { perplexity: 10, iterations: 100, seed: 1 });
  assert.ok(same.every(Number.isFinite));
  const { data: mixed } = blobs(3, 30, 3, 6, 8);
  mixed.fill(0, 0, 3 * 40); // …or 40 of them
  assert.ok(tsne(mixed, rows, 3, { perplexity: 10, iterations: 100, seed: 1 }).every(Number.isFinite));
  // Constant data through the PCA path: no variance to divide by.
  assert.ok(tsne(new Float32Array(rows * 60), rows, 60, { perplexity: 10, iterations: 100, seed: 1 }).every(Number.isFinite));
});

test("onProgress reports every 50 iterations and the last, with a falling KL divergence", () => {
  const { data, rows } = blobs(3, 40, 8, 8, 9);
  const seen: [number, number | undefined][] = [];
  tsne(data, rows, 8, { perplexity: 10, iterations: 420, seed: 1, onProgress: (i, kl) => void seen.push([i, kl]) });
  assert.deepEqual(
    seen.map(([i]) => i),
    [50, 100, 150, 200, 250, 300, 350, 400, 420],
  );
  for (const [, kl] of seen) assert.ok(Number.isFinite(kl) && kl! >= 0, `KL ${kl}`);
  assert.ok(seen[seen.length - 1][1]! < seen[0][1]!, "KL should fall");
});

test("onProgress returning false stops early", () => {
  const { data, rows } = blobs(3, 40, 8, 8, 9);
  const o = { perplexity: 10, iterations: 1000, seed: 1 };
  const calls: number[] = [];
  const stopped = tsne(data, rows, 8, { ...o, onProgress: (i) => (calls.push(i), false) });
  assert.deepEqual(calls, [50]);
  assert.equal(stopped.length, rows * 2);
  assert.ok(stopped.every(Number.isFinite));
  // Returning true or nothing goes on.
  let last = 0;
  tsne(data, rows, 8, { ...o, iterations: 150, onProgress: (i) => ((last = i), true) });
  assert.equal(last, 150);
});

test("2,000 points take seconds", (t) => {
  const { data, rows, label } = blobs(10, 200, 30, 10, 10);
  const start = performance.now();
  const y = tsne(data, rows, 30, { perplexity: 30, iterations: 500, seed: 1 });
  t.diagnostic(`2,000 × 30, perplexity 30, 500 iterations: ${((performance.now() - start) / 1000).toFixed(2)} s`);
  assert.equal(y.length, rows * 2);
  assert.ok(y.every(Number.isFinite));
  assert.ok(intraOverInter(y, label) < 0.3);
});
