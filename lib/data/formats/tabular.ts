// Tabular data, whatever it came as (CSV, TSV, NDJSON, JSON `rows` or `columns`): one rule for
// what each column is. Numbers make a numeric column, text a categorical one (stored as the code of
// its category), missing cells are an error unless the client asks to keep them, and the label
// column becomes classes or values. Preprocessing (scaling, one-hot, imputing) happens at training
// time from the column metadata written here.
//
// Read once, row by row, so that a file far larger than memory streams: the scan (TabularScan)
// counts what each column holds, collects categories and classes, and writes every row as numbers
// straight away, a category or a class as the code of its first appearance. Only at the end is
// everything decided, problems included, before anything is stored; the encoder then renumbers
// those codes in sorted order (the order stored datasets use, whatever the row order). A table in
// memory goes through the same steps (tabularDataset); a file through streamTabular, which keeps
// the scanned rows in a scratch file meanwhile and hands the final rows to a RowSink a chunk at a time.
import fs from "node:fs/promises";
import { ValidationError } from "../../errors.ts";
import { DEFAULT_INPUT, DEFAULT_OUTPUT } from "../../model-spec/model-spec-schema.ts";
import type { DatasetColumn, Task, UploadQuery } from "../dataset-schema.ts";
import { classLikeCount, decimalValue, sortNames } from "../labels.ts";
import type { DatasetLayout, LayoutAtEnd, ParsedDataset, RowSink } from "../packing.ts";

/** One cell as a format hands it over: text (CSV, or a JSON string), a JSON number, or JSON null (missing). */
export type Cell = string | number | null;

/** Texts that mean "no value", compared case-insensitively after trimming. */
export const MISSING_TOKENS: ReadonlySet<string> = new Set(["", "na", "n/a", "nan", "null", "?"]);

/** True when a cell holds no value: JSON null, or one of MISSING_TOKENS. */
export function isMissing(cell: Cell): boolean {
  if (cell === null) return true;
  if (typeof cell === "number") return false;
  // Most cells are longer than any token: skip the trim and the lowercase copy for them.
  if (cell.length > 4 && cell.trim().length > 4) return false;
  return MISSING_TOKENS.has(cell.trim().toLowerCase());
}

/** A table of cells: a header of column names and `rows` rows of exactly as many cells. */
export interface TabularTable {
  header: string[];
  rows: number;
  cell(row: number, column: number): Cell;
}

export interface TabularOptions {
  name: string;
  /** The label column; default the last. */
  label?: string;
  /** Default: classification when the label column holds text, regression when numbers. */
  task?: Task;
  /** Columns to treat as categories even if they hold numbers. */
  categorical?: string[];
  /** Missing cells are an error (default), or stored as NaN and counted (`impute`). */
  missing?: "error" | "impute";
}

/** How a format names the places and options its messages point at. */
export interface TabularPlaces {
  /** A cell: `CSV row 17, column 'age'`, `rows[3].color`; `row` is what the format numbers its rows by (a CSV row, an NDJSON line, an index). */
  cell(row: number, column: string): string;
  /** A whole column: `CSV column 'species'`, `columns.species`. */
  column(column: string): string;
  /** Where the column names are, as a place (`CSV header`) and in a sentence (`the CSV header`). */
  header: { path: string; text: string };
  /** Where the client sets an option: `querystring.label`, or `label` in a JSON body. */
  option(name: "label" | "categorical"): string;
  /** How the client sets an option, for a message to suggest: `?missing=impute`, `"missing": "impute"`. */
  hint(name: "categorical" | "missing" | "task", value: string): string;
}

/** Places in a delimited text (`CSV row 17, column 'age'`) or NDJSON (`NDJSON line 5, column 'age'`), with query-string options; rows are numbered by line. */
export function textPlaces(what: string, rowWord: "row" | "line", headerPath: string, headerText: string): TabularPlaces {
  return {
    cell: (row, column) => `${what} ${rowWord} ${row}, column '${column}'`,
    column: (column) => `${what} column '${column}'`,
    header: { path: headerPath, text: headerText },
    option: (name) => `querystring.${name}`,
    hint: (name, value) => `?${name}=${value}`,
  };
}

