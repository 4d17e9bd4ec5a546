// Stored datasets through the API: listed a page at a time by an opaque cursor, previewed a few
// rows at a time as a person reads them, downloaded as the .npz they would be uploaded as (and
// uploaded again to the same content hash), and deleted unless a training job still needs them.
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { after, before, describe, test } from "node:test";
import { DatasetRepository } from "../../lib/data/dataset-repository.ts";
import { planNpz, type NpyArray } from "../../lib/data/formats/npz-writer.ts";
import { readNpz, type NamedArray } from "../../lib/data/formats/npz.ts";
import { readNpyHeader, valueReader } from "../../lib/data/formats/npy.ts";
import type { ParsedDataset } from "../../lib/data/packing.ts";
import { DEFAULT_UPLOAD_LIMITS } from "../../lib/data/formats/upload-limits.ts";
import { createTestEnv, type TestEnv } from "../helpers/app.ts";
import { npy, npz } from "../helpers/numpy.ts";
import { createModel, IRIS_CSV, uploadIris } from "../helpers/training.ts";
import { trainInProcess } from "../helpers/train-in-process.ts";

let env: TestEnv;
let auth: { authorization: string };
let other: { authorization: string };
let tenantId: string;
before(async () => {
  env = await createTestEnv();
  auth = await env.tenant("acme");
  other = await env.tenant("globex");
  tenantId = (await env.app.db.tenant.findUniqueOrThrow({ where: { name: "acme" } })).id;
});
after(async () => env?.close());

const get = (url: string, headers = auth) => env.app.inject({ method: "GET", url, headers });

async function uploadJson(body: object, headers = auth): Promise<{ id: string; contentHash: string; createdAt: string; name: string }> {
  const res = await env.app.inject({ method: "POST", url: "/v1/datasets", headers, payload: body });
  assert.equal(res.statusCode, 201, res.body);
  return res.json();
}

async function uploadNpz(name: string, body: Buffer, expected = 201): Promise<{ id: string; contentHash: string; inputs: unknown; outputs: unknown; featureNames: string[]; classes: string[] }> {
  const res = await env.app.inject({ method: "POST", url: `/v1/datasets?name=${name}`, headers: { ...auth, "content-type": "application/x-npz" }, payload: body });
  assert.equal(res.statusCode, expected, res.body);
  return res.json();
}

/** A 400 that names where the request is wrong. */
function assertBadAt(res: { statusCode: number; json(): any; body: string }, path: string, detail?: RegExp) {
  assert.equal(res.statusCode, 400, res.body);
  assert.equal(res.json().errors[0].path, path, res.body);
  if (detail) assert.match(res.json().detail, detail);
}

/** Downloads a dataset, checks the response, and reads the .npz back as uploads are read. */
async function download(id: string, name: string): Promise<{ body: Buffer; arrays: Map<string, { descr: string; shape: number[]; values: number[] }> }> {
  const res = await get(`/v1/datasets/${id}/download`);
  assert.equal(res.statusCode, 200, res.body);
  assert.equal(res.headers["content-type"], "application/x-npz");
  assert.match(res.headers["content-disposition"] as string, new RegExp(`^attachment; filename="${name}\\.npz"`));
  const body = res.rawPayload;
  assert.equal(Number(res.headers["content-length"]), body.length, "the planned length is what was sent");
  return { body, arrays: decode(await readNpz(body, DEFAULT_UPLOAD_LIMITS)) };
}

function decode(arrays: NamedArray[]) {
  return new Map(arrays.map((a) => {
    const header = readNpyHeader(a.npy, a.where);
    const read = valueReader(a.npy, header);
    return [a.name, { descr: header.descr, shape: header.shape, values: Array.from({ length: header.count }, (_, i) => read(i)) }];
  }));
}

