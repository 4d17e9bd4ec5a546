// Prometheus metrics of one API instance: HTTP requests and latency per route (and model, on
// inference routes), the inference runtime's batches and cache, and at scrape time the training
// queue's depth and the training jobs by status. One prom-client Registry per instance, never the
// global default, so that tests can build several apps in one process.
//
// Cardinality is bounded by construction: `route` is the route's pattern (never the raw URL; a
// request that matched no route is "unmatched"), `status` an HTTP status, `model` only a name
// that has answered a prediction before (at most MAX_MODEL_LABELS of them, then "other"), else
// "unknown". Nothing here names a tenant: counts only.
import type { Queue } from "bullmq";
import { performance } from "node:perf_hooks";
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from "prom-client";
import type { Db } from "../db/prisma.ts";

/**
 * What the inference runtime reports, read once per scrape. Every number is a total since the
 * runtime started (monotonic; a smaller value than last time is taken as a restart and counted
 * from zero), except the gauges `cacheBytes` and `loadedModels`.
 */
export interface RuntimeStats {
  /** Lookups of a model version answered by a version already in memory. */
  cacheHits: number;
  /** Lookups that had to load the version from Postgres. */
  cacheMisses: number;
  /** Versions dropped from memory to stay within the cache's limits. */
  evictions: number;
  /** Bytes of weights the loaded versions hold now. */
  cacheBytes: number;
  /** Versions loaded now (optional). */
  loadedModels?: number;
  /**
   * Rows per forward pass, as a histogram of totals: `counts[i]` batches had at most `buckets[i]`
   * rows (cumulative, like Prometheus's `le`), `count` batches in all with `sum` rows.
   */
  batchSize: { buckets: readonly number[]; counts: readonly number[]; count: number; sum: number };
  /** Seconds the inference threads have been busy, summed over threads (optional). */
  busySeconds?: number;
}
export type RuntimeStatsSource = () => RuntimeStats;

/** The shape of lib/serving's InferenceRuntime.stats(), as far as metrics read it (structural: no import of serving). */
export interface InferenceRuntimeNumbers {
  cache: { hits: number; misses: number; evictions: number; bytes: number; entries: number };
  batchSize: RuntimeStats["batchSize"];
  busyMs?: number;
}

/** Adapts the inference runtime: `metrics.setRuntimeStatsSource(() => runtimeStatsFrom(runtime.stats()))`. */
export function runtimeStatsFrom(s: InferenceRuntimeNumbers): RuntimeStats {
  return { cacheHits: s.cache.hits, cacheMisses: s.cache.misses, evictions: s.cache.evictions, cacheBytes: s.cache.bytes, loadedModels: s.cache.entries, batchSize: s.batchSize, busySeconds: s.busyMs === undefined ? undefined : s.busyMs / 1000 };
}

/** Model names that may become label values; a service with more models reports the rest as "other". */
export const MAX_MODEL_LABELS = 500;
/** Queue and job gauges are read at most this often, however often Prometheus (or anyone) scrapes. */
export const SCRAPE_CACHE_MS = 5000;
/** A dependency that does not answer within this long leaves its gauges out of the scrape. */
const COLLECT_TIMEOUT_MS = 1000;

export const QUEUE_STATES = ["waiting", "active", "delayed", "prioritized"] as const;
export const JOB_STATUSES = ["queued", "running", "paused", "succeeded", "failed", "cancelled"] as const;

const LATENCY_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

export interface MetricsOptions {
  /** The training queue whose depth is reported. */
  queue?: Queue;
  /** Postgres, for training jobs by status. */
  db?: Db;
  /** Process metrics (CPU, memory, event loop lag, GC) of prom-client. Default true. */
  processMetrics?: boolean;
  scrapeCacheMs?: number;
}

/** Resolves to undefined when `p` rejects or takes longer than `ms`. */
function within<T>(ms: number, p: Promise<T>): Promise<T | undefined> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  return Promise.race([p.catch(() => undefined), new Promise<undefined>((resolve) => void (timer = setTimeout(() => resolve(undefined), ms)))]).finally(() => clearTimeout(timer));
}

/** A value read at most once per `ttlMs`; concurrent readers share one read in flight. */
class Cached<T> {
  private at = -Infinity;
  private value: T | undefined;
  private inFlight: Promise<T | undefined> | undefined;

  constructor(private readonly ttlMs: number, private readonly read: () => Promise<T | undefined>) {}

  get(): Promise<T | undefined> {
    if (performance.now() - this.at < this.ttlMs) return Promise.resolve(this.value);
    this.inFlight ??= this.read()
      .catch(() => undefined)
      .then((v) => {
        this.value = v;
        this.at = performance.now();
        return v;
      })
      .finally(() => (this.inFlight = undefined));
    return this.inFlight;
  }
}

