// One inference thread: its own TensorFlow.js backend, its own Postgres pool, its own model cache.
// It runs forward passes of batches the main thread formed, and builds specs to check them, so
// that neither ever blocks the API's event loop. A version whose ONNX export passed its parity
// check runs on an ONNX Runtime session instead of TensorFlow.js (TRAINYARD_SERVING_RUNTIME).
import { parentPort, workerData } from "node:worker_threads";
import * as tf from "@tensorflow/tfjs";
import type { InferenceSession } from "onnxruntime-node";
import { initBackend } from "../../engine/backend.ts";
import { loadModel } from "../../engine/model-io.ts";
import { createSession, loadOrt, type OrtModule } from "../../engine/onnx-runtime.ts";
import { createPrisma } from "../../db/prisma.ts";
import { ConflictError, ValidationError } from "../../errors.ts";
import { checkOnnx, chooseRuntime, type Runtime } from "../../registry/export/onnx/onnx-check.ts";
import { runProbe } from "../../engine/probes/probe.ts";
import { stockGraph } from "../../registry/export/export-model.ts";
import { inspectSpec } from "../../registry/model-service.ts";
import { ModelVersionRepository } from "../../registry/model-version-repository.ts";
import type { FromThread, SerializedError, TensorData, ThreadOptions, ThreadStats, ToThread } from "./messages.ts";
import { ModelCache, type Loaded } from "./model-cache.ts";

const port = parentPort!;
const options = workerData as ThreadOptions;

/** Memory a loaded model holds besides its weight tensors (topology, layer objects), roughly. */
const OVERHEAD_BYTES = 256 * 1024;

const db = createPrisma(options.databaseUrl);
const versions = new ModelVersionRepository(db);
let evicted: string[] = [];

/**
 * A loaded version: a TensorFlow.js model, or an ONNX Runtime session of its checked export; for
 * probes (cache key `<id>#raw`), its graph over raw inputs, the fitted preprocessing as layers.
 */
type Served = { runtime: "tfjs"; model: tf.LayersModel; also?: tf.LayersModel } | { runtime: "onnx"; ort: OrtModule; session: InferenceSession };

const RAW = "#raw";

const cache = new ModelCache<Served>(
  { maxBytes: options.cacheBytes, maxEntries: options.cacheEntries },
  async (key) => (key.endsWith(RAW) ? loadRaw(key.slice(0, -RAW.length)) : ((await loadOnnx(key)) ?? loadTfjs(key))),
  (served) => {
    if (served.runtime === "onnx") return void served.session.release().catch(() => {});
    // A raw graph shares its layers with the stored model it was built over; each frees what it still holds.
    for (const m of [served.model, served.also]) {
      try {
        m?.dispose();
      } catch {
        // already released through the other
      }
    }
  },
  (key) => evicted.push(key),
);

/** The version's graph over raw inputs (export-model.ts's stock graph, every layer kept as it is). */
async function loadRaw(versionId: string): Promise<Loaded<Served>> {
  const stored = await versions.load(versionId);
  const { model, original } = await stockGraph(stored.model, stored.signature, "tfjs", () => true);
  return { value: { runtime: "tfjs", model, also: original }, bytes: 2 * stored.model.weights.byteLength + OVERHEAD_BYTES };
}

async function loadTfjs(versionId: string): Promise<Loaded<Served>> {
  const stored = await versions.load(versionId);
  const before = tf.memory().numBytes;
  const model = await loadModel(stored.model);
  warmUp(model);
  const weightBytes = Math.max(tf.memory().numBytes - before, stored.model.weights.byteLength);
  return { value: { runtime: "tfjs", model }, bytes: weightBytes + JSON.stringify(stored.model.topology).length + OVERHEAD_BYTES };
}

/**
 * The version on ONNX Runtime, when the rule (chooseRuntime) says so; null for TensorFlow.js. A
 * version never checked (imported, or older than the checks) is checked here once and the result
 * stored, so the next load anywhere reads it.
 */
