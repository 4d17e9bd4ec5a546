import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { after, before, describe, test } from "node:test";
import { createTestEnv, type TestEnv } from "../helpers/app.ts";

const iris = readFileSync(new URL("../../data/iris.csv", import.meta.url), "utf8");
const irisSpec = {
  input: { shape: [4] },
  layers: [{ type: "dense", units: 16, activation: "relu" }, { type: "dropout", rate: 0.1 }, { type: "dense", units: 3, activation: "softmax" }],
};

let env: TestEnv;
let auth: { authorization: string };
before(async () => {
  env = await createTestEnv();
  auth = await env.tenant("acme");
});
after(async () => env?.close());

describe("auth", () => {
  test("a /v1 route without a key answers 401 problem+json", async () => {
    const res = await env.app.inject({ method: "GET", url: "/v1/datasets" });
    assert.equal(res.statusCode, 401);
    assert.match(res.headers["content-type"] as string, /application\/problem\+json/);
    assert.equal(res.json().status, 401);
  });

  test("a wrong key answers 401, the admin key on a tenant route 403", async () => {
    const bad = await env.app.inject({ method: "GET", url: "/v1/datasets", headers: { authorization: "Bearer ty_0123456789abcdef_" + "x".repeat(43) } });
    assert.equal(bad.statusCode, 401);
    const admin = await env.app.inject({ method: "GET", url: "/v1/datasets", headers: { authorization: `Bearer ${env.adminKey}` } });
    assert.equal(admin.statusCode, 403);
  });

  test("a tenant key cannot create keys", async () => {
    const res = await env.app.inject({ method: "POST", url: "/v1/api-keys", headers: auth, payload: { tenant: "evil" } });
    assert.equal(res.statusCode, 403);
  });

  test("keys are stored hashed and can be revoked", async () => {
    const created = await env.app.inject({ method: "POST", url: "/v1/api-keys", headers: { authorization: `Bearer ${env.adminKey}` }, payload: { tenant: "temp" } });
    const { key, id, prefix } = created.json();
    const row = await env.app.db.apiKey.findUniqueOrThrow({ where: { id } });
    assert.notEqual(row.hash, key);
    // The secret is base64url and may itself contain "_": take everything after `ty_<prefix>_`.
    const secret = key.slice(`ty_${prefix}_`.length);
    assert.equal(secret.length, 43);
    assert.ok(!JSON.stringify(row).includes(secret), "the secret part is not stored");
    assert.equal(row.prefix, prefix);
    const ok = await env.app.inject({ method: "GET", url: "/v1/datasets", headers: { authorization: `Bearer ${key}` } });
    assert.equal(ok.statusCode, 200);
    const revoked = await env.app.inject({ method: "DELETE", url: `/v1/api-keys/${id}`, headers: { authorization: `Bearer ${env.adminKey}` } });
    assert.equal(revoked.statusCode, 200);
    const after = await env.app.inject({ method: "GET", url: "/v1/datasets", headers: { authorization: `Bearer ${key}` } });
    assert.equal(after.statusCode, 401);
  });
});

