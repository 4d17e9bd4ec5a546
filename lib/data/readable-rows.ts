// Stored rows as a person reads them (the rows preview): a table's cells by column name with
// category names and null for a missing cell, other inputs nested to their shape, class names for
// class ids, and numbers printed as the float32 they are (5.1, not 5.099999904632568).
import { kindOf, type DatasetInput, type DatasetOutput, type DatasetRows, type ReadableValue } from "./dataset-schema.ts";
import { size } from "./packing.ts";

/** The shortest decimal that is the same float32 (what numpy prints); null for a missing (NaN) value. */
export function readableNumber(v: number): number | null {
  if (!Number.isFinite(v)) return null;
  if (Number.isInteger(v)) return v;
  for (let digits = 1; digits < 9; digits++) {
    const shorter = Number(v.toPrecision(digits));
    if (Math.fround(shorter) === v) return shorter;
  }
  return v;
}

/** `values` (row-major) nested to `shape`, each leaf made readable by `leaf`. */
function nest(values: Float32Array, shape: readonly number[], leaf: (v: number) => ReadableValue): ReadableValue {
  const build = (at: number, depth: number): ReadableValue => {
    if (depth === shape.length) return leaf(values[at]);
    const stride = size(shape.slice(depth + 1));
    return Array.from({ length: shape[depth] }, (_, i) => build(at + i * stride, depth + 1));
  };
  return build(0, 0);
}

function readableInput(input: DatasetInput, values: Float32Array, featureNames: string[] | undefined): ReadableValue {
  if (kindOf(input) === "tabular" && input.shape.length === 1) {
    const columns = input.columns;
    // Datasets without column metadata name a first input's columns in featureNames, if at all.
    const names = columns?.map((c) => c.name) ?? (featureNames?.length === values.length ? featureNames : undefined);
    if (!names) return Array.from(values, readableNumber);
    const row: Record<string, ReadableValue> = {};
    names.forEach((name, j) => {
      const column = columns?.[j];
      row[name] = column?.kind === "categorical" ? (Number.isNaN(values[j]) ? null : (column.categories?.[values[j]] ?? null)) : readableNumber(values[j]);
    });
    return row;
  }
  return nest(values, input.shape, readableNumber);
}

function readableLabel(output: DatasetOutput, values: Float32Array): ReadableValue {
  const leaf = output.task === "classification" ? (id: number) => output.classes[id] ?? null : readableNumber;
  // One label per row is the label itself, not an array of one.
  return output.shape.length === 1 && output.shape[0] === 1 ? leaf(values[0]) : nest(values, output.shape, leaf);
}

/**
 * Rows [start, start + count) made readable. `features` and `targets` hold them packed as a shard
 * does: part after part, each count × prod(shape) values.
 */
export function readableRows(
  d: { featureNames: string[]; inputs: DatasetInput[]; outputs: DatasetOutput[] },
  start: number,
  count: number,
  packed: { features: Float32Array; targets: Float32Array },
): DatasetRows["items"] {
  const rowsOf = <T extends { name: string; shape: number[] }>(parts: T[], block: Float32Array, readable: (part: T, values: Float32Array, k: number) => ReadableValue) => {
    const values: ReadableValue[][] = Array.from({ length: count }, () => []);
    let at = 0;
    parts.forEach((part, k) => {
      const w = size(part.shape);
      for (let r = 0; r < count; r++) values[r].push(readable(part, block.subarray(at + r * w, at + (r + 1) * w), k));
      at += count * w;
    });
    // One part is the value itself; several are an object of them by name.
    return values.map((row) => (parts.length === 1 ? row[0] : Object.fromEntries(parts.map((p, k) => [p.name, row[k]]))));
  };
  const features = rowsOf(d.inputs, packed.features, (input, values, k) => readableInput(input, values, k === 0 ? d.featureNames : undefined));
  const labels = rowsOf(d.outputs, packed.targets, (output, values) => readableLabel(output, values));
  return Array.from({ length: count }, (_, r) => ({ row: start + r, features: features[r], label: labels[r] }));
}
