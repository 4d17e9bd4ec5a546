// Nested arrays of numbers (an image as rows of pixels of channels) checked against a shape and
// flattened row-major, with the exact place of the first mismatch.
import { z } from "zod";
import { ValidationError } from "../errors.ts";

export type Nested = number | Nested[];
export type NestedLabel = string | number | NestedLabel[];

// Request schemas for nested arrays check only the outer level: a recursive zod schema would
// rebuild every one of the millions of small arrays an image dataset holds (one per pixel),
// which took minutes of garbage collection for a few thousand 28×28 images (bench/upload).
// flattenInto and flattenLabelsInto then check every value and the shape in one pass, and name
// the exact place of a problem.

/** A number, or nested arrays of numbers (images, sequences); values and shape are checked by flattenInto. */
export const nestedNumbersSchema = z
  .custom<Nested>((v) => typeof v === "number" || Array.isArray(v), { error: "expected a number or an array of numbers" })
  .meta({ description: "A number, or nested arrays of numbers of any depth.", type: ["number", "array"] });

/** A label: a class name, a number, or nested arrays of them (masks); checked by flattenLabelsInto. */
export const nestedLabelsSchema = z
  .custom<NestedLabel>((v) => typeof v === "string" || typeof v === "number" || Array.isArray(v), { error: "expected a class name, a number, or an array of them" })
  .meta({ description: "A class name or a number, or nested arrays of them of any depth.", type: ["string", "number", "array"] });

/** The shape of a nested array, following first elements (checked in full by flattenInto). */
export function shapeOf(value: unknown): number[] {
  const shape: number[] = [];
  for (let v = value; Array.isArray(v); v = v[0]) shape.push(v.length);
  return shape;
}

/** Appends the values of `value` to `out`, checking that it has exactly `shape`. */
export function flattenInto(value: unknown, shape: readonly number[], path: string, out: number[] | Float32Array, offset = 0): number {
  if (shape.length === 0) {
    if (typeof value !== "number" || !Number.isFinite(value)) throw ValidationError.at(path, "expected a finite number");
    out[offset] = value;
    return offset + 1;
  }
  const [n, ...rest] = shape;
  const what = rest.length ? "arrays" : "numbers";
  if (!Array.isArray(value)) throw ValidationError.at(path, `expected an array of ${n} ${what}`);
  if (value.length !== n) throw ValidationError.at(path, `expected ${n} ${what}, got ${value.length}`);
  for (let i = 0; i < n; i++) offset = flattenInto(value[i], rest, `${path}[${i}]`, out, offset);
  return offset;
}

/** Like flattenInto, for labels: the leaves may be class names (strings) as well as numbers. */
export function flattenLabelsInto(value: unknown, shape: readonly number[], path: string, out: (string | number)[]): void {
  if (shape.length === 0) {
    if (typeof value === "string" || (typeof value === "number" && Number.isFinite(value))) out.push(value);
    else throw ValidationError.at(path, "expected a class name or a finite number");
    return;
  }
  const [n, ...rest] = shape;
  const what = rest.length ? "arrays" : "labels";
  if (!Array.isArray(value)) throw ValidationError.at(path, `expected an array of ${n} ${what}`);
  if (value.length !== n) throw ValidationError.at(path, `expected ${n} ${what}, got ${value.length}`);
  for (let i = 0; i < n; i++) flattenLabelsInto(value[i], rest, `${path}[${i}]`, out);
}

/** The path of the k-th value (row-major) of a row of `shape`, e.g. "[3][7]". */
export function indexPath(k: number, shape: readonly number[]): string {
  const idx: number[] = [];
  for (let d = shape.length - 1; d >= 0; d--) {
    idx.unshift(k % shape[d]);
    k = Math.floor(k / shape[d]);
  }
  return idx.map((i) => `[${i}]`).join("");
}
