// A trained model version without a worker: the job is queued through the API, then run in this
// process by the same job runner the worker's sandboxed child uses.
import { Redis } from "ioredis";
import { runTrainingJob } from "../../lib/training/job-runner.ts";
import { REDIS_URL, type TestEnv } from "./app.ts";

export async function trainInProcess(env: TestEnv, headers: Record<string, string>, model: string, dataset: string, hyperparameters: object = { epochs: 1 }): Promise<void> {
  const res = await env.app.inject({ method: "POST", url: "/v1/training-jobs", headers, payload: { model, dataset, ...hyperparameters } });
  if (res.statusCode !== 202) throw new Error(`queueing the job failed: ${res.statusCode} ${res.body}`);
  const { id } = res.json();
  const { tenantId } = await env.app.db.trainingJob.findUniqueOrThrow({ where: { id }, select: { tenantId: true } });
  const redis = new Redis(REDIS_URL);
  try {
    const outcome = await runTrainingJob({ db: env.app.db, redis, queuePrefix: env.config.TRAINYARD_QUEUE_PREFIX }, id, tenantId);
    if (outcome !== "succeeded") throw new Error(`training job ${id} ended ${outcome}`);
  } finally {
    redis.disconnect();
  }
}
