// Preprocessing is fitted on the training rows only and applied alike to every row and to every
// instance :predict receives; splits are seeded and, for classification, stratified.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { DatasetInput } from "../../lib/data/dataset-schema.ts";
import { applyPreprocessing, encodeTabularInstance, fitPreprocessing, perturbationBounds, processedShape, specFor } from "../../lib/data/preprocessing/preprocessor.ts";
import { splitIndices } from "../../lib/engine/train/trainer.ts";
import { ValidationError } from "../../lib/errors.ts";
import { splitRows } from "../../lib/training/data-split.ts";

const tabular: DatasetInput = {
  name: "input",
  shape: [3],
  kind: "tabular",
  columns: [
    { name: "size", kind: "numeric" },
    { name: "color", kind: "categorical", categories: ["blue", "green", "red"] },
    { name: "weight", kind: "numeric", missing: 1 },
  ],
};
// Rows: size, color code, weight (NaN = missing). Row 3 is not a training row.
const block = Float32Array.from([1, 0, 10, 3, 2, NaN, 5, 2, 30, 1000, 1, 1000]);
const train = Int32Array.from([0, 1, 2]);

describe("tabular preprocessing", () => {
  test("standardizes numeric columns with the training rows' statistics, one-hot encodes categories, and fills missing cells", () => {
    const fitted = fitPreprocessing(tabular, block, train, {})!;
    assert.equal(fitted.kind, "tabular");
    const [size, color, weight] = fitted.kind === "tabular" ? fitted.columns : [];
    // Row 3 (size 1000) is not in the training split: it does not move the mean.
    assert.deepEqual(size, { type: "numeric", name: "size", shift: 3, scale: 1 / Math.sqrt(8 / 3) });
    assert.deepEqual(color, { type: "categorical", name: "color", categories: ["blue", "green", "red"], encoding: "onehot" });
    assert.equal(weight.type === "numeric" && weight.fill, 20, "the mean of the present training values");
    assert.deepEqual(processedShape(tabular, {}), [1 + 3 + 1]);
    const out = applyPreprocessing(fitted, block, 4);
    assert.equal(out.length, 4 * 5);
    const row1 = Array.from(out.subarray(5, 10));
    assert.deepEqual(row1.slice(1, 4), [0, 0, 1], "red one-hot");
    assert.equal(row1[4], 0, "the missing weight is filled with the mean, then standardized to 0");
  });

  test("min-max, ordinal and median are chosen per job; a column whose values are all equal is only shifted", () => {
    const spec = specFor({ input: { numeric: "minmax", categorical: "ordinal", impute: "median" } }, "input");
    const fitted = fitPreprocessing(tabular, block, train, spec)!;
    assert.deepEqual(processedShape(tabular, spec), [3]);
    const out = applyPreprocessing(fitted, block, 4);
    assert.deepEqual(Array.from(out.subarray(0, 3)), [0, 0, 0]);
    assert.deepEqual(Array.from(out.subarray(6, 9)), [1, 2, 1]);
    const constant: DatasetInput = { name: "input", shape: [1], kind: "tabular", columns: [{ name: "c", kind: "numeric" }] };
    const c = fitPreprocessing(constant, Float32Array.from([7, 7]), Int32Array.from([0, 1]), {})!;
    assert.deepEqual(Array.from(applyPreprocessing(c, Float32Array.from([7, 8]), 2)), [0, 1]);
  });

  test("numeric: none on columns without categories or gaps leaves the input as uploaded", () => {
    const plain: DatasetInput = { name: "input", shape: [2], kind: "tabular" };
    assert.equal(fitPreprocessing(plain, Float32Array.from([1, 2, 3, 4]), train, { numeric: "none" }), undefined);
  });

  test("an instance is read by column name or position, with category names; a wrong one says where", () => {
    const fitted = fitPreprocessing(tabular, block, train, {})!;
    const columns = fitted.kind === "tabular" ? fitted.columns : [];
    assert.deepEqual(Array.from(encodeTabularInstance(columns, [5, "green", null], "instances[0]")), [5, 1, NaN]);
    assert.deepEqual(Array.from(encodeTabularInstance(columns, { weight: 3, color: "blue", size: 1 }, "instances[1]")), [1, 0, 3]);
    const at = (v: unknown) => {
      try {
        encodeTabularInstance(columns, v, "instances[2]");
      } catch (err) {
        return (err as ValidationError).problems[0];
      }
      return undefined;
    };
    assert.deepEqual(at([5, "purple", 1]), { path: "instances[2][1]", message: "'purple' is not a category of column 'color' (blue, green, red)" });
    assert.deepEqual(at([null, "red", 1]), { path: "instances[2][0]", message: "column 'size' needs a value (the model was trained without missing values)" });
    assert.equal(at({ size: 1, shade: "red" })?.path, "instances[2].shade");
    assert.match(at([1, 2])!.message, /expected 3 values \(size, color, weight\), got 2/);
  });
});

