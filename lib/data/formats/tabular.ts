// Tabular data, whatever it came as (CSV, TSV, NDJSON, JSON `rows` or `columns`): one rule for
// what each column is. Numbers make a numeric column, text a categorical one (stored as the code of
// its category), missing cells are an error unless the client asks to keep them, and the label
// column becomes classes or values. Preprocessing (scaling, one-hot, imputing) happens at training
// time from the column metadata written here.
import { ValidationError } from "../../errors.ts";
import { DEFAULT_INPUT, DEFAULT_OUTPUT } from "../../model-spec/model-spec-schema.ts";
import type { DatasetColumn, Task, UploadQuery } from "../dataset-schema.ts";
import { classLikeIntegers, decimalValue, encodeTargets, sortNames } from "../labels.ts";
import type { ParsedDataset } from "../packing.ts";

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
  /** A cell: `CSV row 17, column 'age'`, `rows[3].color`. */
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

/** Places in a delimited text (`CSV row 17, column 'age'`) or NDJSON (`NDJSON line 5, column 'age'`), with query-string options. */
export function textPlaces(what: string, rowWord: "row" | "line", lineOf: (row: number) => number, headerPath: string, headerText: string): TabularPlaces {
  return {
    cell: (row, column) => `${what} ${rowWord} ${lineOf(row)}, column '${column}'`,
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

/** What a column holds, counted in one pass over its cells. */
interface ColumnScan {
  numbers: number;
  texts: number;
  missing: number;
  firstNumber: number;
  firstText: number;
  firstMissing: number;
}

function scanColumn(table: TabularTable, j: number, out: Float32Array, width: number, k: number): ColumnScan {
  const scan: ColumnScan = { numbers: 0, texts: 0, missing: 0, firstNumber: -1, firstText: -1, firstMissing: -1 };
  for (let i = 0; i < table.rows; i++) {
    const c = table.cell(i, j);
    // Numbers are written as they are found; a categorical column is written over later.
    const v = c === null ? NaN : typeof c === "number" ? c : decimalValue(c);
    if (!Number.isNaN(v)) {
      if (scan.numbers++ === 0) scan.firstNumber = i;
    } else if (isMissing(c)) {
      if (scan.missing++ === 0) scan.firstMissing = i;
    } else if (scan.texts++ === 0) scan.firstText = i;
    out[i * width + k] = v;
  }
  return scan;
}

/** A category's name: the trimmed text, or a JSON number as JavaScript writes it. */
const categoryOf = (c: string | number) => (typeof c === "number" ? String(c) : c.trim());

/** Replaces a column's values by the codes of their categories (sorted), missing cells by NaN. */
function encodeCategories(table: TabularTable, j: number, out: Float32Array, width: number, k: number): string[] {
  const names = new Set<string>();
  for (let i = 0; i < table.rows; i++) {
    const c = table.cell(i, j);
    if (!isMissing(c)) names.add(categoryOf(c!));
  }
  const categories = sortNames([...names]);
  const code = new Map(categories.map((name, i) => [name, i]));
  for (let i = 0; i < table.rows; i++) {
    const c = table.cell(i, j);
    out[i * width + k] = isMissing(c) ? NaN : code.get(categoryOf(c!))!;
  }
  return categories;
}

const quote = (s: string) => `'${s}'`;
const cellText = (c: Cell) => (typeof c === "string" ? c : String(c));

/**
 * A table as a dataset of one tabular input (every column but the label) and one output (the
 * label column). Every problem is thrown as a 400 at its place, before anything is stored.
 */
export function tabularDataset(table: TabularTable, opts: TabularOptions, places: TabularPlaces): ParsedDataset {
  const { header, rows } = table;
  const labelColumn = opts.label ?? header[header.length - 1];
  const labelIndex = header.indexOf(labelColumn);
  if (labelIndex < 0) throw ValidationError.at(places.option("label"), `column '${labelColumn}' is not in ${places.header.text} (${header.join(", ")})`);
  if (header.length < 2) throw ValidationError.at(places.header.path, "needs at least one feature column besides the label");
  if (rows === 0) throw ValidationError.at(places.header.path, "has no data rows");
  const categorical = new Set(opts.categorical ?? []);
  for (const c of categorical) {
    if (c === labelColumn) {
      throw ValidationError.at(places.option("categorical"), `'${c}' is the label column: text labels are classes already, and numbers become classes with ${places.hint("task", "classification")}`);
    }
    if (!header.includes(c)) throw ValidationError.at(places.option("categorical"), `column '${c}' is not in ${places.header.text} (${header.join(", ")})`);
  }
  const warnings: string[] = [];

  // The label column: never missing; text makes classes, numbers values (unless told otherwise).
  const labels = new Array<string | number>(rows);
  let numericLabels = true;
  for (let i = 0; i < rows; i++) {
    const c = table.cell(i, labelIndex);
    if (isMissing(c)) throw ValidationError.at(places.cell(i, labelColumn), `the label is missing${c === null || c === "" ? "" : ` (${quote(c as string)})`}; every row needs one`);
    labels[i] = c!;
    if (numericLabels && typeof c === "string" && Number.isNaN(decimalValue(c))) numericLabels = false;
  }
  const task: Task = opts.task ?? (numericLabels ? "regression" : "classification");
  const { targets, classes } = encodeTargets(labels, task, (i) => places.cell(i, labelColumn), places.column(labelColumn));
  const classLike = opts.task === undefined && task === "regression" ? classLikeIntegers(targets) : undefined;
  if (classLike !== undefined) {
    warnings.push(`label column '${labelColumn}' holds ${classLike} distinct integers: if these are classes, upload with ${places.hint("task", "classification")}`);
  }

  // Feature columns, in the order of the header.
  const featureNames = header.filter((_, j) => j !== labelIndex);
  const width = featureNames.length;
  const features = new Float32Array(rows * width);
  const columns: DatasetColumn[] = [];
  let firstMissing: { row: number; column: string } | undefined;
  let missingCells = 0;
  const missingColumns: string[] = [];
  featureNames.forEach((name, k) => {
    const j = k < labelIndex ? k : k + 1;
    const scan = scanColumn(table, j, features, width, k);
    if (scan.numbers + scan.texts === 0) throw ValidationError.at(places.column(name), `has no values: all of its ${rows} cells are missing`);
    const forced = categorical.has(name);
    if (!forced && scan.numbers > 0 && scan.texts > 0) {
      const total = scan.numbers + scan.texts;
      const asCategories = `upload with ${places.hint("categorical", name)} to treat the column as categories`;
      if (scan.numbers >= scan.texts) {
        const row = scan.firstText;
        throw ValidationError.at(places.cell(row, name), `${quote(cellText(table.cell(row, j)))} is not a number, though ${scan.numbers} of the column's ${total} values are; correct it, or ${asCategories}`);
      }
      const row = scan.firstNumber;
      throw ValidationError.at(places.cell(row, name), `${quote(cellText(table.cell(row, j)))} is a number, though ${scan.texts} of the column's ${total} values are text; ${asCategories}`);
    }
    const column: DatasetColumn = { name, kind: forced || scan.numbers === 0 ? "categorical" : "numeric" };
    if (column.kind === "categorical") {
      column.categories = encodeCategories(table, j, features, width, k);
      if (rows >= ID_LIKE_ROWS && column.categories.length === rows) {
        warnings.push(`column '${name}' holds a different value on every row: as categories it teaches a model nothing; if it is an identifier or a name, leave it out`);
      }
    }
    if (scan.missing > 0) {
      column.missing = scan.missing;
      missingCells += scan.missing;
      missingColumns.push(name);
      if (!firstMissing || scan.firstMissing < firstMissing.row) firstMissing = { row: scan.firstMissing, column: name };
    }
    columns.push(column);
  });

  if (firstMissing && opts.missing !== "impute") {
    const c = table.cell(firstMissing.row, header.indexOf(firstMissing.column));
    const what = c === null ? "is null" : c.toString().trim() === "" ? "is empty" : `${quote(cellText(c))} marks a missing value`;
    const inColumns = missingColumns.length === 1 ? `in column '${missingColumns[0]}'` : `in columns ${missingColumns.map(quote).join(", ")}`;
    throw ValidationError.at(
      places.cell(firstMissing.row, firstMissing.column),
      `${what}; ${missingCells} ${missingCells === 1 ? "cell is" : "cells are"} missing ${inColumns}. Fill ${missingCells === 1 ? "it" : "them"} in, or upload with ${places.hint("missing", "impute")} to keep them as missing values that training fills in`,
    );
  }

  return {
    name: opts.name,
    inputs: [{ name: DEFAULT_INPUT, shape: [width], kind: "tabular", columns }],
    outputs: [{ name: DEFAULT_OUTPUT, task, classes, shape: [1] }],
    featureNames, features, targets, rows, warnings,
  };
}
