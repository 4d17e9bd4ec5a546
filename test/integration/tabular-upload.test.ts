// Tabular data as people have it (issue 8), over HTTP into a real Postgres: CSV with categories and
// missing cells, TSV, NDJSON, JSON rows and columns, JSON sequences of different lengths. Every bad
// upload is a 400 that names its place, and stores nothing.
import assert from "node:assert/strict";
import { gzipSync } from "node:zlib";
import { after, before, describe, test } from "node:test";
import { createTestEnv, type TestEnv } from "../helpers/app.ts";

let env: TestEnv;
let auth: { authorization: string };
before(async () => {
  env = await createTestEnv();
  auth = await env.tenant("acme");
});
after(async () => env?.close());

const raw = (type: string, query: string, payload: string | Buffer, headers: Record<string, string> = {}) =>
  env.app.inject({ method: "POST", url: `/v1/datasets?${query}`, headers: { ...auth, "content-type": type, ...headers }, payload });
const json = (body: object) => env.app.inject({ method: "POST", url: "/v1/datasets", headers: { ...auth, "content-type": "application/json" }, payload: JSON.stringify(body) });

const PEOPLE = "age,city,income,bought\r\n34,Paris,52000,yes\r\n28,Lyon,NA,no\r\n45,Paris,61000,yes\r\n51,,58000,no\r\n";
const PEOPLE_COLUMNS = [
  { name: "age", kind: "numeric" },
  { name: "city", kind: "categorical", categories: ["Lyon", "Paris"], missing: 1 },
  { name: "income", kind: "numeric", missing: 1 },
];

