// Preprocessing that travels with the model: Iris with its columns on scales three orders of
// magnitude apart trains as well, by default, as the same rows standardized by hand; the model
// version shows the statistics it was fitted with (on the training split only); :predict takes
// raw values; a held-out test split is scored once and stored with the version.
import assert from "node:assert/strict";
import { test } from "node:test";
import { parseCsv } from "../../lib/data/formats/csv.ts";
import { useTrainingEnv } from "../helpers/training-env.ts";
import { createModel, IRIS_CSV, waitForJob } from "../helpers/training.ts";

const ctx = useTrainingEnv("acme");

const iris = parseCsv(IRIS_CSV);
const labels = iris.rows.map((r) => r[4]);
const SCALE = [1000, 1, 0.001, 1];
const OFFSET = [0, 500, 0, 0];
const scaled = iris.rows.map((r) => r.slice(0, 4).map((v, j) => Number(v) * SCALE[j] + OFFSET[j]));
const standardized = (() => {
  const cols = [0, 1, 2, 3].map((j) => scaled.map((r) => r[j]));
  const stats = cols.map((c) => {
    const mean = c.reduce((a, b) => a + b, 0) / c.length;
    return { mean, std: Math.sqrt(c.reduce((a, b) => a + (b - mean) ** 2, 0) / c.length) };
  });
  return scaled.map((r) => r.map((v, j) => (v - stats[j].mean) / stats[j].std));
})();

async function upload(name: string, features: number[][]): Promise<string> {
  const res = await ctx.env.app.inject({ method: "POST", url: "/v1/datasets", headers: ctx.auth, payload: { name, features, labels } });
  assert.equal(res.statusCode, 201, res.body);
  return res.json().id;
}

async function train(dataset: string, extra: object = {}) {
  const res = await ctx.env.app.inject({
    method: "POST", url: "/v1/training-jobs", headers: ctx.auth,
    payload: { model: "iris", dataset, epochs: 40, batchSize: 16, optimizer: { type: "adam", learningRate: 0.01 }, validationSplit: 0.2, testSplit: 0.2, seed: 4, ...extra },
  });
  assert.equal(res.statusCode, 202, res.body);
  const done = await waitForJob(ctx.env.app.inject.bind(ctx.env.app), ctx.auth, res.json().id);
  assert.equal(done.status, "succeeded", JSON.stringify(done));
  return done;
}

test("columns on scales 1000× apart train as well as hand-standardized ones, by default; predict takes raw values", async (t) => {
  await createModel(ctx.env.app.inject.bind(ctx.env.app), ctx.auth, "iris");
  const raw = await upload("iris-scaled", scaled);
  const byHand = await upload("iris-standardized", standardized);

  const none = await train(raw, { preprocessing: { numeric: "none" } });
  const hand = await train(byHand, { preprocessing: { numeric: "none" } });
  const auto = await train(raw);
  t.diagnostic(`val_accuracy: default ${auto.metrics.val_accuracy}, standardized by hand ${hand.metrics.val_accuracy}, raw columns ${none.metrics.val_accuracy}`);
  t.diagnostic(`test_accuracy: default ${auto.metrics.test_accuracy}, standardized by hand ${hand.metrics.test_accuracy}, raw columns ${none.metrics.test_accuracy}`);
  assert.ok(auto.metrics.val_accuracy >= 0.9, `default val_accuracy ${auto.metrics.val_accuracy}`);
  assert.ok(Math.abs(auto.metrics.val_accuracy - hand.metrics.val_accuracy) <= 0.07, "as good as standardizing by hand");
  assert.equal(typeof auto.metrics.test_accuracy, "number", "the held-out test split is scored");
  // Its confusion matrix is stored with the job: rows the true class, counting every test row once.
  const diagnostics = (await ctx.env.app.inject({ url: `/v1/training-jobs/${auto.id}/diagnostics`, headers: ctx.auth })).json();
  const [test] = diagnostics.testConfusion;
  assert.deepEqual(test.classes, ["setosa", "versicolor", "virginica"]);
  const cells = test.matrix.flat() as number[];
  assert.equal(cells.reduce((a, b) => a + b, 0), 30, "150 rows × testSplit 0.2");
  const diagonal = test.matrix.reduce((a: number, row: number[], i: number) => a + row[i], 0);
  assert.equal(diagonal / 30, auto.metrics.test_accuracy, "the diagonal is the test accuracy");

  // The version shows what it was fitted with: the training rows' means, not all rows'.
  const version = (await ctx.env.app.inject({ url: `/v1/models/iris/versions/${auto.modelVersion}`, headers: ctx.auth })).json();
  const fitted = version.signature.inputs[0].preprocessing;
  assert.equal(fitted.kind, "tabular");
  assert.deepEqual(fitted.columns.map((c: { type: string }) => c.type), ["numeric", "numeric", "numeric", "numeric"]);
  const allMean = scaled.reduce((a, r) => a + r[0], 0) / scaled.length;
  assert.ok(Math.abs(fitted.columns[0].shift - allMean) < 0.05 * allMean && fitted.columns[0].shift !== allMean, `mean of the training rows ${fitted.columns[0].shift}, all rows ${allMean}`);
  assert.equal(version.metrics.test_accuracy, auto.metrics.test_accuracy);
  assert.deepEqual(version.signature.inputs[0].shape, [4], "clients send the raw row");
  const list = (await ctx.env.app.inject({ url: "/v1/models/iris/versions", headers: ctx.auth })).json();
  assert.equal(list.versions.length, 3);

  // Raw rows in (the latest version is the default one), the right classes out.
  const pred = await ctx.env.app.inject({ method: "POST", url: `/v1/models/iris:predict`, headers: ctx.auth, payload: { instances: scaled } });
  assert.equal(pred.statusCode, 200, pred.body);
  const classes = version.signature.outputs[0].classes as string[];
  const predicted = (pred.json().predictions as number[][]).map((p) => classes[p.indexOf(Math.max(...p))]);
  const right = predicted.filter((c, i) => c === labels[i]).length;
  t.diagnostic(`:predict on the 150 raw rows: ${right} right`);
  assert.ok(right >= 140, `${right}/150 right from raw values`);
});

