// Tabular data in every format (issue 8): CSV and TSV, NDJSON, JSON `rows` and `columns` share one
// column rule (formats/tabular.ts); JSON `sequences` are padded. Checked on the parsers' output.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { CreateDatasetJson } from "../../lib/data/dataset-schema.ts";
import { parseCsvDataset, TSV } from "../../lib/data/formats/csv.ts";
import { parseJsonDataset } from "../../lib/data/formats/json.ts";
import { parseNdjsonDataset } from "../../lib/data/formats/ndjson.ts";
import { classLikeIntegers } from "../../lib/data/labels.ts";
import type { ParsedDataset } from "../../lib/data/packing.ts";
import { ValidationError } from "../../lib/errors.ts";

const csv = (text: string, query: Record<string, string> = {}) => parseCsvDataset(text, { name: "t", ...query });
const json = (body: Omit<CreateDatasetJson, "name">) => parseJsonDataset({ name: "j", ...body } as CreateDatasetJson);
const ndjson = (text: string, query: Record<string, string> = {}) => parseNdjsonDataset(text, { name: "n", ...query });
const values = (d: ParsedDataset) => [...d.features].map((v) => (Number.isNaN(v) ? "NaN" : v));

/** Asserts a 400 at `path` whose message matches `message`. */
function throwsAt(f: () => unknown, path: string, message: RegExp) {
  assert.throws(f, (e: unknown) => {
    assert.ok(e instanceof ValidationError, `expected a ValidationError, got ${String(e)}`);
    assert.equal(e.problems[0].path, path, e.message);
    assert.match(e.problems[0].message, message);
    return true;
  });
}

const PEOPLE = "age,city,income,bought\n34,Paris,52000,yes\n28,Lyon,38000,no\n45,Paris,61000,yes\n51,Nantes,58000,no\n";

