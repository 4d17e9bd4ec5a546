// The queue contract between the API (producer) and the workers (consumers): every queue's name,
// job name, payload schema and job options live here and nowhere else. A job carries ids only,
// never tensors, datasets or secrets; the worker reads everything else from Postgres.
import { Queue, type ConnectionOptions, type JobsOptions } from "bullmq";
import { z } from "zod";

export const trainJobPayloadSchema = z.object({
  jobId: z.uuid(),
  tenantId: z.uuid(),
});
export type TrainJobPayload = z.infer<typeof trainJobPayloadSchema>;

/** A study's parent job in its BullMQ flow: processed once every trial (a child on `training`) has ended. */
export const studyJobPayloadSchema = z.object({
  studyId: z.uuid(),
  tenantId: z.uuid(),
});
export type StudyJobPayload = z.infer<typeof studyJobPayloadSchema>;

/** An insight job (lib/insight): an attack over a dataset, top-activating rows, t-SNE. */
export const insightJobPayloadSchema = z.object({
  jobId: z.uuid(),
  tenantId: z.uuid(),
});
export type InsightJobPayload = z.infer<typeof insightJobPayloadSchema>;

/** BullMQ's attempts (and stalls) per job: a backstop far beyond the progress rule in lib/training. */
export const QUEUE_ATTEMPTS_BACKSTOP = 10_000;

/** Retry delay: doubling from `base` and capped at 15 × base (2 s → 30 s), so that many retries never wait for hours. */
export const CAPPED_BACKOFF = "capped-exponential";
export function cappedBackoff(attemptsMade: number, base: number): number {
  return Math.min(15 * base, base * 2 ** Math.max(0, Math.min(attemptsMade - 1, 10)));
}

interface QueueDef<P extends z.ZodType> {
  /** The BullMQ queue name (under the deployment's prefix). */
  name: string;
  /** The name of its jobs. */
  job: string;
  payload: P;
  /** Options for one job, keyed by the id of the record it works on. */
  options(id: string): JobsOptions;
}

/** A training job's priority when it gives none: the middle of 1 (first) to 1000 (last). */
export const DEFAULT_PRIORITY = 500;

export const QUEUES = {
  training: {
    name: "training",
    job: "train",
    payload: trainJobPayloadSchema,
    options: (jobId: string, priority: number = DEFAULT_PRIORITY): JobsOptions => ({
      // The BullMQ job id is the training job's id: enqueueing twice is a no-op, not a second run.
      jobId,
      // Every job has one (BullMQ runs jobs without a priority before all prioritized ones), so
      // that the order is by priority, then first come first served.
      priority,
      // Transient failures (a dead worker or process, an error) are retried and resume from the
      // last checkpoint; configuration errors throw UnrecoverableError and are not retried. How
      // many retries a job gets is decided in Postgres, by progress (a job fails after a number of
      // attempts in a row that finished no epoch), so BullMQ's own count is only a backstop.
      attempts: QUEUE_ATTEMPTS_BACKSTOP,
      backoff: { type: CAPPED_BACKOFF },
      removeOnComplete: { age: 24 * 3600, count: 10_000 },
      removeOnFail: { age: 7 * 24 * 3600 },
    }),
  },
  studies: {
    name: "studies",
    job: "finish-study",
    payload: studyJobPayloadSchema,
    options: (studyId: string): JobsOptions => ({
      // The BullMQ job id is the study's id; finishing a study is idempotent (Postgres decides).
      jobId: studyId,
      attempts: 20,
      backoff: { type: "exponential", delay: 1000 },
      removeOnComplete: { age: 24 * 3600, count: 10_000 },
      removeOnFail: { age: 7 * 24 * 3600 },
    }),
  },
  insight: {
    name: "insight",
    job: "insight",
    payload: insightJobPayloadSchema,
    options: (jobId: string): JobsOptions => ({
      // The BullMQ job id is the insight job's id: enqueueing twice is a no-op.
      jobId,
      // Like training: how many attempts a job gets is decided in Postgres (InsightJob.attempts),
      // which counts the attempts whose process died too; BullMQ's count is only a backstop.
      attempts: QUEUE_ATTEMPTS_BACKSTOP,
      backoff: { type: CAPPED_BACKOFF },
      removeOnComplete: { age: 24 * 3600, count: 10_000 },
      removeOnFail: { age: 7 * 24 * 3600 },
    }),
  },
} as const satisfies Record<string, QueueDef<z.ZodType>>;

export function createTrainingQueue(connection: ConnectionOptions, prefix: string): Queue<TrainJobPayload> {
  return new Queue<TrainJobPayload>(QUEUES.training.name, { connection, prefix });
}

/**
 * Enqueues a training job that may have been queued before (a resume, a re-enqueue after Redis
 * lost it): a finished entry with its id would make the add a no-op, so it is removed first. An
 * entry still active cannot be removed; the reconciler enqueues the job again once it has finished.
 */
export async function enqueueTraining(queue: Queue<TrainJobPayload>, jobId: string, tenantId: string, priority?: number): Promise<void> {
  const stale = await queue.getJob(jobId);
  if (stale) await stale.remove().catch(() => {});
  await queue.add(QUEUES.training.job, { jobId, tenantId }, QUEUES.training.options(jobId, priority));
}

export function createInsightQueue(connection: ConnectionOptions, prefix: string): Queue<InsightJobPayload> {
  return new Queue<InsightJobPayload>(QUEUES.insight.name, { connection, prefix });
}

/** Enqueues an insight job, again if need be (see enqueueTraining). */
export async function enqueueInsight(queue: Queue<InsightJobPayload>, jobId: string, tenantId: string): Promise<void> {
  const stale = await queue.getJob(jobId);
  if (stale) await stale.remove().catch(() => {});
  await queue.add(QUEUES.insight.job, { jobId, tenantId }, QUEUES.insight.options(jobId));
}

/** Redis key the API sets to ask the worker running a job to stop; checked between batches. */
export const cancelKey = (prefix: string, jobId: string) => `${prefix}:cancel:${jobId}`;
export const CANCEL_TTL_SECONDS = 7 * 24 * 3600;

/**
 * Redis key every worker process on a host refreshes while alive; the host's container health
 * check reads this one key (no scan of the keyspace).
 */
export const heartbeatKey = (prefix: string, host: string) => `${prefix}:worker-heartbeat:${host}`;
export const HEARTBEAT_TTL_SECONDS = 30;
