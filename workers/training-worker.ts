// The training consumer: a BullMQ worker whose processor runs sandboxed in child processes.
// Used by workers/worker.ts and, with their own prefix and database, by the integration tests.
import { hostname } from "node:os";
import { fileURLToPath } from "node:url";
import { type Queue, Worker } from "bullmq";
import { Redis } from "ioredis";
import type { WorkerConfig } from "../lib/config/env.ts";
import { createPrisma, type Db } from "../lib/db/prisma.ts";
import { insightJobState, markInsightCancelled, markInsightFailed, pendingInsightJobs, recordUnstartedAttempt } from "../lib/insight/insight-job-repository.ts";
import {
  cappedBackoff, createInsightQueue, createTrainingQueue, enqueueInsight, HEARTBEAT_TTL_SECONDS, heartbeatKey, type InsightJobPayload, QUEUE_ATTEMPTS_BACKSTOP, QUEUES, type StudyJobPayload,
  type TrainJobPayload,
} from "../lib/queue/queues.ts";
import { JobReconciler, type ReconciledJobs } from "../lib/training/job-reconciler.ts";
import { finishStudy } from "../lib/training/studies/study-results.ts";
import { markFailed, recordUnclaimedAttempt } from "../lib/training/training-job-repository.ts";
import { guardSandboxStartup } from "./sandbox-startup-guard.ts";

export interface TrainingWorker {
  worker: Worker<TrainJobPayload>;
  /** Finishes studies: a study's parent job runs once every trial (a child on the training queue) has ended. */
  studies: Worker<StudyJobPayload>;
  /** Runs insight jobs (lib/insight), sandboxed like training; absent when TRAINYARD_INSIGHT_CONCURRENCY is 0. */
  insight?: Worker<InsightJobPayload>;
  reconciler: JobReconciler;
  /**
   * Stops taking jobs and ends. With `handBack`, running jobs are first asked to checkpoint at
   * their next batch boundary and go back to the queue (graceful shutdown, SIGTERM); without it
   * they are left to another worker once their lock expires.
   */
  close(opts?: { handBack?: boolean }): Promise<void>;
}