test("preprocessing declared with the upload is what jobs on the dataset use, unless they declare their own", async () => {
  const res = await ctx.env.app.inject({ method: "POST", url: "/v1/datasets", headers: ctx.auth, payload: { name: "iris-minmax", features: scaled, labels, preprocessing: { numeric: "minmax" } } });
  assert.equal(res.statusCode, 201, res.body);
  assert.deepEqual(res.json().preprocessing, { numeric: "minmax" });
  const done = await train(res.json().id, { epochs: 2 });
  assert.deepEqual(done.hyperparameters.preprocessing, { numeric: "minmax" }, "recorded with the job");
  const version = (await ctx.env.app.inject({ url: `/v1/models/iris/versions/${done.modelVersion}`, headers: ctx.auth })).json();
  const first = version.signature.inputs[0].preprocessing.columns[0];
  const min = Math.min(...scaled.map((r) => r[0]));
  const max = Math.max(...scaled.map((r) => r[0]));
  assert.ok(first.shift >= min && first.shift < min + 0.1 * (max - min), `min-max: shifted by the training rows' minimum ${first.shift}`);
  const own = await train(res.json().id, { epochs: 1, preprocessing: { numeric: "standardize" } });
  assert.deepEqual(own.hyperparameters.preprocessing, { numeric: "standardize" });

  // A raw upload declares it in the query, as JSON; a bad one is a 400 at the query.
  const csv = "a,b,y\n1,2,p\n3,4,q\n5,6,p\n7,8,q\n";
  const upload = (q: string) => ctx.env.app.inject({ method: "POST", url: `/v1/datasets?name=t&${q}`, headers: { ...ctx.auth, "content-type": "text/csv" }, payload: csv });
  const ok = await upload(`preprocessing=${encodeURIComponent('{"numeric":"none"}')}`);
  assert.equal(ok.statusCode, 201, ok.body);
  assert.deepEqual(ok.json().preprocessing, { numeric: "none" });
  const notJson = await upload("preprocessing=%7Bnumeric");
  assert.equal(notJson.statusCode, 400);
  assert.equal(notJson.json().errors[0].path, "querystring.preprocessing");
  const wrong = await upload(`preprocessing=${encodeURIComponent('{"numeric":"log"}')}`);
  assert.equal(wrong.statusCode, 400);
  assert.equal(wrong.json().errors[0].path, "querystring.preprocessing.numeric");
});
