// NumPy uploads through the API: an .npz as a raw body, .npy features and labels as multipart
// parts, any raw-body format as a multipart `file`. Every bad upload is a 4xx naming where it is
// bad and stores nothing. Iris sent as .npy files trains an MLP on a real worker.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { createTrainingWorker, type TrainingWorker } from "../../workers/training-worker.ts";
import { createTestEnv, type TestEnv } from "../helpers/app.ts";
import { formData, irisArrays, npy, npz, zip, type FormPart } from "../helpers/numpy.ts";
import { createModel, IRIS_CSV, waitForJob } from "../helpers/training.ts";

const UPLOAD_LIMIT = 1024 * 1024;

let env: TestEnv;
let auth: { authorization: string };
before(async () => {
  env = await createTestEnv({ TRAINYARD_MAX_UPLOAD_BYTES: String(UPLOAD_LIMIT) });
  auth = await env.tenant("acme");
});
after(async () => env?.close());

const iris = irisArrays(IRIS_CSV);
const irisX = npy("<f8", [iris.rows, 4], iris.x);
const irisY = npy("<i8", [iris.rows], iris.y);
const x = npy("<f4", [4, 2], [1, 2, 3, 4, 5, 6, 7, 8]);
const y = npy("<i8", [4], [0, 1, 1, 0]);

const raw = (query: string, payload: Buffer, type = "application/x-npz", headers: Record<string, string> = {}) =>
  env.app.inject({ method: "POST", url: `/v1/datasets?${query}`, headers: { ...auth, "content-type": type, ...headers }, payload });
const multipart = (parts: FormPart[], query = "", headers: Record<string, string> = {}) => {
  const { payload, contentType } = formData(parts);
  return env.app.inject({ method: "POST", url: `/v1/datasets?${query}`, headers: { ...auth, "content-type": contentType, ...headers }, payload });
};
const npyPart = (name: string, data: Buffer): FormPart => ({ name, filename: `${name}.npy`, type: "application/octet-stream", data });
const field = (name: string, value: string): FormPart => ({ name, data: value });

