// Built-in data through the API, on a real Postgres and a real worker: the catalogue, imports
// stored as ordinary datasets (listed, described, trained on and served like uploads), and
// every bad request at its place.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { TestEnv } from "../helpers/app.ts";
import { useTrainingEnv } from "../helpers/training-env.ts";
import { createModel, IRIS_SPEC, waitForJob } from "../helpers/training.ts";

const ctx = useTrainingEnv("builtin");

const inject: TestEnv["app"]["inject"] = (...args: Parameters<TestEnv["app"]["inject"]>) => ctx.env.app.inject(...args);
const importBuiltin = (name: string, body: object = {}, headers = ctx.auth) => ctx.env.app.inject({ method: "POST", url: `/v1/datasets/builtin/${name}`, headers, payload: body });

async function imported(name: string, body: object = {}) {
  const res = await importBuiltin(name, body);
  assert.equal(res.statusCode, 201, res.body);
  return res.json();
}

async function train(model: string, dataset: string, body: { epochs: number; [key: string]: unknown }) {
  const res = await ctx.env.app.inject({ method: "POST", url: "/v1/training-jobs", headers: ctx.auth, payload: { model, dataset, ...body } });
  assert.equal(res.statusCode, 202, res.body);
  const done = await waitForJob(inject, ctx.auth, res.json().id, undefined, 300_000);
  assert.equal(done.status, "succeeded", JSON.stringify(done));
  assert.deepEqual(done.progress, { epoch: body.epochs, epochs: body.epochs });
  return done;
}

async function templateModel(name: string, template: string, query: string) {
  const res = await ctx.env.app.inject({ url: `/v1/templates/${template}?${query}` });
  assert.equal(res.statusCode, 200, res.body);
  await createModel(inject, ctx.auth, name, res.json().spec);
}

describe("the catalogue", () => {
  test("GET /v1/datasets/builtin lists real data with source and licence, and generators with their parameters", async () => {
    assert.equal((await ctx.env.app.inject({ url: "/v1/datasets/builtin" })).statusCode, 401);
    const res = await ctx.env.app.inject({ url: "/v1/datasets/builtin", headers: ctx.auth });
    assert.equal(res.statusCode, 200, res.body);
    const { datasets } = res.json();
    assert.deepEqual(datasets.map((d: { name: string }) => d.name), ["iris", "mnist", "xor", "spirals", "blobs", "sine", "segmentation"]);
    const iris = datasets[0];
    assert.deepEqual({ type: iris.type, licence: iris.licence, task: iris.task, kind: iris.kind, rows: iris.rows, classes: iris.classes }, {
      type: "dataset", licence: "CC BY 4.0", task: "classification", kind: "tabular", rows: 150, classes: ["setosa", "versicolor", "virginica"],
    });
    assert.match(iris.source, /Fisher \(1936\)/);
    const mnist = datasets[1];
    assert.deepEqual([mnist.kind, mnist.inputShape, mnist.licence], ["image", [28, 28, 1], "MIT (the mnist package)"]);
    const segmentation = datasets[6];
    assert.deepEqual(segmentation.targetShape, [32, 32]);
    assert.deepEqual(segmentation.parameters.find((p: { name: string }) => p.name === "size"), { name: "size", type: "integer", minimum: 8, maximum: 128, default: 32, description: "Height and width of each image." });
  });
});

