// Labels as numbers: class names become class ids (sorted, so the same data always gives the same
// ids whatever the row order), values stay values. Every problem names the label's place.
import { ValidationError } from "../errors.ts";
import type { Task } from "./dataset-schema.ts";

export function encodeTargets(labels: (string | number)[], task: Task, where: (i: number) => string, path = "labels"): { targets: Float32Array<ArrayBuffer>; classes: string[] } {
  if (task === "regression") {
    const targets = new Float32Array(labels.length);
    labels.forEach((l, i) => {
      const v = typeof l === "number" ? l : Number(l);
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
  const numeric = distinct.every((s) => Number.isFinite(Number(s)));
  // Sorted so that the same data always gives the same class ids, whatever the row order.
  const classes = numeric ? distinct.sort((a, b) => Number(a) - Number(b)) : distinct.sort();
  if (classes.length < 2) throw ValidationError.at(path, `classification needs at least 2 classes, found ${classes.length}`);
  const index = new Map(classes.map((c, i) => [c, i]));
  return { targets: Float32Array.from(names, (n) => index.get(n)!), classes };
}
