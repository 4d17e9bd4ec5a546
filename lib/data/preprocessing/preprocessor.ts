// Preprocessing fitted on the training split and applied alike to every split and to each
// instance :predict receives. Plain typed-array math, no tfjs: the worker runs it before training
// and the API before inference, and both must compute exactly the same numbers.
import { ValidationError } from "../../errors.ts";
import { kindOf, type DatasetColumn, type DatasetInput } from "../dataset-schema.ts";
import {
  preprocessingSpecSchema,
  type FittedColumn,
  type FittedPreprocessing,
  type PreprocessingField,
  type PreprocessingSpec,
} from "./preprocessing-schema.ts";

const DEFAULT_IMAGE_SCALE = 1 / 255;

/** The spec that applies to one input: the one spec for all, or the input's own. */
export function specFor(field: PreprocessingField | undefined, inputName: string): PreprocessingSpec {
  if (!field) return {};
  return preprocessingSpecSchema.safeParse(field).success ? (field as PreprocessingSpec) : ((field as Record<string, PreprocessingSpec>)[inputName] ?? {});
}

/** The columns of a tabular input; datasets stored before columns were recorded have numeric ones. */
export function columnsOf(input: DatasetInput, featureNames: string[] = []): DatasetColumn[] {
  if (input.columns) return input.columns;
  return Array.from({ length: input.shape[0] }, (_, j) => ({ name: featureNames[j] ?? `x${j}`, kind: "numeric" as const }));
}

const widthOf = (c: { type: "numeric" } | { type: "categorical"; encoding: string; categories: string[] }) =>
  c.type === "categorical" && c.encoding === "onehot" ? c.categories.length : 1;

/** What preprocessing does to an input by default and as declared: nothing (undefined), or a tabular or image step. */
function stepOf(input: DatasetInput, spec: PreprocessingSpec): "tabular" | "image" | undefined {
  const kind = kindOf(input);
  if (kind === "image") return "image";
  if (kind !== "tabular" || input.shape.length !== 1) return undefined;
  const columns = columnsOf(input);
  const untouched = (spec.numeric ?? "standardize") === "none" && columns.every((c) => c.kind === "numeric" && !c.missing);
  return untouched ? undefined : "tabular";
}

/** The shape of one row after preprocessing (what the model's input must be), from the dataset's metadata. */
export function processedShape(input: DatasetInput, spec: PreprocessingSpec): number[] {
  if (stepOf(input, spec) !== "tabular") return input.shape;
  const categorical = spec.categorical ?? "onehot";
  const width = columnsOf(input).reduce((a, c) => a + (c.kind === "categorical" && categorical === "onehot" ? (c.categories?.length ?? 0) : 1), 0);
  return [width];
}

/** The shape of one row after a fitted preprocessing. */
export function fittedShape(fitted: FittedPreprocessing, rawShape: number[]): number[] {
  return fitted.kind === "tabular" ? [fitted.columns.reduce((a, c) => a + widthOf(c), 0)] : rawShape;
}

/**
 * Fits an input's preprocessing on the training rows `trainIdx` of its block (rows × width values,
 * as stored), or undefined when the input is used as uploaded.
 */
export function fitPreprocessing(input: DatasetInput, block: Float32Array, trainIdx: Int32Array, spec: PreprocessingSpec, featureNames?: string[]): FittedPreprocessing | undefined {
  const step = stepOf(input, spec);
  if (step === "tabular") return { kind: "tabular", columns: fitColumns(columnsOf(input, featureNames), block, trainIdx, spec) };
  if (step === "image") return fitImage(input.shape, block, trainIdx, spec);
  return undefined;
}

