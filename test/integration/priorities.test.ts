// Priorities between jobs (issue 9, "Steer"): queued while no worker runs, jobs are taken lowest
// priority number first, then in the order they were queued. (The reconciler re-enqueues a job
// lost by Redis with the priority recorded in its hyperparameters.) Against the real Redis, BullMQ
// and worker.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { createTrainingWorker, type TrainingWorker } from "../../workers/training-worker.ts";
import { createTestEnv, type TestEnv } from "../helpers/app.ts";
import { createModel, uploadIris, waitForJob } from "../helpers/training.ts";

let env: TestEnv;
let worker: TrainingWorker | undefined;
let auth: Record<string, string>;

before(async () => {
  // One job at a time, so the order jobs start in is the order the worker took them.
  env = await createTestEnv({ TRAINYARD_WORKER_CONCURRENCY: "1" });
  auth = await env.tenant("prio");
});
after(async () => {
  await worker?.close();
  await env?.close();
});

test("a free worker takes the queued job with the lowest priority number first, then first come first served", async () => {
  const inject = env.app.inject.bind(env.app);
  const dataset = await uploadIris(inject, auth);
  await createModel(inject, auth, "iris");
  const queued: { id: string; label: string }[] = [];
  for (const [label, priority] of [["default-1", undefined], ["low", 900], ["urgent", 1], ["default-2", undefined], ["high", 100]] as const) {
    const res = await inject({ method: "POST", url: "/v1/training-jobs", headers: auth, payload: { model: "iris", dataset, epochs: 1, seed: 1, ...(priority ? { priority } : {}) } });
    assert.equal(res.statusCode, 202, res.body);
    queued.push({ id: res.json().id, label });
  }
  worker = createTrainingWorker({ ...env.workerConfig, TRAINYARD_WORKER_CONCURRENCY: 1 }, () => {});
  const done = await Promise.all(queued.map(async (q) => ({ ...q, job: await waitForJob(inject, auth, q.id) })));
  for (const d of done) assert.equal(d.job.status, "succeeded", JSON.stringify(d.job));
  const order = done.sort((a, b) => Date.parse(a.job.startedAt) - Date.parse(b.job.startedAt)).map((d) => d.label);
  assert.deepEqual(order, ["urgent", "high", "default-1", "default-2", "low"]);
  assert.equal(done.find((d) => d.label === "high")!.job.hyperparameters.priority, 100);
});

test("a priority out of range is a 400 at its field", async () => {
  const res = await env.app.inject({ method: "POST", url: "/v1/training-jobs", headers: auth, payload: { model: "iris", dataset: "00000000-0000-4000-8000-000000000000", priority: 0 } });
  assert.equal(res.statusCode, 400, res.body);
  assert.equal(res.json().errors[0].path, "priority");
});
