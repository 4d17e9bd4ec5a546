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

/** A problem inside a nested value: its indices are collected on the way out, so no path is built unless it is thrown. */
class NestedProblem {
  readonly indices: number[] = [];
  constructor(readonly message: string) {}
}

/**
 * Walks `value`, which must have exactly `shape`, and hands each leaf to `leaf` in row-major
 * order (`leaf` returns false for a leaf it refuses). `what` names the leaves in messages.
 * Problems are thrown as a ValidationError at `path` plus the indices, e.g. features[3][2][1].
 */
function walkNested(value: unknown, shape: readonly number[], path: string, what: string, leaf: (v: unknown) => boolean, refused: string): void {
  const walk = (v: unknown, depth: number): void => {
    if (depth === shape.length) {
      if (!leaf(v)) throw new NestedProblem(refused);
      return;
    }
    const n = shape[depth];
    const items = depth + 1 < shape.length ? "arrays" : what;
    if (!Array.isArray(v)) throw new NestedProblem(`expected an array of ${n} ${items}`);
    if (v.length !== n) throw new NestedProblem(`expected ${n} ${items}, got ${v.length}`);
    for (let i = 0; i < n; i++) {
      try {
        walk(v[i], depth + 1);
      } catch (err) {
        if (err instanceof NestedProblem) err.indices.unshift(i);
        throw err;
      }
    }
  };
  try {
    walk(value, 0);
  } catch (err) {
    if (err instanceof NestedProblem) throw ValidationError.at(path + err.indices.map((i) => `[${i}]`).join(""), err.message);
    throw err;
  }
}

/** Appends the values of `value` to `out` from `offset`, checking that it has exactly `shape`; returns the next offset. */
export function flattenInto(value: unknown, shape: readonly number[], path: string, out: number[] | Float32Array, offset = 0): number {
  let at = offset;
  const take = (v: unknown) => {
    if (typeof v !== "number" || !Number.isFinite(v)) return false;
    out[at++] = v;
    return true;
  };
  walkNested(value, shape, path, "numbers", take, "expected a finite number");
  return at;
}

/** Like flattenInto, for labels: the leaves may be class names (strings) as well as numbers. */
export function flattenLabelsInto(value: unknown, shape: readonly number[], path: string, out: (string | number)[]): void {
  const take = (v: unknown) => {
    if (typeof v !== "string" && (typeof v !== "number" || !Number.isFinite(v))) return false;
    out.push(v);
    return true;
  };
  walkNested(value, shape, path, "labels", take, "expected a class name or a finite number");
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
