// One inference thread: its own TensorFlow.js backend, its own Postgres pool, its own model cache.
// It runs forward passes of batches the main thread formed, and builds specs to check them, so
// that neither ever blocks the API's event loop.
import { parentPort, workerData } from "node:worker_threads";
import * as tf from "@tensorflow/tfjs";
import { initBackend } from "../../engine/backend.ts";
import { loadModel } from "../../engine/model-io.ts";
import { createPrisma } from "../../db/prisma.ts";
import { ValidationError } from "../../errors.ts";
import { inspectSpec } from "../../registry/model-service.ts";
import { ModelVersionRepository } from "../../registry/model-version-repository.ts";
import type { FromThread, SerializedError, TensorData, ThreadOptions, ThreadStats, ToThread } from "./messages.ts";
import { ModelCache } from "./model-cache.ts";

const port = parentPort!;
const options = workerData as ThreadOptions;

/** Memory a loaded model holds besides its weight tensors (topology, layer objects), roughly. */
const OVERHEAD_BYTES = 256 * 1024;

const db = createPrisma(options.databaseUrl);
const versions = new ModelVersionRepository(db);
let evicted: string[] = [];

const cache = new ModelCache<tf.LayersModel>(
  { maxBytes: options.cacheBytes, maxEntries: options.cacheEntries },
  async (versionId) => {
    const stored = await versions.load(versionId);
    const before = tf.memory().numBytes;
    const model = await loadModel(stored.model);
    warmUp(model);
    const weightBytes = Math.max(tf.memory().numBytes - before, stored.model.weights.byteLength);
    return { value: model, bytes: weightBytes + JSON.stringify(stored.model.topology).length + OVERHEAD_BYTES };
  },
  (model) => model.dispose(),
  (versionId) => evicted.push(versionId),
);

/** One predict on zeros: the first call compiles kernels and sizes buffers, not the first client's. */
function warmUp(model: tf.LayersModel): void {
  tf.tidy(() => {
    const xs = model.inputs.map((input) => tf.zeros(input.shape.map((d) => d ?? 1), input.dtype));
    const y = model.predict(xs.length === 1 ? xs[0] : xs) as tf.Tensor | tf.Tensor[];
    for (const t of Array.isArray(y) ? y : [y]) t.dataSync();
  });
}

function stats(): ThreadStats {
  const m = tf.memory();
  return { cache: cache.stats(), numTensors: m.numTensors, numBytes: m.numBytes };
}

function takeEvicted(): string[] {
  const out = evicted;
  evicted = [];
  return out;
}

function serialize(err: unknown): SerializedError {
  if (err instanceof ValidationError) return { kind: "validation", problems: err.problems };
  const e = err instanceof Error ? err : new Error(String(err));
  return { kind: "error", name: e.name, message: e.message };
}

/**
 * Rows per forward pass. model.predict cuts its input into passes of 32 rows unless told
 * otherwise, which undid batching beyond 32 (a batch of 64 MLP rows ran 1.35× faster as one
 * pass); above this, activations of big conv nets grow to hundreds of MB per pass.
 */
const MAX_PASS_ROWS = 256;

/** The rows of one or more requests as one forward pass; the outputs split back per request. */
function forward(model: tf.LayersModel, requests: TensorData[][]): TensorData[][] {
  const rows = requests.map((r) => r[0].shape[0]);
  const batchSize = Math.min(MAX_PASS_ROWS, rows.reduce((a, b) => a + b, 0));
  const outputs = tf.tidy(() => {
    const xs = requests[0].map((_, k) => {
      const parts = requests.map((r) => r[k]);
      if (parts.length === 1) return tf.tensor(parts[0].data, parts[0].shape);
      const total = rows.reduce((a, b) => a + b, 0);
      const joined = new Float32Array(parts.reduce((a, p) => a + p.data.length, 0));
      let at = 0;
      for (const p of parts) {
        joined.set(p.data, at);
        at += p.data.length;
      }
      return tf.tensor(joined, [total, ...parts[0].shape.slice(1)]);
    });
    const y = model.predict(xs.length === 1 ? xs[0] : xs, { batchSize }) as tf.Tensor | tf.Tensor[];
    return (Array.isArray(y) ? y : [y]).map((t) => ({ data: t.dataSync() as Float32Array, shape: t.shape }));
  });
  let start = 0;
  return rows.map((n) => {
    const mine = outputs.map(({ data, shape }) => {
      const width = data.length / shape[0];
      // Each output goes back in a buffer of its own, so that it can be transferred.
      const owned = requests.length === 1 && data.byteOffset === 0 && data.byteLength === data.buffer.byteLength;
      return { data: owned ? data : data.slice(start * width, (start + n) * width), shape: [n, ...shape.slice(1)] };
    });
    start += n;
    return mine;
  });
}

async function run(msg: Extract<ToThread, { type: "run" }>): Promise<void> {
  let results: Extract<FromThread, { type: "ran" }>["results"];
  try {
    const { value: model, release } = await cache.acquire(msg.versionId);
    try {
      try {
        results = forward(model, msg.requests).map((outputs) => ({ ok: true as const, outputs }));
      } catch (err) {
        if (msg.requests.length === 1) throw err;
        // One request's rows may be what fails the batch: run each alone so only it fails.
        results = msg.requests.map((r) => {
          try {
            return { ok: true as const, outputs: forward(model, [r])[0] };
          } catch (e) {
            return { ok: false as const, error: serialize(e) };
          }
        });
      }
    } finally {
      release();
    }
  } catch (err) {
    post({ type: "failed", id: msg.id, error: serialize(err), stats: stats(), evicted: takeEvicted() });
    return;
  }
  const transfer = results.flatMap((r) => (r.ok ? r.outputs.map((o) => o.data.buffer as ArrayBuffer) : []));
  post({ type: "ran", id: msg.id, results, stats: stats(), evicted: takeEvicted() }, transfer);
}

function inspect(msg: Extract<ToThread, { type: "inspect" }>): void {
  try {
    const report = inspectSpec(msg.spec, msg.limits);
    post({ type: "inspected", id: msg.id, report, stats: stats() });
  } catch (err) {
    post({ type: "failed", id: msg.id, error: serialize(err), stats: stats(), evicted: takeEvicted() });
  }
}

function post(msg: FromThread, transfer: ArrayBuffer[] = []): void {
  port.postMessage(msg, transfer);
}

const ready = initBackend(options.backend).then((info) => post({ type: "ready", backend: info.name }));

port.on("message", (msg: ToThread) => {
  void ready.then(async () => {
    switch (msg.type) {
      case "run":
        return run(msg);
      case "inspect":
        return inspect(msg);
      case "stats":
        return post({ type: "stats", id: msg.id, stats: stats() });
      case "close":
        cache.clear();
        await db.$disconnect().catch(() => {});
        return post({ type: "closed", id: msg.id });
    }
  });
});

// A backend that cannot start makes the thread useless: exit, and the pool reports why.
ready.catch((err: Error) => {
  console.error(`inference thread: ${err.message}`);
  process.exit(1);
});