async function loadOnnx(versionId: string): Promise<Loaded<Served> | null> {
  if (options.servingRuntime === "tfjs") return null;
  const ort = await loadOrt();
  let check = await versions.loadOnnx(versionId);
  if (!check && ort) {
    const stored = await versions.load(versionId);
    const made = await checkOnnx(stored.model, stored.signature);
    if (made) {
      await versions.recordOnnx(versionId, made);
      check = await versions.loadOnnx(versionId);
    }
  }
  const choice = chooseRuntime(options.servingRuntime, check?.status, ort !== null);
  if (choice.runtime === null) throw new ConflictError(`this version cannot be served: ${choice.reason} (its metadata's onnx field says why)`);
  if (choice.runtime === "tfjs" || !check?.model || !ort) return null;
  let session: InferenceSession | undefined;
  try {
    session = await createSession(ort, check.model, options.onnxThreads);
    // One run on zeros: the first call sizes ONNX Runtime's buffers, not the first client's.
    await runOnnx({ runtime: "onnx", ort, session }, zerosFor(session));
  } catch (err) {
    await session?.release().catch(() => {});
    // The bytes passed their check where they were made; if this ONNX Runtime still refuses them,
    // `auto` serves the version with TensorFlow.js rather than failing every request for it.
    if (options.servingRuntime === "onnx") throw err;
    console.error(`inference thread: version ${versionId} falls back to TensorFlow.js: ONNX Runtime refused its checked export: ${(err as Error).message}`);
    return null;
  }
  // ONNX Runtime keeps the weights once more, prepacked for its kernels.
  return { value: { runtime: "onnx", ort, session }, bytes: 2 * check.model.byteLength + OVERHEAD_BYTES };
}

function zerosFor(session: InferenceSession): TensorData[] {
  return session.inputNames.map((name) => {
    const meta = session.inputMetadata.find((m) => m.name === name);
    const dims = meta && meta.isTensor ? meta.shape.map((d) => (typeof d === "number" && d > 0 ? d : 1)) : [1];
    return { data: new Float32Array(dims.reduce((a, b) => a * b, 1)), shape: dims };
  });
}

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
  if (err instanceof ConflictError) return { kind: "conflict", message: err.message };
  const e = err instanceof Error ? err : new Error(String(err));
  return { kind: "error", name: e.name, message: e.message };
}

/**
 * Rows per forward pass. model.predict cuts its input into passes of 32 rows unless told
 * otherwise, which undid batching beyond 32 (a batch of 64 MLP rows ran 1.35× faster as one
 * pass); above this, activations of big conv nets grow to hundreds of MB per pass.
 */
const MAX_PASS_ROWS = 256;

/** Each input of several requests' rows as one array (no copy for a single request). */
function join(requests: TensorData[][]): TensorData[] {
  const total = requests.reduce((a, r) => a + r[0].shape[0], 0);
  return requests[0].map((_, k) => {
    const parts = requests.map((r) => r[k]);
    if (parts.length === 1) return parts[0];
    const joined = new Float32Array(parts.reduce((a, p) => a + p.data.length, 0));
    let at = 0;
    for (const p of parts) {
      joined.set(p.data, at);
      at += p.data.length;
    }
    return { data: joined, shape: [total, ...parts[0].shape.slice(1)] };
  });
}

/** Outputs of the joined rows, cut back per request; each in a buffer of its own, so that it can be transferred. */
function split(outputs: TensorData[], requests: TensorData[][]): TensorData[][] {
  let start = 0;
  return requests.map((r) => {
    const n = r[0].shape[0];
    const mine = outputs.map(({ data, shape }) => {
      const width = data.length / shape[0];
      const owned = requests.length === 1 && data.byteOffset === 0 && data.byteLength === data.buffer.byteLength;
      return { data: owned ? data : data.slice(start * width, (start + n) * width), shape: [n, ...shape.slice(1)] };
    });
    start += n;
    return mine;
  });
}

