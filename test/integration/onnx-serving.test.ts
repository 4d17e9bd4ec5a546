// Serving with ONNX Runtime (issue 11) against the real Postgres, worker threads, TensorFlow.js and
// onnxruntime-node: a version trained by the job runner has its ONNX export checked at
// registration; `auto` serves a passed version with ONNX Runtime and says so (response header,
// version metadata, V2 platform), answering what TensorFlow.js answers; `tfjs` forces
// TensorFlow.js; a version with no ONNX form is served by TensorFlow.js under `auto` and refused
// (409, naming why) under `onnx`; a version never checked (imported, older) is checked at its
// first load and the result stored.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import * as tf from "@tensorflow/tfjs";
import { initBackend } from "../../lib/engine/backend.ts";
import { buildModel } from "../../lib/engine/build/build-model.ts";
import { loadModel, saveModel } from "../../lib/engine/model-io.ts";
import { ConflictError } from "../../lib/errors.ts";
import { modelSpecSchema } from "../../lib/model-spec/model-spec-schema.ts";
import { checkOnnx } from "../../lib/registry/export/onnx/onnx-check.ts";
import { ModelVersionRepository } from "../../lib/registry/model-version-repository.ts";
import { InferenceRuntime } from "../../lib/serving/runtime/inference-runtime.ts";
import { buildApp } from "../../services/app.ts";
import { createTestEnv, type TestEnv } from "../helpers/app.ts";
import { createModel, uploadIris } from "../helpers/training.ts";
import { trainInProcess } from "../helpers/train-in-process.ts";

let env: TestEnv;
let auth: Record<string, string>;
let irisVersion: string;
let irisModel: tf.LayersModel;
let adaptiveVersion: string;
const runtimes: InferenceRuntime[] = [];

const ADAPTIVE_SPEC = { input: { shape: [7, 7, 1] }, layers: [{ type: "adaptiveAveragePooling2d", outputSize: 3 }, { type: "flatten" }, { type: "dense", units: 2 }] };

function runtime(servingRuntime: "auto" | "onnx" | "tfjs"): InferenceRuntime {
  const r = new InferenceRuntime({ databaseUrl: env.db.url, backend: env.config.TRAINYARD_BACKEND, threads: 1, cacheBytes: 64 * 1024 * 1024, maxBatchSize: 64, maxDelayMs: 5, lazyStart: true, servingRuntime });
  runtimes.push(r);
  return r;
}

/** Standardized iris-like rows (what the thread gets: serving preprocesses before the forward pass). */
function rows(n: number, seed = 1): Float32Array {
  const out = new Float32Array(n * 4);
  for (let i = 0; i < out.length; i++) out[i] = ((i * 7919 + seed * 104729) % 1000) / 250 - 2;
  return out;
}

function assertClose(actual: Float32Array, want: Float32Array, what: string): void {
  assert.equal(actual.length, want.length, what);
  for (let i = 0; i < want.length; i++) assert.ok(Math.abs(actual[i] - want[i]) <= 1e-4 * Math.abs(want[i]) + 1e-6, `${what}[${i}]: ${actual[i]} vs ${want[i]}`);
}

const tfjsOf = (x: Float32Array, n: number) => tf.tidy(() => (irisModel.predict(tf.tensor(x, [n, 4])) as tf.Tensor).dataSync() as Float32Array);

before(async () => {
  env = await createTestEnv();
  await initBackend(env.config.TRAINYARD_BACKEND);
  auth = await env.tenant();
  const inject = env.app.inject.bind(env.app);
  const dataset = await uploadIris(inject, auth);
  await createModel(inject, auth, "iris");
  await trainInProcess(env, auth, "iris", dataset, { epochs: 2 });
  irisVersion = (await env.app.db.modelVersion.findFirstOrThrow({ select: { id: true } })).id;
  irisModel = await loadModel((await new ModelVersionRepository(env.app.db).load(irisVersion)).model);

  // A version whose network has no ONNX form, registered as an import would be (no job).
  await createModel(inject, auth, "adaptive", ADAPTIVE_SPEC);
  const { model } = buildModel(modelSpecSchema.parse(ADAPTIVE_SPEC));
  const stored = await saveModel(model);
  const signature = { inputs: [{ name: model.inputs[0].sourceLayer.name, shape: [7, 7, 1] }], outputs: [{ name: model.outputNames[0], task: "regression" as const, classes: [] }] };
  model.dispose();
  const modelRow = await env.app.db.model.findFirstOrThrow({ where: { name: "adaptive" }, select: { id: true, tenantId: true } });
  const onnx = await checkOnnx(stored, signature);
  await env.app.db.$transaction((tx) => ModelVersionRepository.register(tx, { tenantId: modelRow.tenantId, modelId: modelRow.id, jobId: null, signature, model: stored, metrics: {}, onnx }));
  adaptiveVersion = (await env.app.db.modelVersion.findFirstOrThrow({ where: { modelId: modelRow.id }, select: { id: true } })).id;
});