describe("image preprocessing", () => {
  const image: DatasetInput = { name: "input", shape: [1, 2, 2], kind: "image" };
  const pixels = Float32Array.from([0, 255, 0, 255, 0, 255, 255, 255]);
  test("scales to [0, 1] by default, and centers per channel or by the mean image when asked", () => {
    const fitted = fitPreprocessing(image, pixels, Int32Array.from([0, 1]), {})!;
    assert.deepEqual(fitted, { kind: "image", scale: 1 / 255, center: "none" });
    const perChannel = fitPreprocessing(image, pixels, Int32Array.from([0, 1]), { image: { center: "perChannel" } })!;
    assert.deepEqual(perChannel.kind === "image" && perChannel.mean, [0.25, 1]);
    const meanImage = fitPreprocessing(image, pixels, Int32Array.from([0, 1]), { image: { center: "meanImage", scale: 1 } })!;
    assert.deepEqual(meanImage.kind === "image" && meanImage.mean, [0, 255, 127.5, 255]);
    assert.deepEqual(Array.from(applyPreprocessing(meanImage, pixels, 2)), [0, 0, -127.5, 0, 0, 0, 127.5, 0]);
  });
});

describe("splits", () => {
  test("without strata, the split is the one training always used", () => {
    const old = splitIndices(100, 0.2, 42);
    const now = splitRows(100, { validationSplit: 0.2, testSplit: 0, seed: 42 });
    assert.deepEqual(now.train, old.train);
    assert.deepEqual(now.validation, old.validation);
    assert.equal(now.test.length, 0);
  });

  test("a stratified split keeps every class's proportion in train, validation and test, and the same seed gives the same split", () => {
    // 90 rows of class 0, 10 of class 1, sorted by class as files often are.
    const strata = Int32Array.from({ length: 100 }, (_, i) => (i < 90 ? 0 : 1));
    const split = splitRows(100, { validationSplit: 0.2, testSplit: 0.1, seed: 3, strata });
    const count = (rows: Int32Array, c: number) => Array.from(rows).filter((r) => strata[r] === c).length;
    assert.deepEqual([count(split.train, 0), count(split.validation, 0), count(split.test, 0)], [63, 18, 9]);
    assert.deepEqual([count(split.train, 1), count(split.validation, 1), count(split.test, 1)], [7, 2, 1]);
    assert.equal(new Set([...split.train, ...split.validation, ...split.test]).size, 100, "every row once");
    assert.deepEqual(splitRows(100, { validationSplit: 0.2, testSplit: 0.1, seed: 3, strata }), split);
  });

  test("a class with one example cannot be split stratified: a 400 names it", () => {
    const strata = Int32Array.from([0, 0, 0, 1]);
    assert.throws(() => splitRows(4, { validationSplit: 0.25, testSplit: 0, seed: 1, strata, classes: ["cat", "dog"] }), /class 'dog' has 1 example; a stratified split needs at least 2 per class/);
  });
});

test("a raw step of ε per preprocessed value: images scaled and kept in the pixels' range, numeric columns scaled, categories never", () => {
  const image = perturbationBounds({ kind: "image", scale: 1 / 255, center: "perChannel", mean: [0.25, 0.5] }, [1, 2, 2], 51);
  assert.deepEqual([...image.epsilon].map((v) => +v.toFixed(6)), [0.2, 0.2, 0.2, 0.2]);
  assert.deepEqual([...image.low!], [-0.25, -0.5, -0.25, -0.5]);
  assert.deepEqual([...image.high!], [0.75, 0.5, 0.75, 0.5]);
  const table = perturbationBounds({ kind: "tabular", columns: [
    { type: "numeric", name: "a", shift: 1, scale: 0.5 },
    { type: "categorical", name: "c", categories: ["x", "y", "z"], encoding: "onehot" },
    { type: "categorical", name: "o", categories: ["p", "q"], encoding: "ordinal" },
  ] }, [3], 2);
  assert.deepEqual([...table.epsilon], [1, 0, 0, 0, 0]);
  assert.equal(table.low, undefined);
  assert.deepEqual([...perturbationBounds(undefined, [2, 2], 3).epsilon], [3, 3, 3, 3]);
});