/** The options of a raw-body upload, from its query string; `what` names the format (`CSV`) in the message when `name` is missing. */
export function queryOptions(query: UploadQuery, what: string): TabularOptions {
  if (!query.name) throw ValidationError.at("querystring.name", `is required for a ${what} upload (?name=...)`);
  const categorical = query.categorical?.split(",").map((c) => c.trim()).filter((c) => c !== "");
  return { name: query.name, label: query.label, task: query.task, categorical, missing: query.missing };
}

/** A categorical column whose every value differs holds no categories worth learning from (an id, a name). */
const ID_LIKE_ROWS = 20;

/**
 * Most distinct values a categorical column (or a label column of classes) may hold. Beyond it the
 * column is an identifier or free text, which one-hot encoding cannot use, and collecting its
 * values would let one column of a large file take the memory the streaming read saves.
 */
export const MAX_CATEGORIES = 100_000;

/** What a column holds, counted in the scan. */
interface ColumnScan {
  numbers: number;
  texts: number;
  missing: number;
  /** The row (as places number it) and text of the first number, text and missing cell. */
  firstNumber?: { at: number; text: string };
  firstText?: { at: number; text: string };
  firstMissing?: { at: number; cell: Cell };
  /** Category names (text cells, or every value of a column declared categorical) by the code of their first appearance; at most MAX_CATEGORIES + 1. */
  codes: Map<string, number>;
}

/** A category's name: the trimmed text, or a JSON number as JavaScript writes it. */
const categoryOf = (c: string | number) => (typeof c === "number" ? String(c) : c.trim());
/** A label's class name. */
const classOf = (c: string | number) => String(c).trim();
const quote = (s: string) => `'${s}'`;
const cellText = (c: Cell) => (typeof c === "string" ? c : String(c));
const numberOf = (c: string | number) => (typeof c === "number" ? c : decimalValue(c));

/** The code of `name` in `codes` (its first appearance), adding it; NaN once there are more than MAX_CATEGORIES (the column is refused then). */
function codeOf(codes: Map<string, number>, name: string): number {
  const code = codes.get(name);
  if (code !== undefined) return code;
  if (codes.size > MAX_CATEGORIES) return NaN;
  codes.set(name, codes.size);
  return codes.size - 1;
}

/** Sorted names, and for each code of first appearance its index among them. */
function renumber(codes: Map<string, number>): { names: string[]; remap: Float32Array } {
  const names = sortNames([...codes.keys()]);
  const remap = new Float32Array(codes.size);
  names.forEach((name, i) => (remap[codes.get(name)!] = i));
  return { names, remap };
}

/** A table's columns, decided, and the rule that turns a scanned row into the row stored. */
export interface TabularEncoder {
  layout: DatasetLayout;
  /** Features per row (the label is one target). */
  width: number;
  /** Writes the scanned row at `scanned[from…]` as features row `featuresAt` and target row `targetsAt`. */
  encode(scanned: Float32Array, from: number, features: Float32Array, featuresAt: number, targets: Float32Array, targetsAt: number): void;
}

/**
 * The one pass over a table: every row is shown once, in order (`row`), which writes it as numbers;
 * then `finish` throws the first problem, in the order a person would fix them (the label, then the
 * columns left to right, then missing cells), or decides every column.
 */
export class TabularScan {
  private readonly labelIndex: number;
  private readonly labelColumn: string;
  private readonly forced: boolean[];
  private readonly columns: ColumnScan[];
  private rows = 0;
  // The label column.
  private firstMissingLabel?: { at: number; cell: Cell };
  private firstTextLabel?: { at: number; text: string };
  private readonly classCodes = new Map<string, number>();
  private readonly integers = new Set<number>();
  private allIntegers = true;
  /** Values a scanned row takes: its features, then the label's class code and its value. */
  readonly scannedWidth: number;

