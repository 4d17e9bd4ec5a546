// Inference and model building off the API's event loop, in a pool of worker threads.
//
// Why threads and not a separate inference process: a thread shares the process, so inputs and
// outputs move by transferring their buffers (no copy, no serialization) and the pool starts,
// stops and is configured with the API itself: no second deployable, no socket protocol, no
// health checks across processes. Each thread has its own V8 isolate and its own wasm instance,
// so threads run truly in parallel (the threaded wasm build does not run on Node; separate
// instances do). What a process would add is isolation from a native crash or from wasm memory
// that never shrinks; a thread's JavaScript errors and heap exhaustion already end only the
// thread, which the pool restarts, failing only the requests it held. Scaling inference apart
// from the API is done by running more API replicas.
//
// Each thread reads the weights of a version from Postgres itself, so weights never cross the
// main thread, and keeps its own LRU of loaded models (model-cache.ts). A version is routed to
// one thread by affinity (the first thread it was sent to keeps it while it stays cached): each
// version is then loaded once per pool and held once in memory, and all its requests meet in one
// place, which is what lets batches form. The price is that one very hot version uses one core;
// with few cores (the default leaves one for the event loop) that is most of what there is.
// Spec builds run on a thread of their own, so a one-second validation delays no prediction.
import { availableParallelism } from "node:os";
import { Worker } from "node:worker_threads";
import type { BackendRequest } from "../../engine/backend.ts";
import { ConflictError, OverloadedError, ValidationError } from "../../errors.ts";
import type { ModelSpec } from "../../model-spec/model-spec-schema.ts";
import type { Probe, ProbeResult } from "../../engine/probes/probe.ts";
import type { ModelLimits, SpecReport } from "../../registry/model-service.ts";
import { Batcher, type Batch, type PendingRequest } from "./batcher.ts";
import type { CacheCounters } from "./model-cache.ts";
import type { FromThread, Ran, SerializedError, TensorData, ThreadOptions, ThreadStats, ToThread } from "./messages.ts";
import type { ServingRuntimeMode } from "../../registry/export/onnx/onnx-check.ts";
import { ortVersion } from "../../engine/onnx-runtime.ts";

export type { Ran, TensorData };

export interface InferenceRuntimeOptions {
  databaseUrl: string;
  backend: BackendRequest;
  /** Inference threads; default the cores less one (at least one), leaving one for the event loop. */
  threads?: number;
  /** TRAINYARD_SERVING_RUNTIME; default auto. */
  servingRuntime?: ServingRuntimeMode;
  /** ONNX Runtime's threads per inference thread; default the cores less one shared among the inference threads (at least one). */
  onnxThreads?: number;
  /** Memory for loaded models across the pool, shared equally by its threads. */
  cacheBytes: number;
  /** Loaded versions across the pool (TRAINYARD_MODEL_CACHE_SIZE), shared equally by its threads. */
  cacheEntries?: number;
  /** Defaults for run(); a model's own settings come as run()'s options. */
  maxBatchSize: number;
  maxDelayMs: number;
  /**
   * Most rows waiting for a thread across the pool; a request that would pass it is refused at
   * once (OverloadedError: 503 with Retry-After) rather than queued behind minutes of work, its
   * memory held and its client long gone. A request alone in an empty queue always goes.
   */
  maxQueueRows?: number;
  /** Called with the rows of every forward pass: for a metrics histogram. */
  onBatch?: (rows: number) => void;
  /** Start each thread at its first use rather than now: no threads (and no start-up CPU) in a process that never predicts or validates. */
  lazyStart?: boolean;
  log?: (msg: string) => void;
}

export interface RunOptions {
  maxBatchSize?: number;
  maxDelayMs?: number;
}

/** Batch-size histogram buckets, in rows (upper bounds; the last bucket is everything above). */
export const BATCH_SIZE_BUCKETS = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096] as const;

