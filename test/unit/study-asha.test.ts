// Successive halving's decision: rungs, the first trials at a rung, the best 1/η, min and max.
import assert from "node:assert/strict";
import { test } from "node:test";
import { ashaDecision, rungs } from "../../lib/training/studies/asha.ts";

const asha = { minEpochs: 1, reductionFactor: 3 };

test("rungs are minEpochs·η^k below the trial's epochs", () => {
  assert.deepEqual(rungs(asha, 10), [1, 3, 9]);
  assert.deepEqual(rungs(asha, 9), [1, 3]);
  assert.deepEqual(rungs({ minEpochs: 2, reductionFactor: 2 }, 20), [2, 4, 8, 16]);
  assert.deepEqual(rungs({ minEpochs: 5, reductionFactor: 2 }, 5), []);
});

test("only rung epochs judge", () => {
  assert.deepEqual(ashaDecision({ asha, mode: "min", epoch: 2, epochs: 10, value: 9, others: [1, 1, 1, 1] }), { stop: false });
  assert.equal(ashaDecision({ asha, mode: "min", epoch: 3, epochs: 10, value: 9, others: [1, 1, 1, 1] }).stop, true);
  assert.deepEqual(ashaDecision({ asha, mode: "min", epoch: 9, epochs: 9, value: 9, others: [1, 1, 1, 1] }), { stop: false }, "the last epoch is no rung");
});

test("the first trials to reach a rung go on, whatever their value", () => {
  assert.deepEqual(ashaDecision({ asha, mode: "min", epoch: 1, epochs: 10, value: 100, others: [] }), { stop: false });
  assert.deepEqual(ashaDecision({ asha, mode: "min", epoch: 1, epochs: 10, value: 100, others: [0.1] }), { stop: false });
});

test("from η values on, only the best ⌊n/η⌋ go on (itself included, ties in its favour)", () => {
  // n = 3: keep 1.
  assert.deepEqual(ashaDecision({ asha, mode: "min", epoch: 1, epochs: 10, value: 0.2, others: [0.5, 0.9] }), { stop: false });
  assert.deepEqual(ashaDecision({ asha, mode: "min", epoch: 1, epochs: 10, value: 0.5, others: [0.2, 0.9] }), { stop: true, rank: 2, of: 3, keep: 1 });
  assert.deepEqual(ashaDecision({ asha, mode: "min", epoch: 1, epochs: 10, value: 0.2, others: [0.2, 0.9] }), { stop: false });
  // n = 7: keep 2.
  const others = [0.1, 0.3, 0.4, 0.5, 0.6, 0.7];
  assert.equal(ashaDecision({ asha, mode: "min", epoch: 3, epochs: 10, value: 0.2, others }).stop, false);
  assert.deepEqual(ashaDecision({ asha, mode: "min", epoch: 3, epochs: 10, value: 0.35, others }), { stop: true, rank: 3, of: 7, keep: 2 });
});

test("max mode ranks higher first; NaN is worst; no value is no verdict", () => {
  assert.equal(ashaDecision({ asha, mode: "max", epoch: 1, epochs: 10, value: 0.9, others: [0.5, 0.6] }).stop, false);
  assert.equal(ashaDecision({ asha, mode: "max", epoch: 1, epochs: 10, value: 0.55, others: [0.5, 0.6] }).stop, true);
  assert.equal(ashaDecision({ asha, mode: "min", epoch: 1, epochs: 10, value: NaN, others: [5, 6] }).stop, true);
  assert.equal(ashaDecision({ asha, mode: "min", epoch: 1, epochs: 10, value: 4, others: [NaN, NaN] }).stop, false);
  assert.deepEqual(ashaDecision({ asha, mode: "min", epoch: 1, epochs: 10, value: undefined, others: [1, 2, 3] }), { stop: false });
});

test("η = 2 halves", () => {
  const half = { minEpochs: 1, reductionFactor: 2 };
  assert.equal(ashaDecision({ asha: half, mode: "min", epoch: 1, epochs: 4, value: 0.5, others: [0.4] }).stop, true);
  assert.equal(ashaDecision({ asha: half, mode: "min", epoch: 2, epochs: 4, value: 0.3, others: [0.4, 0.5, 0.6] }).stop, false);
  assert.equal(ashaDecision({ asha: half, mode: "min", epoch: 2, epochs: 4, value: 0.45, others: [0.4, 0.5, 0.6] }).stop, false);
  assert.equal(ashaDecision({ asha: half, mode: "min", epoch: 2, epochs: 4, value: 0.55, others: [0.4, 0.5, 0.6] }).stop, true);
});