  constructor(private readonly header: string[], private readonly opts: TabularOptions, private readonly places: TabularPlaces) {
    this.labelColumn = opts.label ?? header[header.length - 1];
    this.labelIndex = header.indexOf(this.labelColumn);
    if (this.labelIndex < 0) throw ValidationError.at(places.option("label"), `column '${this.labelColumn}' is not in ${places.header.text} (${header.join(", ")})`);
    if (header.length < 2) throw ValidationError.at(places.header.path, "needs at least one feature column besides the label");
    const categorical = new Set(opts.categorical ?? []);
    for (const c of categorical) {
      if (c === this.labelColumn) {
        throw ValidationError.at(places.option("categorical"), `'${c}' is the label column: text labels are classes already, and numbers become classes with ${places.hint("task", "classification")}`);
      }
      if (!header.includes(c)) throw ValidationError.at(places.option("categorical"), `column '${c}' is not in ${places.header.text} (${header.join(", ")})`);
    }
    this.forced = header.map((h) => categorical.has(h));
    this.columns = header.map(() => ({ numbers: 0, texts: 0, missing: 0, codes: new Map<string, number>() }));
    this.scannedWidth = header.length + 1;
  }

  /** One row of exactly `header.length` cells, written as numbers at `out[from…]` (scannedWidth values); `at` is its place as the format numbers rows. */
  row(cells: ArrayLike<Cell>, at: number, out: Float32Array, from: number): void {
    this.rows++;
    let k = from;
    for (let j = 0; j < cells.length; j++) {
      const c = cells[j];
      if (j === this.labelIndex) continue;
      const scan = this.columns[j];
      const v = c === null ? NaN : numberOf(c);
      if (!Number.isNaN(v)) {
        if (scan.numbers++ === 0) scan.firstNumber = { at, text: cellText(c!) };
        out[k++] = this.forced[j] ? codeOf(scan.codes, categoryOf(c!)) : v;
      } else if (isMissing(c)) {
        if (scan.missing++ === 0) scan.firstMissing = { at, cell: c };
        out[k++] = NaN;
      } else {
        if (scan.texts++ === 0) scan.firstText = { at, text: cellText(c!) };
        out[k++] = codeOf(scan.codes, categoryOf(c!));
      }
    }
    const label = cells[this.labelIndex];
    if (isMissing(label)) {
      this.firstMissingLabel ??= { at, cell: label };
      out[k] = NaN;
      out[k + 1] = NaN;
      return;
    }
    out[k] = codeOf(this.classCodes, classOf(label!));
    const v = numberOf(label!);
    out[k + 1] = v;
    if (Number.isNaN(v)) {
      this.firstTextLabel ??= { at, text: cellText(label!) };
    } else if (this.allIntegers) {
      if (!Number.isInteger(v)) this.allIntegers = false;
      else if (this.integers.size <= MAX_CATEGORIES) this.integers.add(v);
    }
  }