describe("datasets", () => {
  test("bodies nested absurdly deep answer 400 at the place, before validation (not a stack overflow and a 500)", async () => {
    const deep = (n: number) => "[".repeat(n) + "1" + "]".repeat(n);
    const headers = { ...auth, "content-type": "application/json" };
    for (const [url, payload, where] of [
      ["/v1/datasets", `{"name": "x", "features": [${deep(100_000)}], "labels": [1]}`, /features(\[0\]){63}: is nested more than 64 levels deep/],
      ["/v1/datasets", `{"name": "x", "features": [[1]], "labels": [${deep(70)}]}`, /labels(\[0\]){63}: is nested more than 64 levels deep/],
      ["/v1/models/x:predict", `{"instances": [${deep(5000)}]}`, /instances(\[0\]){63}: is nested more than 64 levels deep/],
    ] as const) {
      const res = await env.app.inject({ method: "POST", url, headers, payload });
      assert.equal(res.statusCode, 400, res.body);
      assert.match(res.json().detail, where);
    }
    // Rows of more dimensions than any model input can take are refused too.
    const rank9 = await env.app.inject({ method: "POST", url: "/v1/datasets", headers: auth, payload: { name: "x", features: [JSON.parse(deep(9))], labels: [1] } });
    assert.equal(rank9.statusCode, 400);
    assert.match(rank9.json().detail, /features\[0\]: has 9 dimensions; a row has at most 8/);
  });

  test("CSV upload: string labels become sorted classes", async () => {
    const res = await env.app.inject({ method: "POST", url: "/v1/datasets?name=iris&label=species", headers: { ...auth, "content-type": "text/csv" }, payload: iris });
    assert.equal(res.statusCode, 201, res.body);
    const d = res.json();
    assert.equal(d.rows, 150);
    assert.deepEqual(d.inputShape, [4]);
    assert.deepEqual(d.classes, ["setosa", "versicolor", "virginica"]);
    assert.equal(d.task, "classification");
    assert.deepEqual(d.featureNames, ["sepal_length", "sepal_width", "petal_length", "petal_width"]);
    assert.equal(res.headers.location, `/v1/datasets/${d.id}`);
    const got = await env.app.inject({ method: "GET", url: `/v1/datasets/${d.id}`, headers: auth });
    assert.deepEqual(got.json(), d);
    const list = await env.app.inject({ method: "GET", url: "/v1/datasets", headers: auth });
    assert.ok(list.json().datasets.some((x: { id: string }) => x.id === d.id));
  });

  test("JSON upload with numeric labels is regression unless told otherwise", async () => {
    const reg = await env.app.inject({ method: "POST", url: "/v1/datasets", headers: auth, payload: { name: "r", features: [[1, 2], [3, 4]], labels: [0.5, 1.5] } });
    assert.equal(reg.statusCode, 201, reg.body);
    assert.equal(reg.json().task, "regression");
    const cls = await env.app.inject({ method: "POST", url: "/v1/datasets", headers: auth, payload: { name: "c", features: [[1, 2], [3, 4], [5, 6]], labels: [1, 0, 1], task: "classification" } });
    assert.deepEqual(cls.json().classes, ["0", "1"]);
  });

  test("a ragged CSV row is named by its row number, and nothing is stored", async () => {
    const before = await env.app.db.dataset.count();
    const lines = iris.split("\n");
    lines[16] = "5.1,3.5,1.4"; // row 17 in a spreadsheet: 3 columns instead of 5
    const res = await env.app.inject({ method: "POST", url: "/v1/datasets?name=bad&label=species", headers: { ...auth, "content-type": "text/csv" }, payload: lines.join("\n") });
    assert.equal(res.statusCode, 400);
    assert.equal(res.json().errors[0].path, "CSV row 17");
    assert.match(res.json().detail, /CSV row 17: 3 columns, header has 5/);
    assert.equal(await env.app.db.dataset.count(), before);
  });

  test("a non-numeric feature and an unknown label column are named", async () => {
    const res = await env.app.inject({ method: "POST", url: "/v1/datasets?name=bad&label=species", headers: { ...auth, "content-type": "text/csv" }, payload: "a,b,species\n1,2,x\n1,abc,y\n" });
    assert.equal(res.statusCode, 400);
    // Named by row and column (issue 8); a column of numbers and text suggests ?categorical=.
    assert.match(res.json().detail, /CSV row 3, column 'b': 'abc' is not a number.*\?categorical=b/);
    const col = await env.app.inject({ method: "POST", url: "/v1/datasets?name=bad&label=kind", headers: { ...auth, "content-type": "text/csv" }, payload: "a,b,species\n1,2,x\n" });
    assert.equal(col.statusCode, 400);
    assert.match(col.json().detail, /querystring.label: column 'kind' is not in the CSV header/);
  });

  test("bad JSON datasets name the row", async () => {
    const ragged = await env.app.inject({ method: "POST", url: "/v1/datasets", headers: auth, payload: { name: "x", features: [[1, 2], [3]], labels: ["a", "b"] } });
    assert.equal(ragged.statusCode, 400);
    assert.match(ragged.json().detail, /features\[1\]: expected 2 numbers, got 1/);
    const types = await env.app.inject({ method: "POST", url: "/v1/datasets", headers: auth, payload: { name: "x", features: [[1, "two"]], labels: ["a"] } });
    assert.equal(types.statusCode, 400);
    assert.equal(types.json().errors[0].path, "features[0][1]");
    const count = await env.app.inject({ method: "POST", url: "/v1/datasets", headers: auth, payload: { name: "x", features: [[1], [2]], labels: ["a"] } });
    assert.match(count.json().detail, /labels: has 1 entries, features has 2 rows/);
    const broken = await env.app.inject({ method: "POST", url: "/v1/datasets", headers: { ...auth, "content-type": "application/json" }, payload: "{not json" });
    assert.equal(broken.statusCode, 400);
    const xml = await env.app.inject({ method: "POST", url: "/v1/datasets", headers: { ...auth, "content-type": "application/xml" }, payload: "<a/>" });
    assert.equal(xml.statusCode, 415);
  });
});

