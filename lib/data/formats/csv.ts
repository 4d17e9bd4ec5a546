// CSV uploads: a small RFC 4180 reader (quoted fields, doubled quotes, CRLF) that reports problems
// by row number as a spreadsheet shows them (the header is row 1), and the dataset it holds: one
// numeric column per feature and a label column.
import { ValidationError } from "../../errors.ts";
import { DEFAULT_INPUT, DEFAULT_OUTPUT } from "../../model-spec/model-spec-schema.ts";
import type { Task } from "../dataset-schema.ts";
import { decimalValue, encodeTargets } from "../labels.ts";
import type { ParsedDataset } from "../packing.ts";

export interface CsvTable {
  header: string[];
  /** Data rows; `rowNumbers[i]` is the 1-based line of `rows[i]` in the file (header = 1). */
  rows: string[][];
  rowNumbers: number[];
}

export function parseCsv(text: string): CsvTable {
  const records: { fields: string[]; row: number }[] = [];
  let fields: string[] = [];
  let field = "";
  let inQuotes = false;
  let row = 1;
  let recordRow = 1;
  let fieldStarted = false;
  const endRecord = () => {
    fields.push(field);
    // Blank lines carry no data: skip them rather than count them as a one-column row.
    if (!(fields.length === 1 && fields[0] === "" && !fieldStarted)) records.push({ fields, row: recordRow });
    fields = [];
    field = "";
    fieldStarted = false;
  };
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (inQuotes) {
      if (c === '"') {
        if (text[i + 1] === '"') {
          field += '"';
          i++;
        } else inQuotes = false;
      } else {
        if (c === "\n") row++;
        field += c;
      }
      continue;
    }
    if (c === '"' && field === "") {
      inQuotes = true;
      fieldStarted = true;
    } else if (c === ",") {
      fields.push(field);
      field = "";
      fieldStarted = true;
    } else if (c === "\n" || c === "\r") {
      if (c === "\r" && text[i + 1] === "\n") i++;
      endRecord();
      row++;
      recordRow = row;
    } else {
      field += c;
    }
  }
  if (inQuotes) throw ValidationError.at(`CSV row ${recordRow}`, "quoted field is never closed");
  if (field !== "" || fields.length > 0 || fieldStarted) endRecord();
  if (records.length === 0) throw ValidationError.at("CSV", "is empty; expected a header row and data rows");
  const [head, ...data] = records;
  const header = head.fields.map((h) => h.trim());
  header.forEach((h, i) => {
    if (!h) throw ValidationError.at(`CSV header column ${i + 1}`, "is empty");
    if (header.indexOf(h) !== i) throw ValidationError.at(`CSV header column ${i + 1}`, `'${h}' appears twice`);
  });
  if (data.length === 0) throw ValidationError.at("CSV", "has a header but no data rows");
  for (const r of data) {
    if (r.fields.length !== header.length) {
      throw ValidationError.at(`CSV row ${r.row}`, `${r.fields.length} columns, header has ${header.length}`);
    }
  }
  return { header, rows: data.map((r) => r.fields), rowNumbers: data.map((r) => r.row) };
}

/** A CSV upload as a dataset: every column but the label (by default the last) is a numeric feature. */
export function parseCsvDataset(text: string, opts: { name?: string; label?: string; task?: Task }): ParsedDataset {
  if (!opts.name) throw ValidationError.at("querystring.name", "is required for a CSV upload (?name=...)");
  const table = parseCsv(text);
  const labelColumn = opts.label ?? table.header[table.header.length - 1];
  const labelIndex = table.header.indexOf(labelColumn);
  if (labelIndex < 0) throw ValidationError.at("querystring.label", `column '${labelColumn}' is not in the CSV header (${table.header.join(", ")})`);
  if (table.header.length < 2) throw ValidationError.at("CSV header", "needs at least one feature column besides the label");
  const featureNames = table.header.filter((_, j) => j !== labelIndex);
  const width = featureNames.length;
  const features = new Float32Array(table.rows.length * width);
  const labels: string[] = [];
  table.rows.forEach((fields, i) => {
    let k = 0;
    fields.forEach((raw, j) => {
      if (j === labelIndex) return labels.push(raw);
      const v = decimalValue(raw);
      if (Number.isNaN(v)) {
        throw ValidationError.at(`CSV row ${table.rowNumbers[i]}`, `column '${table.header[j]}': '${raw}' is not a number`);
      }
      features[i * width + k++] = v;
    });
  });
  const numericLabels = labels.every((l) => !Number.isNaN(decimalValue(l)));
  const task: Task = opts.task ?? (numericLabels ? "regression" : "classification");
  const { targets, classes } = encodeTargets(labels, task, (i) => `CSV row ${table.rowNumbers[i]}, column '${labelColumn}'`, `CSV column '${labelColumn}'`);
  return {
    name: opts.name, inputs: [{ name: DEFAULT_INPUT, shape: [width] }], outputs: [{ name: DEFAULT_OUTPUT, task, classes, shape: [1] }], featureNames, features, targets,
    rows: table.rows.length,
  };
}

/**
 * Where in a CSV the first field holding `needle` is, as a spreadsheet names it (`CSV row 17,
 * column 'species'`), or undefined. Only asked once something is known to be wrong, so it may
 * parse the whole text again; a CSV too broken to parse throws its own problem instead.
 */
export function whereInCsv(text: string, needle: string): string | undefined {
  const table = parseCsv(text);
  const h = table.header.findIndex((f) => f.includes(needle));
  if (h >= 0) return `CSV header column ${h + 1}`;
  for (let i = 0; i < table.rows.length; i++) {
    const j = table.rows[i].findIndex((f) => f.includes(needle));
    if (j >= 0) return `CSV row ${table.rowNumbers[i]}, column '${table.header[j]}'`;
  }
  return undefined;
}
