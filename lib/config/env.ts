// The one description of Trainyard's configuration. Both processes parse the environment once at
// start-up with these schemas; a bad value stops the process with every problem listed.
import { availableParallelism } from "node:os";
import { z } from "zod";

export const BACKENDS = ["auto", "tensorflow-gpu", "tensorflow", "wasm", "cpu"] as const;

const common = {
  DATABASE_URL: z
    .string()
    .regex(/^postgres(ql)?:\/\//, "must be a postgresql:// URL")
    .default("postgresql://postgres@127.0.0.1:5432/trainyard"),
  REDIS_URL: z.string().regex(/^rediss?:\/\//, "must be a redis:// URL").default("redis://127.0.0.1:6379"),
  LOG_LEVEL: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("info"),
  /** Every BullMQ key lives under this prefix, so several deployments (or tests) share one Redis. */
  TRAINYARD_QUEUE_PREFIX: z.string().regex(/^[A-Za-z0-9_.-]+$/, "letters, digits, _ . - only").default("trainyard"),
  /** Compute backend; `auto` takes the first that loads of tensorflow-gpu, tensorflow, wasm. */
  TRAINYARD_BACKEND: z.enum(BACKENDS).default("auto"),
};

export const apiConfigSchema = z.object({
  ...common,
  HOST: z.string().default("0.0.0.0"),
  PORT: z.coerce.number().int().min(0).max(65535).default(8080),
  /** Bootstrap key that creates tenant keys. No default: a secret must come from the operator. */
  TRAINYARD_ADMIN_KEY: z.string().min(32, "must be at least 32 characters"),
  /** Largest request body read whole (JSON, .npz, .npy, text uploads; what a zip or multipart body unpacks to), in bytes. */
  TRAINYARD_MAX_UPLOAD_BYTES: z.coerce.number().int().positive().default(64 * 1024 * 1024),
  /** Largest dataset file in a format that streams (CSV, TSV, NDJSON, image zip), in bytes: spooled to disk and stored shard by shard, never held in memory. */
  TRAINYARD_MAX_DATASET_BYTES: z.coerce.number().int().positive().default(2 * 1024 * 1024 * 1024),
  /** Where uploads that stream are spooled while they are read (needs room for the largest concurrent uploads); default the system's temp dir. */
  TRAINYARD_UPLOAD_DIR: z.string().min(1).optional(),
  /** Largest model a spec may describe, in trainable + non-trainable parameters. */
  TRAINYARD_MAX_PARAMS: z.coerce.number().int().positive().default(50_000_000),
  /** Most layers (nodes) a spec may have. */
  TRAINYARD_MAX_LAYERS: z.coerce.number().int().positive().default(1000),
  /** Most estimated forward FLOPs per sample a spec may need. */
  TRAINYARD_MAX_FLOPS: z.coerce.number().positive().default(2e10),
  /** Largest number of rows one predict call may send. */
  TRAINYARD_MAX_PREDICT_INSTANCES: z.coerce.number().int().positive().default(10_000),
  /** How many trained model versions the API keeps loaded for inference (across its inference threads). */
  TRAINYARD_MODEL_CACHE_SIZE: z.coerce.number().int().positive().default(16),
  /** How long a verified API key is trusted without asking Postgres; a revoked key is forgotten at once on every replica (0: ask every time). */
  TRAINYARD_AUTH_CACHE_MS: z.coerce.number().int().min(0).default(10_000),
  /** How long a replica serves a cached version lookup (which version a model, number or alias means) before asking Postgres again: the bound on seeing versions registered by workers. */
  TRAINYARD_VERSION_LOOKUP_TTL_MS: z.coerce.number().int().min(0).default(2000),
  /** Memory for loaded model versions across the inference threads (weights plus an estimate), in bytes; least recently used go first. */
  TRAINYARD_MODEL_CACHE_BYTES: z.coerce.number().int().positive().default(1024 * 1024 * 1024),
  /** Threads that run inference off the event loop; default the cores less one (at least one). */
  TRAINYARD_INFERENCE_THREADS: z.coerce.number().int().min(1).max(256).default(Math.max(1, availableParallelism() - 1)),
  /** What runs forward passes: `auto` ONNX Runtime for versions whose ONNX export passed its parity check, TensorFlow.js for the rest; `onnx` ONNX Runtime only (other versions' predictions are refused, 409); `tfjs` TensorFlow.js only. */
  TRAINYARD_SERVING_RUNTIME: z.enum(["auto", "onnx", "tfjs"]).default("auto"),
  /** ONNX Runtime's threads per inference thread (intra-op); default the cores less one, shared among the inference threads (at least one each), leaving a core for the API. */
  TRAINYARD_ONNX_THREADS: z.coerce.number().int().min(1).max(256).optional(),
  /** Most rows one forward pass takes when concurrent predict requests of one version are batched. */
  TRAINYARD_BATCH_MAX_SIZE: z.coerce.number().int().min(1).default(64),
  /** Longest a predict request waits for others to share its forward pass (0: no batching). */
  TRAINYARD_BATCH_MAX_DELAY_MS: z.coerce.number().min(0).max(1000).default(2),
  /** Most rows waiting for an inference thread in one API replica; beyond it a predict request gets 503 with Retry-After at once. */
  TRAINYARD_INFERENCE_QUEUE_MAX_ROWS: z.coerce.number().int().min(1).default(20_000),
  /** Predict requests per second per tenant, shared by all replicas (0: no limit); beyond it a 429 with Retry-After. */
  TRAINYARD_RATE_LIMIT_PREDICT_PER_SECOND: z.coerce.number().min(0).default(500),
  /** Predict requests a tenant may send at once after a quiet spell (the token bucket's size). */
  TRAINYARD_RATE_LIMIT_PREDICT_BURST: z.coerce.number().int().positive().default(1000),
  /** Dataset uploads and built-in imports per minute per tenant (0: no limit). */
  TRAINYARD_RATE_LIMIT_UPLOADS_PER_MINUTE: z.coerce.number().min(0).default(60),
  /** Uploads a tenant may start at once after a quiet spell. */
  TRAINYARD_RATE_LIMIT_UPLOADS_BURST: z.coerce.number().int().positive().default(20),
  /** A bearer token that may read /metrics and nothing else (for Prometheus); the admin key may too. */
  TRAINYARD_METRICS_TOKEN: z.string().min(32, "must be at least 32 characters").optional(),
  /** `true` opens /metrics without a key, for a port only the scraper can reach. */
  // A boolean passes too, so that a parsed config parses again.
  TRAINYARD_METRICS_PUBLIC: z.union([z.boolean(), z.enum(["true", "false"]).transform((v) => v === "true")]).default(false),
});

export const workerConfigSchema = z.object({
  ...common,
  /** Training jobs one worker process runs at once; each runs in its own sandboxed child process. */
  TRAINYARD_WORKER_CONCURRENCY: z.coerce.number().int().positive().default(1),
  /** Insight jobs (an attack over a dataset, t-SNE, top-activating rows) one worker process runs at once, beside its training jobs; 0: none. */
  TRAINYARD_INSIGHT_CONCURRENCY: z.coerce.number().int().min(0).default(1),
  /** How long a job's lock lives without renewal before another worker takes the job over. */
  TRAINYARD_JOB_LOCK_MS: z.coerce.number().int().min(1000).default(30_000),
  /** A job fails when this many attempts in a row end (a crash, a dead worker, an error) before finishing an epoch; an insight job, when this many attempts have ended so. */
  TRAINYARD_MAX_ATTEMPTS_WITHOUT_PROGRESS: z.coerce.number().int().min(1).max(1000).default(5),
  /** First delay before a failed attempt is retried; it doubles with each retry, up to 15 times this. */
  TRAINYARD_RETRY_DELAY_MS: z.coerce.number().int().min(0).default(2000),
  /** How long a running attempt waits for an unreachable Postgres before it gives up (and a later attempt resumes). */
  TRAINYARD_DEPENDENCY_WAIT_MS: z.coerce.number().int().min(0).default(300_000),
  /** How often a worker re-enqueues jobs that Postgres says are queued or running but the queue has lost (a Redis restart). */
  TRAINYARD_RECONCILE_INTERVAL_MS: z.coerce.number().int().min(500).default(30_000),
  /** The most threads one training job may use (its `threads`; data-parallel batches): default this machine's cores. */
  TRAINYARD_TRAINING_THREADS: z.coerce.number().int().min(1).max(64).default(availableParallelism()),
  /** A checkpoint inside an epoch once this long has passed since the last (0: only at epoch ends): a worker that dies mid-epoch loses at most this much work. */
  TRAINYARD_CHECKPOINT_INTERVAL_MS: z.coerce.number().int().min(0).default(300_000),
  /** Jobs of one tenant that may run at once across all workers (0: no limit); the others wait queued, and say why. */
  TRAINYARD_MAX_RUNNING_JOBS_PER_TENANT: z.coerce.number().int().min(0).default(0),
  /** How often a job waiting for its tenant's slot is tried again. */
  TRAINYARD_WAITING_RECHECK_MS: z.coerce.number().int().min(100).default(3000),
  /** On SIGTERM, how long a worker gives its running jobs to checkpoint at a batch boundary and hand themselves back before it exits anyway. */
  TRAINYARD_SHUTDOWN_GRACE_MS: z.coerce.number().int().min(0).default(60_000),
});

export type ApiConfig = Readonly<z.infer<typeof apiConfigSchema>>;
export type WorkerConfig = Readonly<z.infer<typeof workerConfigSchema>>;

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n${problems.map((p) => `  - ${p}`).join("\n")}`);
    this.name = "ConfigError";
  }
}

/** Parses an environment with one of the schemas above; throws ConfigError naming every bad variable. */
export function parseConfig<S extends z.ZodType>(schema: S, env: NodeJS.ProcessEnv = process.env): Readonly<z.infer<S>> {
  const result = schema.safeParse(env);
  if (!result.success) {
    throw new ConfigError(result.error.issues.map((i) => `${i.path.join(".") || "(env)"}: ${i.message}`));
  }
  return Object.freeze(result.data);
}

/** For entrypoints: parse or print every problem and exit non-zero. */
export function loadConfigOrExit<S extends z.ZodType>(schema: S): Readonly<z.infer<S>> {
  try {
    return parseConfig(schema);
  } catch (err) {
    if (err instanceof ConfigError) {
      console.error(err.message);
      process.exit(1);
    }
    throw err;
  }
}