after(async () => {
  await Promise.all(runtimes.map((r) => r.close()));
  irisModel?.dispose();
  await env?.close();
});

describe("serving with ONNX Runtime", () => {
  test("a trained version's ONNX export is checked at registration and stored with what it measured", async () => {
    const row = await env.app.db.modelVersionOnnx.findUniqueOrThrow({ where: { versionId: irisVersion } });
    assert.equal(row.status, "passed", row.reason ?? "");
    assert.equal(row.opset, 17);
    assert.ok(row.maxRelativeError !== null && row.maxRelativeError <= 1e-4, `max relative error ${row.maxRelativeError}`);
    assert.ok(row.model && row.model.byteLength > 100, "the checked bytes are stored");

    const adaptive = await env.app.db.modelVersionOnnx.findUniqueOrThrow({ where: { versionId: adaptiveVersion } });
    assert.equal(adaptive.status, "unsupported");
    assert.match(adaptive.reason ?? "", /TrainyardAdaptivePooling2D\) cannot be exported: it pools 7 steps into 3 bins of unequal size/);
    assert.equal(adaptive.model, null);
  });

  test("auto serves a passed version with ONNX Runtime, answering what TensorFlow.js answers, batched or not", async () => {
    const rt = runtime("auto");
    const x = rows(10);
    const ran = await rt.run(irisVersion, [{ data: x.slice(), shape: [10, 4] }]);
    assert.equal(ran.runtime, "onnx");
    assert.deepEqual(ran.outputs[0].shape, [10, 3]);
    assertClose(ran.outputs[0].data, tfjsOf(x, 10), "10 rows");

    const inputs = Array.from({ length: 100 }, (_, i) => rows(1, i + 2));
    const outs = await Promise.all(inputs.map((data) => rt.run(irisVersion, [{ data: data.slice(), shape: [1, 4] }], { maxDelayMs: 20 })));
    outs.forEach((o, i) => {
      assert.equal(o.runtime, "onnx");
      assertClose(o.outputs[0].data, tfjsOf(inputs[i], 1), `request ${i}`);
    });
    assert.ok(rt.stats().batches < 100, "concurrent requests shared forward passes");
    // More rows than one pass takes (256): cut into passes and joined back in order.
    const many = rows(600, 7);
    const big = await rt.run(irisVersion, [{ data: many.slice(), shape: [600, 4] }], { maxDelayMs: 0 });
    assert.deepEqual(big.outputs[0].shape, [600, 3]);
    assertClose(big.outputs[0].data, tfjsOf(many, 600), "600 rows");
  });

  test("tfjs forces TensorFlow.js; a version with no ONNX form is TensorFlow.js's under auto and refused under onnx", async () => {
    const tfjs = await runtime("tfjs").run(irisVersion, [{ data: rows(2), shape: [2, 4] }]);
    assert.equal(tfjs.runtime, "tfjs");
    assertClose(tfjs.outputs[0].data, tfjsOf(rows(2), 2), "tfjs");

    const image = new Float32Array(49).map((_, i) => i / 49);
    const auto = await runtime("auto").run(adaptiveVersion, [{ data: image.slice(), shape: [1, 7, 7, 1] }]);
    assert.equal(auto.runtime, "tfjs");
    const forced = runtime("onnx");
    await assert.rejects(forced.run(adaptiveVersion, [{ data: image.slice(), shape: [1, 7, 7, 1] }]), (err: Error) => err instanceof ConflictError && /cannot be served: its ONNX export is not possible/.test(err.message));
    assert.equal((await forced.run(irisVersion, [{ data: rows(1), shape: [1, 4] }])).runtime, "onnx");
  });

  test("a version never checked is checked at its first load, and the result stored", async () => {
    await env.app.db.modelVersionOnnx.delete({ where: { versionId: irisVersion } });
    const ran = await runtime("auto").run(irisVersion, [{ data: rows(3), shape: [3, 4] }]);
    assert.equal(ran.runtime, "onnx");
    assertClose(ran.outputs[0].data, tfjsOf(rows(3), 3), "after a check at load");
    const row = await env.app.db.modelVersionOnnx.findUniqueOrThrow({ where: { versionId: irisVersion } });
    assert.equal(row.status, "passed");
  });

  test("over HTTP: the runtime in a header on both protocols, in the version's metadata, and as the V2 platform", async () => {
    const predict = await env.app.inject({ method: "POST", url: "/v1/models/iris:predict", headers: auth, payload: { instances: [[5.1, 3.5, 1.4, 0.2]] } });
    assert.equal(predict.statusCode, 200, predict.body);
    assert.equal(predict.headers["x-trainyard-runtime"], "onnx");
    const infer = await env.app.inject({ method: "POST", url: "/v2/models/iris/infer", headers: auth, payload: { inputs: [{ name: "input", shape: [1, 4], datatype: "FP32", data: [6.7, 3.0, 5.2, 2.3] }] } });
    assert.equal(infer.statusCode, 200, infer.body);
    assert.equal(infer.headers["x-trainyard-runtime"], "onnx");
    assert.equal((await env.app.inject({ method: "GET", url: "/v2/models/iris", headers: auth })).json().platform, "onnxruntime_onnx");
    assert.equal((await env.app.inject({ method: "GET", url: "/v2/models/adaptive", headers: auth })).json().platform, "tensorflowjs_layers");

    const version = (await env.app.inject({ method: "GET", url: "/v1/models/iris/versions/1", headers: auth })).json();
    assert.equal(version.runtime, "onnx");
    assert.equal(version.onnx.status, "passed");
    assert.deepEqual(version.exports, { tfjs: "/v1/models/iris/versions/1/export/model.json", zip: "/v1/models/iris/versions/1/export.zip", onnx: "/v1/models/iris/versions/1/export.onnx" });
    const adaptive = (await env.app.inject({ method: "GET", url: "/v1/models/adaptive/versions", headers: auth })).json().versions[0];
    assert.equal(adaptive.runtime, "tfjs");
    assert.equal(adaptive.onnx.status, "unsupported");

    // The same database under TRAINYARD_SERVING_RUNTIME=onnx: the version with no ONNX form is refused, saying why.
    const info = (await env.app.inject({ method: "GET", url: "/v1/info" })).json().serving;
    assert.equal(info.runtime, "auto");
    assert.match(info.onnxRuntimeVersion, /^1\.\d+\.\d+/);
    assert.ok(info.onnxThreads >= 1);
    const forced = await buildApp({ ...env.config, TRAINYARD_SERVING_RUNTIME: "onnx", TRAINYARD_ONNX_THREADS: 2 });
    try {
      await forced.ready();
      assert.deepEqual((await forced.inject({ method: "GET", url: "/v1/info" })).json().serving, { ...info, runtime: "onnx", onnxThreads: 2 });
      const refused = await forced.inject({ method: "POST", url: "/v1/models/adaptive:predict", headers: auth, payload: { instances: [Array.from({ length: 7 }, () => Array.from({ length: 7 }, () => [0.5]))] } });
      assert.equal(refused.statusCode, 409, refused.body);
      assert.match(refused.json().detail, /cannot be served: its ONNX export is not possible/);
      assert.equal((await forced.inject({ method: "GET", url: "/v1/models/adaptive/versions/1", headers: auth })).json().runtime, null);
      const served = await forced.inject({ method: "POST", url: "/v1/models/iris:predict", headers: auth, payload: { instances: [[5.1, 3.5, 1.4, 0.2]] } });
      assert.equal(served.headers["x-trainyard-runtime"], "onnx");
      assert.deepEqual(served.json().predictions, predict.json().predictions);
    } finally {
      await forced.close();
    }
  });
});