describe("models", () => {
  test("a valid spec is built and stored with its parameter count and output shape", async () => {
    const res = await env.app.inject({ method: "POST", url: "/v1/models", headers: auth, payload: { name: "iris-mlp", spec: irisSpec } });
    assert.equal(res.statusCode, 201, res.body);
    assert.equal(res.json().paramCount, 4 * 16 + 16 + 16 * 3 + 3);
    assert.deepEqual(res.json().outputShape, [3]);
    assert.equal(res.json().latestVersion, null);
    const again = await env.app.inject({ method: "POST", url: "/v1/models", headers: auth, payload: { name: "iris-mlp", spec: irisSpec } });
    assert.equal(again.statusCode, 409);
    const got = await env.app.inject({ method: "GET", url: "/v1/models/iris-mlp", headers: auth });
    assert.equal(got.statusCode, 200);
    assert.equal(got.json().spec.layers[0].activation, "relu");
  });

  test("every supported layer and activation builds", async () => {
    const layers = [
      ...["sigmoid", "tanh", "relu", "leakyRelu", "linear"].map((activation) => ({ type: "dense", units: 8, activation })),
      { type: "batchNormalization" },
      { type: "activation", activation: "leakyRelu", alpha: 0.1 },
      { type: "dropout", rate: 0.5 },
      { type: "dense", units: 2, activation: "softmax", useBias: false },
    ];
    const res = await env.app.inject({ method: "POST", url: "/v1/models", headers: auth, payload: { name: "all-layers", spec: { input: { shape: [4] }, layers } } });
    assert.equal(res.statusCode, 201, res.body);
  });

  test("a bad spec answers 400 naming the field", async () => {
    const res = await env.app.inject({
      method: "POST", url: "/v1/models", headers: auth,
      payload: { name: "bad", spec: { input: { shape: [4] }, layers: [{ type: "dense", units: 3 }, { type: "dropout", rate: 1.5 }, { type: "conv9d" }] } },
    });
    assert.equal(res.statusCode, 400);
    const paths = res.json().errors.map((e: { path: string }) => e.path);
    assert.ok(paths.includes("spec.layers[1].rate"), paths.join());
    assert.ok(paths.includes("spec.layers[2].type"), paths.join());
    assert.match(res.json().detail, /spec\.layers\[1\]\.rate: must be < 1/);
  });

  test("a spec over the parameter limit is refused", async () => {
    const res = await env.app.inject({ method: "POST", url: "/v1/models", headers: auth, payload: { name: "huge", spec: { input: { shape: [10000] }, layers: [{ type: "dense", units: 10000 }] } } });
    assert.equal(res.statusCode, 400);
    assert.match(res.json().detail, /the limit is 50000000/);
  });

  test("predicting before any training answers 409", async () => {
    const res = await env.app.inject({ method: "POST", url: "/v1/models/iris-mlp:predict", headers: auth, payload: { instances: [[1, 2, 3, 4]] } });
    assert.equal(res.statusCode, 409);
  });
});

