// The queue contract between the API (producer) and the training workers (consumers): names,
// payload schema and job options live here and nowhere else. A job carries ids only — never
// tensors, datasets or secrets — and the worker reads everything else from Postgres.
import { Queue, type ConnectionOptions, type JobsOptions } from "bullmq";
import { z } from "zod";

export const TRAINING_QUEUE = "training";
export const TRAIN_JOB = "train";

export const trainJobPayloadSchema = z.object({
  jobId: z.uuid(),
  tenantId: z.uuid(),
});
export type TrainJobPayload = z.infer<typeof trainJobPayloadSchema>;

export const trainJobOptions = (jobId: string): JobsOptions => ({
  // The BullMQ job id is the training job's id: enqueueing twice is a no-op, not a second run.
  jobId,
  // Transient failures (a database blip, a worker that died) are retried and resume from the
  // last checkpoint; configuration errors throw UnrecoverableError and are not retried.
  attempts: 3,
  backoff: { type: "exponential", delay: 2000 },
  removeOnComplete: { age: 24 * 3600, count: 10_000 },
  removeOnFail: { age: 7 * 24 * 3600 },
});

export function createTrainingQueue(connection: ConnectionOptions, prefix: string): Queue<TrainJobPayload> {
  return new Queue<TrainJobPayload>(TRAINING_QUEUE, { connection, prefix });
}

/** Redis key the API sets to ask the worker running a job to stop; checked between batches. */
export const cancelKey = (prefix: string, jobId: string) => `${prefix}:cancel:${jobId}`;
/** Redis key each worker process refreshes while alive; its health check reads it. */
export const heartbeatKey = (prefix: string, workerId: string) => `${prefix}:worker-heartbeat:${workerId}`;
export const CANCEL_TTL_SECONDS = 7 * 24 * 3600;
