// A worker that dies loses no job: kill -9 a real worker process mid-training; another worker
// takes the job over when its lock expires and resumes from the last checkpoint, ending exactly
// where an uninterrupted run with the same seed ends.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { createTrainingWorker, type TrainingWorker } from "../../workers/training-worker.ts";
import { createTestEnv, type TestEnv } from "../helpers/app.ts";
import { startProcess } from "../helpers/processes.ts";
import { createModel, uploadIris, waitForJob } from "../helpers/training.ts";

let env: TestEnv;
let rescuer: TrainingWorker | undefined;
after(async () => {
  await rescuer?.close();
  await env?.close();
});
before(async () => {
  env = await createTestEnv();
});

test("a job survives the death of its worker and resumes from its checkpoint", async () => {
  const auth = await env.tenant("acme");
  const inject = env.app.inject.bind(env.app);
  const dataset = await uploadIris(inject, auth);
  await createModel(inject, auth, "iris");
  const body = { model: "iris", dataset, epochs: 25, batchSize: 4, optimizer: { type: "adam", learningRate: 0.01 }, seed: 5 };

  const workerEnv = Object.fromEntries(Object.entries(env.workerConfig).map(([k, v]) => [k, String(v)]));
  const doomed = startProcess("workers/worker.ts", workerEnv);
  try {
    await doomed.waitFor(/consuming 'training'/);
    const job = (await inject({ method: "POST", url: "/v1/training-jobs", headers: auth, payload: body })).json();
    await waitForJob(inject, auth, job.id, (j) => j.progress.epoch >= 3);
    await doomed.stop("SIGKILL");
    const atDeath = (await waitForJob(inject, auth, job.id, () => true)).progress.epoch;
    assert.ok(atDeath < 25, "killed mid-training");

    rescuer = createTrainingWorker(env.workerConfig, () => {});
    const done = await waitForJob(inject, auth, job.id, undefined, 90_000);
    assert.equal(done.status, "succeeded", JSON.stringify(done));
    const row = await env.app.db.trainingJob.findUniqueOrThrow({ where: { id: job.id } });
    assert.equal(row.attempts, 2, "claimed once by each worker");
    const series = (await inject({ url: `/v1/training-jobs/${job.id}/metrics`, headers: auth })).json();
    assert.deepEqual(series.epochs.map((e: { epoch: number }) => e.epoch), Array.from({ length: 25 }, (_, i) => i + 1), "every epoch once");

    // Resume is exact: the same seed trained without interruption ends with the same metrics, bit
    // for bit (the checkpoint carries Adam's running beta powers too; see test/unit/resume-exact).
    const control = (await inject({ method: "POST", url: "/v1/training-jobs", headers: auth, payload: body })).json();
    const controlDone = await waitForJob(inject, auth, control.id, undefined, 90_000);
    assert.deepEqual(done.metrics, controlDone.metrics);
  } finally {
    await doomed.stop("SIGKILL");
  }
});
