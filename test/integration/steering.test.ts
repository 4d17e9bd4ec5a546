// Steering a run (issue 9): learning-rate schedules and early stopping through the API, trained by
// the real worker on Iris. The rate in force is the `lr` metric and follows the schedule; early
// stopping ends a run whose validation loss has stopped improving, says why, keeps the best
// epoch's checkpoint, and with restoreBestWeights registers that epoch's weights and metrics.
// Settings that cannot work are 400s before anything is queued.
import assert from "node:assert/strict";
import { test } from "node:test";
import type { InjectOptions } from "fastify";
import type { TestEnv } from "../helpers/app.ts";
import { useTrainingEnv } from "../helpers/training-env.ts";
import { createModel, uploadIris, waitForJob } from "../helpers/training.ts";

const t = useTrainingEnv("steer");
const inject = ((opts: InjectOptions) => t.env.app.inject(opts)) as TestEnv["app"]["inject"];

// Uploaded once: the same bytes again would be answered 200 with the same dataset.
let irisId: Promise<string> | undefined;
const iris = () => (irisId ??= uploadIris(inject, t.auth));

async function run(name: string, job: Record<string, unknown>) {
  const dataset = await iris();
  await createModel(inject, t.auth, name);
  const res = await inject({ method: "POST", url: "/v1/training-jobs", headers: t.auth, payload: { model: name, dataset, batchSize: 16, validationSplit: 0.2, seed: 5, ...job } });
  assert.equal(res.statusCode, 202, res.body);
  const done = await waitForJob(inject, t.auth, res.json().id);
  const series = (await inject({ url: `/v1/training-jobs/${done.id}/metrics`, headers: t.auth })).json().epochs as { epoch: number; metrics: Record<string, number> }[];
  return { done, series };
}

test("a step schedule with warm-up: the lr metric ramps up, then halves every 2 epochs", async () => {
  const { done, series } = await run("iris-step", { epochs: 6, optimizer: { type: "adam", learningRate: 0.02 }, lrSchedule: { type: "step", every: 2, factor: 0.5, warmup: { epochs: 1 } } });
  assert.equal(done.status, "succeeded", JSON.stringify(done));
  const lr = series.map((e) => e.metrics.lr);
  // Epoch 1 ends its warm-up at the full rate; then 0.02, 0.01, 0.01, 0.005, 0.005.
  assert.deepEqual(lr.map((v) => Number(v.toPrecision(6))), [0.02, 0.02, 0.01, 0.01, 0.005, 0.005]);
  assert.equal(done.stoppedEarly, null);
});

test("early stopping ends a run that stopped improving, says why, and restores the best epoch's weights", async () => {
  // A rate this high on Iris stops improving val_loss within a few epochs; patience 2.
  const { done, series } = await run("iris-early", {
    epochs: 200,
    optimizer: { type: "adam", learningRate: 0.05 },
    earlyStopping: { monitor: "val_loss", patience: 2, restoreBestWeights: true },
  });
  assert.equal(done.status, "succeeded", JSON.stringify(done));
  const last = series.at(-1)!.epoch;
  assert.ok(last < 200, `ran all ${last} epochs`);
  assert.equal(done.progress.epoch, last);
  const losses = series.map((e) => e.metrics.val_loss);
  const best = losses.indexOf(Math.min(...losses)) + 1;
  // Stopped patience + 1 epochs after the best.
  assert.equal(last, best + 3, `val_loss by epoch: ${losses.map((l) => l.toFixed(4)).join(", ")}`);
  assert.match(done.stoppedEarly, new RegExp(`stopped after epoch ${last} of 200; the version has the weights of epoch ${best}`));
  // The version's metrics are the best epoch's, not the last one's.
  assert.equal(done.metrics.val_loss, losses[best - 1]);
  const version = (await inject({ url: `/v1/models/iris-early/versions/${done.modelVersion}`, headers: t.auth })).json();
  assert.equal(version.metrics.val_loss, losses[best - 1]);
  // The best epoch's checkpoint outlived the pruning of older ones.
  const kept = await t.env.app.db.checkpoint.findMany({ where: { jobId: done.id }, select: { epoch: true } });
  assert.ok(kept.some((c) => c.epoch === best), `checkpoints kept: ${kept.map((c) => c.epoch).join(", ")}`);
});

test("gradient clipping, label smoothing and balanced class weights train through the API", async () => {
  const { done, series } = await run("iris-shaped", {
    epochs: 6, optimizer: { type: "adam", learningRate: 0.02 },
    gradientClipping: { norm: 1, value: 5 }, labelSmoothing: 0.1, classWeights: "balanced",
  });
  assert.equal(done.status, "succeeded", JSON.stringify(done));
  assert.deepEqual(done.hyperparameters.gradientClipping, { norm: 1, value: 5 });
  assert.ok(series.at(-1)!.metrics.val_accuracy >= 0.8, JSON.stringify(series.at(-1)));
  const named = await run("iris-weighted", { epochs: 2, classWeights: { virginica: 3 } });
  assert.equal(named.done.status, "succeeded", JSON.stringify(named.done));
});

test("settings that cannot work are 400s at their field", async () => {
  const dataset = await iris();
  await createModel(inject, t.auth, "iris-bad");
  const post = (job: Record<string, unknown>) => inject({ method: "POST", url: "/v1/training-jobs", headers: t.auth, payload: { model: "iris-bad", dataset, ...job } });
  const cases: [Record<string, unknown>, string, RegExp][] = [
    [{ validationSplit: 0, earlyStopping: { monitor: "val_loss" } }, "earlyStopping.monitor", /validationSplit is 0; set validationSplit > 0 or monitor 'loss'/],
    [{ lrSchedule: { type: "step", every: 0 } }, "lrSchedule.every", /./],
    [{ lrSchedule: { type: "linear" } }, "lrSchedule.type", /must be one of/],
    [{ classWeights: { daisy: 2 } }, "classWeights.daisy", /is not a class of the dataset \(setosa, versicolor, virginica\)/],
    [{ gradientClipping: {} }, "gradientClipping", /give norm, value or both/],
    [{ labelSmoothing: 1 }, "labelSmoothing", /must be < 1/],
    [{ optimizer: { type: "adam", learningRate: 0.001 }, lrSchedule: { type: "cosine", epochs: 10, minLearningRate: 0.01 } }, "lrSchedule.minLearningRate", /./],
  ];
  for (const [job, path, message] of cases) {
    const res = await post(job);
    assert.equal(res.statusCode, 400, `${JSON.stringify(job)}: ${res.body}`);
    const problem = res.json().errors.find((e: { path: string }) => e.path === path);
    assert.ok(problem, `${JSON.stringify(job)}: ${res.body}`);
    assert.match(problem.message, message);
  }
});
