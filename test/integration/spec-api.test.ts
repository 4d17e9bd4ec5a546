// The spec language through the API: the zoo, :validate with its summary, and errors that point
// at the node and field.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { createTrainingWorker } from "../../workers/training-worker.ts";
import { createTestEnv, type TestEnv } from "../helpers/app.ts";
import { waitForJob } from "../helpers/training.ts";

let env: TestEnv;
let auth: Record<string, string>;
before(async () => {
  env = await createTestEnv();
  auth = await env.tenant("zoo");
});
after(async () => env?.close());

test("every template in the zoo renders, validates with a summary, and registers as a model", async () => {
  const list = await env.app.inject({ url: "/v1/templates" });
  assert.equal(list.statusCode, 200);
  const names = list.json().templates.map((t: { name: string }) => t.name);
  for (const required of ["perceptron", "mlp", "lenet5", "alexnet", "vgg", "inception", "resnet", "densenet", "squeezenet", "unet", "segnet", "siamese", "efficientnet", "simple_rnn", "lstm", "gru", "char_model", "transformer"]) {
    assert.ok(names.includes(required), `zoo has ${required}`);
  }
  for (const name of names) {
    const t = await env.app.inject({ url: `/v1/templates/${name}` });
    assert.equal(t.statusCode, 200, `${name}: ${t.body}`);
    const v = await env.app.inject({ method: "POST", url: "/v1/models:validate", headers: auth, payload: { spec: t.json().spec } });
    assert.equal(v.statusCode, 200, `${name}: ${v.body.slice(0, 500)}`);
    const { summary } = v.json();
    assert.ok(summary.totalParams > 0 && summary.flopsPerSample > 0 && summary.layers.length > 0, name);
    assert.equal(summary.weightBytes, summary.totalParams * 4);
    const m = await env.app.inject({ method: "POST", url: "/v1/models", headers: auth, payload: { name: `zoo-${name.replaceAll("_", "-")}`, spec: t.json().spec } });
    assert.equal(m.statusCode, 201, `${name}: ${m.body.slice(0, 300)}`);
  }
});

test("templates take an input shape, classes and their own parameters; bad ones answer 400 or 404", async () => {
  const resnet = await env.app.inject({ url: "/v1/templates/resnet?inputShape=64,64,3&classes=7&depth=8" });
  assert.equal(resnet.statusCode, 200, resnet.body);
  const v = await env.app.inject({ method: "POST", url: "/v1/models:validate", headers: auth, payload: { spec: resnet.json().spec } });
  assert.deepEqual(v.json().outputShapes, [[7]]);
  assert.deepEqual(v.json().inputShapes, [[64, 64, 3]]);
  const tooSmall = await env.app.inject({ url: "/v1/templates/lenet5?inputShape=8,8,1" });
  assert.equal(tooSmall.statusCode, 400);
  assert.equal(tooSmall.json().errors[0].path, "querystring.inputShape");
  const badParam = await env.app.inject({ url: "/v1/templates/resnet?depth=banana" });
  assert.equal(badParam.statusCode, 400);
  assert.equal((await env.app.inject({ url: "/v1/templates/hal9000" })).statusCode, 404);
});

test(":validate names the node and both shapes of a bad residual connection", async () => {
  const res = await env.app.inject({
    method: "POST", url: "/v1/models:validate", headers: auth,
    payload: {
      spec: {
        inputs: { image: { shape: [16, 16, 64] } },
        nodes: {
          res2_conv: { type: "conv2d", filters: 64, kernelSize: 3, strides: 2, padding: "same", inputs: ["image"] },
          res2_add: { type: "add", inputs: ["image", "res2_conv"] },
        },
        outputs: ["res2_add"],
      },
    },
  });
  assert.equal(res.statusCode, 400);
  assert.equal(res.json().detail, "spec.nodes.res2_add: inputs have shapes [null, 16, 16, 64] and [null, 8, 8, 64]; add needs equal shapes (or 1 to broadcast)");
});

test(":validate reports zod problems inside graph nodes by node name, and training-rule problems", async () => {
  const res = await env.app.inject({
    method: "POST", url: "/v1/models:validate", headers: auth,
    payload: { spec: { inputs: { x: { shape: [4] } }, nodes: { h: { type: "dense", units: 0, inputs: ["x"] } }, outputs: ["h"] } },
  });
  assert.equal(res.statusCode, 400);
  assert.equal(res.json().errors[0].path, "spec.nodes.h.units");
  const step = await env.app.inject({ method: "POST", url: "/v1/models:validate", headers: auth, payload: { spec: { input: { shape: [2] }, layers: [{ type: "dense", units: 1, activation: "step" }] } } });
  assert.equal(step.statusCode, 400);
  assert.equal(step.json().errors[0].path, "spec.layers[0].activation");
  assert.match(step.json().errors[0].message, /binary step has no gradient/);
  const contrastive = await env.app.inject({ method: "POST", url: "/v1/models:validate", headers: auth, payload: { spec: { input: { shape: [2] }, layers: [{ type: "dense", units: 3 }], loss: "contrastive" } } });
  assert.equal(contrastive.statusCode, 400);
  assert.match(contrastive.json().detail, /spec\.loss: contrastive needs one value per pair \(a distance\); the output has shape \[3\]/);
  const loss = await env.app.inject({ method: "POST", url: "/v1/models:validate", headers: auth, payload: { spec: { input: { shape: [2] }, layers: [{ type: "dense", units: 3, activation: "relu" }], loss: "categoricalCrossentropy" } } });
  assert.match(loss.json().detail, /spec.loss: categoricalCrossentropy needs a softmax output/);
});

test("a perceptron trains through the API with the perceptron rule", async () => {
  const n = 60;
  const features = Array.from({ length: n }, (_, i) => [Math.sin(i * 2.7) * 2, Math.cos(i * 1.3) * 2]);
  const labels = features.map(([a, b]) => (a - 0.5 * b > 0.1 ? "yes" : "no"));
  const ds = await env.app.inject({ method: "POST", url: "/v1/datasets", headers: auth, payload: { name: "separable", features, labels } });
  const spec = (await env.app.inject({ url: "/v1/templates/perceptron?inputShape=2&classes=2" })).json().spec;
  assert.equal(spec.mode, "perceptron");
  assert.equal((await env.app.inject({ method: "POST", url: "/v1/models", headers: auth, payload: { name: "rosenblatt", spec } })).statusCode, 201);
  const worker = createTrainingWorker(env.workerConfig, () => {});
  try {
    const job = await env.app.inject({ method: "POST", url: "/v1/training-jobs", headers: auth, payload: { model: "rosenblatt", dataset: ds.json().id, epochs: 30, batchSize: 1, optimizer: { type: "sgd", learningRate: 0.1 }, validationSplit: 0, seed: 2 } });
    assert.equal(job.statusCode, 202, job.body);
    const done = await waitForJob(env.app.inject.bind(env.app), auth, job.json().id);
    assert.equal(done.status, "succeeded", JSON.stringify(done));
    assert.ok(done.metrics.accuracy >= 0.9, JSON.stringify(done.metrics));
    const pred = await env.app.inject({ method: "POST", url: "/v1/models/rosenblatt:predict", headers: auth, payload: { instances: [[3, 0], [-3, 0]] } });
    assert.deepEqual(pred.json().predictions, [[1], [0]], "step outputs; class 1 is 'yes'");
  } finally {
    await worker.close();
  }
});
