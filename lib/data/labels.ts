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
  const distinct = [...new Set(names)];
  const numeric = distinct.every((s) => !Number.isNaN(decimalValue(s)));
  // Sorted so that the same data always gives the same class ids, whatever the row order.
  const classes = numeric ? distinct.sort((a, b) => decimalValue(a) - decimalValue(b)) : distinct.sort();
  if (classes.length < 2) throw ValidationError.at(path, `classification needs at least 2 classes, found ${classes.length}`);
  const index = new Map(classes.map((c, i) => [c, i]));
  return { targets: Float32Array.from(names, (n) => index.get(n)!), classes };
}
