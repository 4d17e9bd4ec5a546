// Train / validation / test rows, seeded. For classification the split is stratified: each class
// is split in the same proportions, so a small class is in every split, and preprocessing fitted
// on the training rows sees every class. The same seed and data give the same split, which is
// what lets a resumed job (and its preprocessing) continue exactly.
import type { DatasetOutput } from "../data/dataset-schema.ts";
import { deriveSeed, mulberry32, permutation } from "../engine/seeded-random.ts";
import { ValidationError } from "../errors.ts";

export interface Split {
  train: Int32Array;
  validation: Int32Array;
  test: Int32Array;
}

export interface SplitOptions {
  validationSplit: number;
  testSplit: number;
  seed: number;
  /** One class id per row: split each class alike. Omitted: one seeded shuffle of all rows. */
  strata?: ArrayLike<number>;
  /** Names the classes in messages. */
  classes?: string[];
}

/**
 * Which output's classes stratify the split: the first output, when it is a classification with one
 * label per row and the job did not turn stratification off; undefined otherwise.
 */
export function strataOutput(outputs: DatasetOutput[], stratify?: boolean): number | undefined {
  const first = outputs[0];
  if (stratify === false || !first || first.task !== "classification" || first.shape.reduce((a, b) => a * b, 1) !== 1) return undefined;
  return 0;
}

/** Why a stratified split cannot be made (a class too small to be in training and held out), or undefined. */
export function stratifyProblem(counts: number[], classes: string[], opts: { validationSplit: number; testSplit: number }): string | undefined {
  if (opts.validationSplit === 0 && opts.testSplit === 0) return undefined;
  const k = counts.findIndex((n) => n < 2);
  if (k < 0) return undefined;
  return `class '${classes[k] ?? k}' has ${counts[k]} example${counts[k] === 1 ? "" : "s"}; a stratified split needs at least 2 per class (add examples, or set stratify: false)`;
}

export function splitRows(rows: number, opts: SplitOptions): Split {
  const random = mulberry32(deriveSeed(opts.seed, 0x5eed));
  if (!opts.strata) {
    // The same permutation as before test splits existed: validation rows are its tail.
    const order = permutation(rows, random);
    const nVal = Math.floor(rows * opts.validationSplit);
    const nTest = Math.floor(rows * opts.testSplit);
    return { train: order.slice(0, rows - nVal - nTest), test: order.slice(rows - nVal - nTest, rows - nVal), validation: order.slice(rows - nVal) };
  }
  const byClass = new Map<number, number[]>();
  for (let r = 0; r < rows; r++) {
    const c = opts.strata[r];
    let list = byClass.get(c);
    if (!list) byClass.set(c, (list = []));
    list.push(r);
  }
  const classIds = [...byClass.keys()].sort((a, b) => a - b);
  const problem = stratifyProblem(classIds.map((c) => byClass.get(c)!.length), classIds.map((c) => opts.classes?.[c] ?? String(c)), opts);
  if (problem) throw ValidationError.at("dataset", problem);
  const train: number[] = [];
  const validation: number[] = [];
  const test: number[] = [];
  for (const c of classIds) {
    const members = byClass.get(c)!;
    const order = permutation(members.length, random);
    const n = members.length;
    // Rounded per class, but every class keeps at least one training row.
    let nVal = Math.round(n * opts.validationSplit);
    let nTest = Math.round(n * opts.testSplit);
    while (nVal + nTest > n - 1) {
      if (nTest >= nVal && nTest > 0) nTest--;
      else nVal--;
    }
    order.forEach((i, k) => (k < n - nVal - nTest ? train : k < n - nVal ? test : validation).push(members[i]));
  }
  return { train: Int32Array.from(train), validation: Int32Array.from(validation), test: Int32Array.from(test) };
}