describe("NumPy uploads", () => {
  test("an .npz body (application/x-npz): arrays x and y, integer labels as classes", async () => {
    const res = await raw("name=iris-npz", npz({ x: irisX, y: irisY }, true));
    assert.equal(res.statusCode, 201, res.body);
    const d = res.json();
    assert.equal(d.rows, 150);
    assert.equal(d.task, "classification");
    assert.deepEqual(d.classes, ["0", "1", "2"]);
    assert.deepEqual(d.inputs, [{ name: "input", shape: [4], kind: "tabular" }]);
    assert.deepEqual(d.featureNames, ["x0", "x1", "x2", "x3"]);
    const stored = await env.app.services.datasets.get((await env.app.db.dataset.findUniqueOrThrow({ where: { id: d.id } })).tenantId, d.id);
    assert.equal(stored.rows, 150);
  });

  test("several named inputs and outputs in an .npz", async () => {
    const res = await raw("name=pairs", npz({ "inputs.left": x, "inputs.right": npy("|u1", [4, 2, 2, 1], Array(16).fill(3)), "outputs.kind": y, "outputs.size": npy("<f4", [4], [0.1, 0.2, 0.3, 0.4]) }));
    assert.equal(res.statusCode, 201, res.body);
    const d = res.json();
    assert.deepEqual(d.inputs.map((i: { name: string; kind: string }) => [i.name, i.kind]), [["left", "tabular"], ["right", "image"]]);
    assert.deepEqual(d.outputs.map((o: { name: string; task: string }) => [o.name, o.task]), [["kind", "classification"], ["size", "regression"]]);
  });

  test("multipart: .npy parts features and labels, the name as a field and the task in the query", async () => {
    const res = await multipart([field("name", "mp"), npyPart("features", x), npyPart("labels", npy("<f4", [4, 2], [1, 2, 3, 4, 5, 6, 7, 8]))], "task=regression");
    assert.equal(res.statusCode, 201, res.body);
    assert.equal(res.json().name, "mp");
    assert.equal(res.json().task, "regression");
    assert.deepEqual(res.json().targetShape, [2]);
  });

  test("multipart: one `file` in any raw-body format, by its content type or its extension", async () => {
    const csv = await multipart([{ name: "file", filename: "iris.csv", type: "application/octet-stream", data: IRIS_CSV }, field("name", "iris-mp"), field("label", "species")]);
    assert.equal(csv.statusCode, 201, csv.body);
    assert.deepEqual(csv.json().classes, ["setosa", "versicolor", "virginica"]);
    const typed = await multipart([{ name: "file", filename: "data", type: "text/csv", data: IRIS_CSV }], "name=iris-typed");
    assert.equal(typed.statusCode, 201, typed.body);
    // A part without a type is text/plain (RFC 7578), which says less than the name iris.csv.
    const untyped = await multipart([{ name: "file", filename: "iris.csv", data: IRIS_CSV }], "name=iris-untyped");
    assert.equal(untyped.statusCode, 201, untyped.body);
    assert.equal(untyped.json().rows, 150);
    const archive = await multipart([{ name: "file", filename: "d.npz", type: "application/octet-stream", data: npz({ x, y }) }, field("name", "npz-mp"), field("task", "regression")]);
    assert.equal(archive.statusCode, 201, archive.body);
    assert.equal(archive.json().task, "regression");
  });

  test("the OpenAPI document describes the .npz body and the multipart parts as binary", () => {
    const content = (env.app.swagger() as any).paths["/v1/datasets"].post.requestBody.content;
    assert.equal(content["application/x-npz"].schema.format, "binary");
    const form = content["multipart/form-data"].schema;
    assert.equal(form.type, "object");
    for (const part of ["features", "labels", "file"]) assert.deepEqual([form.properties[part].type, form.properties[part].format], ["string", "binary"], part);
    assert.equal(form.properties.name.type, "string");
    assert.ok(form.properties.task, "the settings are fields too");
  });
});