describe("listing a page at a time", () => {
  let ids: string[];
  before(async () => {
    // Seven datasets, four of them created in the same millisecond: the id orders those.
    ids = [];
    for (let i = 0; i < 7; i++) ids.push((await uploadJson({ name: `page-${i}`, features: [[i], [i + 1]], labels: [0.5, i] })).id);
    const same = new Date("2026-01-01T00:00:00.123Z");
    await env.app.db.dataset.updateMany({ where: { id: { in: ids.slice(2, 6) } }, data: { createdAt: same } });
  });

  const newestFirst = async () =>
    (await env.app.db.dataset.findMany({ where: { tenantId, id: { in: ids } }, orderBy: [{ createdAt: "desc" }, { id: "desc" }], select: { id: true } })).map((d) => d.id);

  test("pages continue exactly where the last one ended, even when datasets are added meanwhile", async () => {
    const expected = await newestFirst();
    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const res = await get(`/v1/datasets?limit=2${cursor ? `&cursor=${cursor}` : ""}`);
      assert.equal(res.statusCode, 200, res.body);
      const page = res.json();
      assert.ok(page.datasets.length <= 2);
      seen.push(...page.datasets.map((d: { id: string }) => d.id).filter((id: string) => ids.includes(id)));
      cursor = page.nextCursor;
      // Added after the first page: newer than everything listed so far, so never on a later page.
      if (pages++ === 0) await uploadJson({ name: "added-meanwhile", features: [[1], [2]], labels: [1, 2] });
    } while (cursor);
    assert.deepEqual(seen, expected);
    assert.equal(new Set(seen).size, seen.length, "no dataset twice");
    assert.equal(pages, 4, "seven datasets at the start, two a page: the last page says there is no next");
  });

  test("newest first with the default limit, and another tenant's are not listed", async () => {
    const res = await get("/v1/datasets");
    const page = res.json();
    assert.equal(page.nextCursor, null);
    assert.equal(page.datasets[0].name, "added-meanwhile");
    const times = page.datasets.map((d: { createdAt: string }) => Date.parse(d.createdAt));
    assert.deepEqual(times, [...times].sort((a, b) => b - a));
    assert.deepEqual((await get("/v1/datasets", other)).json(), { datasets: [], nextCursor: null });
  });

  test("a malformed cursor and a limit out of range are 400s that say which", async () => {
    const b64 = (v: unknown) => Buffer.from(typeof v === "string" ? v : JSON.stringify(v)).toString("base64url");
    for (const cursor of ["!!", "not base64 at all", b64("hello"), b64([]), b64(["yesterday", randomUUID()]), b64(["2026-01-01T00:00:00.000Z", "not-a-uuid"]), b64({ createdAt: 1 }), "x".repeat(600)]) {
      assertBadAt(await get(`/v1/datasets?cursor=${encodeURIComponent(cursor)}`), "querystring.cursor");
    }
    for (const limit of ["0", "201", "abc", "1.5", "-3"]) assertBadAt(await get(`/v1/datasets?limit=${limit}`), "querystring.limit");
    assert.equal((await get("/v1/datasets?limit=200")).statusCode, 200);
  });
});