function runTfjs(model: tf.LayersModel, xs: TensorData[]): TensorData[] {
  const batchSize = Math.min(MAX_PASS_ROWS, xs[0].shape[0]);
  return tf.tidy(() => {
    const ts = xs.map((x) => tf.tensor(x.data, x.shape));
    const y = model.predict(ts.length === 1 ? ts[0] : ts, { batchSize }) as tf.Tensor | tf.Tensor[];
    return (Array.isArray(y) ? y : [y]).map((t) => ({ data: t.dataSync() as Float32Array, shape: t.shape }));
  });
}

/** The joined rows in passes of at most MAX_PASS_ROWS, outputs joined back. */
async function runOnnx(served: Extract<Served, { runtime: "onnx" }>, xs: TensorData[]): Promise<TensorData[]> {
  const { ort, session } = served;
  const rows = xs[0].shape[0];
  const passes: TensorData[][] = [];
  for (let from = 0; from < rows; from += MAX_PASS_ROWS) {
    const n = Math.min(MAX_PASS_ROWS, rows - from);
    const feeds: Record<string, InstanceType<OrtModule["Tensor"]>> = {};
    session.inputNames.forEach((name, k) => {
      const width = xs[k].data.length / rows;
      const data = n === rows ? xs[k].data : xs[k].data.slice(from * width, (from + n) * width);
      feeds[name] = new ort.Tensor("float32", data, [n, ...xs[k].shape.slice(1)]);
    });
    // onnxruntime-node runs the session synchronously on this thread (after a setImmediate), with
    // TRAINYARD_ONNX_THREADS - 1 helpers of its own: this thread's busy time counts it.
    const out = await session.run(feeds);
    passes.push(session.outputNames.map((name) => ({ data: out[name].data as Float32Array, shape: out[name].dims.map(Number) })));
  }
  if (passes.length === 1) return passes[0];
  return passes[0].map((first, k) => {
    const joined = new Float32Array(passes.reduce((a, p) => a + p[k].data.length, 0));
    let at = 0;
    for (const p of passes) {
      joined.set(p[k].data, at);
      at += p[k].data.length;
    }
    return { data: joined, shape: [rows, ...first.shape.slice(1)] };
  });
}

/** The rows of one or more requests as one forward pass; the outputs split back per request. */
async function forward(served: Served, requests: TensorData[][]): Promise<TensorData[][]> {
  const xs = join(requests);
  return split(served.runtime === "tfjs" ? runTfjs(served.model, xs) : await runOnnx(served, xs), requests);
}

async function run(msg: Extract<ToThread, { type: "run" }>): Promise<void> {
  let results: Extract<FromThread, { type: "ran" }>["results"];
  let runtime: Runtime;
  try {
    const { value: served, release } = await cache.acquire(msg.versionId);
    runtime = served.runtime;
    try {
      try {
        results = (await forward(served, msg.requests)).map((outputs) => ({ ok: true as const, outputs }));
      } catch (err) {
        if (msg.requests.length === 1) throw err;
        // One request's rows may be what fails the batch: run each alone so only it fails.
        results = [];
        for (const r of msg.requests) {
          try {
            results.push({ ok: true as const, outputs: (await forward(served, [r]))[0] });
          } catch (e) {
            results.push({ ok: false as const, error: serialize(e) });
          }
        }
      }
    } finally {
      release();
    }
  } catch (err) {
    post({ type: "failed", id: msg.id, error: serialize(err), stats: stats(), evicted: takeEvicted() });
    return;
  }
  const transfer = results.flatMap((r) => (r.ok ? r.outputs.map((o) => o.data.buffer as ArrayBuffer) : []));
  post({ type: "ran", id: msg.id, runtime, results, stats: stats(), evicted: takeEvicted() }, transfer);
}

async function probe(msg: Extract<ToThread, { type: "probe" }>): Promise<void> {
  try {
    const { value, release } = await cache.acquire(msg.versionId + RAW);
    try {
      const result = runProbe((value as Extract<Served, { runtime: "tfjs" }>).model, msg.probe);
      post({ type: "probed", id: msg.id, result, stats: stats(), evicted: takeEvicted() });
    } finally {
      release();
    }
  } catch (err) {
    post({ type: "failed", id: msg.id, error: serialize(err), stats: stats(), evicted: takeEvicted() });
  }
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
      case "probe":
        return probe(msg);
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
