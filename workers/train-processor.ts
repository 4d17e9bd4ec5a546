// BullMQ sandboxed processor: runs in a child process of the worker, so minutes of tensor math
// never block the parent's event loop, which keeps renewing the job's lock. The child keeps its
// backend, database and Redis connections between jobs (BullMQ reuses child processes).
import { DelayedError, UnrecoverableError, WaitingError, type SandboxedJob } from "bullmq";
import { Redis } from "ioredis";
import { loadConfigOrExit, workerConfigSchema } from "../lib/config/env.ts";
import { createPrisma } from "../lib/db/prisma.ts";
import { initBackend } from "../lib/engine/backend.ts";
import { QUEUES, type TrainJobPayload } from "../lib/queue/queues.ts";
import { markFailed, PermanentJobError, runTrainingJob } from "../lib/training/job-runner.ts";

const config = loadConfigOrExit(workerConfigSchema);
const ready = (async () => {
  await initBackend(config.TRAINYARD_BACKEND);
  return { db: createPrisma(config.DATABASE_URL), redis: new Redis(config.REDIS_URL, { maxRetriesPerRequest: 3 }) };
})();

export default async function trainProcessor(job: SandboxedJob<TrainJobPayload>, token?: string, signal?: AbortSignal) {
  const parsed = QUEUES.training.payload.safeParse(job.data);
  if (!parsed.success) throw new UnrecoverableError(`malformed job payload: ${parsed.error.issues[0]?.message}`);
  const { db, redis } = await ready;
  const { jobId, tenantId } = parsed.data;
  try {
    const outcome = await runTrainingJob(
      // No job.updateProgress: Postgres holds progress, and a progress message that fails in the
      // parent (its Redis restarted empty) would fail the attempt while this child trains on.
      {
        db, redis, queuePrefix: config.TRAINYARD_QUEUE_PREFIX, log: (m) => console.log(m),
        maxAttemptsWithoutProgress: config.TRAINYARD_MAX_ATTEMPTS_WITHOUT_PROGRESS, dependencyWaitMs: config.TRAINYARD_DEPENDENCY_WAIT_MS,
        // Aborted by the worker's cancelAllJobs when it shuts down (training-worker.ts).
        signal, checkpointIntervalMs: config.TRAINYARD_CHECKPOINT_INTERVAL_MS, maxThreads: config.TRAINYARD_TRAINING_THREADS, maxRunningPerTenant: config.TRAINYARD_MAX_RUNNING_JOBS_PER_TENANT,
      },
      jobId,
      tenantId,
    );
    // Back to the queue without counting as an attempt: over the tenant's limit it waits a while;
    // handed back by a worker shutting down it is ready for the next worker at once.
    if (outcome === "waiting") {
      await job.moveToDelayed(Date.now() + config.TRAINYARD_WAITING_RECHECK_MS, token);
      throw new DelayedError();
    }
    if (outcome === "handedBack") {
      await job.moveToWait(token);
      throw new WaitingError();
    }
    return { outcome };
  } catch (err) {
    if (err instanceof PermanentJobError) {
      await markFailed(db, jobId, err.message);
      throw new UnrecoverableError(err.message);
    }
    throw err;
  }
}
