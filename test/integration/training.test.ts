// Training through the API with a real BullMQ worker (sandboxed child processes), real Redis,
// real Postgres and TensorFlow.js.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { createTrainingWorker, type TrainingWorker } from "../../workers/training-worker.ts";
import { createTestEnv, type TestEnv } from "../helpers/app.ts";
import { createModel, uploadIris, waitForJob } from "../helpers/training.ts";

let env: TestEnv;
let worker: TrainingWorker;
let auth: Record<string, string>;
let iris: string;

before(async () => {
  env = await createTestEnv();
  worker = createTrainingWorker(env.workerConfig, () => {});
  auth = await env.tenant("acme");
  iris = await uploadIris(env.app.inject.bind(env.app), auth);
  await createModel(env.app.inject.bind(env.app), auth, "iris");
});
after(async () => {
  await worker?.close();
  await env?.close();
});

const submit = async (body: object) => {
  const res = await env.app.inject({ method: "POST", url: "/v1/training-jobs", headers: auth, payload: { model: "iris", dataset: iris, ...body } });
  assert.equal(res.statusCode, 202, res.body);
  return res.json();
};

describe("training", () => {
  test("Iris trains to >= 0.9 validation accuracy, with metrics, checkpoints and a served version", async () => {
    const job = await submit({ epochs: 40, batchSize: 16, optimizer: { type: "adam", learningRate: 0.02 }, validationSplit: 0.2, seed: 7 });
    const done = await waitForJob(env.app.inject.bind(env.app), auth, job.id);
    assert.equal(done.status, "succeeded", JSON.stringify(done));
    assert.deepEqual(done.progress, { epoch: 40, epochs: 40 });
    assert.ok(done.metrics.val_accuracy >= 0.9, `val_accuracy ${done.metrics.val_accuracy}`);
    for (const k of ["loss", "accuracy", "val_loss", "val_accuracy"]) assert.equal(typeof done.metrics[k], "number", k);
    assert.equal(done.modelVersion, 1);

    const series = (await env.app.inject({ url: `/v1/training-jobs/${job.id}/metrics`, headers: auth })).json();
    assert.deepEqual(series.epochs.map((e: { epoch: number }) => e.epoch), Array.from({ length: 40 }, (_, i) => i + 1));
    assert.ok(series.epochs[39].metrics.loss < series.epochs[0].metrics.loss, "loss went down");

    const checkpoints = await env.app.db.checkpoint.findMany({ where: { jobId: job.id }, select: { epoch: true, weights: true } });
    assert.deepEqual(checkpoints.map((c) => c.epoch).sort((a, b) => a - b), [39, 40]);
    assert.ok(checkpoints[0].weights.byteLength > (4 * 16 + 16 + 16 * 3 + 3) * 4, "weights and optimizer state are stored");

    const model = (await env.app.inject({ url: "/v1/models/iris", headers: auth })).json();
    assert.equal(model.latestVersion, 1);

    // One flower of each species, from the data set itself.
    const res = await env.app.inject({ method: "POST", url: "/v1/models/iris:predict", headers: auth, payload: { instances: [[5.1, 3.5, 1.4, 0.2], [6.4, 3.2, 4.5, 1.5], [6.3, 3.3, 6.0, 2.5]] } });
    assert.equal(res.statusCode, 200, res.body);
    assert.equal(res.headers["x-trainyard-model-version"], "1");
    const { predictions } = res.json();
    assert.equal(predictions.length, 3);
    for (const p of predictions) assert.ok(Math.abs(p.reduce((a: number, b: number) => a + b, 0) - 1) < 1e-4, "softmax rows sum to 1");
    assert.deepEqual(predictions.map((p: number[]) => p.indexOf(Math.max(...p))), [0, 1, 2]);

    const bad = await env.app.inject({ method: "POST", url: "/v1/models/iris:predict", headers: auth, payload: { instances: [[1, 2, 3]] } });
    assert.equal(bad.statusCode, 400);
    assert.match(bad.json().detail, /instances\[0\]: expected 4 values \(sepal_length, sepal_width, petal_length, petal_width\), got 3/);
    const notNumbers = await env.app.inject({ method: "POST", url: "/v1/models/iris:predict", headers: auth, payload: { instances: [[1, 2, 3, "x"]] } });
    assert.equal(notNumbers.statusCode, 400);
    assert.equal(notNumbers.json().errors[0].path.startsWith("instances[0]"), true);
  });

  test("the same seed gives the same result", async () => {
    const body = { epochs: 3, batchSize: 32, optimizer: { type: "sgd", learningRate: 0.05 }, seed: 1234 };
    const [a, b] = await Promise.all([submit(body), submit(body)]);
    const [da, db] = await Promise.all([waitForJob(env.app.inject.bind(env.app), auth, a.id), waitForJob(env.app.inject.bind(env.app), auth, b.id)]);
    assert.equal(da.status, "succeeded");
    assert.deepEqual(da.metrics, db.metrics);
    const other = await waitForJob(env.app.inject.bind(env.app), auth, (await submit({ ...body, seed: 99 })).id);
    assert.notDeepEqual(other.metrics, da.metrics);
  });

  test("cancel stops a running job before its next batch", async () => {
    // batch 1 and many epochs: thousands of batches, so the job is surely mid-training when cancelled.
    const job = await submit({ epochs: 500, batchSize: 1, seed: 3 });
    await waitForJob(env.app.inject.bind(env.app), auth, job.id, (j) => j.status === "running" && j.progress.epoch >= 1);
    const res = await env.app.inject({ method: "POST", url: `/v1/training-jobs/${job.id}/cancel`, headers: auth });
    assert.equal(res.statusCode, 202);
    assert.equal(res.json().cancelRequested, true);
    const done = await waitForJob(env.app.inject.bind(env.app), auth, job.id, undefined, 15_000);
    assert.equal(done.status, "cancelled");
    assert.ok(done.progress.epoch < 500);
    assert.equal(done.modelVersion, null);
  });

  test("a job whose loss diverges fails at once, without retries, with a clear error", async () => {
    const res = await env.app.inject({ method: "POST", url: "/v1/datasets", headers: auth, payload: { name: "explode", features: [[1e18], [2e18], [3e18], [4e18]], labels: [1e18, 2e18, 3e18, 4e18] } });
    await createModel(env.app.inject.bind(env.app), auth, "linear", { input: { shape: [1] }, layers: [{ type: "dense", units: 1 }] });
    const job = await env.app.inject({ method: "POST", url: "/v1/training-jobs", headers: auth, payload: { model: "linear", dataset: res.json().id, epochs: 5, optimizer: { type: "sgd", learningRate: 1 }, validationSplit: 0, preprocessing: { numeric: "none" } } });
    assert.equal(job.statusCode, 202, job.body);
    const done = await waitForJob(env.app.inject.bind(env.app), auth, job.json().id);
    assert.equal(done.status, "failed");
    assert.match(done.error, /loss became (NaN|Infinity) at epoch \d+, batch \d+: the gradients exploded/);
    const row = await env.app.db.trainingJob.findUniqueOrThrow({ where: { id: done.id } });
    assert.equal(row.attempts, 1, "not retried");
    const queued = await env.app.trainingQueue.getJob(done.id);
    assert.equal(queued?.attemptsMade, 1);
  });
});
