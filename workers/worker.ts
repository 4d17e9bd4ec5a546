// Worker entrypoint: training jobs, studies and insight jobs. Scale out by running more of these, on any machine that reaches the
// same Redis and Postgres; each takes jobs from the shared queue.
import "dotenv/config";
import { loadConfigOrExit, workerConfigSchema } from "../lib/config/env.ts";
import { initBackend } from "../lib/engine/backend.ts";
import { QUEUES } from "../lib/queue/queues.ts";
import { createTrainingWorker } from "./training-worker.ts";

const config = loadConfigOrExit(workerConfigSchema);
const log = (msg: string) => console.log(`[worker ${process.pid}] ${msg}`);
// Training runs in child processes that choose the same backend from the same environment; choose
// here too, so the log says at start which one this machine trains on (or why it cannot).
await initBackend(config.TRAINYARD_BACKEND, log);
const training = createTrainingWorker(config, log);
log(`consuming '${QUEUES.training.name}' (prefix '${config.TRAINYARD_QUEUE_PREFIX}', concurrency ${config.TRAINYARD_WORKER_CONCURRENCY})${training.insight ? ` and '${QUEUES.insight.name}' (concurrency ${config.TRAINYARD_INSIGHT_CONCURRENCY})` : ""}`);

let closing = false;
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.on(signal, async () => {
    if (closing) return;
    closing = true;
    log(`${signal}: stopping; running jobs checkpoint at their next batch and go back to the queue`);
    await training.close({ handBack: true });
    process.exit(0);
  });
}