describe("previewing rows", () => {
  test("a table reads by column name, with category names and null for a missing cell", async () => {
    const csv = "sepal_length,color,size,species\n5.1,red,1,setosa\nNA,,2,virginica\n6.7,blue,3,setosa\n0.1,red,,virginica\n";
    const up = await env.app.inject({ method: "POST", url: "/v1/datasets?name=colors&label=species&missing=impute&categorical=size", headers: { ...auth, "content-type": "text/csv" }, payload: csv });
    assert.equal(up.statusCode, 201, up.body);
    const res = await get(`/v1/datasets/${up.json().id}/rows?offset=1&limit=3`);
    assert.equal(res.statusCode, 200, res.body);
    assert.deepEqual(res.json(), {
      rows: 4, offset: 1,
      items: [
        { row: 1, features: { sepal_length: null, color: null, size: "2" }, label: "virginica" },
        { row: 2, features: { sepal_length: 6.7, color: "blue", size: "3" }, label: "setosa" },
        { row: 3, features: { sepal_length: 0.1, color: "red", size: null }, label: "virginica" },
      ],
    });
  });

  test("several inputs and outputs read by name; shaped inputs and masks nest to their shape", async () => {
    const pairs = await uploadJson({
      name: "pairs",
      inputs: { left: [[0.1, 0.2], [0.3, 0.4]], right: [[1], [2]] },
      outputs: { kind: ["same", "other"], distance: [0.25, 1.5] },
    });
    assert.deepEqual((await get(`/v1/datasets/${pairs.id}/rows`)).json().items, [
      { row: 0, features: { left: [0.1, 0.2], right: [1] }, label: { kind: "same", distance: 0.25 } },
      { row: 1, features: { left: [0.3, 0.4], right: [2] }, label: { kind: "other", distance: 1.5 } },
    ]);
    const masks = await uploadJson({
      name: "masks", task: "classification",
      features: [[[[0.5], [1]], [[0], [0.25]]], [[[1], [1]], [[1], [1]]]],
      labels: [[[0, 1], [1, 0]], [[1, 1], [1, 1]]],
    });
    assert.deepEqual((await get(`/v1/datasets/${masks.id}/rows?limit=1`)).json().items, [
      { row: 0, features: [[[0.5], [1]], [[0], [0.25]]], label: [["0", "1"], ["1", "0"]] },
    ]);
  });

  test("past the end: no rows and the total; bad offsets and limits are 400s at their place; another tenant's is 404", async () => {
    const d = await uploadJson({ name: "three", features: [[1], [2], [3]], labels: ["a", "b", "a"] });
    assert.deepEqual((await get(`/v1/datasets/${d.id}/rows?offset=3`)).json(), { rows: 3, offset: 3, items: [] });
    assert.deepEqual((await get(`/v1/datasets/${d.id}/rows?offset=1000000`)).json(), { rows: 3, offset: 1000000, items: [] });
    assert.deepEqual((await get(`/v1/datasets/${d.id}/rows?offset=2&limit=100`)).json().items, [{ row: 2, features: { x0: 3 }, label: "a" }]);
    for (const limit of ["0", "101", "x"]) assertBadAt(await get(`/v1/datasets/${d.id}/rows?limit=${limit}`), "querystring.limit");
    for (const offset of ["-1", "0.5", "y"]) assertBadAt(await get(`/v1/datasets/${d.id}/rows?offset=${offset}`), "querystring.offset");
    assertBadAt(await get("/v1/datasets/not-a-uuid/rows"), "params.id");
    assert.equal((await get(`/v1/datasets/${d.id}/rows`, other)).statusCode, 404);
    assert.equal((await get(`/v1/datasets/${randomUUID()}/rows`)).statusCode, 404);
  });

  test("only the shards that hold the rows are read", async () => {
    // 100 rows of one value and one label, 8 bytes a row: 80-byte shards hold 10 rows each.
    const rows = 100;
    const parsed: ParsedDataset = {
      name: "sharded", rows, featureNames: ["v"],
      inputs: [{ name: "input", shape: [1], kind: "tabular" }],
      outputs: [{ name: "output", task: "regression", classes: [], shape: [1] }],
      features: Float32Array.from({ length: rows }, (_, i) => i), targets: Float32Array.from({ length: rows }, (_, i) => -i),
    };
    const stored = await new DatasetRepository(env.app.db, 80).create(tenantId, parsed);
    assert.equal(await env.app.db.datasetShard.count({ where: { datasetId: stored.id } }), 10);
    // Rows 35–54 lie in shards 3, 4 and 5: with every other shard gone, they still read.
    await env.app.db.datasetShard.deleteMany({ where: { datasetId: stored.id, index: { notIn: [3, 4, 5] } } });
    const res = await get(`/v1/datasets/${stored.id}/rows?offset=35&limit=20`);
    assert.equal(res.statusCode, 200, res.body);
    assert.deepEqual(res.json().items.map((r: { features: { v: number }; label: number }) => [r.features.v, r.label]), Array.from({ length: 20 }, (_, i) => [35 + i, -(35 + i)]));
  });
});

