// BullMQ sandboxed processor for insight jobs: an attack over a dataset, t-SNE and the like run in
// a child process of the worker, so the parent's event loop keeps renewing the job's lock.
import { UnrecoverableError, WaitingError, type SandboxedJob } from "bullmq";
import { loadConfigOrExit, workerConfigSchema } from "../lib/config/env.ts";
import { createPrisma } from "../lib/db/prisma.ts";
import { initBackend } from "../lib/engine/backend.ts";
import { markInsightFailed } from "../lib/insight/insight-job-repository.ts";
import { PermanentInsightError, runInsightJob } from "../lib/insight/insight-job-runner.ts";
import { QUEUES, type InsightJobPayload } from "../lib/queue/queues.ts";

const config = loadConfigOrExit(workerConfigSchema);
const ready = (async () => {
  await initBackend(config.TRAINYARD_BACKEND);
  return { db: createPrisma(config.DATABASE_URL) };
})();

export default async function insightProcessor(job: SandboxedJob<InsightJobPayload>, token?: string, signal?: AbortSignal) {
  const parsed = QUEUES.insight.payload.safeParse(job.data);
  if (!parsed.success) throw new UnrecoverableError(`malformed job payload: ${parsed.error.issues[0]?.message}`);
  const { db } = await ready;
  const { jobId, tenantId } = parsed.data;
  try {
    const outcome = await runInsightJob({ db, log: (m) => console.log(m), maxAttempts: config.TRAINYARD_MAX_ATTEMPTS_WITHOUT_PROGRESS, signal }, jobId, tenantId);
    // Handed back by a worker shutting down: ready for the next worker at once, not a failed attempt.
    if (outcome === "handedBack") {
      await job.moveToWait(token);
      throw new WaitingError();
    }
    return { outcome };
  } catch (err) {
    if (err instanceof PermanentInsightError) {
      await markInsightFailed(db, jobId, err.message);
      throw new UnrecoverableError(err.message);
    }
    throw err;
  }
}
