// Labels as numbers: class names become class ids (sorted, so the same data always gives the same
// ids whatever the row order), values stay values. Every problem names the label's place.
import { ValidationError } from "../errors.ts";
import type { Task } from "./dataset-schema.ts";

// Decimal notation only: Number() would also read "0x10" as 16, "0b1", "0o7" and "Infinity",
// which in a data file are typos or other data, not values.
const DECIMAL = /^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/;

/** The one rule for numbers written as text (CSV cells, string labels): the finite decimal value, or NaN. */
export function decimalValue(text: string): number {
  const t = text.trim();
  const v = DECIMAL.test(t) ? Number(t) : NaN;
  return Number.isFinite(v) ? v : NaN;
}

/** `where(i)` names the i-th label's place; `path` names the labels as a whole (for too few classes). */
export function encodeTargets(labels: (string | number)[], task: Task, where: (i: number) => string, path = "labels"): { targets: Float32Array<ArrayBuffer>; classes: string[] } {
  if (task === "regression") {
    const targets = new Float32Array(labels.length);
    labels.forEach((l, i) => {
      const v = typeof l === "number" ? l : decimalValue(l);
      if (typeof l === "string" && l.trim() === "") throw ValidationError.at(where(i), "label is empty");
      if (!Number.isFinite(v)) throw ValidationError.at(where(i), `label '${l}' is not a number (regression needs numeric labels)`);
      targets[i] = v;
    });
    return { targets, classes: [] };
  }
  const names = labels.map((l, i) => {
    const s = String(l).trim();
    if (!s) throw ValidationError.at(where(i), "label is empty");
    return s;
  });
  const classes = sortNames([...new Set(names)]);
  if (classes.length < 2) throw ValidationError.at(path, `classification needs at least 2 classes, found ${classes.length}`);
  const index = new Map(classes.map((c, i) => [c, i]));
  return { targets: Float32Array.from(names, (n) => index.get(n)!), classes };
}

/**
 * Class names and categories in the order their ids follow, so that the same data always gives the
 * same ids whatever the row order: by value when every name is a number ("2" before "10"), else
 * by UTF-16 code unit (the same everywhere, unlike a locale's order).
 */
export function sortNames(names: string[]): string[] {
  const numeric = names.every((s) => !Number.isNaN(decimalValue(s)));
  if (!numeric) return names.sort();
  return names.sort((a, b) => decimalValue(a) - decimalValue(b) || (a < b ? -1 : a > b ? 1 : 0));
}

/** At most this many distinct integers look like class ids whatever the number of rows… */
const FEW_CLASSES = 20;
/** …and at most this share of the rows does on a large dataset. */
const FEW_CLASSES_SHARE = 0.05;

/**
 * How many distinct values regression targets hold when they look like class ids rather than
 * values: integers only, at least 2 and few of them (at most 20, or 5% of the rows), each seen on
 * two rows on average. Undefined when they look like values.
 */
export function classLikeIntegers(targets: ArrayLike<number>): number | undefined {
  const rows = targets.length;
  const limit = fewClassesLimit(rows);
  const distinct = new Set<number>();
  for (let i = 0; i < rows; i++) {
    const v = targets[i];
    if (!Number.isInteger(v)) return undefined;
    distinct.add(v);
    if (distinct.size > limit) return undefined;
  }
  return classLikeCount(distinct.size, rows);
}

/** The same rule, for a reader that counted the distinct integers of all-integer targets itself (a streamed table). */
export function classLikeCount(distinct: number, rows: number): number | undefined {
  return distinct >= 2 && distinct <= fewClassesLimit(rows) ? distinct : undefined;
}

const fewClassesLimit = (rows: number) => Math.min(Math.max(FEW_CLASSES, Math.floor(rows * FEW_CLASSES_SHARE)), Math.floor(rows / 2));