export interface RuntimeStats {
  threads: number;
  /** Summed over the inference threads, as of each thread's last answer; a hit or miss is counted per forward pass, not per request. */
  cache: CacheCounters & { maxBytes: number };
  /** tf.memory() summed over the threads. */
  tensors: { numTensors: number; numBytes: number };
  requests: number;
  /** Requests refused because the queue was full (maxQueueRows). */
  refused: number;
  batches: number;
  /** Forward passes by rows: `counts[i]` of batches with ≤ BATCH_SIZE_BUCKETS[i] rows, cumulative like Prometheus's `le`; `count`, `sum` over all. */
  batchSize: { buckets: readonly number[]; counts: number[]; count: number; sum: number };
  /** Waiting in the main thread for company or for a thread. */
  queue: { requests: number; rows: number };
  /** Batches sent to a thread and not yet answered. */
  inFlight: number;
  threadRestarts: number;
  builds: number;
  /** Milliseconds the inference threads' event loops have been busy (forward passes, loads), summed over threads since the pool started. */
  busyMs: number;
}

type Job = { kind: "run"; batch: Batch } | { kind: "call"; resolve: (msg: FromThread) => void; reject: (err: Error) => void };

/** How many batches a thread holds at once: one running, one ready behind it, so it never idles on a round trip. */
const MAX_IN_FLIGHT = 2;

class ThreadHandle {
  worker?: Worker;
  readonly inFlight = new Map<number, Job>();
  readonly ready: Batch[] = [];
  stats?: ThreadStats;
  everReady = false;
  /** False between a crash and the restart: nothing is posted to a dead worker. */
  alive = false;
  lastError?: Error;
  restartDelayMs = 250;
  /** Busy time of this thread's earlier workers (before restarts), and the current worker's as last read. */
  busyBeforeMs = 0;
  busyNowMs = 0;

  constructor(
    readonly name: string,
    readonly options: ThreadOptions,
  ) {}
}

export class InferenceRuntime {
  private readonly inference: ThreadHandle[];
  private readonly builder: ThreadHandle;
  private readonly batcher: Batcher;
  /** Which thread holds (or is loading) each version. */
  private readonly affinity = new Map<string, ThreadHandle>();
  private nextId = 1;
  private closing = false;
  private readonly counters = { requests: 0, batches: 0, restarts: 0, builds: 0, batchRows: 0, refused: 0 };
  private readonly bucketCounts = BATCH_SIZE_BUCKETS.map(() => 0);
  private readonly log: (msg: string) => void;
  private readonly servingFacts: { runtime: ServingRuntimeMode; inferenceThreads: number; onnxThreads: number };

  constructor(private readonly options: InferenceRuntimeOptions) {
    this.log = options.log ?? (() => {});
    const threads = Math.max(1, Math.floor(options.threads ?? Math.max(1, availableParallelism() - 1)));
    const entries = Math.max(1, Math.ceil((options.cacheEntries ?? Number.MAX_SAFE_INTEGER) / threads));
    const onnxThreads = options.onnxThreads ?? Math.max(1, Math.floor((availableParallelism() - 1) / threads));
    const base = { databaseUrl: options.databaseUrl, backend: options.backend, servingRuntime: options.servingRuntime ?? "auto", onnxThreads };
    this.inference = Array.from({ length: threads }, (_, i) => new ThreadHandle(`inference thread ${i}`, {
      ...base, cacheBytes: Math.floor(options.cacheBytes / threads), cacheEntries: entries,
    }));
    this.servingFacts = { runtime: base.servingRuntime, inferenceThreads: threads, onnxThreads };
    this.builder = new ThreadHandle("model-building thread", { ...base, cacheBytes: 0, cacheEntries: 1 });
    this.batcher = new Batcher((batch) => this.enqueue(batch));
    if (!options.lazyStart) for (const t of [...this.inference, this.builder]) this.start(t);
  }