  /** Decides every column, or throws the first problem. */
  finish(): TabularEncoder {
    const { header, opts, places, labelColumn, labelIndex, rows } = this;
    if (rows === 0) throw ValidationError.at(places.header.path, "has no data rows");
    const warnings: string[] = [];

    // The label column: never missing; text makes classes, numbers values (unless told otherwise).
    const missingLabel = this.firstMissingLabel;
    if (missingLabel) {
      const c = missingLabel.cell;
      throw ValidationError.at(places.cell(missingLabel.at, labelColumn), `the label is missing${c === null || c === "" ? "" : ` (${quote(c as string)})`}; every row needs one`);
    }
    const task: Task = opts.task ?? (this.firstTextLabel ? "classification" : "regression");
    let classes: string[] = [];
    let classRemap: Float32Array | undefined;
    if (task === "regression") {
      const text = this.firstTextLabel;
      if (text) throw ValidationError.at(places.cell(text.at, labelColumn), `label '${text.text}' is not a number (regression needs numeric labels)`);
      const classLike = opts.task === undefined && this.allIntegers && this.integers.size <= MAX_CATEGORIES ? classLikeCount(this.integers.size, rows) : undefined;
      if (classLike !== undefined) {
        warnings.push(`label column '${labelColumn}' holds ${classLike} distinct integers: if these are classes, upload with ${places.hint("task", "classification")}`);
      }
    } else {
      if (this.classCodes.size > MAX_CATEGORIES) throw ValidationError.at(places.column(labelColumn), `holds more than ${MAX_CATEGORIES.toLocaleString("en")} distinct labels; a classification needs fewer classes`);
      ({ names: classes, remap: classRemap } = renumber(this.classCodes));
      if (classes.length < 2) throw ValidationError.at(places.column(labelColumn), `classification needs at least 2 classes, found ${classes.length}`);
    }

    // Feature columns, in the order of the header.
    const featureIndex = header.map((_, j) => j).filter((j) => j !== labelIndex);
    const featureNames = featureIndex.map((j) => header[j]);
    const columns: DatasetColumn[] = [];
    const remaps: (Float32Array | undefined)[] = [];
    let firstMissing: { at: number; column: string; cell: Cell } | undefined;
    let missingCells = 0;
    const missingColumns: string[] = [];
    for (const j of featureIndex) {
      const name = header[j];
      const scan = this.columns[j];
      if (scan.numbers + scan.texts === 0) throw ValidationError.at(places.column(name), `has no values: all of its ${rows} cells are missing`);
      const forced = this.forced[j];
      if (!forced && scan.numbers > 0 && scan.texts > 0) {
        const total = scan.numbers + scan.texts;
        const asCategories = `upload with ${places.hint("categorical", name)} to treat the column as categories`;
        if (scan.numbers >= scan.texts) {
          const first = scan.firstText!;
          throw ValidationError.at(places.cell(first.at, name), `${quote(first.text)} is not a number, though ${scan.numbers} of the column's ${total} values are; correct it, or ${asCategories}`);
        }
        const first = scan.firstNumber!;
        throw ValidationError.at(places.cell(first.at, name), `${quote(first.text)} is a number, though ${scan.texts} of the column's ${total} values are text; ${asCategories}`);
      }
      const column: DatasetColumn = { name, kind: forced || scan.numbers === 0 ? "categorical" : "numeric" };
      if (column.kind === "categorical") {
        if (scan.codes.size > MAX_CATEGORIES) {
          throw ValidationError.at(places.column(name), `holds more than ${MAX_CATEGORIES.toLocaleString("en")} distinct values: as categories it teaches a model nothing; if it is an identifier or free text, leave it out`);
        }
        const { names, remap } = renumber(scan.codes);
        column.categories = names;
        remaps.push(remap);
        if (rows >= ID_LIKE_ROWS && names.length === rows) {
          warnings.push(`column '${name}' holds a different value on every row: as categories it teaches a model nothing; if it is an identifier or a name, leave it out`);
        }
      } else remaps.push(undefined);
      if (scan.missing > 0) {
        column.missing = scan.missing;
        missingCells += scan.missing;
        missingColumns.push(name);
        const first = scan.firstMissing!;
        if (!firstMissing || first.at < firstMissing.at) firstMissing = { at: first.at, column: name, cell: first.cell };
      }
      columns.push(column);
    }

    if (firstMissing && opts.missing !== "impute") {
      const c = firstMissing.cell;
      const what = c === null ? "is null" : c.toString().trim() === "" ? "is empty" : `${quote(cellText(c))} marks a missing value`;
      const inColumns = missingColumns.length === 1 ? `in column '${missingColumns[0]}'` : `in columns ${missingColumns.map(quote).join(", ")}`;
      throw ValidationError.at(
        places.cell(firstMissing.at, firstMissing.column),
        `${what}; ${missingCells} ${missingCells === 1 ? "cell is" : "cells are"} missing ${inColumns}. Fill ${missingCells === 1 ? "it" : "them"} in, or upload with ${places.hint("missing", "impute")} to keep them as missing values that training fills in`,
      );
    }

    const width = featureIndex.length;
    return {
      layout: {
        name: opts.name,
        inputs: [{ name: DEFAULT_INPUT, shape: [width], kind: "tabular", columns }],
        outputs: [{ name: DEFAULT_OUTPUT, task, classes, shape: [1] }],
        featureNames, warnings,
      },
      width,
      encode(scanned, from, features, featuresAt, targets, targetsAt) {
        const to = featuresAt * width;
        for (let f = 0; f < width; f++) {
          const v = scanned[from + f];
          const remap = remaps[f];
          // Missing cells (kept only with missing=impute) stay NaN, which training fills in.
          features[to + f] = remap && !Number.isNaN(v) ? remap[v] : v;
        }
        targets[targetsAt] = classRemap ? classRemap[scanned[from + width]] : scanned[from + width + 1];
      },
    };
  }
}