describe("tabular uploads", () => {
  test("CSV with a text column and missing cells (?missing=impute): categorical metadata, counts, and the same view on GET", async () => {
    const res = await raw("text/csv", "name=people&missing=impute", "\ufeff" + PEOPLE);
    assert.equal(res.statusCode, 201, res.body);
    const d = res.json();
    assert.deepEqual(d.inputs, [{ name: "input", shape: [3], kind: "tabular", columns: PEOPLE_COLUMNS }]);
    assert.deepEqual(d.featureNames, ["age", "city", "income"]);
    assert.deepEqual(d.classes, ["no", "yes"]);
    const got = await env.app.inject({ method: "GET", url: `/v1/datasets/${d.id}`, headers: auth });
    assert.deepEqual(got.json(), d);
    // Stored as codes and NaN, as the view says.
    const stored = await env.app.db.datasetShard.findUniqueOrThrow({ where: { datasetId_index: { datasetId: d.id, index: 0 } }, select: { features: true } });
    const values = new Float32Array(new Uint8Array(stored.features).buffer);
    assert.deepEqual([...values].map((v) => (Number.isNaN(v) ? "NaN" : v)), [34, 1, 52000, 28, 0, "NaN", 45, 1, 61000, 51, "NaN", 58000]);
  });

  test("TSV (text/tab-separated-values), ?categorical= forcing a number column", async () => {
    const res = await raw("text/tab-separated-values", "name=zips&categorical=zip", "zip\tarea\ty\n75001\t1.5\ta\n69002\t2.5\tb\n75001\t3\ta\n");
    assert.equal(res.statusCode, 201, res.body);
    assert.deepEqual(res.json().inputs[0].columns, [{ name: "zip", kind: "categorical", categories: ["69002", "75001"] }, { name: "area", kind: "numeric" }]);
  });

  test("NDJSON as application/x-ndjson and application/jsonl, gzip too", async () => {
    const lines = '{"age": 34, "city": "Paris", "y": "a"}\n\n{"age": 28, "city": "Lyon", "y": "b"}\n';
    const ids: string[] = [];
    for (const type of ["application/x-ndjson", "application/jsonl"]) {
      const res = await raw(type, "name=lines", lines);
      // The same data under the same name is recognised by its content hash the second time.
      assert.equal(res.statusCode, ids.length ? 200 : 201, `${type}: ${res.body}`);
      assert.deepEqual(res.json().inputs[0].columns, [{ name: "age", kind: "numeric" }, { name: "city", kind: "categorical", categories: ["Lyon", "Paris"] }]);
      ids.push(res.json().id);
    }
    assert.equal(ids[1], ids[0], "not stored twice");
    const gz = await raw("application/x-ndjson", "name=lines-gz", gzipSync(lines), { "content-encoding": "gzip" });
    assert.equal(gz.statusCode, 201, gz.body);
  });

  test("JSON rows and JSON columns", async () => {
    const rows = await json({ name: "rows", rows: [{ x: 1.5, color: "red", species: "setosa" }, { x: 2.5, color: null, species: "virginica" }], missing: "impute" });
    assert.equal(rows.statusCode, 201, rows.body);
    assert.deepEqual(rows.json().inputs[0].columns, [{ name: "x", kind: "numeric" }, { name: "color", kind: "categorical", categories: ["red"], missing: 1 }]);
    const columns = await json({ name: "columns", columns: { x: [1.5, 2.5, 3], species: ["a", "b", "a"], weight: [10, 20, 30] }, label: "species" });
    assert.equal(columns.statusCode, 201, columns.body);
    assert.deepEqual(columns.json().featureNames, ["x", "weight"]);
    assert.deepEqual(columns.json().classes, ["a", "b"]);
  });

  test("JSON sequences: padded to sequenceLength, an input of kind sequence", async () => {
    const res = await json({ name: "seq", sequences: [[3, 1, 4], [1, 5], [9, 2, 6, 5, 3]], sequenceLength: 4, padding: "pre", labels: ["a", "b", "a"] });
    assert.equal(res.statusCode, 201, res.body);
    assert.deepEqual(res.json().inputs, [{ name: "input", shape: [4], kind: "sequence" }]);
    assert.deepEqual(res.json().inputShape, [4]);
    const steps = await json({ name: "steps", sequences: [[[1, 2]], [[3, 4], [5, 6]]], labels: [0.5, 1.5] });
    assert.equal(steps.statusCode, 201, steps.body);
    assert.deepEqual(steps.json().inputs[0].shape, [2, 2]);
  });

  test("numeric labels that look like classes: stored as regression, with a warning naming task=classification", async () => {
    const csv = "pixel,digit\n" + Array.from({ length: 40 }, (_, i) => `${i / 10},${i % 4}`).join("\n");
    const res = await raw("text/csv", "name=digits", csv);
    assert.equal(res.statusCode, 201, res.body);
    assert.equal(res.json().task, "regression");
    assert.deepEqual(res.json().warnings, ["label column 'digit' holds 4 distinct integers: if these are classes, upload with ?task=classification"]);
    const asked = await raw("text/csv", "name=digits&task=classification", csv);
    assert.deepEqual(asked.json().classes, ["0", "1", "2", "3"]);
    assert.deepEqual(asked.json().warnings, []);
  });
});