function fitColumns(columns: DatasetColumn[], block: Float32Array, trainIdx: Int32Array, spec: PreprocessingSpec): FittedColumn[] {
  const width = columns.length;
  return columns.map((column, j): FittedColumn => {
    const values: number[] = [];
    for (const r of trainIdx) {
      const v = block[r * width + j];
      if (!Number.isNaN(v)) values.push(v);
    }
    if (column.kind === "categorical") {
      const counts = new Map<number, number>();
      for (const v of values) counts.set(v, (counts.get(v) ?? 0) + 1);
      // Most frequent, the lowest code on a tie: the same data always fills the same way.
      let fill = 0;
      let best = -1;
      for (const [code, n] of [...counts].sort((a, b) => a[0] - b[0])) if (n > best) [fill, best] = [code, n];
      return { type: "categorical", name: column.name, categories: column.categories ?? [], encoding: spec.categorical ?? "onehot", ...(column.missing ? { fill } : {}) };
    }
    // Float64 sums: a float32 running sum over millions of rows would lose the mean's last digits.
    let sum = 0;
    let min = Infinity;
    let max = -Infinity;
    for (const v of values) {
      sum += v;
      if (v < min) min = v;
      if (v > max) max = v;
    }
    const n = values.length;
    const mean = n ? sum / n : 0;
    let squares = 0;
    for (const v of values) squares += (v - mean) * (v - mean);
    const std = n ? Math.sqrt(squares / n) : 0;
    const fill = column.missing ? ((spec.impute ?? "mean") === "median" ? median(values) : mean) : undefined;
    const method = spec.numeric ?? "standardize";
    // A constant column (std or range 0) is only shifted: dividing would make it NaN.
    const [shift, scale] =
      method === "standardize" ? [mean, std > 1e-12 ? 1 / std : 1] : method === "minmax" ? [n ? min : 0, max - min > 1e-12 ? 1 / (max - min) : 1] : [0, 1];
    return { type: "numeric", name: column.name, shift, scale, ...(fill !== undefined ? { fill } : {}) };
  });
}

