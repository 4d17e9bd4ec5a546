// Diagnostics through the API (issue 9, "Diagnose"), trained by the real worker: a deep sigmoid MLP
// on Iris raises a vanishing-gradients warning on the job, in its event stream and in its
// diagnostics series (with per-layer norms and validation confusion matrices), and its gradient
// norms come as a picture; a healthy Iris MLP raises nothing. The other warnings are provoked in
// test/unit/diagnostics.test.ts through the same training loop.
import assert from "node:assert/strict";
import { test } from "node:test";
import type { InjectOptions } from "fastify";
import sharp from "sharp";
import type { TestEnv } from "../helpers/app.ts";
import { useTrainingEnv } from "../helpers/training-env.ts";
import { createModel, uploadIris, waitForJob } from "../helpers/training.ts";

const t = useTrainingEnv("diagnose");
const inject = ((opts: InjectOptions) => t.env.app.inject(opts)) as TestEnv["app"]["inject"];
let irisId: Promise<string> | undefined;
const iris = () => (irisId ??= uploadIris(inject, t.auth));

async function trained(name: string, layers: object[]) {
  await createModel(inject, t.auth, name, { input: { shape: [4] }, layers });
  const res = await inject({ method: "POST", url: "/v1/training-jobs", headers: t.auth, payload: { model: name, dataset: await iris(), epochs: 3, batchSize: 16, optimizer: { type: "sgd", learningRate: 0.1 }, seed: 2 } });
  assert.equal(res.statusCode, 202, res.body);
  const done = await waitForJob(inject, t.auth, res.json().id);
  assert.equal(done.status, "succeeded", JSON.stringify(done));
  return done;
}

test("a deep sigmoid MLP: the job warns of vanishing gradients, and the series shows why", async () => {
  const deep = [...Array.from({ length: 8 }, () => ({ type: "dense", units: 16, activation: "sigmoid" })), { type: "dense", units: 3, activation: "softmax" }];
  const done = await trained("iris-deep-sigmoid", deep);
  const warning = done.warnings.find((w: { kind: string }) => w.kind === "vanishingGradients");
  assert.ok(warning, JSON.stringify(done.warnings));
  assert.equal(warning.epoch, 1);

  const series = (await inject({ url: `/v1/training-jobs/${done.id}/diagnostics`, headers: t.auth })).json();
  assert.equal(series.epochs.length, 3);
  assert.deepEqual(series.warnings, done.warnings);
  const norms = series.epochs[0].layers.filter((l: { gradNorm?: number }) => l.gradNorm !== undefined).map((l: { gradNorm: number }) => l.gradNorm);
  assert.equal(norms.length, 9);
  assert.ok(norms[0] < 1e-3 * norms[8], norms.join(", "));
  // The validation confusion matrix of each epoch: 3 × 3, its counts adding up to the validation rows.
  const confusion = series.epochs[2].confusion[0];
  assert.deepEqual(confusion.classes, ["setosa", "versicolor", "virginica"]);
  assert.equal(confusion.matrix.flat().reduce((a: number, b: number) => a + b, 0), 30);

  // The warning was an event of the job's stream too (replayed: the job has ended).
  const events = await inject({ url: `/v1/training-jobs/${done.id}/events`, headers: t.auth });
  assert.equal(events.statusCode, 200);
  assert.match(events.body, /event: warning\n(?:id: .*\n)?data: \{"code":"vanishingGradients"/);

  const png = await inject({ url: `/v1/training-jobs/${done.id}/diagnostics.png`, headers: t.auth });
  assert.equal(png.statusCode, 200);
  assert.equal(png.headers["content-type"], "image/png");
  assert.equal((await sharp(png.rawPayload).metadata()).format, "png");
});

test("a healthy MLP raises no warning; another tenant's diagnostics are a 404", async () => {
  const done = await trained("iris-healthy", [{ type: "dense", units: 16, activation: "relu" }, { type: "dense", units: 3, activation: "softmax" }]);
  assert.deepEqual(done.warnings, []);
  const series = (await inject({ url: `/v1/training-jobs/${done.id}/diagnostics`, headers: t.auth })).json();
  assert.equal(series.epochs.length, 3);
  assert.ok(series.epochs.every((e: { gradNorm: number }) => Number.isFinite(e.gradNorm) && e.gradNorm > 0));
  const other = await t.env.tenant("someone-else");
  assert.equal((await inject({ url: `/v1/training-jobs/${done.id}/diagnostics`, headers: other })).statusCode, 404);
});