describe("bad tabular uploads: a 400 at the place, nothing stored", () => {
  type Send = () => ReturnType<typeof json>;
  const cases: [string, Send, string, RegExp][] = [
    ["CSV: a mixed column suggests ?categorical=", () => raw("text/csv", "name=x", "age,y\n34,a\n28,b\nforty,a\n51,b\n"), "CSV row 4, column 'age'", /'forty' is not a number.*\?categorical=age/],
    ["CSV: missing cells without ?missing=impute", () => raw("text/csv", "name=x", PEOPLE), "CSV row 3, column 'income'", /'NA' marks a missing value; 2 cells are missing in columns 'city', 'income'.*\?missing=impute/],
    ["CSV: a missing label, even with ?missing=impute", () => raw("text/csv", "name=x&missing=impute", "x,y\n1,a\n2,?\n3,b\n"), "CSV row 3, column 'y'", /the label is missing/],
    ["CSV: ?categorical= names no column", () => raw("text/csv", "name=x&categorical=town", PEOPLE), "querystring.categorical", /column 'town' is not in the CSV header/],
    ["CSV: ?missing= is error or impute", () => raw("text/csv", "name=x&missing=drop", PEOPLE), "querystring.missing", /./],
    ["CSV: an empty header name", () => raw("text/csv", "name=x", "a,,y\n1,2,a\n"), "CSV header column 2", /is empty/],
    ["CSV: a quoted field never closed", () => raw("text/csv", "name=x", 'a,y\n1,a\n"2,b\n'), "CSV row 3", /quoted field is never closed/],
    ["TSV: a ragged row", () => raw("text/tab-separated-values", "name=x", "a\tb\ty\n1\t2\ta\n3\tb\n"), "TSV row 3", /2 columns, header has 3/],
    ["TSV: a header only", () => raw("text/tab-separated-values", "name=x", "a\tb\ty\n"), "TSV", /has a header but no data rows/],
    ["TSV: one class", () => raw("text/tab-separated-values", "name=x", "a\ty\n1\tp\n2\tp\n"), "TSV column 'y'", /at least 2 classes/],
    ["TSV: a NUL in a cell", () => raw("text/tab-separated-values", "name=x", "a\ty\n1\tp\n2\tq\u0000\n"), "TSV row 3, column 'y'", /NUL/],
    ["NDJSON: a line that is not JSON", () => raw("application/x-ndjson", "name=x", '{"a": 1, "y": "p"}\n\n{"a": 2 "y": "q"}\n'), "NDJSON line 3", /is not valid JSON/],
    ["NDJSON: a line with other keys", () => raw("application/x-ndjson", "name=x", '{"a": 1, "y": "p"}\n{"b": 2, "y": "q"}\n'), "NDJSON line 2", /has no 'a', which line 1 has/],
    ["NDJSON: an escaped NUL", () => raw("application/jsonl", "name=x", '{"a": 1, "y": "p\\u0000"}\n'), "NDJSON line 1, column 'y'", /NUL/],
    ["NDJSON: a raw NUL", () => raw("application/x-ndjson", "name=x", '{"a": 1, "y": "p"}\n{"a": 2, "y": "q\u0000"}\n'), "NDJSON line 2", /NUL/],
    ["NDJSON: no name", () => raw("application/x-ndjson", "", '{"a": 1, "y": "p"}\n'), "querystring.name", /is required/],
    ["JSON rows: a row with other keys", () => json({ name: "x", rows: [{ a: 1, y: "p" }, { a: 2, y: "q" }, { a: 3, y: "p" }, { a: 4, z: "q" }] }), "rows[3]", /has no 'y', which rows\[0\] has/],
    ["JSON rows: a value that is not a number, a string or null", () => json({ name: "x", rows: [{ a: 1, y: "p" }, { a: true, y: "q" }] }), "rows[1].a", /expected a number, a string or null/],
    ["JSON rows with features", () => json({ name: "x", features: [[1]], rows: [{ a: 1, y: "p" }], labels: ["p"] }), "rows", /give either `features` \(one input\) or `rows`, not both/],
    ["JSON rows with labels", () => json({ name: "x", rows: [{ a: 1, y: "p" }, { a: 2, y: "q" }], labels: ["p", "q"] }), "labels", /name it with `label`/],
    ["JSON columns of different lengths", () => json({ name: "x", columns: { a: [1, 2, 3], y: ["p", "q"] } }), "columns.y", /has 2 values, columns.a has 3/],
    ["JSON sequences: a bad value", () => json({ name: "x", sequences: [[1, 2], [3, "4"]], labels: ["a", "b"] }), "sequences[1][1]", /expected a number/],
    ["JSON sequences: sequenceLength too long", () => json({ name: "x", sequences: [[1, 2], [3]], sequenceLength: 1_000_000, labels: ["a", "b"] }), "sequenceLength", /./],
    ["JSON sequences: padding is post or pre", () => json({ name: "x", sequences: [[1, 2], [3]], padding: "middle", labels: ["a", "b"] }), "padding", /./],
  ];
  for (const [name, send, path, message] of cases) {
    test(name, async () => {
      const before = await env.app.db.dataset.count();
      const res = await send();
      assert.equal(res.statusCode, 400, res.body);
      assert.equal(res.json().errors[0].path, path, res.body);
      assert.match(res.json().detail, message);
      assert.equal(await env.app.db.dataset.count(), before);
    });
  }
});
