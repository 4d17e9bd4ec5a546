import assert from "node:assert/strict";
import { test } from "node:test";
import { parseCsv } from "../../lib/data/formats/csv.ts";
import { parseCsvDataset } from "../../lib/data/formats/csv.ts";
import { parseJsonDataset } from "../../lib/data/formats/json.ts";
import { ValidationError } from "../../lib/errors.ts";

test("quotes, doubled quotes, CRLF and blank lines", () => {
  const t = parseCsv('a,"b, with comma",c\r\n1,"say ""hi""",3\r\n\r\n4,5,6\n');
  assert.deepEqual(t.header, ["a", "b, with comma", "c"]);
  assert.deepEqual(t.rows, [["1", 'say "hi"', "3"], ["4", "5", "6"]]);
  assert.deepEqual(t.rowNumbers, [2, 4]);
});

test("a quoted newline stays in its field and row numbers follow the file's lines", () => {
  const t = parseCsv('a,b\n"x\ny",1\n2,3,4\n'.replace("2,3,4", "2,3"));
  assert.deepEqual(t.rows[0], ["x\ny", "1"]);
  assert.deepEqual(t.rowNumbers, [2, 4]);
});

test("problems are named by row as a spreadsheet numbers it", () => {
  assert.throws(() => parseCsv("a,b,c\n1,2,3\n1,2\n"), (e: unknown) => e instanceof ValidationError && e.message === "CSV row 3: 2 columns, header has 3");
  assert.throws(() => parseCsv('a,b\n"open,1\n'), /CSV row 2: quoted field is never closed/);
  assert.throws(() => parseCsv(""), /CSV: is empty/);
  assert.throws(() => parseCsv("a,b\n"), /no data rows/);
  assert.throws(() => parseCsv("a,a\n1,2\n"), /'a' appears twice/);
});

test("CSV datasets: label column, classes, numeric checks", () => {
  const d = parseCsvDataset("x,y,label\n1,2,b\n3,4,a\n5,6,b\n", { name: "t", label: "label" });
  assert.deepEqual(d.outputs, [{ name: "output", task: "classification", classes: ["a", "b"], shape: [1] }]);
  assert.deepEqual([...d.targets], [1, 0, 1]);
  assert.deepEqual([...d.features], [1, 2, 3, 4, 5, 6]);
  const r = parseCsvDataset("x,t\n1,0.5\n2,1.5\n", { name: "r" });
  assert.equal(r.outputs[0].task, "regression");
  // An empty cell is a missing value now (issue 8), no longer "not a number".
  assert.throws(() => parseCsvDataset("x,label\n,a\n2,b\n", { name: "t", label: "label" }), /CSV row 2, column 'x': is empty; 1 cell is missing in column 'x'.*\?missing=impute/);
  assert.throws(() => parseCsvDataset("x,label\n1,a\n", { label: "label" }), /querystring.name: is required/);
  assert.throws(() => parseCsvDataset("x,label\n1,a\n2,a\n", { name: "t", label: "label" }), /at least 2 classes/);
});

test("JSON datasets take images as nested arrays, or flat rows with an inputShape", () => {
  const img = (v: number) => [[[v], [v]], [[v], [v]]];
  const d = parseJsonDataset({ name: "imgs", features: [img(0), img(1)], labels: ["a", "b"] });
  assert.deepEqual(d.inputs, [{ name: "input", shape: [2, 2, 1] }]);
  assert.deepEqual([...d.features], [0, 0, 0, 0, 1, 1, 1, 1]);
  assert.throws(() => parseJsonDataset({ name: "imgs", features: [img(0), [[[1], [1]], [[1]]]], labels: ["a", "b"] }), /features\[1\]\[1\]: expected 2 arrays, got 1/);
  const flat = parseJsonDataset({ name: "flat", features: [[1, 2, 3, 4], [5, 6, 7, 8]], labels: ["a", "b"], inputShape: [2, 2, 1] });
  assert.deepEqual(flat.inputs[0].shape, [2, 2, 1]);
  assert.throws(() => parseJsonDataset({ name: "flat", features: [[1, 2, 3]], labels: ["a"], inputShape: [2, 2] }), /inputShape: \[2, 2\] holds 4 values, a row has 3/);
});

test("JSON datasets check every row and value", () => {
  assert.throws(() => parseJsonDataset({ name: "j", features: [[1, 2], [3, Infinity]], labels: ["a", "b"] }), /features\[1\]\[1\]: expected a finite number/);
  assert.throws(() => parseJsonDataset({ name: "j", features: [[1, 2]], labels: ["a", "b"] }), /labels: has 2 entries, features has 1 rows/);
  assert.throws(() => parseJsonDataset({ name: "j", features: [[1], [2]], labels: ["a", "x"], task: "regression" }), /labels\[0\]: label 'a' is not a number/);
  const d = parseJsonDataset({ name: "j", features: [[1], [2], [3]], labels: [10, 2, 10], task: "classification" });
  assert.deepEqual(d.outputs[0].classes, ["2", "10"], "numeric class names sort numerically");
});
