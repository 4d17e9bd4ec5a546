// A small RFC 4180 CSV reader (quoted fields, doubled quotes, CRLF) that reports problems by row
// number as a spreadsheet shows them: the header is row 1.
import { ValidationError } from "../errors.ts";

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
