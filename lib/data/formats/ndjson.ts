// NDJSON (JSON Lines) uploads: one JSON object of column values per line, as pandas'
// `to_json(orient="records", lines=True)` and most log pipelines write them. The same table as a
// CSV's, so formats/tabular.ts decides what each column is; problems are named by line.
import { ValidationError } from "../../errors.ts";
import type { UploadQuery } from "../dataset-schema.ts";
import type { ParsedDataset } from "../packing.ts";
import { queryOptions, tabularDataset, textPlaces, type Cell } from "./tabular.ts";

const NAME = "NDJSON";

/** Why a parsed string cannot be stored as text (a JSON escape can make a NUL or a lone surrogate), or undefined. */
function textProblem(s: string): string | undefined {
  if (s.includes("\u0000")) return "contains a NUL character (\\u0000), which no text may hold";
  if (!(s as string & { isWellFormed(): boolean }).isWellFormed()) return "contains an unpaired UTF-16 surrogate (such as \\ud800), which is not Unicode text";
  return undefined;
}

interface NdjsonTable {
  header: string[];
  rows: Record<string, unknown>[];
  /** `lines[i]` is the 1-based line of `rows[i]`. */
  lines: number[];
}

export function parseNdjson(text: string): NdjsonTable {
  const rows: Record<string, unknown>[] = [];
  const lines: number[] = [];
  let header: string[] | undefined;
  let headerLine = 0;
  let start = text.charCodeAt(0) === 0xfeff ? 1 : 0;
  for (let line = 1; start <= text.length; line++) {
    let end = text.indexOf("\n", start);
    if (end < 0) end = text.length;
    const raw = text.slice(start, end);
    start = end + 1;
    if (raw.trim() === "") continue;
    const where = `${NAME} line ${line}`;
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
      header = keys;
      headerLine = line;
      if (keys.length === 0) throw ValidationError.at(where, "is an empty object; the first line names the columns");
      for (const k of keys) {
        if (k.trim() === "") throw ValidationError.at(where, "has an empty key; every column needs a name");
        const problem = textProblem(k);
        if (problem) throw ValidationError.at(where, `a key ${problem}`);
      }
    } else {
      const missing = header.find((k) => !Object.hasOwn(row, k));
      if (missing !== undefined) throw ValidationError.at(where, `has no '${missing}', which line ${headerLine} has: every line has the same keys`);
      if (keys.length !== header.length) {
        const known = new Set(header);
        throw ValidationError.at(where, `has '${keys.find((k) => !known.has(k))}', which line ${headerLine} does not: every line has the same keys`);
      }
    }
    for (const k of header) {
      const v = row[k];
      const bad = typeof v === "string" ? textProblem(v) : v === null || (typeof v === "number" && Number.isFinite(v)) ? undefined : "expected a number, a string or null";
      if (bad) throw ValidationError.at(`${where}, column '${k}'`, bad);
    }
    rows.push(row);
    lines.push(line);
  }
  if (!header) throw ValidationError.at(NAME, "is empty; expected one JSON object per line");
  return { header, rows, lines };
}

/** An NDJSON upload as a dataset: the keys are the columns, the label by default the last key of the first line. */
export function parseNdjsonDataset(text: string, query: UploadQuery): ParsedDataset {
  const opts = queryOptions(query, NAME);
  const table = parseNdjson(text);
  const places = textPlaces(NAME, "line", (i) => table.lines[i], `${NAME} line ${table.lines[0]}`, `the keys of ${NAME} line ${table.lines[0]}`);
  const { header, rows } = table;
  return tabularDataset({ header, rows: rows.length, cell: (i, j) => rows[i][header[j]] as Cell }, opts, places);
}

/** The line of an NDJSON text that holds `needle`, or undefined. */
export function whereInNdjson(text: string, needle: string): string | undefined {
  const at = text.indexOf(needle);
  if (at < 0) return undefined;
  let line = 1;
  for (let i = text.indexOf("\n"); i >= 0 && i < at; i = text.indexOf("\n", i + 1)) line++;
  return `${NAME} line ${line}`;
}