describe("bad NumPy and multipart uploads: a 4xx naming where, nothing stored", () => {
  const fortran = npy("<f4", [4, 2], [1, 2, 3, 4, 5, 6, 7, 8], { fortran: true });
  const cases: [string, () => ReturnType<typeof raw>, number, string | RegExp, RegExp?][] = [
    ["Fortran-order features", () => multipart([field("name", "b"), npyPart("features", fortran), npyPart("labels", y)]), 400, "multipart part 'features' header.fortran_order", /C order/],
    ["truncated labels", () => multipart([field("name", "b"), npyPart("features", x), npyPart("labels", y.subarray(0, y.length - 5))]), 400, "multipart part 'labels'", /5 bytes missing/],
    ["a header claiming 10^12 values", () => multipart([field("name", "b"), npyPart("features", npy("<f4", [1e12], [1])), npyPart("labels", y)]), 400, "multipart part 'features'", /needs 4000000000000 bytes/],
    ["complex features", () => raw("name=b", npz({ x: npy("<f4", [4], [1, 2, 3, 4], { header: "{'descr': '<c8', 'fortran_order': False, 'shape': (2,), }" }), y })), 400, "npz 'x.npy' header.descr", /complex/],
    ["labels of other rows", () => raw("name=b", npz({ x, y: npy("<i8", [3], [0, 1, 0]) })), 400, "npz 'y.npy' header.shape", /3 rows/],
    ["an unknown array name", () => raw("name=b", npz({ x, y, x_test: x })), 400, "npz 'x_test.npy'"],
    ["an .npz without a name", () => raw("", npz({ x, y })), 400, "querystring.name"],
    ["a corrupt .npz", () => raw("name=b", Buffer.from("PK\u0003\u0004 but nothing more")), 400, "npz", /not a readable zip/],
    ["an .npz of too many entries", () => raw("name=b", zip(Array.from({ length: 65 }, (_, i) => ({ name: `a${i}.npy`, data: Buffer.from("x") })))), 400, "npz", /65 entries/],
    ["a zip bomb", () => raw("name=b", npz({ x: npy("|u1", [4, 1024 * 1024], Buffer.alloc(4 * 1024 * 1024)), y }, true)), 413, /upload limit/],
    ["an unknown part", () => multipart([field("name", "b"), npyPart("extra", x), npyPart("features", x), npyPart("labels", y)]), 400, "multipart part 'extra'"],
    ["a part twice", () => multipart([field("name", "b"), npyPart("features", x), npyPart("features", x), npyPart("labels", y)]), 400, "multipart part 'features'", /twice/],
    ["features without labels", () => multipart([field("name", "b"), npyPart("features", x)]), 400, "multipart part 'labels'", /is required/],
    ["a file and features", () => multipart([field("name", "b"), npyPart("file", npz({ x, y })), npyPart("features", x)]), 400, "multipart part 'file'"],
    ["no name", () => multipart([npyPart("features", x), npyPart("labels", y)]), 400, "name"],
    ["a name in the query and as a field", () => multipart([field("name", "b"), npyPart("features", x), npyPart("labels", y)], "name=c"), 400, "multipart field 'name'", /once/],
    ["a task that is not one", () => multipart([field("name", "b"), field("task", "clustering"), npyPart("features", x), npyPart("labels", y)]), 400, "multipart field 'task'"],
    ["an unknown field", () => multipart([field("name", "b"), field("colour", "red"), npyPart("features", x), npyPart("labels", y)]), 400, "multipart field 'colour'"],
    ["a NUL in a field", () => multipart([field("name", "b\u0000"), npyPart("features", x), npyPart("labels", y)]), 400, "multipart field 'name'", /NUL/],
    ["features as text", () => multipart([field("name", "b"), field("features", "1,2,3"), npyPart("labels", y)]), 400, "multipart field 'features'", /file part/],
    ["a .npy as the file", () => multipart([field("name", "b"), npyPart("file", x)]), 400, "multipart part 'file'", /features/],
    ["a file of no known format", () => multipart([field("name", "b"), { name: "file", filename: "data.xls", type: "application/octet-stream", data: "x" }]), 400, "multipart part 'file'", /names no upload format/],
    ["a NUL in a CSV file part", () => multipart([field("name", "b"), { name: "file", filename: "iris.csv", data: IRIS_CSV.replace("setosa", "set\u0000osa") }]), 400, /^CSV row 2/, /NUL/],
    ["no file at all", () => multipart([field("name", "b")]), 400, "body", /no file/],
    ["multipart without a boundary", () => raw("name=b", Buffer.from("--x\r\n"), "multipart/form-data"), 400, "body", /multipart/],
    ["multipart, gzipped", () => multipart([field("name", "b"), npyPart("features", x), npyPart("labels", y)], "", { "content-encoding": "gzip" }), 415, /Content-Encoding 'gzip'/],
    ["a file past the upload limit", () => multipart([field("name", "b"), npyPart("features", npy("|u1", [4, UPLOAD_LIMIT / 4 + 16], Buffer.alloc(UPLOAD_LIMIT + 64))), npyPart("labels", y)]), 413, /upload limit/],
    ["files together past the upload limit", () => multipart([field("name", "b"), npyPart("features", npy("|u1", [4, UPLOAD_LIMIT / 8], Buffer.alloc(UPLOAD_LIMIT / 2))), npyPart("labels", npy("|u1", [4, UPLOAD_LIMIT / 8], Buffer.alloc(UPLOAD_LIMIT / 2)))]), 413, /upload limit/],
  ];
  for (const [what, send, status, where, message] of cases) {
    test(what, async () => {
      const before = await env.app.db.dataset.count();
      const res = await send();
      assert.equal(res.statusCode, status, `${what}: ${res.body}`);
      const body = res.json();
      // A 400 names its place in errors[]; 413 and 415 say it in the detail.
      if (status === 400) {
        if (typeof where === "string") assert.equal(body.errors?.[0]?.path, where, res.body);
        else assert.match(body.errors?.[0]?.path, where, res.body);
        if (message) assert.match(body.errors[0].message, message, res.body);
      } else {
        assert.match(body.detail, where as RegExp, res.body);
      }
      assert.equal(await env.app.db.dataset.count(), before, "nothing stored");
    });
  }

  test("a content type the route does not take answers 415 naming multipart/form-data among those it does", async () => {
    const res = await raw("name=b", Buffer.from("<x/>"), "application/xml");
    assert.equal(res.statusCode, 415, res.body);
    assert.match(res.json().detail, /application\/x-npz.*multipart\/form-data/);
  });
});

