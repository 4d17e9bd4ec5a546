// A study's search space: paths into specs and jobs, grids and seeded random draws.
import assert from "node:assert/strict";
import { test } from "node:test";
import { ValidationError } from "../../lib/errors.ts";
import { expandSpace, getAt, gridSize, parsePath, pathProblem, setAt } from "../../lib/training/studies/search-space.ts";

const spec = { input: { shape: [4] }, layers: [{ type: "dense", units: 16, activation: "relu" }, { type: "dropout", rate: 0.1 }, { type: "dense", units: 3 }] };

test("paths parse into a root and steps, with [i] for list items", () => {
  assert.deepEqual(parsePath("spec.layers[1].rate"), { root: "spec", parts: ["layers", 1, "rate"] });
  assert.deepEqual(parsePath("job.optimizer.learningRate"), { root: "job", parts: ["optimizer", "learningRate"] });
  assert.deepEqual(parsePath("spec.nodes.left-branch.units"), { root: "spec", parts: ["nodes", "left-branch", "units"] });
  for (const bad of ["spec", "job.", "model.units", "spec.layers[x].units", "spec..units", "spec.layers[1]rate", "specs.layers", "job.a b"]) assert.equal(parsePath(bad), null, bad);
});

test("get and set follow indices and leave the original untouched", () => {
  assert.equal(getAt(spec, ["layers", 0, "units"]), 16);
  assert.equal(getAt(spec, ["layers", 5, "units"]), undefined);
  assert.equal(getAt(spec, ["layers", "0"]), undefined);
  const changed = setAt(spec, ["layers", 0, "units"], 4);
  assert.equal(getAt(changed, ["layers", 0, "units"]), 4);
  assert.equal(spec.layers[0].units, 16);
  const withObject = setAt({ optimizer: { type: "adam", learningRate: 0.001 } }, ["optimizer"], { type: "sgd", learningRate: 0.1 });
  assert.deepEqual(withObject, { optimizer: { type: "sgd", learningRate: 0.1 } });
});

test("a path must lead somewhere: existing steps, indices in range; a new key only at the end of an object", () => {
  assert.equal(pathProblem(spec, ["layers", 1, "rate"]), null);
  assert.equal(pathProblem(spec, ["layers", 0, "kernelRegularizer"]), null, "a field left to its default");
  assert.match(pathProblem(spec, ["layers", 3, "units"])!, /index 3 is out of range \(layers has 3\)/);
  assert.match(pathProblem(spec, ["layerz", 0, "units"])!, /there is no 'layerz'/);
  assert.match(pathProblem(spec, ["input", 0])!, /input is not a list/);
  assert.match(pathProblem(spec, ["layers", "units"])!, /layers is not an object/);
  assert.match(pathProblem(spec, ["layers", 0, "units", "x"])!, /layers\[0\]\.units is not an object/);
});

test("a grid is the product of the values, the last path varying fastest", () => {
  const space = { "spec.layers[0].units": { values: [4, 16] }, "job.optimizer.learningRate": { values: [0.1, 0.01, 0.001] } };
  assert.equal(gridSize(space), 6);
  const points = expandSpace(space, "grid", 6, 1);
  assert.deepEqual(points.map((p) => [p["spec.layers[0].units"], p["job.optimizer.learningRate"]]), [[4, 0.1], [4, 0.01], [4, 0.001], [16, 0.1], [16, 0.01], [16, 0.001]]);
});

test("a grid with fewer trials than points takes distinct points chosen by the seed, in grid order", () => {
  const space = { a: { values: [1, 2, 3, 4] }, b: { values: ["x", "y", "z"] } };
  const some = expandSpace(space, "grid", 5, 7);
  assert.equal(some.length, 5);
  assert.equal(new Set(some.map((p) => JSON.stringify(p))).size, 5);
  const all = expandSpace(space, "grid", 12, 7).map((p) => JSON.stringify(p));
  const idx = some.map((p) => all.indexOf(JSON.stringify(p)));
  assert.deepEqual(idx, [...idx].sort((x, y) => x - y));
  assert.deepEqual(expandSpace(space, "grid", 5, 7), some, "same seed, same points");
  assert.notDeepEqual(expandSpace(space, "grid", 5, 8), some);
});

test("a grid refuses ranges, naming the path", () => {
  assert.equal(gridSize({ a: { values: [1, 2] }, b: { min: 0, max: 1 } }), Infinity);
  assert.throws(() => expandSpace({ a: { values: [1] }, b: { min: 0, max: 1 } }, "grid", 1, 1), (err: unknown) => err instanceof ValidationError && err.problems[0].path === "space.b");
});

test("random draws are seeded; log ranges are log-uniform, integer ranges whole and inside", () => {
  const space = {
    lr: { min: 1e-5, max: 1e-1, scale: "log" as const },
    units: { min: 4, max: 64, integer: true },
    width: { min: 8, max: 512, integer: true, scale: "log" as const },
    rate: { min: 0.2, max: 0.4 },
    activation: { values: ["relu", "tanh", "elu"] },
  };
  const a = expandSpace(space, "random", 400, 42);
  assert.deepEqual(expandSpace(space, "random", 400, 42), a);
  assert.notDeepEqual(expandSpace(space, "random", 400, 43), a);
  const lrs = a.map((p) => p.lr as number);
  assert.ok(lrs.every((v) => v >= 1e-5 && v <= 1e-1));
  // Log-uniform: each decade gets about a quarter of the draws (linear would put ~90% in the top one).
  const top = lrs.filter((v) => v >= 1e-2).length / lrs.length;
  assert.ok(top > 0.15 && top < 0.35, `share in the top decade: ${top}`);
  const units = a.map((p) => p.units as number);
  assert.ok(units.every((u) => Number.isInteger(u) && u >= 4 && u <= 64));
  assert.ok(units.includes(4) && units.includes(64), "both ends can be drawn");
  const widths = a.map((p) => p.width as number);
  assert.ok(widths.every((w) => Number.isInteger(w) && w >= 8 && w <= 512));
  assert.ok(widths.filter((w) => w < 64).length > 100, "log: small widths as likely per factor as large ones");
  assert.ok(a.every((p) => (p.rate as number) >= 0.2 && (p.rate as number) < 0.4));
  assert.deepEqual(new Set(a.map((p) => p.activation)), new Set(["relu", "tanh", "elu"]));
});
