// NDJSON (JSON Lines) uploads: one JSON object of column values per line, as pandas'
// `to_json(orient="records", lines=True)` and most log pipelines write them. The same table as a
// CSV's, so formats/tabular.ts decides what each column is; problems are named by line. A file is
// read a chunk at a time, so one far larger than memory streams.
import { createReadStream } from "node:fs";
import { StringDecoder } from "node:string_decoder";
import { ValidationError } from "../../errors.ts";
import type { UploadQuery } from "../dataset-schema.ts";
import type { LayoutAtEnd, ParsedDataset, RowSink } from "../packing.ts";
import { MAX_RECORD_CHARS } from "./csv.ts";
import { queryOptions, streamTabular, tabularDataset, textPlaces, type Cell, type TabularPlaces, type TabularRead, type TabularRow } from "./tabular.ts";

const NAME = "NDJSON";

/** Why a parsed string cannot be stored as text (a JSON escape can make a NUL or a lone surrogate), or undefined. */
function textProblem(s: string): string | undefined {
  if (s.includes("\u0000")) return "contains a NUL character (\\u0000), which no text may hold";
  if (!(s as string & { isWellFormed(): boolean }).isWellFormed()) return "contains an unpaired UTF-16 surrogate (such as \\ud800), which is not Unicode text";
  return undefined;
}

/** Bytes read from a file at a time. */
const READ_BYTES = 256 * 1024;

/** The keys of the first line, which every line must have. */
interface Header {
  keys: string[];
  line: number;
}

/** One line, parsed and checked; undefined for a blank line. The first line that holds an object makes the header. */
function lineRow(raw: string, line: number, header: Header | undefined): { row: TabularRow; header: Header } | undefined {
  if (raw.trim() === "") return undefined;
  const where = `${NAME} line ${line}`;
  // JSON.parse would call a raw NUL a bad control character; say what it is, as for other texts.
  if (raw.includes("\u0000")) throw ValidationError.at(where, textProblem("\u0000")!);
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch (err) {
    // Also a line nested too deep for the parser's stack (a RangeError).
    throw ValidationError.at(where, `is not valid JSON (${(err as Error).message})`);
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw ValidationError.at(where, `expected a JSON object of column values, such as {"x": 1.5, "color": "red", "label": "a"}`);
  }
  const row = value as Record<string, unknown>;
  const keys = Object.keys(row);
  if (!header) {
    header = { keys, line };
    if (keys.length === 0) throw ValidationError.at(where, "is an empty object; the first line names the columns");
    for (const k of keys) {
      if (k.trim() === "") throw ValidationError.at(where, "has an empty key; every column needs a name");
      const problem = textProblem(k);
      if (problem) throw ValidationError.at(where, `a key ${problem}`);
    }
  } else {
    const missing = header.keys.find((k) => !Object.hasOwn(row, k));
    if (missing !== undefined) throw ValidationError.at(where, `has no '${missing}', which line ${header.line} has: every line has the same keys`);
    if (keys.length !== header.keys.length) {
      const known = new Set(header.keys);
      throw ValidationError.at(where, `has '${keys.find((k) => !known.has(k))}', which line ${header.line} does not: every line has the same keys`);
    }
  }
  const cells = header.keys.map((k) => {
    const v = row[k];
    const bad = typeof v === "string" ? textProblem(v) : v === null || (typeof v === "number" && Number.isFinite(v)) ? undefined : "expected a number, a string or null";
    if (bad) throw ValidationError.at(`${where}, column '${k}'`, bad);
    return v as Cell;
  });
  return { row: { cells, at: line }, header };
}

/**
 * The rows of the complete lines of `text`, numbered from `line`. Unless `final`, the text after
 * its last line feed may go on in the next chunk: it is left unread (`rest`).
 */
