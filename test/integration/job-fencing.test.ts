// A worker that lost its job while still alive (its lock expired during a long pause, and another
// worker claimed the job) must stop writing: every write checks the attempt number it claimed.
// The job runner runs here in-process against the real Postgres, Redis and TensorFlow.js; the
// "other worker" is a claim made in the database between two epochs.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { initBackend } from "../../lib/engine/backend.ts";
import { runTrainingJob } from "../../lib/training/job-runner.ts";
import { createTestEnv, type TestEnv } from "../helpers/app.ts";
import { createModel, uploadIris } from "../helpers/training.ts";

let env: TestEnv;
let auth: Record<string, string>;
let tenantId: string;

before(async () => {
  await initBackend("auto");
  env = await createTestEnv();
  auth = await env.tenant("acme");
  const inject = env.app.inject.bind(env.app);
  const dataset = await uploadIris(inject, auth);
  await createModel(inject, auth, "iris");
  tenantId = (await env.app.db.tenant.findUniqueOrThrow({ where: { name: "acme" } })).id;
  auth = { ...auth, dataset };
});
after(async () => env?.close());

async function queueJob(epochs: number): Promise<string> {
  // Queued through the API; no worker runs in this file, so the runner below is its only taker.
  const res = await env.app.inject({
    method: "POST", url: "/v1/training-jobs", headers: { authorization: auth.authorization },
    payload: { model: "iris", dataset: auth.dataset, epochs, batchSize: 16, optimizer: { type: "adam", learningRate: 0.01 }, validationSplit: 0.2, seed: 1 },
  });
  assert.equal(res.statusCode, 202, res.body);
  return res.json().id;
}

const ctx = () => ({ db: env.app.db, redis: env.app.redis, queuePrefix: env.config.TRAINYARD_QUEUE_PREFIX });

test("an attempt that another worker has claimed stops at its next write and writes nothing more", async () => {
  const id = await queueJob(5);
  const outcome = await runTrainingJob({
    ...ctx(),
    // After epoch 2 is stored, another worker claims the job (as BullMQ would after a lost lock).
    progress: async (p) => {
      if ((p as { epoch: number }).epoch === 2) await env.app.db.trainingJob.update({ where: { id }, data: { attempts: { increment: 1 } } });
    },
  }, id, tenantId);
  assert.equal(outcome, "superseded");

  const job = await env.app.db.trainingJob.findUniqueOrThrow({ where: { id } });
  assert.equal(job.epoch, 2, "epoch 3 was trained but not written");
  assert.equal(job.status, "running", "the job now belongs to the other attempt");
  const checkpoints = await env.app.db.checkpoint.findMany({ where: { jobId: id }, select: { epoch: true }, orderBy: { epoch: "asc" } });
  assert.deepEqual(checkpoints.map((c) => c.epoch), [1, 2]);
  const epochs = await env.app.db.metricPoint.findMany({ where: { jobId: id }, distinct: ["epoch"], select: { epoch: true }, orderBy: { epoch: "asc" } });
  assert.deepEqual(epochs.map((e) => e.epoch), [1, 2]);
  assert.equal(await env.app.db.modelVersion.count({ where: { jobId: id } }), 0);

  // The attempt that took over resumes from epoch 2's checkpoint and finishes the job.
  assert.equal(await runTrainingJob(ctx(), id, tenantId), "succeeded");
  const done = await env.app.db.trainingJob.findUniqueOrThrow({ where: { id } });
  assert.equal(done.status, "succeeded");
  assert.equal(done.epoch, 5);
  assert.equal(await env.app.db.modelVersion.count({ where: { jobId: id } }), 1);
});

test("a superseded attempt cannot register the model version either", async () => {
  const id = await queueJob(1);
  const outcome = await runTrainingJob({
    ...ctx(),
    // The only epoch is stored; the claim lands just before the version would be registered.
    progress: async () => void (await env.app.db.trainingJob.update({ where: { id }, data: { attempts: { increment: 1 } } })),
  }, id, tenantId);
  assert.equal(outcome, "superseded");
  const job = await env.app.db.trainingJob.findUniqueOrThrow({ where: { id } });
  assert.equal(job.status, "running");
  assert.equal(await env.app.db.modelVersion.count({ where: { jobId: id } }), 0);
});
