// A test file's API, its own database and queue prefix, an in-process training worker and a
// tenant key: the setup every training test needs, started before its tests and stopped after.
import { after, before } from "node:test";
import { createTrainingWorker, type TrainingWorker } from "../../workers/training-worker.ts";
import { createTestEnv, type TestEnv } from "./app.ts";

export interface TrainingEnv {
  env: TestEnv;
  worker: TrainingWorker;
  auth: Record<string, string>;
}

/** Registers the file's before/after hooks; the returned object is filled in before the first test. */
export function useTrainingEnv(tenant: string): TrainingEnv {
  const ctx = {} as TrainingEnv;
  before(async () => {
    ctx.env = await createTestEnv();
    ctx.worker = createTrainingWorker(ctx.env.workerConfig, () => {});
    ctx.auth = await ctx.env.tenant(tenant);
  });
  after(async () => {
    await ctx.worker?.close();
    await ctx.env?.close();
  });
  return ctx;
}