export class ServiceMetrics {
  readonly registry = new Registry();
  private readonly requests: Counter<"route" | "method" | "status" | "model">;
  private readonly latency: Histogram<"route" | "method" | "status" | "model">;
  private batchSize: RuntimeStats["batchSize"] | undefined;
  private readonly cacheHits: Counter;
  private readonly cacheMisses: Counter;
  private readonly evictions: Counter;
  private readonly cacheBytes: Gauge;
  private readonly loadedModels: Gauge;
  private readonly threadBusy: Counter;
  private readonly queueJobs: Gauge<"queue" | "state">;
  private readonly trainingJobs: Gauge<"status">;
  private readonly collectErrors: Counter<"source">;
  readonly rateLimited: Counter<"limit">;
  readonly rateLimitFailOpen: Counter<"limit">;

  private runtime: RuntimeStatsSource | undefined;
  private lastRuntime = { cacheHits: 0, cacheMisses: 0, evictions: 0, busySeconds: 0 };
  private readonly models = new Set<string>();
  private readonly queueCounts: Cached<Record<string, number>>;
  private readonly jobCounts: Cached<Map<string, number>>;

  constructor(private readonly opts: MetricsOptions = {}) {
    const registers = [this.registry];
    this.requests = new Counter({ name: "trainyard_http_requests_total", help: "HTTP requests answered, by route pattern, method, status and model (inference routes).", labelNames: ["route", "method", "status", "model"], registers });
    this.latency = new Histogram({ name: "trainyard_http_request_duration_seconds", help: "Time from receiving a request to the end of its response.", labelNames: ["route", "method", "status", "model"], buckets: LATENCY_BUCKETS, registers });
    // The runtime keeps its own histogram of totals; it is exposed as it is, not observed again.
    this.registry.registerMetric({
      name: "trainyard_inference_batch_size",
      get: async () => ({
        name: "trainyard_inference_batch_size", help: "Rows in each forward pass of the inference runtime (dynamic batching joins concurrent requests).", type: "histogram", aggregator: "sum",
        values: this.batchSize ? batchSizeValues(this.batchSize) : [],
      }),
    } as unknown as Parameters<Registry["registerMetric"]>[0]);
    this.cacheHits = new Counter({ name: "trainyard_model_cache_hits_total", help: "Forward passes (or lookups) whose model version was already in memory.", registers });
    this.cacheMisses = new Counter({ name: "trainyard_model_cache_misses_total", help: "Forward passes (or lookups) that had to load their model version from Postgres first.", registers });
    this.evictions = new Counter({ name: "trainyard_model_cache_evictions_total", help: "Model versions dropped from memory.", registers });
    this.cacheBytes = new Gauge({ name: "trainyard_model_cache_bytes", help: "Bytes of weights of the model versions in memory.", registers });
    this.loadedModels = new Gauge({ name: "trainyard_model_cache_models", help: "Model versions in memory.", registers });
    // Busy time, not CPU time: with rate(), the fraction of the time a loop was working, which says
    // whether the API's loop or the inference threads limit throughput.
    this.threadBusy = new Counter({ name: "trainyard_inference_thread_busy_seconds_total", help: "Time the inference threads' event loops were busy (forward passes, model loads), summed over threads.", registers });
    let loopBase = performance.eventLoopUtilization();
    new Counter({
      name: "trainyard_event_loop_busy_seconds_total", help: "Time the API's event loop was busy (requests, serialization, hooks): its utilization, with rate().", registers,
      collect() {
        const now = performance.eventLoopUtilization();
        this.inc(Math.max(0, now.active - loopBase.active) / 1000);
        loopBase = now;
      },
    });
    this.queueJobs = new Gauge({ name: "trainyard_queue_jobs", help: "Jobs in a BullMQ queue by state (read at scrape, cached briefly).", labelNames: ["queue", "state"], registers });
    this.trainingJobs = new Gauge({ name: "trainyard_training_jobs", help: "Training jobs in Postgres by status, all tenants (read at scrape, cached briefly).", labelNames: ["status"], registers });
    this.collectErrors = new Counter({ name: "trainyard_metrics_collect_errors_total", help: "Scrapes that could not read a source (queue, database, runtime); its gauges were left out.", labelNames: ["source"], registers });
    this.rateLimited = new Counter({ name: "trainyard_rate_limited_total", help: "Requests refused with 429 by a per-tenant rate limit.", labelNames: ["limit"], registers });
    this.rateLimitFailOpen = new Counter({ name: "trainyard_rate_limit_fail_open_total", help: "Requests let through unchecked because Redis did not answer the rate limiter.", labelNames: ["limit"], registers });
    if (opts.processMetrics ?? true) collectDefaultMetrics({ register: this.registry, prefix: "trainyard_" });

    const ttl = opts.scrapeCacheMs ?? SCRAPE_CACHE_MS;
    this.queueCounts = new Cached(ttl, async () => (opts.queue ? within(COLLECT_TIMEOUT_MS, opts.queue.getJobCounts(...QUEUE_STATES)) : undefined));
    this.jobCounts = new Cached(ttl, async () => {
      if (!opts.db) return undefined;
      // One GROUP BY over all tenants (a scan of the job table, which holds one row per job): the cache keeps it rare.
      const rows = await within(COLLECT_TIMEOUT_MS, opts.db.trainingJob.groupBy({ by: ["status"], _count: { _all: true } }));
      return rows && new Map(rows.map((r) => [r.status as string, r._count._all]));
    });
  }