describe("multipart over a real socket", () => {
  test("an early refusal answers while the client is still sending, and a good upload goes through", async () => {
    // Listening until env.close() closes the app.
    const address = await env.app.listen({ port: 0, host: "127.0.0.1" });
    {
      const form = new FormData();
      form.append("stray", new Blob([new Uint8Array(UPLOAD_LIMIT / 2)]), "stray.bin");
      form.append("features", new Blob([new Uint8Array(x)]), "features.npy");
      const refused = await fetch(`${address}/v1/datasets?name=b`, { method: "POST", headers: auth, body: form, signal: AbortSignal.timeout(60_000) });
      assert.equal(refused.status, 400);
      assert.equal((await refused.json()).errors[0].path, "multipart part 'stray'");

      const good = new FormData();
      good.append("name", "socket");
      good.append("features", new Blob([new Uint8Array(irisX)]), "x.npy");
      good.append("labels", new Blob([new Uint8Array(irisY)]), "y.npy");
      const res = await fetch(`${address}/v1/datasets`, { method: "POST", headers: auth, body: good, signal: AbortSignal.timeout(60_000) });
      assert.equal(res.status, 201, await res.clone().text());
      assert.equal((await res.json()).rows, 150);
    }
  });
});

describe("training on NumPy files", () => {
  let worker: TrainingWorker;
  after(async () => worker?.close());

  test("Iris sent as features.npy and labels.npy trains an MLP on a real worker", async () => {
    worker = createTrainingWorker(env.workerConfig, () => {});
    const up = await multipart([field("name", "iris-npy"), npyPart("features", irisX), npyPart("labels", irisY)]);
    assert.equal(up.statusCode, 201, up.body);
    await createModel(env.app.inject.bind(env.app), auth, "iris-npy");
    const job = await env.app.inject({
      method: "POST", url: "/v1/training-jobs", headers: auth,
      payload: { model: "iris-npy", dataset: up.json().id, epochs: 40, batchSize: 16, optimizer: { type: "adam", learningRate: 0.02 }, validationSplit: 0.2, seed: 7 },
    });
    assert.equal(job.statusCode, 202, job.body);
    const done = await waitForJob(env.app.inject.bind(env.app), auth, job.json().id);
    assert.equal(done.status, "succeeded", JSON.stringify(done));
    assert.ok(done.metrics.accuracy >= 0.9, `accuracy ${done.metrics.accuracy}`);
    const res = await env.app.inject({ method: "POST", url: "/v1/models/iris-npy:predict", headers: auth, payload: { instances: [[5.1, 3.5, 1.4, 0.2], [6.3, 3.3, 6.0, 2.5]] } });
    assert.equal(res.statusCode, 200, res.body);
    const classes = res.json().predictions.map((p: number[]) => p.indexOf(Math.max(...p)));
    assert.deepEqual(classes, [0, 2]);
  });
});
