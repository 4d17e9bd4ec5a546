// Tables read from a file a chunk at a time (issue 8, no size cliff): the chunked readers give
// exactly what reading the whole text gives, whatever the chunk size (a record, a quoted line
// break, a CRLF or a multi-byte character split between chunks), and the same problems at the same
// places; streamTabular hands the rows over in several chunks, and a problem anywhere in the file
// is found in the first read, before the sink is told anything.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, describe, test } from "node:test";
import { CSV, openCsvFile, parseCsv, parseCsvDataset, plainNumber, streamCsvDataset, TSV, type Delimited } from "../../lib/data/formats/csv.ts";
import { openNdjsonFile, parseNdjsonDataset, streamNdjsonDataset } from "../../lib/data/formats/ndjson.ts";
import { MAX_CATEGORIES, queryOptions, streamTabular, textPlaces, type TabularRead } from "../../lib/data/formats/tabular.ts";
import { collectRows, type DatasetLayout, type RowSink } from "../../lib/data/packing.ts";
import { ValidationError } from "../../lib/errors.ts";

const dir = mkdtempSync(path.join(tmpdir(), "trainyard-stream-test-"));
after(() => rmSync(dir, { recursive: true, force: true }));
let files = 0;
function fileOf(text: string | Buffer): string {
  const file = path.join(dir, `f${files++}`);
  writeFileSync(file, text);
  return file;
}

async function allRows(read: TabularRead): Promise<{ cells: unknown[]; at: number }[]> {
  const rows = [];
  for await (const batch of read.batches) rows.push(...batch);
  return rows;
}

async function rejection(p: Promise<unknown>): Promise<ValidationError> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof ValidationError, `expected a ValidationError, got ${String(err)}`);
    return err;
  }
  assert.fail("expected a rejection");
}

const syncProblem = (f: () => unknown): ValidationError => {
  try {
    f();
  } catch (err) {
    assert.ok(err instanceof ValidationError, String(err));
    return err;
  }
  assert.fail("expected a problem");
};

// Every hard case at once: a BOM, CRLF and LF, a quoted delimiter, a quoted line break, doubled
// quotes, text after a closing quote, blank lines, and characters of 2, 3 and 4 UTF-8 bytes.
const TRICKY = '\ufeffname,note,x,label\r\n"Zoë","a, b",1.5,yes\r\n\r\nRené,"two\nlines",2,no\n"say ""hi""",naïve,3,yes\n€uro,"🙂"x,4,no\n日本,plain,5,yes\n';