const processorFile = fileURLToPath(new URL("./train-processor.ts", import.meta.url));
const insightProcessorFile = fileURLToPath(new URL("./insight-processor.ts", import.meta.url));
const orphanGuard = new URL("./orphan-guard.ts", import.meta.url).href;

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
    // A job whose worker vanished is retried from its checkpoint. Whether a job that keeps killing
    // its worker (e.g. out of memory) should fail is decided by progress, in Postgres (job-runner).
    maxStalledCount: QUEUE_ATTEMPTS_BACKSTOP,
    settings: { backoffStrategy: (attemptsMade: number) => cappedBackoff(attemptsMade, config.TRAINYARD_RETRY_DELAY_MS) },
    // The sandboxed child reads its configuration from the environment, like this process did.
    // The orphan guard comes first in every child (see orphan-guard.ts).
    workerForkOptions: { env: { ...process.env, ...stringEnv(config) }, execArgv: [...process.execArgv, "--import", orphanGuard] },
  });
  // A child that dies while starting must fail its attempt, not wedge the job forever (a BullMQ bug).
  guardSandboxStartup(worker, log);
  worker.on("error", (err) => log(`worker error: ${err.message}`));
  worker.on("active", (job) => log(`job ${job.id} started (attempt ${job.attemptsMade + 1})`));
  worker.on("completed", (job, result) => log(`job ${job.id} ${(result as { outcome?: string } | undefined)?.outcome ?? "done"}`));
  worker.on("failed", (job, err) => {
    if (!job) return;
    const final = err.name === "UnrecoverableError" || job.attemptsMade >= (job.opts.attempts ?? 1);
    log(`job ${job.id} failed${final ? "" : ", will retry"}: ${err.message}`);
    if (final) markFailed(db, job.data.jobId, err.message).catch((e: Error) => log(`could not record the failure: ${e.message}`));
    // An attempt whose process never started never claimed the job, so no claim counted it: count
    // it here, so that a job whose processes cannot start fails like one that makes no progress.
    else if (/^Error initializing child/.test(err.message)) void countUnclaimed(job.data.jobId, err.message);
  });
  const countUnclaimed = async (jobId: string, reason: string) => {
    try {
      const n = await recordUnclaimedAttempt(db, jobId, reason);
      if (n >= config.TRAINYARD_MAX_ATTEMPTS_WITHOUT_PROGRESS) {
        await markFailed(db, jobId, `the job made no progress in ${n} attempts in a row; the last could not start its process: ${reason}`);
      }
    } catch (e) {
      log(`could not record the failed start of job ${jobId}: ${(e as Error).message}`);
    }
  };

  // Light and not sandboxed: it only reads and writes Postgres. A trial whose end Postgres has not
  // recorded yet (its failure is written as the parent is released) is waited for by a retry.
  const studyConnection = new Redis(config.REDIS_URL, { maxRetriesPerRequest: null });
  studyConnection.on("error", () => {});
  const studies = new Worker<StudyJobPayload>(QUEUES.studies.name, async (job) => {
    if (!(await finishStudy(db, job.data.studyId))) throw new Error(`study ${job.data.studyId} has trials that have not ended yet`);
    return { outcome: "finished" };
  }, { connection: studyConnection, prefix: config.TRAINYARD_QUEUE_PREFIX, concurrency: 4 });
  studies.on("error", (err) => log(`studies worker error: ${err.message}`));
  studies.on("completed", (job) => log(`study ${job.data.studyId} finished`));
  studies.on("failed", (job, err) => job && log(`study ${job.data.studyId}: ${err.message}${job.attemptsMade < (job.opts.attempts ?? 1) ? ", will retry" : ""}`));

  // Insight jobs: the same sandboxing, lock and stall rules as training; attempts are counted in Postgres.
  let insight: Worker<InsightJobPayload> | undefined;
  if (config.TRAINYARD_INSIGHT_CONCURRENCY > 0) {
    insight = new Worker<InsightJobPayload>(QUEUES.insight.name, insightProcessorFile, {
      connection,
      prefix: config.TRAINYARD_QUEUE_PREFIX,
      concurrency: config.TRAINYARD_INSIGHT_CONCURRENCY,
      lockDuration: config.TRAINYARD_JOB_LOCK_MS,
      stalledInterval: Math.min(30_000, config.TRAINYARD_JOB_LOCK_MS),
      maxStalledCount: QUEUE_ATTEMPTS_BACKSTOP,
      settings: { backoffStrategy: (attemptsMade: number) => cappedBackoff(attemptsMade, config.TRAINYARD_RETRY_DELAY_MS) },
      workerForkOptions: { env: { ...process.env, ...stringEnv(config) }, execArgv: [...process.execArgv, "--import", orphanGuard] },
    });
    guardSandboxStartup(insight, log);
    insight.on("error", (err) => log(`insight worker error: ${err.message}`));
    insight.on("active", (job) => log(`insight job ${job.id} started (attempt ${job.attemptsMade + 1})`));
    insight.on("completed", (job, result) => log(`insight job ${job.id} ${(result as { outcome?: string } | undefined)?.outcome ?? "done"}`));
    insight.on("failed", (job, err) => {
      if (!job) return;
      const final = err.name === "UnrecoverableError" || job.attemptsMade >= (job.opts.attempts ?? 1);
      log(`insight job ${job.id} failed${final ? "" : ", will retry"}: ${err.message}`);
      if (final) markInsightFailed(db, job.data.jobId, err.message).catch((e: Error) => log(`could not record the failure: ${e.message}`));
      // As for training: an attempt whose process never started counts, so such a job fails in the end.
      else if (/^Error initializing child/.test(err.message)) {
        void recordUnstartedAttempt(db, job.data.jobId)
          .then(async (n) => {
            if (n >= config.TRAINYARD_MAX_ATTEMPTS_WITHOUT_PROGRESS) await markInsightFailed(db, job.data.jobId, `${n} attempts died or failed; the last could not start its process: ${err.message}`);
          })
          .catch((e: Error) => log(`could not record the failed start of insight job ${job.data.jobId}: ${e.message}`));
      }
    });
  }

  // One key per host, refreshed by every worker on it: the container health check reads one key.
  const beat = () => connection.set(heartbeatKey(config.TRAINYARD_QUEUE_PREFIX, hostname()), Date.now(), "EX", HEARTBEAT_TTL_SECONDS).catch(() => {});
  void beat();
  const heartbeat = setInterval(beat, 10_000);

  // Makes the queue match Postgres after Redis lost jobs (a restart, an outage): see job-reconciler.
  const producer = new Redis(config.REDIS_URL, { enableOfflineQueue: false, maxRetriesPerRequest: 1 });
  producer.on("error", () => {});
  const queue = createTrainingQueue(producer, config.TRAINYARD_QUEUE_PREFIX);
  queue.on("error", () => {});
  const insightQueue = createInsightQueue(producer, config.TRAINYARD_QUEUE_PREFIX);
  insightQueue.on("error", () => {});
  const reconciler = new JobReconciler(db, queue, producer, config.TRAINYARD_QUEUE_PREFIX, log, [insightJobsOf(db, insightQueue)]);
  reconciler.start(config.TRAINYARD_RECONCILE_INTERVAL_MS);

  return {
    worker,
    studies,
    insight,
    reconciler,
    async close(opts = {}) {
      clearInterval(heartbeat);
      await reconciler.stop();
      // The processors' abort signal: each running job checkpoints before its next batch and is handed back.
      if (opts.handBack) {
        worker.cancelAllJobs("the worker is shutting down");
        insight?.cancelAllJobs("the worker is shutting down");
      }
      // A job still running when this returns keeps its checkpoints; another worker resumes it once its lock expires.
      await Promise.race([Promise.all([worker.close(), insight?.close()]), new Promise((r) => setTimeout(r, opts.handBack ? config.TRAINYARD_SHUTDOWN_GRACE_MS : 10_000))]);
      await studies.close().catch(() => {});
      studyConnection.disconnect();
      await queue.close().catch(() => {});
      await insightQueue.close().catch(() => {});
      producer.disconnect();
      connection.disconnect();
      await db.$disconnect();
    },
  };
}

/** Insight jobs, as the reconciler sees them (lib/insight keeps away from BullMQ; the wiring joins the two). */
export function insightJobsOf(db: Db, insightQueue: Queue<InsightJobPayload>): ReconciledJobs {
  return {
    pending: (take) => pendingInsightJobs(db, take),
    state: (id) => insightJobState(db, id),
    cancel: (id) => markInsightCancelled(db, id),
    queue: insightQueue,
    enqueue: (id, tenantId) => enqueueInsight(insightQueue, id, tenantId),
  };
}

function stringEnv(config: WorkerConfig): Record<string, string> {
  return Object.fromEntries(Object.entries(config).map(([k, v]) => [k, String(v)]));
}