/**
 * A table in memory as a dataset of one tabular input (every column but the label) and one output
 * (the label column). Every problem is thrown as a 400 at its place, before anything is stored.
 */
export function tabularDataset(table: TabularTable, opts: TabularOptions, places: TabularPlaces): ParsedDataset {
  const { header, rows } = table;
  const scan = new TabularScan(header, opts, places);
  const scanned = new Float32Array(rows * scan.scannedWidth);
  const cells = new Array<Cell>(header.length);
  for (let i = 0; i < rows; i++) {
    for (let j = 0; j < header.length; j++) cells[j] = table.cell(i, j);
    scan.row(cells, i, scanned, i * scan.scannedWidth);
  }
  const encoder = scan.finish();
  const features = new Float32Array(rows * encoder.width);
  const targets = new Float32Array(rows);
  for (let i = 0; i < rows; i++) encoder.encode(scanned, i * scan.scannedWidth, features, i, targets, i);
  return { ...encoder.layout, features, targets, rows };
}

/** A row as a streamed format gives it: its cells, and its place as the format numbers rows (a CSV row, an NDJSON line). */
export interface TabularRow {
  cells: Cell[];
  at: number;
}

/** One read of a table from the start: its header, then its rows in batches. */
export interface TabularRead {
  header: string[];
  /** Where the header is, as the format numbers rows (NDJSON: the first object's line). */
  headerAt: number;
  /** Rows in order; ending the iteration early (or a problem) closes the file. */
  batches: AsyncIterable<TabularRow[]>;
}

/** Values per chunk: what is written to the scratch file, and handed to the sink, at a time (4 MiB). */
const CHUNK_VALUES = 1 << 20;

/**
 * A table read once from a file (`open`), scanned into `scratch` (a file of float32 rows, about as
 * large as the dataset stored), then, once everything is decided, read back, renumbered and handed
 * to `sink` a chunk at a time. Memory holds a batch of rows, a chunk of values and the columns'
 * categories, whatever the table's size; the caller removes the scratch file.
 */
export async function streamTabular(
  open: () => Promise<TabularRead>, opts: TabularOptions, placesOf: (read: TabularRead) => TabularPlaces, sink: RowSink, scratch: string, chunkValues = CHUNK_VALUES,
): Promise<LayoutAtEnd> {
  const read = await open();
  const scan = new TabularScan(read.header, opts, placesOf(read));
  const rowValues = scan.scannedWidth;
  const chunkRows = Math.max(1, Math.floor(chunkValues / rowValues));
  const out = await fs.open(scratch, "w");
  let rows = 0;
  try {
    let chunk = new Float32Array(chunkRows * rowValues);
    let n = 0;
    for await (const batch of read.batches) {
      for (const r of batch) {
        scan.row(r.cells, r.at, chunk, n * rowValues);
        if (++n === chunkRows) {
          await out.write(new Uint8Array(chunk.buffer));
          rows += n;
          n = 0;
        }
      }
    }
    if (n > 0) await out.write(new Uint8Array(chunk.buffer, 0, n * rowValues * 4));
    rows += n;
    chunk = new Float32Array(0);
  } finally {
    await out.close();
  }
  const encoder = scan.finish();
  await sink.begin(encoder.layout);

  const input = await fs.open(scratch, "r");
  try {
    for (let start = 0; start < rows; start += chunkRows) {
      const count = Math.min(chunkRows, rows - start);
      const scanned = new Float32Array(count * rowValues);
      const { bytesRead } = await input.read(new Uint8Array(scanned.buffer), 0, scanned.byteLength, start * rowValues * 4);
      if (bytesRead !== scanned.byteLength) throw new Error(`scratch file ${scratch}: read ${bytesRead} bytes of ${scanned.byteLength}`);
      // A sink may keep what it is handed until it has stored it: fresh arrays for every chunk.
      const features = new Float32Array(count * encoder.width);
      const targets = new Float32Array(count);
      for (let i = 0; i < count; i++) encoder.encode(scanned, i * rowValues, features, i, targets, i);
      await sink.append(count, features, targets);
    }
  } finally {
    await input.close();
  }
  return {};
}