describe("column kinds", () => {
  test("numbers make a numeric column, text a categorical one with sorted categories stored as codes", () => {
    const d = csv(PEOPLE);
    assert.deepEqual(d.inputs, [{
      name: "input", shape: [3], kind: "tabular",
      columns: [{ name: "age", kind: "numeric" }, { name: "city", kind: "categorical", categories: ["Lyon", "Nantes", "Paris"] }, { name: "income", kind: "numeric" }],
    }]);
    assert.deepEqual(values(d), [34, 2, 52000, 28, 0, 38000, 45, 2, 61000, 51, 1, 58000]);
    assert.deepEqual(d.featureNames, ["age", "city", "income"]);
    assert.deepEqual(d.outputs, [{ name: "output", task: "classification", classes: ["no", "yes"], shape: [1] }]);
    assert.deepEqual([...d.targets], [1, 0, 1, 0]);
    assert.deepEqual(d.warnings, []);
  });

  test("the same rows in another order give the same categories and codes", () => {
    const [head, ...rows] = PEOPLE.trim().split("\n");
    const d = csv([head, ...rows.reverse()].join("\n"));
    assert.deepEqual(d.inputs[0].columns![1].categories, ["Lyon", "Nantes", "Paris"]);
    assert.deepEqual(values(d).filter((_, i) => i % 3 === 1), [1, 2, 0, 2]);
  });

  test("?categorical= makes number columns categories, ordered by value", () => {
    const d = csv("zip,size,y\n75001,10,a\n69002,2,b\n75001,10,a\n", { categorical: "zip, size" });
    assert.deepEqual(d.inputs[0].columns, [
      { name: "zip", kind: "categorical", categories: ["69002", "75001"] },
      { name: "size", kind: "categorical", categories: ["2", "10"] },
    ]);
    assert.deepEqual(values(d), [1, 1, 0, 0, 1, 1]);
  });

  test("a column of mostly numbers with some text is a 400 at its first text cell that suggests ?categorical=", () => {
    throwsAt(() => csv("age,y\n34,a\n28,b\nforty,a\n51,b\n"), "CSV row 4, column 'age'", /'forty' is not a number, though 3 of the column's 4 values are; correct it, or upload with \?categorical=age/);
  });

  test("a column of mostly text with some numbers is a 400 at its first number that suggests ?categorical=", () => {
    throwsAt(() => csv("size,y\nS,a\nM,b\n42,a\nL,b\n"), "CSV row 4, column 'size'", /'42' is a number, though 3 of the column's 4 values are text; upload with \?categorical=size/);
    assert.equal(csv("size,y\nS,a\nM,b\n42,a\nL,b\n", { categorical: "size" }).inputs[0].columns![0].categories!.join(), "42,L,M,S");
  });

  test("non-decimal numbers (hex, Infinity) are text", () => {
    throwsAt(() => csv("x,y\n1,a\n0x10,b\n3,a\n"), "CSV row 3, column 'x'", /'0x10' is not a number/);
    assert.equal(csv("x,y\nInfinity,a\n0x10,b\n").inputs[0].columns![0].kind, "categorical");
  });

  test("?categorical= must name a feature column", () => {
    throwsAt(() => csv(PEOPLE, { categorical: "town" }), "querystring.categorical", /column 'town' is not in the CSV header \(age, city, income, bought\)/);
    throwsAt(() => csv(PEOPLE, { categorical: "bought" }), "querystring.categorical", /'bought' is the label column.*\?task=classification/);
  });

  test("a label column that does not exist, or no feature column, is a 400", () => {
    throwsAt(() => csv(PEOPLE, { label: "price" }), "querystring.label", /column 'price' is not in the CSV header/);
    throwsAt(() => csv("y\na\nb\n"), "CSV header", /needs at least one feature column besides the label/);
  });
});

describe("missing cells", () => {
  const GAPS = "age,city,y\n34,Paris,a\n,Lyon,b\n45,NA,a\nn/a,?,b\n29,null,a\n31, NaN ,b\n";

  test("are a 400 by default, naming how many, where the first is, and ?missing=impute", () => {
    throwsAt(() => csv(GAPS), "CSV row 3, column 'age'", /is empty; 6 cells are missing in columns 'age', 'city'\. Fill them in, or upload with \?missing=impute/);
    throwsAt(() => csv("x,y\n1,a\n2,b\nNA,a\n"), "CSV row 4, column 'x'", /'NA' marks a missing value; 1 cell is missing in column 'x'\. Fill it in/);
  });

  test("with ?missing=impute are NaN, counted per column; a missing category is NaN too", () => {
    const d = csv(GAPS, { missing: "impute" });
    assert.deepEqual(d.inputs[0].columns, [
      { name: "age", kind: "numeric", missing: 2 },
      { name: "city", kind: "categorical", categories: ["Lyon", "Paris"], missing: 4 },
    ]);
    assert.deepEqual(values(d), [34, 1, "NaN", 0, 45, "NaN", "NaN", "NaN", 29, "NaN", 31, "NaN"]);
  });

  test("a missing label is a 400 even with ?missing=impute", () => {
    throwsAt(() => csv("x,y\n1,a\n2,NA\n3,b\n", { missing: "impute" }), "CSV row 3, column 'y'", /the label is missing \('NA'\); every row needs one/);
    throwsAt(() => csv("x,y\n1,a\n2,\n3,b\n", { missing: "impute" }), "CSV row 3, column 'y'", /the label is missing; every row needs one/);
  });

  test("a column with no value at all is a 400", () => {
    throwsAt(() => csv("x,z,y\n1,,a\n2,NA,b\n", { missing: "impute" }), "CSV column 'z'", /has no values: all of its 2 cells are missing/);
  });
});

describe("numeric labels that look like classes", () => {
  const digits = (n: number) => "pixel,digit\n" + Array.from({ length: n }, (_, i) => `${i * 0.5},${i % 10}`).join("\n");

  test("stay regression but carry a warning that names ?task=classification", () => {
    const d = csv(digits(100));
    assert.equal(d.outputs[0].task, "regression");
    assert.deepEqual(d.warnings, ["label column 'digit' holds 10 distinct integers: if these are classes, upload with ?task=classification"]);
  });

  test("no warning when the task is given, or the labels look like values", () => {
    assert.deepEqual(csv(digits(100), { task: "regression" }).warnings, []);
    assert.deepEqual(csv(digits(100), { task: "classification" }).outputs[0].classes, ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"]);
    assert.deepEqual(csv("x,price\n1,1.5\n2,2.5\n3,1.5\n4,2.5\n").warnings, []);
  });

  test("the rule: integers, at least 2, at most 20 (or 5% of the rows), each seen twice on average", () => {
    assert.equal(classLikeIntegers([0, 1, 0, 1]), 2);
    assert.equal(classLikeIntegers([1, 1, 1]), undefined, "one value");
    assert.equal(classLikeIntegers([0, 1, 2, 3]), undefined, "every value once");
    assert.equal(classLikeIntegers([0, 1.5, 0, 1]), undefined, "not integers");
    assert.equal(classLikeIntegers(Array.from({ length: 100 }, (_, i) => i % 30)), undefined, "30 values in 100 rows");
    assert.equal(classLikeIntegers(Array.from({ length: 1000 }, (_, i) => i % 30)), 30, "30 values in 1000 rows (≤ 5%)");
  });

  test("JSON labels get the warning too, with the JSON way of saying it", () => {
    const d = json({ features: [[1], [2], [3], [4]], labels: [1, 2, 1, 2] });
    assert.deepEqual(d.warnings, ['labels hold 2 distinct integers: if these are classes, upload with "task": "classification"']);
    const named = json({ inputs: { x: [[1], [2], [3], [4]] }, outputs: { digit: [1, 2, 1, 2], value: [0.5, 1, 2, 3] } });
    assert.deepEqual(named.warnings, ['outputs.digit hold 2 distinct integers: if these are classes, upload with "task": {"digit": "classification"}']);
  });

  test("a categorical column whose every value differs is named in a warning", () => {
    const d = csv("name,y\n" + Array.from({ length: 30 }, (_, i) => `person${i},${i % 2 ? "a" : "b"}`).join("\n"));
    assert.match(d.warnings![0], /column 'name' holds a different value on every row.*identifier/);
  });
});

describe("CSV and TSV text", () => {
  test("a UTF-8 BOM, CRLF and quoted fields", () => {
    const d = csv('\ufeff"city, country",n,y\r\n"Paris, FR",1,a\r\n"Lyon, FR",2,"b"\r\n');
    assert.deepEqual(d.featureNames, ["city, country", "n"]);
    assert.deepEqual(d.inputs[0].columns![0].categories, ["Lyon, FR", "Paris, FR"]);
    assert.deepEqual(d.outputs[0].classes, ["a", "b"]);
  });

  test("TSV: tab-separated, problems named as TSV rows", () => {
    const d = parseCsvDataset("\ufeffage\tcity\ty\r\n34\tParis, FR\ta\r\n28\tLyon\tb\r\n", { name: "t" }, TSV);
    assert.deepEqual(d.featureNames, ["age", "city"]);
    assert.deepEqual(d.inputs[0].columns![1].categories, ["Lyon", "Paris, FR"]);
    throwsAt(() => parseCsvDataset("a\tb\n1\t2\n3\n", { name: "t" }, TSV), "TSV row 3", /1 columns, header has 2/);
    throwsAt(() => parseCsvDataset("a\tb\n1\tx\n", { name: "t" }, TSV), "TSV column 'b'", /at least 2 classes/);
  });

  test("empty, header only, duplicate and empty header names, ragged rows", () => {
    throwsAt(() => csv(""), "CSV", /is empty/);
    throwsAt(() => csv("\ufeff"), "CSV", /is empty/);
    throwsAt(() => csv("a,b\r\n"), "CSV", /has a header but no data rows/);
    throwsAt(() => csv("a,a\n1,2\n"), "CSV header column 2", /'a' appears twice/);
    throwsAt(() => csv("a,,c\n1,2,3\n"), "CSV header column 2", /is empty/);
    throwsAt(() => csv("a,b\n1,x\n1,2,3\n"), "CSV row 3", /3 columns, header has 2/);
  });
});

describe("NDJSON", () => {
  const LINES = '{"age": 34, "city": "Paris", "y": "a"}\n\n{"age": 28, "city": "Lyon", "y": "b"}\r\n{"city": "Paris", "y": "a", "age": 45}\n';

  test("one object per line, blank lines skipped, keys in any order", () => {
    const d = ndjson(LINES);
    assert.deepEqual(d.inputs[0].columns, [{ name: "age", kind: "numeric" }, { name: "city", kind: "categorical", categories: ["Lyon", "Paris"] }]);
    assert.deepEqual(values(d), [34, 1, 28, 0, 45, 1]);
    assert.deepEqual([...d.targets], [0, 1, 0]);
  });

  test("null is missing", () => {
    const text = '{"x": 1, "y": "a"}\n{"x": null, "y": "b"}\n';
    throwsAt(() => ndjson(text), "NDJSON line 2, column 'x'", /is null; 1 cell is missing.*\?missing=impute/);
    assert.deepEqual(ndjson(text, { missing: "impute" }).inputs[0].columns, [{ name: "x", kind: "numeric", missing: 1 }]);
  });

  test("a bad line is a 400 at its line number", () => {
    throwsAt(() => ndjson('{"x": 1, "y": "a"}\n\n{"x": 2, "y": \n'), "NDJSON line 3", /is not valid JSON/);
    throwsAt(() => ndjson('{"x": 1, "y": "a"}\n[2, "b"]\n'), "NDJSON line 2", /expected a JSON object of column values/);
    throwsAt(() => ndjson('{"x": 1, "y": "a"}\n{"x": 2}\n'), "NDJSON line 2", /has no 'y', which line 1 has/);
    throwsAt(() => ndjson('{"x": 1, "y": "a"}\n{"x": 2, "y": "b", "z": 3}\n'), "NDJSON line 2", /has 'z', which line 1 does not/);
    throwsAt(() => ndjson('{"x": 1, "y": "a"}\n{"x": true, "y": "b"}\n'), "NDJSON line 2, column 'x'", /expected a number, a string or null/);
    throwsAt(() => ndjson('{"x": 1, "y": "a"}\n{"x": [2], "y": "b"}\n'), "NDJSON line 2, column 'x'", /expected a number, a string or null/);
    throwsAt(() => ndjson('{"x": 1, "y": "a"}\n{"x": 1e999, "y": "b"}\n'), "NDJSON line 2, column 'x'", /expected a number/);
    throwsAt(() => ndjson("[".repeat(100_000)), "NDJSON line 1", /is not valid JSON/);
  });

  test("text that Postgres cannot store, escaped in JSON, is a 400 at its place", () => {
    throwsAt(() => ndjson('{"x": 1, "y": "a\\u0000"}\n'), "NDJSON line 1, column 'y'", /NUL/);
    throwsAt(() => ndjson('{"x": 1, "y": "a\\ud800"}\n'), "NDJSON line 1, column 'y'", /surrogate/);
    throwsAt(() => ndjson('{"x\\u0000": 1, "y": "a"}\n'), "NDJSON line 1", /a key contains a NUL/);
  });

  test("empty, no name, a missing label", () => {
    throwsAt(() => ndjson("\n  \n"), "NDJSON", /is empty; expected one JSON object per line/);
    throwsAt(() => parseNdjsonDataset('{"x": 1, "y": "a"}\n', {}), "querystring.name", /is required for a NDJSON upload/);
    throwsAt(() => ndjson('{"x": 1, "y": "a"}\n{"x": 2, "y": null}\n', { missing: "impute" }), "NDJSON line 2, column 'y'", /the label is missing/);
  });
});

describe("JSON rows and columns", () => {
  const ROWS = [
    { sepal_length: 5.1, color: "red", species: "setosa" },
    { sepal_length: 6.7, color: "blue", species: "virginica" },
    { sepal_length: null, color: "red", species: "setosa" },
  ];

  test("rows: the label is the last key of the first row by default; null is missing", () => {
    const d = json({ rows: ROWS, missing: "impute" });
    assert.deepEqual(d.inputs[0].columns, [
      { name: "sepal_length", kind: "numeric", missing: 1 },
      { name: "color", kind: "categorical", categories: ["blue", "red"] },
    ]);
    assert.deepEqual(values(d), [5.1, 1, 6.7, 0, "NaN", 1].map((v) => (typeof v === "number" ? Math.fround(v) : v)));
    assert.deepEqual(d.outputs[0].classes, ["setosa", "virginica"]);
    throwsAt(() => json({ rows: ROWS }), "rows[2].sepal_length", /is null; 1 cell is missing.*"missing": "impute"/);
  });

  test("columns: the same table by column; `label` picks the label column", () => {
    const d = json({ columns: { sepal_length: [5.1, 6.7, 5.0], color: ["red", "blue", "red"], species: ["setosa", "virginica", "setosa"] }, label: "color" });
    assert.deepEqual(d.featureNames, ["sepal_length", "species"]);
    assert.deepEqual(d.outputs[0].classes, ["blue", "red"]);
    assert.deepEqual(d.inputs[0].columns![1], { name: "species", kind: "categorical", categories: ["setosa", "virginica"] });
  });

  test("rows and columns go through the same inference as a CSV", () => {
    const rows = [{ zip: 75001, n: "1", y: 1 }, { zip: 69002, n: "x", y: 2 }, { zip: 75001, n: "3", y: 1 }, { zip: 13001, n: "4", y: 2 }];
    throwsAt(() => json({ rows }), "rows[1].n", /'x' is not a number, though 3 of the column's 4 values are; correct it, or upload with "categorical": \["n"\]/);
    const d = json({ rows, categorical: ["zip", "n"] });
    assert.deepEqual(d.inputs[0].columns!.map((c) => c.categories), [["13001", "69002", "75001"], ["1", "3", "4", "x"]]);
    assert.equal(d.outputs[0].task, "regression");
    assert.deepEqual(d.warnings, ['label column \'y\' holds 2 distinct integers: if these are classes, upload with "task": "classification"']);
    throwsAt(() => json({ columns: { a: [1, "x", 2, 3], y: ["p", "q", "p", "q"] } }), "columns.a[1]", /'x' is not a number/);
  });

  test("rows with different keys are a 400 at the row", () => {
    throwsAt(() => json({ rows: [ROWS[0], ROWS[1], ROWS[2], { sepal_length: 1, species: "setosa" }] }), "rows[3]", /has no 'color', which rows\[0\] has/);
    throwsAt(() => json({ rows: [ROWS[0], { ...ROWS[1], extra: 1 }] }), "rows[1]", /has 'extra', which rows\[0\] does not/);
    throwsAt(() => json({ rows: [{}] }), "rows[0]", /is an empty object/);
  });

  test("columns of different lengths, a missing label, one class, an unknown label", () => {
    throwsAt(() => json({ columns: { a: [1, 2, 3], y: ["p", "q"] } }), "columns.y", /has 2 values, columns.a has 3/);
    throwsAt(() => json({ columns: { a: [1, 2], y: ["p", null] }, missing: "impute" }), "columns.y[1]", /the label is missing/);
    throwsAt(() => json({ columns: { a: [1, 2], y: ["p", "p"] } }), "columns.y", /at least 2 classes/);
    throwsAt(() => json({ rows: ROWS, label: "petal" }), "label", /column 'petal' is not in the keys of rows\[0\]/);
    throwsAt(() => json({ columns: { a: [1, 2], y: ["p", "q"] }, categorical: ["b"] }), "categorical", /column 'b' is not in `columns`/);
  });

  test("one form of rows per body, and options of another form are a 400", () => {
    throwsAt(() => json({ features: [[1]], rows: ROWS, labels: ["a"] }), "rows", /give either `features` \(one input\) or `rows`, not both/);
    throwsAt(() => json({ rows: ROWS, columns: { a: [1] } }), "columns", /give either `rows` \(a table by rows\) or `columns`, not both/);
    throwsAt(() => json({ labels: ["a"] }), "features", /is required: give `features` \(one input\) or `inputs`.*`rows` or `columns`.*`sequences`/);
    throwsAt(() => json({ rows: ROWS, labels: ["a", "b", "c"] }), "labels", /the labels of `rows` are one of its columns: name it with `label`/);
    throwsAt(() => json({ rows: ROWS, inputShape: [2] }), "inputShape", /reshapes plain `features`; this body gives `rows`/);
    throwsAt(() => json({ features: [[1], [2]], labels: ["a", "b"], label: "y" }), "label", /names the label column of `rows` or `columns`/);
    throwsAt(() => json({ features: [[1], [2]], labels: ["a", "b"], sequenceLength: 3 }), "sequenceLength", /pads or truncates `sequences`/);
    throwsAt(() => json({ rows: ROWS, task: { output: "classification" } }), "task", /is one task for `rows`/);
  });
});

describe("JSON sequences", () => {
  const SEQ = { sequences: [[3, 1, 4], [1, 5], [9, 2, 6, 5, 3]], labels: ["a", "b", "a"] };

  test("token ids are padded with 0 at the end and truncated at the end by default", () => {
    const d = json({ ...SEQ, sequenceLength: 4 });
    assert.deepEqual(d.inputs, [{ name: "input", shape: [4], kind: "sequence" }]);
    assert.deepEqual([...d.features], [3, 1, 4, 0, 1, 5, 0, 0, 9, 2, 6, 5]);
    assert.deepEqual(d.featureNames, []);
    assert.deepEqual(d.outputs[0].classes, ["a", "b"]);
  });

  test("padding and truncating: pre", () => {
    assert.deepEqual([...json({ ...SEQ, sequenceLength: 4, padding: "pre" }).features], [0, 3, 1, 4, 0, 0, 1, 5, 9, 2, 6, 5]);
    assert.deepEqual([...json({ ...SEQ, sequenceLength: 4, truncating: "pre" }).features], [3, 1, 4, 0, 1, 5, 0, 0, 2, 6, 5, 3]);
  });

  test("without sequenceLength, the longest sequence sets it", () => {
    assert.deepEqual(json(SEQ).inputs[0].shape, [5]);
  });

  test("rows of [time, features] pad with rows of zeros", () => {
    const d = json({ sequences: [[[1, 2]], [[3, 4], [5, 6], [7, 8]]], sequenceLength: 2, labels: [0.5, 1.5] });
    assert.deepEqual(d.inputs, [{ name: "input", shape: [2, 2], kind: "sequence" }]);
    assert.deepEqual([...d.features], [1, 2, 0, 0, 3, 4, 5, 6]);
  });

  test("every value is checked, kept or truncated, and named by its place", () => {
    throwsAt(() => json({ ...SEQ, sequences: [[3, 1, 4], [1, "5"], [9]] } as never), "sequences[1][1]", /expected a finite number/);
    throwsAt(() => json({ ...SEQ, sequences: [[3, 1, 4], [1, 5], [9, 2, [6]]] }, ), "sequences[2][2]", /is an array, sequences\[0\]\[0\] is a number/);
    throwsAt(() => json({ ...SEQ, sequenceLength: 2, sequences: [[3, 1, 4], [1, 5], [9, 2, 6, 5, NaN]] }), "sequences[2][4]", /expected a finite number/);
    throwsAt(() => json({ sequences: [[[1, 2]], [[3]]], labels: [1, 2] }), "sequences[1][0]", /expected 2 numbers, got 1/);
    throwsAt(() => json({ sequences: [[], []], labels: [1, 2] }), "sequences", /every sequence is empty/);
    throwsAt(() => json({ ...SEQ, labels: ["a", "b"] }), "labels", /has 2 entries, sequences has 3 rows/);
    throwsAt(() => json({ sequences: Array.from({ length: 1000 }, () => [1]), sequenceLength: 65_536, labels: Array.from({ length: 1000 }, (_, i) => i % 2) }), "sequenceLength", /more than the 33554432 a dataset input may hold/);
  });

  test("an empty sequence is all padding", () => {
    assert.deepEqual([...json({ sequences: [[1, 2], []], labels: ["a", "b"] }).features], [1, 2, 0, 0]);
  });
});
