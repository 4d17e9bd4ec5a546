// The training consumer: a BullMQ worker whose processor runs sandboxed in child processes.
// Used by workers/worker.ts and, with their own prefix and database, by the integration tests.
import { hostname } from "node:os";
import { fileURLToPath } from "node:url";
import { Worker } from "bullmq";
import { Redis } from "ioredis";
import type { WorkerConfig } from "../lib/config/env.ts";
import { createPrisma } from "../lib/db/prisma.ts";
import { HEARTBEAT_TTL_SECONDS, heartbeatKey, QUEUES, type TrainJobPayload } from "../lib/queue/queues.ts";
import { markFailed } from "../lib/training/training-job-repository.ts";

export interface TrainingWorker {
  worker: Worker<TrainJobPayload>;
  close(): Promise<void>;
}

const processorFile = fileURLToPath(new URL("./train-processor.ts", import.meta.url));

export function createTrainingWorker(config: WorkerConfig, log: (msg: string) => void = console.log): TrainingWorker {
  const db = createPrisma(config.DATABASE_URL);
  // Workers block on Redis: maxRetriesPerRequest must be null (BullMQ's requirement).
  const connection = new Redis(config.REDIS_URL, { maxRetriesPerRequest: null });
  connection.on("error", (err) => log(`redis: ${err.message}`));

  const worker = new Worker<TrainJobPayload>(QUEUES.training.name, processorFile, {
    connection,
    prefix: config.TRAINYARD_QUEUE_PREFIX,
    concurrency: config.TRAINYARD_WORKER_CONCURRENCY,
    lockDuration: config.TRAINYARD_JOB_LOCK_MS,
    // Look for jobs whose worker died as often as a lock can expire, so they resume promptly.
    stalledInterval: Math.min(30_000, config.TRAINYARD_JOB_LOCK_MS),
    // A job whose worker vanished is retried from its checkpoint; twice is enough to tell a job
    // that kills its worker (e.g. out of memory) from a worker that was merely stopped.
    maxStalledCount: 2,
    // The sandboxed child reads its configuration from the environment, like this process did.
    workerForkOptions: { env: { ...process.env, ...stringEnv(config) } },
  });
  worker.on("error", (err) => log(`worker error: ${err.message}`));
  worker.on("active", (job) => log(`job ${job.id} started (attempt ${job.attemptsMade + 1})`));
  worker.on("completed", (job, result) => log(`job ${job.id} ${(result as { outcome?: string } | undefined)?.outcome ?? "done"}`));
  worker.on("failed", (job, err) => {
    if (!job) return;
    const final = err.name === "UnrecoverableError" || job.attemptsMade >= (job.opts.attempts ?? 1);
    log(`job ${job.id} failed${final ? "" : ", will retry"}: ${err.message}`);
    if (final) markFailed(db, job.data.jobId, err.message).catch((e: Error) => log(`could not record the failure: ${e.message}`));
  });

  // One key per host, refreshed by every worker on it: the container health check reads one key.
  const beat = () => connection.set(heartbeatKey(config.TRAINYARD_QUEUE_PREFIX, hostname()), Date.now(), "EX", HEARTBEAT_TTL_SECONDS).catch(() => {});
  void beat();
  const heartbeat = setInterval(beat, 10_000);

  return {
    worker,
    async close() {
      clearInterval(heartbeat);
      // A job still running when this returns keeps its checkpoints; another worker resumes it once its lock expires.
      await Promise.race([worker.close(), new Promise((r) => setTimeout(r, 10_000))]);
      connection.disconnect();
      await db.$disconnect();
    },
  };
}

function stringEnv(config: WorkerConfig): Record<string, string> {
  return Object.fromEntries(Object.entries(config).map(([k, v]) => [k, String(v)]));
}