describe("training jobs (API side)", () => {
  test("mismatched model and dataset are refused before queueing", async () => {
    const ds = await env.app.inject({ method: "POST", url: "/v1/datasets", headers: auth, payload: { name: "two", features: [[1, 2], [3, 4]], labels: ["a", "b"] } });
    const res = await env.app.inject({ method: "POST", url: "/v1/training-jobs", headers: auth, payload: { model: "iris-mlp", dataset: ds.json().id } });
    assert.equal(res.statusCode, 400);
    assert.match(res.json().detail, /input shape \[4\] does not match the dataset's rows \[2\]/);
    const missing = await env.app.inject({ method: "POST", url: "/v1/training-jobs", headers: auth, payload: { model: "nope", dataset: ds.json().id } });
    assert.match(missing.json().detail, /model: no model named 'nope'/);
    const hp = await env.app.inject({ method: "POST", url: "/v1/training-jobs", headers: auth, payload: { model: "iris-mlp", dataset: ds.json().id, epochs: -1, optimizer: { type: "lbfgs" } } });
    assert.equal(hp.statusCode, 400);
    const paths = hp.json().errors.map((e: { path: string }) => e.path);
    assert.ok(paths.includes("epochs") && paths.includes("optimizer.type"), paths.join());
  });

  test("a job is queued in BullMQ under its own id, with ids only in the payload", async () => {
    const ds = await env.app.inject({ method: "POST", url: "/v1/datasets?name=iris&label=species", headers: { ...auth, "content-type": "text/csv" }, payload: iris });
    const res = await env.app.inject({ method: "POST", url: "/v1/training-jobs", headers: auth, payload: { model: "iris-mlp", dataset: ds.json().id, epochs: 3 } });
    assert.equal(res.statusCode, 202, res.body);
    const job = res.json();
    assert.equal(job.status, "queued");
    assert.equal(res.headers.location, `/v1/training-jobs/${job.id}`);
    assert.equal(typeof job.hyperparameters.seed, "number");
    const queued = await env.app.trainingQueue.getJob(job.id);
    assert.ok(queued);
    assert.deepEqual(Object.keys(queued.data).sort(), ["jobId", "tenantId"]);
    // Cancelling a queued job is immediate and removes it from the queue.
    const cancel = await env.app.inject({ method: "POST", url: `/v1/training-jobs/${job.id}/cancel`, headers: auth });
    assert.equal(cancel.statusCode, 202);
    assert.equal(cancel.json().status, "cancelled");
    assert.equal(await env.app.trainingQueue.getJob(job.id), undefined);
  });
});

describe("tenants", () => {
  test("another tenant's resources answer 404", async () => {
    const other = await env.tenant("globex");
    const mine = await env.app.inject({ method: "GET", url: "/v1/datasets", headers: auth });
    const id = mine.json().datasets[0].id;
    const res = await env.app.inject({ method: "GET", url: `/v1/datasets/${id}`, headers: other });
    assert.equal(res.statusCode, 404);
    assert.equal((await env.app.inject({ method: "GET", url: "/v1/models/iris-mlp", headers: other })).statusCode, 404);
    assert.equal((await env.app.inject({ method: "GET", url: "/v1/datasets", headers: other })).json().datasets.length, 0);
    const job = await env.app.inject({ method: "POST", url: "/v1/training-jobs", headers: other, payload: { model: "iris-mlp", dataset: id } });
    assert.equal(job.statusCode, 400);
  });
});

describe("service", () => {
  test("healthz, readyz and info", async () => {
    assert.equal((await env.app.inject({ url: "/healthz" })).statusCode, 200);
    const ready = await env.app.inject({ url: "/readyz" });
    assert.equal(ready.statusCode, 200);
    assert.deepEqual(ready.json().checks, { postgres: true, redis: true });
    const info = (await env.app.inject({ url: "/v1/info" })).json();
    assert.ok(["tensorflow-gpu", "tensorflow", "wasm", "cpu"].includes(info.backend.name));
    assert.ok(info.layers.includes("batchNormalization"));
  });

  test("unknown routes answer problem+json 404", async () => {
    const res = await env.app.inject({ url: "/v1/nope", headers: auth });
    assert.equal(res.statusCode, 404);
    assert.equal(res.json().status, 404);
  });
});