  /**
   * One model version's outputs for one request: inputs preprocessed, in the model's input order,
   * batch axis first; outputs in the model's output order, batch axis first, with the runtime
   * that computed them (ONNX Runtime or TensorFlow.js, by the version's check). The inputs' buffers
   * are transferred to a thread (detached here) when each array owns its whole buffer, else copied.
   */
  run(versionId: string, inputs: TensorData[], opts: RunOptions = {}): Promise<Ran> {
    if (this.closing) return Promise.reject(new Error("the inference runtime is closed"));
    if (inputs.length === 0) return Promise.reject(new TypeError("run: a model has at least one input"));
    const rows = inputs[0].shape[0];
    for (const [k, input] of inputs.entries()) {
      const size = input.shape.reduce((a, b) => a * b, 1);
      if (input.shape[0] !== rows || input.data.length !== size) {
        return Promise.reject(new TypeError(`run: input ${k} has shape [${input.shape}] and ${input.data.length} values; every input needs ${rows} rows and shape-many values`));
      }
    }
    const waiting = this.batcher.waitingRows();
    if (this.options.maxQueueRows !== undefined && waiting > 0 && waiting + rows > this.options.maxQueueRows) {
      this.counters.refused++;
      return Promise.reject(new OverloadedError(`inference is overloaded: ${waiting} rows are waiting for a thread (at most ${this.options.maxQueueRows}, TRAINYARD_INFERENCE_QUEUE_MAX_ROWS); retry shortly`));
    }
    this.counters.requests++;
    return new Promise<Ran>((resolve, reject) => {
      const req: PendingRequest = { inputs, rows, resolve, reject };
      const t = this.affinity.get(versionId);
      const idle = !!t && t.alive && t.ready.length === 0 && ![...t.inFlight.values()].some((j) => j.kind === "run");
      this.batcher.add(versionId, req, {
        maxBatchSize: opts.maxBatchSize ?? this.options.maxBatchSize,
        maxDelayMs: opts.maxDelayMs ?? this.options.maxDelayMs,
      }, idle);
    });
  }

  /**
   * A probe (lib/engine/probes: attacks, saliency, occlusion, activations, filters) on a version's
   * graph over raw inputs, on the thread that holds the version: off the event loop, and beside
   * the version's weights. Problems with the request come back as ValidationErrors (400).
   */
  async probe(versionId: string, probe: Probe): Promise<ProbeResult> {
    if (this.closing) throw new Error("the inference runtime is closed");
    const msg = await this.call(this.route(versionId), (id) => ({ type: "probe", id, versionId, probe }));
    return (msg as Extract<FromThread, { type: "probed" }>).result;
  }

  /**
   * Checks a spec completely (registry/model-service's inspectSpec: preflight, limits, training
   * rules, a build with zeroed weights) on the model-building thread. Problems come back as the
   * same ValidationError with the same field paths.
   */
  async validateSpec(spec: ModelSpec, limits: ModelLimits): Promise<SpecReport> {
    if (this.closing) throw new Error("the inference runtime is closed");
    this.counters.builds++;
    const msg = await this.call(this.builder, (id) => ({ type: "inspect", id, spec, limits: { maxParams: limits.maxParams, maxLayers: limits.maxLayers, maxFlopsPerSample: limits.maxFlopsPerSample } }));
    return (msg as Extract<FromThread, { type: "inspected" }>).report as SpecReport;
  }

  /** What runs forward passes here (GET /v1/info): the runtime setting, ONNX Runtime's version (null: not installed), the thread counts. */
  serving(): { runtime: ServingRuntimeMode; onnxRuntimeVersion: string | null; inferenceThreads: number; onnxThreads: number } {
    return { ...this.servingFacts, onnxRuntimeVersion: ortVersion() };
  }