function readLines(text: string, line: number, header: Header | undefined, final: boolean): { rows: TabularRow[]; rest: string; line: number; header: Header | undefined } {
  const rows: TabularRow[] = [];
  let start = 0;
  for (;;) {
    let end = text.indexOf("\n", start);
    if (end < 0) {
      if (!final) break;
      end = text.length;
    }
    const read = lineRow(text.slice(start, end), line++, header);
    if (read) {
      header = read.header;
      rows.push(read.row);
    }
    start = end + 1;
    if (start > text.length) break;
  }
  return { rows, rest: start < text.length ? text.slice(start) : "", line, header };
}

const withoutBom = (text: string) => (text.charCodeAt(0) === 0xfeff ? text.slice(1) : text);

/** Reads an NDJSON file from its start, a chunk (`readBytes` long) at a time: the keys of its first line, then its rows in batches. */
export async function openNdjsonFile(file: string, readBytes = READ_BYTES): Promise<TabularRead> {
  const source = fileText(file, readBytes)[Symbol.asyncIterator]();
  let carry = "";
  let line = 1;
  let done = false;
  let first = true;
  let header: Header | undefined;
  // The rows of the complete lines of the next chunk, or undefined at the end.
  const nextRows = async (): Promise<TabularRow[] | undefined> => {
    if (done) return undefined;
    const chunk = await source.next();
    let text = carry + (chunk.done ? "" : chunk.value);
    if (chunk.done) done = true;
    if (first && text.length > 0) {
      first = false;
      text = withoutBom(text);
    }
    const read = readLines(text, line, header, done);
    ({ line, header } = read);
    carry = read.rest;
    if (carry.length > MAX_RECORD_CHARS) throw ValidationError.at(`${NAME} line ${line}`, `does not end within ${MAX_RECORD_CHARS.toLocaleString("en")} characters`);
    return read.rows;
  };
  const close = () => void source.return?.(undefined);
  let pending: TabularRow[] = [];
  try {
    while (!header) {
      const rows = await nextRows();
      if (!rows) throw ValidationError.at(NAME, "is empty; expected one JSON object per line");
      pending = rows;
    }
  } catch (err) {
    close();
    throw err;
  }
  async function* batches(): AsyncGenerator<TabularRow[]> {
    try {
      for (let rows: TabularRow[] | undefined = pending; rows; rows = await nextRows()) yield rows;
    } finally {
      close();
    }
  }
  return { header: header.keys, headerAt: header.line, batches: batches() };
}

/** A file's text a chunk at a time (UTF-8 split between chunks is put back together). */
async function* fileText(file: string, readBytes: number): AsyncGenerator<string> {
  const decoder = new StringDecoder("utf8");
  for await (const chunk of createReadStream(file, { highWaterMark: readBytes })) yield decoder.write(chunk as Buffer);
  yield decoder.end();
}

/** The first line's keys name the columns; its line number names the header in messages. */
const places = (headerLine: number): TabularPlaces => textPlaces(NAME, "line", `${NAME} line ${headerLine}`, `the keys of ${NAME} line ${headerLine}`);

/** An NDJSON text as a dataset: the keys are the columns, the label by default the last key of the first line. */
export function parseNdjsonDataset(text: string, query: UploadQuery): ParsedDataset {
  const opts = queryOptions(query, NAME);
  const { rows, header } = readLines(withoutBom(text), 1, undefined, true);
  if (!header) throw ValidationError.at(NAME, "is empty; expected one JSON object per line");
  const p = places(header.line);
  return tabularDataset({ header: header.keys, rows: rows.length, cell: (i, j) => rows[i].cells[j] }, opts, { ...p, cell: (i, c) => p.cell(rows[i].at, c) });
}

/** An NDJSON file as a dataset, read a chunk at a time and handed to `sink` (the scanned rows wait in `<file>.scanned`); memory does not grow with the file. */
export function streamNdjsonDataset(file: string, query: UploadQuery, sink: RowSink): Promise<LayoutAtEnd> {
  return streamTabular(() => openNdjsonFile(file), queryOptions(query, NAME), (first) => places(first.headerAt), sink, `${file}.scanned`);
}