function median(values: number[]): number {
  if (!values.length) return 0;
  const sorted = Float64Array.from(values).sort();
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

function fitImage(shape: number[], block: Float32Array, trainIdx: Int32Array, spec: PreprocessingSpec): FittedPreprocessing {
  const scale = spec.image?.scale ?? DEFAULT_IMAGE_SCALE;
  const center = spec.image?.center ?? "none";
  if (center === "none") return { kind: "image", scale, center };
  const size = shape.reduce((a, b) => a * b, 1);
  const channels = shape[shape.length - 1];
  const sums = new Float64Array(center === "perChannel" ? channels : size);
  for (const r of trainIdx) {
    const base = r * size;
    for (let i = 0; i < size; i++) sums[center === "perChannel" ? i % channels : i] += block[base + i] * scale;
  }
  const count = center === "perChannel" ? trainIdx.length * (size / channels) : trainIdx.length;
  return { kind: "image", scale, center, mean: Array.from(sums, (s) => (count ? s / count : 0)) };
}

/** Applies a fitted preprocessing to `rows` rows of raw values (as stored); returns rows × processed width. */
export function applyPreprocessing(fitted: FittedPreprocessing, block: Float32Array, rows: number, where = "dataset"): Float32Array {
  if (fitted.kind === "image") {
    const out = new Float32Array(block.length);
    const size = block.length / Math.max(1, rows);
    const mean = fitted.mean;
    const perChannel = fitted.center === "perChannel";
    for (let i = 0; i < block.length; i++) {
      const v = block[i] * fitted.scale;
      out[i] = mean ? v - mean[perChannel ? i % mean.length : i % size] : v;
    }
    return out;
  }
  const columns = fitted.columns;
  const inWidth = columns.length;
  const outWidth = columns.reduce((a, c) => a + widthOf(c), 0);
  const out = new Float32Array(rows * outWidth);
  for (let r = 0; r < rows; r++) {
    let o = r * outWidth;
    for (let j = 0; j < inWidth; j++) {
      const c = columns[j];
      let v = block[r * inWidth + j];
      if (Number.isNaN(v)) {
        if (c.fill === undefined) throw ValidationError.at(`${where} row ${r}`, `column '${c.name}' has no value, and the model was trained without missing values to fill`);
        v = c.fill;
      }
      if (c.type === "numeric") out[o++] = (v - c.shift) * c.scale;
      else if (c.encoding === "ordinal") out[o++] = v;
      else {
        // A code outside the categories (a category unseen in training) stays all zeros.
        if (Number.isInteger(v) && v >= 0 && v < c.categories.length) out[o + v] = 1;
        o += c.categories.length;
      }
    }
  }
  return out;
}

/**
 * A step of ε in raw units, per value of a preprocessed row (adversarial training perturbs rows
 * after preprocessing): images ε·scale everywhere, kept in the pixels' range [0, 1/scale] as it
 * reads after scaling and centering; numeric columns ε·scale; category columns 0 (never perturbed).
 * Without preprocessing, ε everywhere and no range.
 */
export function perturbationBounds(fitted: FittedPreprocessing | undefined, rawShape: number[], epsilon: number): { epsilon: Float32Array; low?: Float32Array; high?: Float32Array } {
  const size = rawShape.reduce((a, b) => a * b, 1);
  if (!fitted) return { epsilon: new Float32Array(size).fill(epsilon) };
  if (fitted.kind === "image") {
    const mean = fitted.mean;
    const shift = (i: number) => (mean ? mean[fitted.center === "perChannel" ? i % mean.length : i] : 0);
    return {
      epsilon: new Float32Array(size).fill(epsilon * fitted.scale),
      low: Float32Array.from({ length: size }, (_, i) => -shift(i)),
      high: Float32Array.from({ length: size }, (_, i) => 1 - shift(i)),
    };
  }
  const out: number[] = [];
  for (const c of fitted.columns) {
    if (c.type === "numeric") out.push(epsilon * c.scale);
    else for (let k = 0; k < widthOf(c); k++) out.push(0);
  }
  return { epsilon: Float32Array.from(out) };
}

/**
 * One raw tabular instance as :predict receives it — an array of the columns' values in order, or
 * an object of them by column name; numbers, category names, or null for a missing value — as
 * the row of codes and numbers the dataset would have stored.
 */
export function encodeTabularInstance(columns: FittedColumn[], instance: unknown, path: string): Float32Array {
  const row = new Float32Array(columns.length);
  const names = columns.map((c) => c.name);
  let values: unknown[];
  if (Array.isArray(instance)) {
    if (instance.length !== columns.length) throw ValidationError.at(path, `expected ${columns.length} values (${names.join(", ")}), got ${instance.length}`);
    values = instance;
  } else if (typeof instance === "object" && instance !== null) {
    const unknown = Object.keys(instance).find((k) => !names.includes(k));
    if (unknown !== undefined) throw ValidationError.at(`${path}.${unknown}`, `is not a column of the model's input (${names.join(", ")})`);
    values = names.map((n) => (instance as Record<string, unknown>)[n] ?? null);
  } else {
    throw ValidationError.at(path, `expected an array of ${columns.length} values (${names.join(", ")}) or an object of them by column name`);
  }
  columns.forEach((c, j) => {
    const v = values[j];
    const at = Array.isArray(instance) ? `${path}[${j}]` : `${path}.${c.name}`;
    if (v === null || v === undefined) {
      row[j] = NaN;
      if (c.fill === undefined) throw ValidationError.at(at, `column '${c.name}' needs a value (the model was trained without missing values)`);
    } else if (c.type === "numeric") {
      if (typeof v !== "number" || !Number.isFinite(v)) throw ValidationError.at(at, `column '${c.name}' expects a finite number`);
      row[j] = v;
    } else {
      if (typeof v !== "string" && typeof v !== "number") throw ValidationError.at(at, `column '${c.name}' expects one of its categories (${c.categories.slice(0, 20).join(", ")})`);
      const code = c.categories.indexOf(String(v));
      if (code < 0) throw ValidationError.at(at, `'${v}' is not a category of column '${c.name}' (${c.categories.slice(0, 20).join(", ")}${c.categories.length > 20 ? ", …" : ""})`);
      row[j] = code;
    }
  });
  return row;
}