describe("imports are ordinary datasets", () => {
  test("iris: 201 with the dataset, listed and described like an upload, trains to >= 0.9 and serves predictions", async () => {
    const res = await importBuiltin("iris", { name: "flowers" });
    assert.equal(res.statusCode, 201, res.body);
    const ds = res.json();
    assert.equal(res.headers.location, `/v1/datasets/${ds.id}`);
    assert.deepEqual({ name: ds.name, rows: ds.rows, inputShape: ds.inputShape, classes: ds.classes, task: ds.task, featureNames: ds.featureNames }, {
      name: "flowers", rows: 150, inputShape: [4], classes: ["setosa", "versicolor", "virginica"], task: "classification", featureNames: ["sepal_length", "sepal_width", "petal_length", "petal_width"],
    });
    assert.equal(ds.inputs[0].kind, "tabular");
    assert.deepEqual((await ctx.env.app.inject({ url: `/v1/datasets/${ds.id}`, headers: ctx.auth })).json(), ds);
    assert.ok((await ctx.env.app.inject({ url: "/v1/datasets", headers: ctx.auth })).json().datasets.some((d: { id: string }) => d.id === ds.id));
    const other = await ctx.env.tenant("someone-else");
    assert.equal((await ctx.env.app.inject({ url: `/v1/datasets/${ds.id}`, headers: other })).statusCode, 404, "another tenant cannot see it");

    await createModel(inject, ctx.auth, "iris-mlp", IRIS_SPEC);
    const done = await train("iris-mlp", ds.id, { epochs: 40, batchSize: 16, optimizer: { type: "adam", learningRate: 0.02 }, validationSplit: 0.2, seed: 7 });
    assert.ok(done.metrics.val_accuracy >= 0.9, `val_accuracy ${done.metrics.val_accuracy}`);
    const pred = await ctx.env.app.inject({ method: "POST", url: "/v1/models/iris-mlp:predict", headers: ctx.auth, payload: { instances: [[5.1, 3.5, 1.4, 0.2], [6.3, 3.3, 6.0, 2.5]] } });
    assert.equal(pred.statusCode, 200, pred.body);
    assert.deepEqual(pred.json().predictions.map((p: number[]) => p.indexOf(Math.max(...p))), [0, 2]);
  });

  test("the name defaults to the built-in's; each import matches what the catalogue says for its parameters", async () => {
    const xor = await imported("xor");
    assert.deepEqual({ name: xor.name, rows: xor.rows, inputShape: xor.inputShape, classes: xor.classes }, { name: "xor", rows: 4, inputShape: [2], classes: ["0", "1"] });
    const mnist = await imported("mnist", { name: "digits", rows: 100 });
    assert.deepEqual({ rows: mnist.rows, inputShape: mnist.inputShape, kind: mnist.inputs[0].kind, classes: mnist.classes.length }, { rows: 100, inputShape: [28, 28, 1], kind: "image", classes: 10 });
    const blobs = await imported("blobs", { rows: 50, classes: 5, dimensions: 7, spread: 2, seed: 9 });
    assert.deepEqual({ rows: blobs.rows, inputShape: blobs.inputShape, classes: blobs.classes }, { rows: 50, inputShape: [7], classes: ["0", "1", "2", "3", "4"] });
    const spirals = await imported("spirals", { rows: 60, turns: 2 });
    assert.equal(spirals.rows, 60);
  });

  test("generated sequences and masks train through the zoo's recurrent and U-Net templates", async () => {
    const sine = await imported("sine", { name: "waves", rows: 120, length: 24, classes: 3, noise: 0.05, seed: 2 });
    assert.deepEqual({ inputShape: sine.inputShape, kind: sine.inputs[0].kind, classes: sine.classes }, { inputShape: [24, 1], kind: "sequence", classes: ["1", "2", "3"] });
    await templateModel("waves-gru", "gru", "inputShape=24,1&classes=3&units=16");
    await train("waves-gru", sine.id, { epochs: 2, batchSize: 32, optimizer: { type: "adam", learningRate: 0.01 }, seed: 1 });

    const shapes = await imported("segmentation", { name: "shapes", rows: 48, size: 16, seed: 4 });
    assert.deepEqual({ inputShape: shapes.inputShape, kind: shapes.inputs[0].kind, targetShape: shapes.targetShape, classes: shapes.classes }, {
      inputShape: [16, 16, 1], kind: "image", targetShape: [16, 16], classes: ["background", "square", "circle"],
    });
    await templateModel("shapes-unet", "unet", "inputShape=16,16,1&classes=3&depth=2&filters=4");
    const done = await train("shapes-unet", shapes.id, { epochs: 2, batchSize: 16, optimizer: { type: "adam", learningRate: 0.01 }, seed: 1 });
    assert.equal(typeof done.metrics.loss, "number");
  });
});

describe("bad requests", () => {
  test("an unknown built-in is a 404 that names it", async () => {
    const res = await importBuiltin("cifar10", { name: "x" });
    assert.equal(res.statusCode, 404);
    assert.match(res.json().detail, /built-in dataset 'cifar10' was not found/);
  });

  test("bad parameters are 400s at their key", async () => {
    const cases: [string, object, string, RegExp][] = [
      ["xor", { rowz: 10 }, "rowz", /is not a parameter of 'xor' \(it takes name, rows, noise, seed\)/],
      ["iris", { rows: 10 }, "rows", /'iris' takes only name/],
      ["spirals", { rows: 100_001 }, "rows", /must be <= 100000/],
      ["blobs", { classes: 2.5 }, "classes", /expected an integer from 2 to 20/],
      ["xor", { noise: "some" }, "noise", /expected a number from 0 to 1/],
      ["mnist", { rows: 20_000 }, "rows", /must be <= 10000/],
      ["sine", { length: 6, classes: 3 }, "length", /need more than 6 time steps/],
      ["segmentation", { rows: 10_000, size: 128 }, "rows", /at most 10,000,000/],
      ["xor", { name: "  " }, "name", /must not be empty/],
    ];
    for (const [builtin, body, path, message] of cases) {
      const res = await importBuiltin(builtin, body);
      assert.equal(res.statusCode, 400, `${builtin} ${JSON.stringify(body)}: ${res.body}`);
      const problem = res.json().errors.find((e: { path: string }) => e.path === path);
      assert.ok(problem, `${builtin} ${JSON.stringify(body)}: a problem at ${path}; got ${res.body}`);
      assert.match(problem.message, message);
    }
  });

  test("a key is needed, and nothing is stored by a refused import", async () => {
    assert.equal((await importBuiltin("xor", {}, {})).statusCode, 401);
    const before = (await ctx.env.app.inject({ url: "/v1/datasets", headers: ctx.auth })).json().datasets.length;
    assert.equal((await importBuiltin("xor", { rows: -1 })).statusCode, 400);
    assert.equal((await ctx.env.app.inject({ url: "/v1/datasets", headers: ctx.auth })).json().datasets.length, before);
  });
});