  /** Connects the inference runtime, once: `setRuntimeStatsSource(() => runtimeStatsFrom(runtime.stats()))`. */
  setRuntimeStatsSource(source: RuntimeStatsSource | undefined): void {
    this.runtime = source;
    this.lastRuntime = { cacheHits: 0, cacheMisses: 0, evictions: 0, busySeconds: 0 };
  }

  /**
   * The label for a model name on an inference route. A name becomes a label value only once it
   * answered a prediction (a 2xx): random names in failing requests cannot grow the series.
   */
  modelLabel(name: string | undefined, succeeded: boolean): string {
    if (!name) return "unknown";
    if (this.models.has(name)) return name;
    if (!succeeded) return "unknown";
    if (this.models.size >= MAX_MODEL_LABELS) return "other";
    this.models.add(name);
    return name;
  }

  observeRequest(labels: { route: string; method: string; status: number; model: string }, seconds: number): void {
    const l = { route: labels.route, method: labels.method, status: String(labels.status), model: labels.model };
    this.requests.inc(l);
    this.latency.observe(l, seconds);
  }

  /** The exposition text, after reading the runtime, the queue and Postgres. */
  async render(): Promise<string> {
    await Promise.all([this.collectQueue(), this.collectJobs()]);
    this.collectRuntime();
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  private collectRuntime(): void {
    if (!this.runtime) return;
    let s: RuntimeStats;
    try {
      s = this.runtime();
    } catch {
      this.collectErrors.inc({ source: "runtime" });
      return;
    }
    this.batchSize = s.batchSize;
    const delta = (key: "cacheHits" | "cacheMisses" | "evictions" | "busySeconds", counter: Counter) => {
      const now = s[key] ?? 0;
      // A total that went down means the runtime started again: count from zero.
      const d = now >= this.lastRuntime[key] ? now - this.lastRuntime[key] : now;
      if (d > 0) counter.inc(d);
      this.lastRuntime[key] = now;
    };
    delta("cacheHits", this.cacheHits);
    delta("cacheMisses", this.cacheMisses);
    delta("evictions", this.evictions);
    delta("busySeconds", this.threadBusy);
    this.cacheBytes.set(s.cacheBytes);
    if (s.loadedModels !== undefined) this.loadedModels.set(s.loadedModels);
  }

  private async collectQueue(): Promise<void> {
    if (!this.opts.queue) return;
    const counts = await this.queueCounts.get();
    this.queueJobs.reset();
    if (!counts) return void this.collectErrors.inc({ source: "queue" });
    for (const state of QUEUE_STATES) this.queueJobs.set({ queue: this.opts.queue.name, state }, counts[state] ?? 0);
  }

  private async collectJobs(): Promise<void> {
    if (!this.opts.db) return;
    const counts = await this.jobCounts.get();
    this.trainingJobs.reset();
    if (!counts) return void this.collectErrors.inc({ source: "database" });
    for (const status of JOB_STATUSES) this.trainingJobs.set({ status }, counts.get(status) ?? 0);
  }
}

function batchSizeValues(h: RuntimeStats["batchSize"]) {
  const name = "trainyard_inference_batch_size";
  return [
    ...h.buckets.map((le, i) => ({ metricName: `${name}_bucket`, labels: { le }, value: h.counts[i] ?? 0 })),
    { metricName: `${name}_bucket`, labels: { le: "+Inf" }, value: h.count },
    { metricName: `${name}_sum`, labels: {}, value: h.sum },
    { metricName: `${name}_count`, labels: {}, value: h.count },
  ];
}

/**
 * A route pattern as a label: fastify's `/v1/models/:name(^[A-Za-z0-9]...)::predict` becomes
 * `/v1/models/:name:predict` (the regex of a parameter dropped, `::` the escaped colon).
 */
export function routeLabel(pattern: string): string {
  let out = "";
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i];
    if (c === ":" && pattern[i + 1] === ":") {
      out += ":";
      i++;
    } else if (c === "(" && /:[A-Za-z0-9_-]+$/.test(out)) {
      // Skip a parameter's regex, parentheses balanced, escapes honoured.
      let depth = 0;
      for (; i < pattern.length; i++) {
        if (pattern[i] === "\\") i++;
        else if (pattern[i] === "(") depth++;
        else if (pattern[i] === ")" && --depth === 0) break;
      }
    } else out += c;
  }
  return out;
}