describe("downloading as .npz", () => {
  test("an .npz upload comes back as the same arrays and uploads again to the same content hash", async () => {
    const rows = 6;
    const x = Array.from({ length: rows * 3 }, (_, i) => i / 7);
    const y = [3, 7, 7, 3, 7, 3];
    const original = await uploadNpz("npz-one", npz({ x: npy("<f8", [rows, 3], x), y: npy("<i8", [rows], y) }));
    assert.deepEqual(original.classes, ["3", "7"]);
    const { body, arrays } = await download(original.id, "npz-one");
    assert.deepEqual([...arrays.keys()], ["x", "y"]);
    assert.deepEqual(arrays.get("x")!.shape, [rows, 3]);
    assert.equal(arrays.get("x")!.descr, "<f4");
    assert.deepEqual(arrays.get("x")!.values, x.map(Math.fround));
    assert.deepEqual(arrays.get("y"), { descr: "<i4", shape: [rows, 1], values: y }, "class labels as the values uploaded");

    const again = await uploadNpz("npz-one-again", body);
    assert.equal(again.contentHash, original.contentHash);
    // Under its own name it is recognised as the same dataset.
    const same = await uploadNpz("npz-one", body, 200);
    assert.equal(same.id, original.id);
  });

  test("several inputs and outputs, images and masks: named arrays, and the same content hash again", async () => {
    const rows = 4;
    const image = Array.from({ length: rows * 2 * 2 * 3 }, (_, i) => (i * 37) % 256);
    const meta = Array.from({ length: rows * 2 }, (_, i) => i - 3.25);
    const mask = Array.from({ length: rows * 2 * 2 }, (_, i) => [0, 2, 5][i % 3]);
    const box = Array.from({ length: rows * 2 }, (_, i) => i * 0.1);
    const flag = [1, 0, 0, 1];
    const original = await uploadNpz("npz-many", npz({
      "inputs.image": npy("|u1", [rows, 2, 2, 3], image),
      "inputs.meta": npy("<f4", [rows, 2], meta),
      "outputs.mask": npy("<i4", [rows, 2, 2], mask),
      "outputs.box": npy("<f4", [rows, 2], box),
      "outputs.flag": npy("|b1", [rows], flag),
    }, true));
    assert.equal((original.inputs as { kind: string }[])[0].kind, "image");
    const { body, arrays } = await download(original.id, "npz-many");
    assert.deepEqual([...arrays.keys()], ["inputs.image", "inputs.meta", "outputs.mask", "outputs.box", "outputs.flag"]);
    assert.deepEqual(arrays.get("inputs.image"), { descr: "|u1", shape: [rows, 2, 2, 3], values: image }, "pixels stay uint8: what makes an input an image");
    assert.deepEqual(arrays.get("outputs.mask"), { descr: "<i4", shape: [rows, 2, 2], values: mask });
    assert.deepEqual(arrays.get("outputs.box")!.values, box.map(Math.fround));
    assert.deepEqual(arrays.get("outputs.flag")!.values, flag);
    assert.equal((await uploadNpz("npz-many-again", body)).contentHash, original.contentHash);
  });

  test("a dataset of many shards is written shard by shard, value for value", async () => {
    const rows = 37;
    const parsed: ParsedDataset = {
      name: "many-shards", rows, featureNames: [],
      inputs: [{ name: "a", shape: [3], kind: "tabular" }, { name: "b", shape: [2, 2], kind: "tensor" }],
      outputs: [{ name: "y", task: "classification", classes: ["no", "yes"], shape: [1] }, { name: "z", task: "regression", classes: [], shape: [2] }],
      features: Float32Array.from({ length: rows * 7 }, (_, i) => i + 0.5),
      targets: Float32Array.from({ length: rows * 3 }, (_, i) => (i < rows ? i % 2 : -i)),
    };
    // 40 bytes a row: 120-byte shards of 3 rows, the last of one.
    const stored = await new DatasetRepository(env.app.db, 120).create(tenantId, parsed);
    assert.equal(await env.app.db.datasetShard.count({ where: { datasetId: stored.id } }), 13);
    const { arrays } = await download(stored.id, "many-shards");
    const f = Array.from(parsed.features);
    const t = Array.from(parsed.targets);
    assert.deepEqual(arrays.get("inputs.a"), { descr: "<f4", shape: [rows, 3], values: f.slice(0, rows * 3) });
    assert.deepEqual(arrays.get("inputs.b"), { descr: "<f4", shape: [rows, 2, 2], values: f.slice(rows * 3) });
    assert.deepEqual(arrays.get("outputs.y"), { descr: "<i4", shape: [rows, 1], values: t.slice(0, rows) }, "class names that are not numbers: their ids");
    assert.deepEqual(arrays.get("outputs.z"), { descr: "<f4", shape: [rows, 2], values: t.slice(rows) });
  });

  test("a CSV upload comes back as its values; column names, categories and class names stay behind", async () => {
    const iris = await uploadIris(env.app.inject.bind(env.app), auth);
    const original = (await get(`/v1/datasets/${iris}`)).json();
    const { body, arrays } = await download(iris, "iris");
    assert.deepEqual([...arrays.keys()], ["x", "y"]);
    assert.deepEqual(arrays.get("x")!.shape, [150, 4]);
    assert.deepEqual(arrays.get("y")!.values.slice(0, 3), [0, 0, 0]);
    const again = await uploadNpz("iris-again", body);
    assert.notEqual(again.contentHash, original.contentHash);
    // The same rows and values (the first ten rows read alike), described differently.
    const rowsOf = async (id: string) => (await get(`/v1/datasets/${id}/rows?limit=10`)).json().items.map((r: { features: Record<string, number> }) => Object.values(r.features));
    assert.deepEqual(await rowsOf(again.id), await rowsOf(iris));
    assert.deepEqual(again.featureNames, ["x0", "x1", "x2", "x3"]);
    assert.deepEqual(again.classes, ["0", "1", "2"]);
  });

  test("a file name is sent safely; another tenant's or a missing dataset is 404", async () => {
    const d = await uploadJson({ name: 'weird "name" é', features: [[1], [2]], labels: [1, 2] });
    const res = await get(`/v1/datasets/${d.id}/download`);
    assert.equal(res.headers["content-disposition"], `attachment; filename="weird _name_ _.npz"; filename*=UTF-8''weird%20%22name%22%20%C3%A9.npz`);
    assert.equal((await get(`/v1/datasets/${d.id}/download`, other)).statusCode, 404);
    assert.equal((await get(`/v1/datasets/${randomUUID()}/download`)).statusCode, 404);
    assertBadAt(await get("/v1/datasets/123/download"), "params.id");
  });

  test("ZIP64 records, used from 4 GiB on, read back the same", async () => {
    const arrays: NpyArray[] = [
      { name: "x", descr: "<f4", shape: [2, 2], chunks: async function* () { yield new Uint8Array(Float32Array.of(1, 2).buffer); yield new Uint8Array(Float32Array.of(3, 4).buffer); } },
      { name: "y", descr: "<i4", shape: [2], chunks: async function* () { yield new Uint8Array(Int32Array.of(5, 6).buffer); } },
    ];
    for (const forceZip64 of [false, true]) {
      const plan = planNpz(arrays, { forceZip64 });
      const chunks: Uint8Array[] = [];
      for await (const c of plan.stream()) chunks.push(c);
      const file = Buffer.concat(chunks);
      assert.equal(file.length, plan.bytes);
      const read = decode(await readNpz(file, DEFAULT_UPLOAD_LIMITS));
      assert.deepEqual(read.get("x"), { descr: "<f4", shape: [2, 2], values: [1, 2, 3, 4] });
      assert.deepEqual(read.get("y"), { descr: "<i4", shape: [2], values: [5, 6] });
    }
    // An array that does not hold what its shape says stops the stream instead of writing a broken file.
    const short = planNpz([{ name: "x", descr: "<f4", shape: [3], chunks: async function* () { yield new Uint8Array(8); } }]);
    await assert.rejects(async () => { for await (const _ of short.stream()); }, /8 bytes, its shape \[3\] holds 12/);
  });
});

