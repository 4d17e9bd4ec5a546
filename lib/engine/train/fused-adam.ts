// Adam's update as one pass per variable on the wasm backend. tfjs's AdamOptimizer runs eleven
// elementwise kernels per variable (two for each moment, the bias corrections, sqrt, add, divide,
// scale, add), each a trip through memory and a dispatch; for an MLP they were a third of a step.
// lib/engine/simd/kernels.wat does it in one SIMD loop over wasm's heap: it reads the gradient,
// the moments and the weights once and writes the three results, every operation one float32
// operation in tfjs's order, so weights, moments and β₁ᵗ, β₂ᵗ come out bit for bit as tfjs's own
// Adam leaves them (tested). A loop in JavaScript was slower than tfjs's kernels (6 ms against 2
// for the MLP).
import * as tf from "@tensorflow/tfjs";
import { offsetOf, simdKernels, type WasmBackend } from "../simd/kernels.ts";

/** What optimizer.applyGradients takes: gradients by variable name, or named gradients in order. */
type Gradients = Parameters<tf.Optimizer["applyGradients"]>[0];

let enabled = true;

/** Turns the fused update off (true again to turn it on): for the benchmarks, to see what it is worth. */
export function setFusedAdam(on: boolean): void {
  enabled = on;
}

/** What tfjs's AdamOptimizer keeps (tfjs-core 4.22, adam_optimizer.ts); fields it does not declare public. */
interface AdamFields {
  learningRate: number;
  beta1: number;
  beta2: number;
  epsilon: number;
  accBeta1: tf.Variable;
  accBeta2: tf.Variable;
  accumulatedFirstMoment: { originalName: string; variable: tf.Variable }[];
  accumulatedSecondMoment: { originalName: string; variable: tf.Variable }[];
  incrementIterations(): void;
}

/**
 * optimizer.applyGradients, fused when the optimizer is tfjs's Adam on the wasm backend (and the
 * fusion is on); any other optimizer or backend takes tfjs's own path.
 */
export function applyGradients(optimizer: tf.Optimizer, grads: Gradients): void {
  // By class name: tfjs's Optimizer answers instanceof for any object with the optimizer's methods.
  if (!enabled || optimizer.getClassName() !== "Adam" || tf.getBackend() !== "wasm") {
    optimizer.applyGradients(grads);
    return;
  }
  fusedAdam(optimizer as unknown as AdamFields, grads, tf.backend() as unknown as WasmBackend);
}

function fusedAdam(adam: AdamFields, grads: Gradients, backend: WasmBackend): void {
  const kernels = simdKernels(backend);
  const at = (t: { dataId: object }) => offsetOf(backend, t);
  const f = Math.fround;
  const named = Array.isArray(grads) ? grads.map((g) => [g.name, g.tensor] as const) : Object.entries(grads);
  // The constants as tfjs's kernels see them: float32 scalars (1 − β computed in double first, as tfjs does).
  const b1 = f(adam.beta1);
  const b2 = f(adam.beta2);
  const c1 = f(1 - adam.beta1);
  const c2 = f(1 - adam.beta2);
  const eps = f(adam.epsilon);
  const step = f(-adam.learningRate);
  const acc1 = adam.accBeta1.dataSync()[0];
  const acc2 = adam.accBeta2.dataSync()[0];
  const oneMinusAcc1 = f(1 - acc1);
  const oneMinusAcc2 = f(1 - acc2);
  tf.tidy(() => {
    named.forEach(([name, gradient], i) => {
      const value = tf.engine().registeredVariables[name];
      // Created as tfjs creates them (names included): a checkpoint saves and loads them the same way.
      adam.accumulatedFirstMoment[i] ??= { originalName: `${name}/m`, variable: tf.tidy(() => tf.zerosLike(value).variable(false)) };
      adam.accumulatedSecondMoment[i] ??= { originalName: `${name}/v`, variable: tf.tidy(() => tf.zerosLike(value).variable(false)) };
      if (gradient == null) return;
      const m = adam.accumulatedFirstMoment[i].variable;
      const v = adam.accumulatedSecondMoment[i].variable;
      const outs = [m, v, value].map((t) => backend.makeOutput(t.shape, "float32"));
      kernels.adam(at(gradient), at(m), at(v), at(value), at(outs[0]), at(outs[1]), at(outs[2]), value.size, b1, b2, c1, c2, oneMinusAcc1, oneMinusAcc2, eps, step);
      const [mNew, vNew, wNew] = outs.map((o) => tf.engine().makeTensorFromTensorInfo(o as tf.TensorInfo));
      m.assign(mNew);
      v.assign(vNew);
      value.assign(wNew);
    });
    adam.accBeta1.assign(tf.scalar(f(acc1 * b1)));
    adam.accBeta2.assign(tf.scalar(f(acc2 * b2)));
  });
  adam.incrementIterations();
}