  stats(): RuntimeStats {
    const cache = { hits: 0, misses: 0, loads: 0, loadFailures: 0, evictions: 0, bytes: 0, entries: 0, maxBytes: this.options.cacheBytes };
    const tensors = { numTensors: 0, numBytes: 0 };
    let inFlight = 0;
    let busyMs = 0;
    for (const t of this.inference) {
      inFlight += [...t.inFlight.values()].filter((j) => j.kind === "run").length;
      if (t.worker && t.alive) t.busyNowMs = t.worker.performance.eventLoopUtilization().active;
      busyMs += t.busyBeforeMs + t.busyNowMs;
      if (!t.stats) continue;
      for (const k of ["hits", "misses", "loads", "loadFailures", "evictions", "bytes", "entries"] as const) cache[k] += t.stats.cache[k];
      tensors.numTensors += t.stats.numTensors;
      tensors.numBytes += t.stats.numBytes;
    }
    let cumulative = 0;
    const counts = this.bucketCounts.map((c) => (cumulative += c));
    return {
      threads: this.inference.length, cache, tensors,
      requests: this.counters.requests, refused: this.counters.refused, batches: this.counters.batches,
      batchSize: { buckets: BATCH_SIZE_BUCKETS, counts, count: this.counters.batches, sum: this.counters.batchRows },
      queue: this.batcher.depth(), inFlight, threadRestarts: this.counters.restarts, builds: this.counters.builds, busyMs,
    };
  }

  /** Fresh numbers from every inference thread (stats() has each thread's last answer). */
  async refreshStats(): Promise<RuntimeStats> {
    await Promise.all(this.inference.filter((t) => t.worker).map((t) => this.call(t, (id) => ({ type: "stats", id }))));
    return this.stats();
  }