describe("CSV read a chunk at a time", () => {
  test("plain decimals are read as numbers without a string, exactly as Number() reads them and String() writes them back", () => {
    const plain = ["0", "7", "-7", "12.5", "-0.25", "3.14159", "123456789012345", "0.000001", "98765.4321", "1.1", "0.1", "2.675", "-999999.999999"];
    for (const t of plain) {
      const v = plainNumber(t, 0, t.length);
      assert.equal(v, Number(t), t);
      assert.equal(String(v), t, t);
    }
    // Anything String() would write otherwise stays text (and is read by the one rule for numbers written as text).
    for (const t of ["", "-", "-0", "00", "01", "1.", ".5", "1.50", "0.0", "+1", "1e3", " 7", "7 ", "1,5", "1234567890123456", "0.0000001", "0x1", "NaN", "1.2.3"]) {
      assert.ok(Number.isNaN(plainNumber(t, 0, t.length)), `'${t}' read as ${plainNumber(t, 0, t.length)}`);
    }
    // Random ones: the same double as Number().
    let seed = 7;
    const random = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    for (let i = 0; i < 20_000; i++) {
      const t = String(Math.round((random() - 0.5) * 10 ** Math.floor(random() * 12)) / 10 ** Math.floor(random() * 9));
      const v = plainNumber(t, 0, t.length);
      if (!Number.isNaN(v)) assert.equal(v, Number(t), t);
      else assert.ok(String(Number(t)) !== t || /e/.test(t) || t === "-0", t);
    }
  });

  for (const readBytes of [1, 2, 3, 5, 7, 64, 1 << 20]) {
    test(`chunks of ${readBytes} bytes give the records of the whole text`, async () => {
      const whole = parseCsv(TRICKY);
      const read = await openCsvFile(fileOf(TRICKY), CSV, readBytes);
      assert.deepEqual(read.header, whole.header);
      const rows = await allRows(read);
      // Plain decimals come as numbers (which String() writes back as their text), the rest as text.
      assert.deepEqual(rows.map((r) => r.cells.map(String)), whole.rows);
      assert.ok(rows.some((r) => r.cells.some((c) => typeof c === "number")));
      assert.deepEqual(rows.map((r) => r.at), whole.rowNumbers);
    });
  }

  test("TSV too", async () => {
    const text = "a\tb\r\n1\t\"x\ty\"\r\n2\tz\r\n";
    const rows = await allRows(await openCsvFile(fileOf(text), TSV, 3));
    assert.deepEqual(rows.map((r) => r.cells.map(String)), parseCsv(text, TSV).rows);
  });

  const problems: [string, string, string, RegExp][] = [
    ["ragged", "a,b,c\n1,2,3\n1,2\n", "CSV row 3", /2 columns, header has 3/],
    ["unclosed quote", 'a,b\n1,2\n"open,1\n', "CSV row 3", /quoted field is never closed/],
    ["empty", "", "CSV", /is empty/],
    ["blank lines only", "\n\r\n\n", "CSV", /is empty/],
    ["header only", "a,b\r\n", "CSV", /has a header but no data rows/],
    ["duplicate column", "a,a\n1,2\n", "CSV header column 2", /'a' appears twice/],
    ["NUL in a cell", "a,b\n1,2\n3,x\u0000y\n", "CSV row 3, column 'b'", /NUL character/],
  ];
  for (const [what, text, where, message] of problems) {
    test(`${what}: the same problem at the same place as the whole text`, async () => {
      for (const readBytes of [1, 4, 1 << 20]) {
        const err = await rejection((async () => allRows(await openCsvFile(fileOf(text), CSV, readBytes)))());
        assert.equal(err.problems[0].path, where, `${what}, chunks of ${readBytes}: ${err.message}`);
        assert.match(err.problems[0].message, message);
      }
      const whole = syncProblem(() => parseCsv(text));
      assert.equal(whole.problems[0].path, where);
    });
  }
});

describe("NDJSON read a chunk at a time", () => {
  const TEXT = '\ufeff{"x": 1.5, "city": "Zoë", "y": "a"}\r\n\n{"x": 2, "city": "日本", "y": "b"}\n{"y": "a", "city": "🙂", "x": null}';
  for (const readBytes of [1, 2, 3, 7, 1 << 20]) {
    test(`chunks of ${readBytes} bytes give the rows of the whole text`, async () => {
      const read = await openNdjsonFile(fileOf(TEXT), readBytes);
      assert.deepEqual(read.header, ["x", "city", "y"]);
      assert.equal(read.headerAt, 1);
      const rows = await allRows(read);
      assert.deepEqual(rows, [
        { cells: [1.5, "Zoë", "a"], at: 1 },
        { cells: [2, "日本", "b"], at: 3 },
        { cells: [null, "🙂", "a"], at: 4 },
      ]);
    });
  }

  test("a bad line is found at its line, whatever the chunks", async () => {
    const text = '{"x": 1, "y": "a"}\n\n{"x": 2, "y": \n{"x": 3, "y": "b"}\n';
    for (const readBytes of [1, 5, 1 << 20]) {
      const err = await rejection((async () => allRows(await openNdjsonFile(fileOf(text), readBytes)))());
      assert.equal(err.problems[0].path, "NDJSON line 3");
    }
  });
});

/** A sink that records what it is told. */
function recordingSink(): RowSink & { layout?: DatasetLayout; appends: number[] } {
  const sink: RowSink & { layout?: DatasetLayout; appends: number[] } = {
    appends: [],
    async begin(layout) {
      sink.layout = layout;
    },
    async append(rows) {
      sink.appends.push(rows);
    },
  };
  return sink;
}

