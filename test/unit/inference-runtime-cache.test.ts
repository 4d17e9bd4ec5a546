// The inference runtime's policies without threads: the model cache (single-flight loads, LRU by
// bytes and count, pinned entries kept, failed loads retried) and the dynamic batcher (full
// batches go at once, the oldest request waits at most the delay, big requests go alone).
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { describe, test } from "node:test";
import { Batcher, type Batch, type PendingRequest } from "../../lib/serving/runtime/batcher.ts";
import { ModelCache } from "../../lib/serving/runtime/model-cache.ts";

function cacheOf(maxBytes: number, maxEntries = 100, bytes: (k: string) => number = () => 100) {
  const loads: string[] = [];
  const disposed: string[] = [];
  const evicted: string[] = [];
  const failNext = new Set<string>();
  const cache = new ModelCache<{ key: string }>(
    { maxBytes, maxEntries },
    async (key) => {
      loads.push(key);
      await sleep(10);
      if (failNext.delete(key)) throw new Error(`cannot load ${key}`);
      return { value: { key }, bytes: bytes(key) };
    },
    (value) => disposed.push(value.key),
    (key) => evicted.push(key),
  );
  const use = async (key: string) => {
    const { value, release } = await cache.acquire(key);
    release();
    return value;
  };
  return { cache, loads, disposed, evicted, failNext, use };
}

describe("model cache", () => {
  test("fifty concurrent first requests load once and share the value", async () => {
    const { cache, loads, use } = cacheOf(1000);
    const values = await Promise.all(Array.from({ length: 50 }, () => use("a")));
    assert.deepEqual(loads, ["a"]);
    assert.ok(values.every((v) => v === values[0]));
    assert.deepEqual({ ...cache.stats() }, { hits: 0, misses: 50, loads: 1, loadFailures: 0, evictions: 0, bytes: 100, entries: 1 });
    await use("a");
    assert.equal(cache.stats().hits, 1);
  });

  test("evicts the least recently used by bytes, and disposes what it evicts", async () => {
    const { cache, disposed, evicted, use } = cacheOf(250, 100, (k) => (k === "big" ? 200 : 100));
    await use("a");
    await use("b");
    await use("a"); // b is now the least recently used
    await use("c");
    assert.deepEqual(disposed, ["b"]);
    assert.deepEqual(evicted, ["b"]);
    assert.ok(cache.has("a") && cache.has("c"));
    await use("big");
    assert.deepEqual(disposed, ["b", "a", "c"]);
    assert.deepEqual(cache.stats().bytes, 200);
  });

  test("a model bigger than the budget still serves, and goes first", async () => {
    const { cache, disposed, use } = cacheOf(50);
    await use("a");
    assert.ok(cache.has("a"));
    await use("b");
    assert.deepEqual(disposed, ["a"]);
    assert.equal(cache.stats().entries, 1);
  });

  test("the old count limit still holds", async () => {
    const { cache, use } = cacheOf(1e9, 2);
    for (const k of ["a", "b", "c", "d"]) await use(k);
    assert.equal(cache.stats().entries, 2);
    assert.ok(cache.has("c") && cache.has("d"));
  });

  test("a model in use is never disposed under its caller; the budget holds once it is released", async () => {
    const { cache, disposed, use } = cacheOf(150);
    const held = await cache.acquire("a");
    const other = await cache.acquire("b");
    assert.equal(cache.stats().bytes, 200, "both in use: over the budget for now");
    await use("c");
    assert.ok(!disposed.includes("a") && !disposed.includes("b"), "pinned");
    held.release();
    assert.deepEqual(disposed, ["c", "a"]);
    other.release();
    assert.equal(cache.stats().bytes, 100);
    assert.ok(cache.has("b"));
  });

  test("a failed load fails all its waiters, is not cached, and is tried again", async () => {
    const { cache, loads, failNext, use } = cacheOf(1000);
    failNext.add("a");
    const results = await Promise.allSettled(Array.from({ length: 5 }, () => use("a")));
    assert.ok(results.every((r) => r.status === "rejected"));
    assert.equal(loads.length, 1);
    assert.equal((await use("a")).key, "a");
    assert.equal(loads.length, 2);
    assert.equal(cache.stats().loadFailures, 1);
  });
});

function batcherOf() {
  const batches: { batch: Batch; at: number }[] = [];
  const t0 = performance.now();
  const batcher = new Batcher((batch) => {
    batches.push({ batch, at: performance.now() - t0 });
    batcher.seal(batch);
  });
  const req = (rows: number): PendingRequest => ({ inputs: [{ data: new Float32Array(rows * 2), shape: [rows, 2] }], rows, resolve: () => {}, reject: () => {} });
  return { batcher, batches, req };
}

describe("dynamic batcher", () => {
  test("requests of one version merge until the batch is full, which goes at once", () => {
    const { batcher, batches, req } = batcherOf();
    for (let i = 0; i < 10; i++) batcher.add("v", req(1), { maxBatchSize: 4, maxDelayMs: 10_000 });
    assert.deepEqual(batches.map((b) => b.batch.rows), [4, 4]);
    assert.deepEqual(batcher.depth(), { requests: 2, rows: 2 });
    batcher.drain(new Error("closed"));
  });

  test("the oldest request waits the delay, not longer", async () => {
    const { batcher, batches, req } = batcherOf();
    batcher.add("v", req(1), { maxBatchSize: 64, maxDelayMs: 30 });
    await sleep(15);
    batcher.add("v", req(2), { maxBatchSize: 64, maxDelayMs: 30 });
    batcher.add("w", req(1), { maxBatchSize: 64, maxDelayMs: 30 });
    await sleep(60);
    const v = batches.find((b) => b.batch.versionId === "v")!;
    assert.equal(v.batch.requests.length, 2);
    assert.ok(v.at >= 29 && v.at < 45, `the batch went after ${v.at} ms`);
    assert.equal(batches.length, 2, "versions do not mix");
  });

  test("a request that does not fit closes the batch; a big one or batching off goes alone", () => {
    const { batcher, batches, req } = batcherOf();
    batcher.add("v", req(3), { maxBatchSize: 4, maxDelayMs: 10_000 });
    batcher.add("v", req(2), { maxBatchSize: 4, maxDelayMs: 10_000 });
    assert.deepEqual(batches.map((b) => b.batch.rows), [3]);
    batcher.add("v", req(100), { maxBatchSize: 4, maxDelayMs: 10_000 });
    batcher.add("v", req(1), { maxBatchSize: 4, maxDelayMs: 0 });
    assert.deepEqual(batches.map((b) => b.batch.rows), [3, 100, 1]);
    batcher.drain(new Error("closed"));
  });

  test("different row shapes of one version never share a batch", () => {
    const { batcher, batches } = batcherOf();
    const r = (len: number): PendingRequest => ({ inputs: [{ data: new Float32Array(len), shape: [1, len] }], rows: 1, resolve: () => {}, reject: () => {} });
    batcher.add("v", r(3), { maxBatchSize: 2, maxDelayMs: 10_000 });
    batcher.add("v", r(5), { maxBatchSize: 2, maxDelayMs: 10_000 });
    batcher.add("v", r(3), { maxBatchSize: 2, maxDelayMs: 10_000 });
    assert.deepEqual(batches.map((b) => b.batch.requests.map((q) => q.inputs[0].shape[1])), [[3, 3]]);
    batcher.drain(new Error("closed"));
  });
});
