// The rule that picks a version's runtime, and the comparison the ONNX check passes or fails on.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { chooseRuntime, relativeError, TOLERANCE } from "../../lib/registry/export/onnx/onnx-check.ts";

describe("chooseRuntime", () => {
  test("auto: ONNX Runtime only for a passed check with ONNX Runtime installed; TensorFlow.js otherwise", () => {
    assert.deepEqual(chooseRuntime("auto", "passed", true), { runtime: "onnx" });
    assert.deepEqual(chooseRuntime("auto", "passed", false), { runtime: "tfjs" });
    for (const status of ["failed", "unsupported", undefined] as const) assert.deepEqual(chooseRuntime("auto", status, true), { runtime: "tfjs" });
  });

  test("tfjs: always TensorFlow.js", () => {
    for (const status of ["passed", "failed", "unsupported", undefined] as const) assert.deepEqual(chooseRuntime("tfjs", status, true), { runtime: "tfjs" });
  });

  test("onnx: ONNX Runtime or a refusal that says why, never TensorFlow.js", () => {
    assert.deepEqual(chooseRuntime("onnx", "passed", true), { runtime: "onnx" });
    assert.deepEqual(chooseRuntime("onnx", "unsupported", true), { runtime: null, reason: "its ONNX export is not possible" });
    assert.deepEqual(chooseRuntime("onnx", "failed", true), { runtime: null, reason: "its ONNX export did not pass the parity check" });
    assert.deepEqual(chooseRuntime("onnx", undefined, true), { runtime: null, reason: "its ONNX export has not been checked yet" });
    assert.match((chooseRuntime("onnx", "passed", false) as { reason: string }).reason, /onnxruntime-node is not installed/);
  });
});

describe("relativeError", () => {
  test("relative to each value, with a floor of a tenth of the output's largest magnitude", () => {
    const want = Float32Array.of(1, 0.5, 1e-9);
    assert.equal(relativeError(want, want), 0);
    // 1.0001 against 1: 1e-4 / (1 + 0.1) — within the tolerance.
    assert.ok(relativeError(Float32Array.of(1.0001, 0.5, 1e-9), want) <= TOLERANCE);
    // A tiny probability off by 1e-6 is compared at the output's scale (floor 0.1): fine.
    assert.ok(relativeError(Float32Array.of(1, 0.5, 1e-6), want) <= TOLERANCE);
    // 0.5 against 0.51: 0.01 / 0.6 — a failure.
    assert.ok(relativeError(Float32Array.of(1, 0.51, 1e-9), want) > TOLERANCE);
  });

  test("NaN or Infinity anywhere is an infinite error, never a pass", () => {
    assert.equal(relativeError(Float32Array.of(Number.NaN, 1), Float32Array.of(1, 1)), Infinity);
    assert.equal(relativeError(Float32Array.of(1, 1), Float32Array.of(Number.NaN, 1)), Infinity);
    assert.equal(relativeError(Float32Array.of(Infinity, 1), Float32Array.of(1, 1)), Infinity);
  });
});