describe("streamTabular: the same dataset as the whole text, handed over a chunk at a time", () => {
  test("CSV: columns, categories, classes, warnings and values equal the in-memory parse", async () => {
    const lines = ["id,size,colour,score,label"];
    for (let i = 0; i < 3000; i++) lines.push(`${i},${(i % 7) * 1.25},${["red", "green", "blue"][i % 3]},${i % 2 === 0 ? "NA" : i / 10},${i % 4}`);
    const text = `${lines.join("\r\n")}\r\n`;
    const query = { name: "big", categorical: "size", missing: "impute" as const };
    const whole = parseCsvDataset(text, query);
    const streamed = await collectRows((sink) => streamCsvDataset(fileOf(text), query, sink));
    assert.deepEqual(streamed, whole);
    // Numeric labels with few distinct integers: the class-id warning, from counts the scan kept.
    assert.match(whole.warnings!.join("\n"), /label column 'label' holds 4 distinct integers/);
  });

  test("NDJSON: equal too", async () => {
    const lines = Array.from({ length: 500 }, (_, i) => JSON.stringify({ a: i * 0.5, b: ["x", "y"][i % 2], y: i % 3 === 0 ? "p" : "q" }));
    const text = lines.join("\n");
    const whole = parseNdjsonDataset(text, { name: "n" });
    const streamed = await collectRows((sink) => streamNdjsonDataset(fileOf(text), { name: "n" }, sink));
    assert.deepEqual(streamed, whole);
  });

  test("many rows arrive in several appends of at most a chunk, never all at once", async () => {
    const lines = ["a,b,label"];
    for (let i = 0; i < 10_000; i++) lines.push(`${i},${i * 2},${i % 2 ? "odd" : "even"}`);
    const file = fileOf(lines.join("\n"));
    const sink = recordingSink();
    // 4,000 values a chunk: 1,000 rows as scanned (two features, the label's class and value).
    await streamTabular(() => openCsvFile(file), queryOptions({ name: "many" }, "CSV"), () => textPlaces("CSV", "row", "CSV header", "the CSV header"), sink, `${file}.scanned`, 4000);
    assert.deepEqual(sink.appends, Array(10).fill(1000));
    assert.deepEqual(sink.layout!.outputs[0].classes, ["even", "odd"]);
  });

  test("a problem on the last row is found before the sink hears of the dataset", async () => {
    const lines = ["a,b,label"];
    for (let i = 0; i < 50_000; i++) lines.push(`${i},${i},x${i % 3}`);
    lines.push("1,oops,x1");
    const sink = recordingSink();
    const err = await rejection(streamCsvDataset(fileOf(lines.join("\n")), { name: "late" }, sink));
    assert.equal(err.problems[0].path, "CSV row 50002, column 'b'");
    assert.match(err.problems[0].message, /'oops' is not a number, though 50000 of the column's 50001 values are/);
    assert.equal(sink.layout, undefined);
    assert.deepEqual(sink.appends, []);
  });

  test(`a categorical column of more than ${MAX_CATEGORIES.toLocaleString("en")} values is refused, naming it`, async () => {
    const lines = ["user,x,label"];
    for (let i = 0; i <= MAX_CATEGORIES; i++) lines.push(`u${i},${i},${i % 2}`);
    const err = await rejection(streamCsvDataset(fileOf(lines.join("\n")), { name: "ids", task: "classification" }, recordingSink()));
    assert.equal(err.problems[0].path, "CSV column 'user'");
    assert.match(err.problems[0].message, /more than 100,000 distinct values/);
  });
});

// The formats' own names in messages (CSV vs TSV) survive the chunked reader.
test("a TSV's problems say TSV", async () => {
  const format: Delimited = TSV;
  const err = await rejection((async () => allRows(await openCsvFile(fileOf("a\tb\n1\n"), format, 2)))());
  assert.equal(err.problems[0].path, "TSV row 2");
});