  /** Ends a thread as a crash would (for tests and operators); the pool restarts it. */
  async killThread(index: number): Promise<void> {
    await this.inference[index].worker?.terminate();
  }

  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    const closed = new Error("the inference runtime is closed");
    this.batcher.drain(closed);
    await Promise.all([...this.inference, this.builder].filter((t) => t.worker).map(async (t) => {
      for (const b of t.ready) for (const r of b.requests) r.reject(closed);
      t.ready.length = 0;
      const bye = this.call(t, (id) => ({ type: "close", id })).catch(() => {});
      await Promise.race([bye, new Promise((r) => setTimeout(r, 2000).unref())]);
      this.failInFlight(t, closed);
      await t.worker!.terminate();
    }));
  }

  private start(t: ThreadHandle): void {
    const worker = new Worker(new URL("./inference-thread-entry.mjs", import.meta.url), { workerData: t.options });
    t.worker = worker;
    t.alive = true;
    t.everReady = false;
    t.lastError = undefined;
    worker.on("message", (msg: FromThread) => this.onMessage(t, msg));
    worker.on("error", (err) => {
      t.lastError = err;
    });
    worker.on("exit", (code) => {
      if (this.closing || t.worker !== worker) return;
      t.alive = false;
      t.busyBeforeMs += t.busyNowMs;
      t.busyNowMs = 0;
      const why = t.lastError ? t.lastError.message : `exit code ${code}`;
      this.log(`${t.name} stopped (${why}); restarting it`);
      const err = new Error(`${t.name} stopped (${why}) while running this request; it is restarting`);
      this.failInFlight(t, err);
      // A thread that dies before it is ready (its backend will not start) would take every
      // queued request down with it, again and again: fail them now, and back off.
      if (!t.everReady) {
        for (const b of t.ready.splice(0)) for (const r of b.requests) r.reject(err);
      }
      for (const [v, owner] of this.affinity) if (owner === t) this.affinity.delete(v);
      this.counters.restarts++;
      const delay = t.everReady ? 0 : t.restartDelayMs;
      t.restartDelayMs = t.everReady ? 250 : Math.min(30_000, t.restartDelayMs * 2);
      setTimeout(() => {
        if (this.closing) return;
        this.start(t);
        this.pump(t);
      }, delay).unref();
    });
  }

  private failInFlight(t: ThreadHandle, err: Error): void {
    for (const job of t.inFlight.values()) {
      if (job.kind === "run") for (const r of job.batch.requests) r.reject(err);
      else job.reject(err);
    }
    t.inFlight.clear();
  }

  private route(versionId: string): ThreadHandle {
    const owner = this.affinity.get(versionId);
    if (owner) return owner;
    // A new version goes where fewest versions live, then where least waits.
    const assigned = new Map(this.inference.map((t) => [t, 0]));
    for (const t of this.affinity.values()) assigned.set(t, assigned.get(t)! + 1);
    const load = (t: ThreadHandle) => t.inFlight.size + t.ready.length;
    const best = this.inference.reduce((a, b) => (assigned.get(b)! < assigned.get(a)! || (assigned.get(b) === assigned.get(a) && load(b) < load(a)) ? b : a));
    this.affinity.set(versionId, best);
    return best;
  }

  private enqueue(batch: Batch): void {
    const t = this.route(batch.versionId);
    t.ready.push(batch);
    this.pump(t);
  }

  private pump(t: ThreadHandle): void {
    if (!t.worker) this.start(t);
    while (t.alive && t.ready.length && [...t.inFlight.values()].filter((j) => j.kind === "run").length < MAX_IN_FLIGHT) {
      const batch = t.ready.shift()!;
      this.batcher.seal(batch);
      this.send(t, batch);
    }
    // Nothing left to run: the requests gathering for this thread's versions go now, rather than
    // wait out their delay beside an idle thread.
    if (t.alive && t.ready.length === 0 && ![...t.inFlight.values()].some((j) => j.kind === "run")) {
      this.batcher.flush((versionId) => this.affinity.get(versionId) === t);
    }
  }

  private send(t: ThreadHandle, batch: Batch): void {
    const id = this.nextId++;
    const transfer = new Set<ArrayBuffer>();
    const requests = batch.requests.map((r) => r.inputs.map((input) => {
      const data = input.data;
      const owns = data.buffer instanceof ArrayBuffer && data.byteOffset === 0 && data.byteLength === data.buffer.byteLength && !transfer.has(data.buffer);
      const mine = owns ? data : data.slice();
      transfer.add(mine.buffer as ArrayBuffer);
      return { data: mine, shape: input.shape };
    }));
    t.inFlight.set(id, { kind: "run", batch });
    this.counters.batches++;
    this.counters.batchRows += batch.rows;
    const bucket = BATCH_SIZE_BUCKETS.findIndex((b) => batch.rows <= b);
    if (bucket >= 0) this.bucketCounts[bucket]++;
    this.options.onBatch?.(batch.rows);
    this.post(t, { type: "run", id, versionId: batch.versionId, requests }, [...transfer]);
  }

  private call(t: ThreadHandle, make: (id: number) => ToThread): Promise<FromThread> {
    const id = this.nextId++;
    if (!t.worker) this.start(t);
    if (!t.alive) return Promise.reject(new Error(`${t.name} is restarting; try again`));
    return new Promise((resolve, reject) => {
      t.inFlight.set(id, { kind: "call", resolve, reject });
      this.post(t, make(id));
    });
  }

  private post(t: ThreadHandle, msg: ToThread, transfer: ArrayBuffer[] = []): void {
    t.worker!.postMessage(msg, transfer);
  }

  private onMessage(t: ThreadHandle, msg: FromThread): void {
    if (msg.type === "ready") {
      t.everReady = true;
      t.restartDelayMs = 250;
      return;
    }
    if ("stats" in msg) t.stats = msg.stats;
    if ("evicted" in msg) for (const v of msg.evicted) if (this.affinity.get(v) === t) this.affinity.delete(v);
    const job = t.inFlight.get(msg.id);
    if (!job) return;
    t.inFlight.delete(msg.id);
    if (job.kind === "call") {
      if (msg.type === "failed") job.reject(deserialize(msg.error));
      else job.resolve(msg);
      return;
    }
    const { requests } = job.batch;
    if (msg.type === "ran") {
      msg.results.forEach((result, i) => (result.ok ? requests[i].resolve({ outputs: result.outputs, runtime: msg.runtime }) : requests[i].reject(deserialize(result.error))));
    } else if (msg.type === "failed") {
      const err = deserialize(msg.error);
      for (const r of requests) r.reject(err);
    }
    this.pump(t);
  }
}

function deserialize(e: SerializedError): Error {
  if (e.kind === "validation") return new ValidationError(e.problems);
  if (e.kind === "conflict") return new ConflictError(e.message);
  const err = new Error(e.message);
  err.name = e.name;
  return err;
}