describe("deleting", () => {
  test("204, and its rows go with it; another tenant's or a missing one is 404", async () => {
    const d = await uploadJson({ name: "doomed", features: [[1], [2]], labels: [1, 2] });
    assert.equal((await env.app.inject({ method: "DELETE", url: `/v1/datasets/${d.id}`, headers: other })).statusCode, 404);
    assert.equal((await get(`/v1/datasets/${d.id}`)).statusCode, 200, "still there");
    const res = await env.app.inject({ method: "DELETE", url: `/v1/datasets/${d.id}`, headers: auth });
    assert.equal(res.statusCode, 204, res.body);
    assert.equal(res.body, "");
    for (const url of [`/v1/datasets/${d.id}`, `/v1/datasets/${d.id}/rows`, `/v1/datasets/${d.id}/download`]) assert.equal((await get(url)).statusCode, 404, url);
    assert.equal(await env.app.db.datasetShard.count({ where: { datasetId: d.id } }), 0);
    assert.equal((await env.app.inject({ method: "DELETE", url: `/v1/datasets/${d.id}`, headers: auth })).statusCode, 404);
    assert.equal((await env.app.inject({ method: "DELETE", url: `/v1/datasets/${randomUUID()}`, headers: auth })).statusCode, 404);
    assertBadAt(await env.app.inject({ method: "DELETE", url: "/v1/datasets/nope", headers: auth }), "params.id");
  });

  test("409 naming the jobs while a queued or running job uses it; the model versions trained on it stay", async () => {
    const inject = env.app.inject.bind(env.app);
    const up = await env.app.inject({ method: "POST", url: "/v1/datasets?name=iris-del&label=species", headers: { ...auth, "content-type": "text/csv" }, payload: IRIS_CSV });
    assert.equal(up.statusCode, 201, up.body);
    const dataset: string = up.json().id;
    await createModel(inject, auth, "iris-del");
    await trainInProcess(env, auth, "iris-del", dataset);
    const queue = async () => {
      const res = await env.app.inject({ method: "POST", url: "/v1/training-jobs", headers: auth, payload: { model: "iris-del", dataset, epochs: 1 } });
      assert.equal(res.statusCode, 202, res.body);
      return res.json().id as string;
    };
    const queued = await queue();
    const running = await queue();
    await env.app.db.trainingJob.update({ where: { id: running }, data: { status: "running" } });

    const refused = await env.app.inject({ method: "DELETE", url: `/v1/datasets/${dataset}`, headers: auth });
    assert.equal(refused.statusCode, 409, refused.body);
    assert.match(refused.json().detail, new RegExp(`2 queued or running training jobs: (${queued}, ${running}|${running}, ${queued})`));
    assert.equal((await get(`/v1/datasets/${dataset}`)).statusCode, 200);

    await env.app.inject({ method: "POST", url: `/v1/training-jobs/${queued}/cancel`, headers: auth });
    const one = await env.app.inject({ method: "DELETE", url: `/v1/datasets/${dataset}`, headers: auth });
    assert.equal(one.statusCode, 409);
    assert.match(one.json().detail, new RegExp(`a queued or running training job: ${running};`));
    await env.app.db.trainingJob.update({ where: { id: running }, data: { status: "failed" } });

    assert.equal((await env.app.inject({ method: "DELETE", url: `/v1/datasets/${dataset}`, headers: auth })).statusCode, 204);
    assert.equal((await get(`/v1/datasets/${dataset}`)).statusCode, 404);
    // The jobs keep the dataset's id as history; the trained version still predicts.
    const job = await get(`/v1/training-jobs/${queued}`);
    assert.equal(job.statusCode, 200, job.body);
    assert.equal(job.json().dataset, dataset);
    const predict = await env.app.inject({ method: "POST", url: "/v1/models/iris-del:predict", headers: auth, payload: { instances: [[5.1, 3.5, 1.4, 0.2]] } });
    assert.equal(predict.statusCode, 200, predict.body);
    assert.equal(predict.json().predictions[0].length, 3);
  });
});
