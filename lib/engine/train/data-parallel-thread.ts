// A data-parallel training helper (see data-parallel.ts): a worker thread with its own backend and
// a replica of the model. Each step it takes the weights and its rows from shared memory, computes
// the gradients of its share with the training loop's own function (stepGradients), and writes
// them back. It blocks between steps (Atomics.wait): a thread of its own does nothing else.
import { workerData, parentPort } from "node:worker_threads";
import * as tf from "@tensorflow/tfjs";
import { initBackend, type BackendRequest } from "../backend.ts";
import { loadModel } from "../model-io.ts";
import { mulberry32 } from "../seeded-random.ts";
import { CONTROL, writeError, type ThreadInit } from "./data-parallel.ts";
import { skipInputGradients } from "./input-gradients.ts";
import { correctCount, logitLayers, stepGradients, targetTensor } from "./losses.ts";

const init = workerData as ThreadInit;
await initBackend(init.backend as BackendRequest);
const model = await loadModel(init.model);
// As the loop trains: convolutions on the inputs skip the images' gradient.
skipInputGradients(model);
const logits = logitLayers(model, init.objectives);
const vars = model.trainableWeights.map((w) => w.read() as tf.Variable);
// The replica must train the same variables in the same order (frozen layers included): the gradients are matched by position.
if (vars.length !== init.sizes.length || vars.some((v, i) => v.size !== init.sizes[i])) {
  throw new Error(`the replica's trainable weights (${vars.map((v) => v.size).join(", ")}) are not the model's (${init.sizes.join(", ")})`);
}
const control = new Int32Array(init.buffers.control);
const weights = new Float32Array(init.buffers.weights);
const rows = init.buffers.rows.map((b) => new Float32Array(b));
const grads = new Float32Array(init.buffers.grads);
const figures = new Float64Array(init.buffers.figures);
const outputs = init.objectives.length;
parentPort!.postMessage("ready");

let seen = 0;
for (;;) {
  Atomics.wait(control, CONTROL.step, seen);
  const step = Atomics.load(control, CONTROL.step);
  if (step < 0) break;
  if (step === seen) continue;
  seen = step;
  try {
    share(Atomics.load(control, CONTROL.rows), Atomics.load(control, CONTROL.seed));
    Atomics.store(control, CONTROL.failed, 0);
  } catch (err) {
    writeError(init.buffers.error, (err as Error).message ?? String(err));
    Atomics.store(control, CONTROL.failed, 1);
  }
  Atomics.store(control, CONTROL.done, step);
  Atomics.notify(control, CONTROL.done);
}

function share(n: number, seed: number): void {
  tf.tidy(() => {
    let at = 0;
    for (const v of vars) {
      v.assign(tf.tensor(weights.subarray(at, at + v.size), v.shape));
      at += v.size;
    }
    Math.random = mulberry32(seed >>> 0);
    const xs = init.inputs.map((t, k) => tf.tensor(rows[k].slice(0, n * t.width), [n, ...t.shape], t.dtype));
    const ys = init.targets.map((t, k) => targetTensor({ ...t, data: rows[init.inputs.length + k].slice(0, n * t.width) }, n, t.loss, t.outputShape));
    const result = stepGradients(model, xs, ys, init.objectives, logits, init.shaping, vars);
    at = 0;
    for (const v of vars) {
      const g = result.grads[v.name];
      if (g) grads.set(g.dataSync() as Float32Array, at);
      else grads.fill(0, at, at + v.size);
      at += v.size;
    }
    figures[0] = result.value.dataSync()[0];
    result.terms.forEach((t, k) => (figures[1 + k] = t.dataSync()[0]));
    init.objectives.forEach((o, k) => (figures[1 + outputs + k] = o.loss === "meanSquaredError" ? 0 : correctCount(o.loss, ys[k], result.preds[k], o.margin).dataSync()[0]));
    tf.dispose([...result.preds, ...result.terms]);
  });
}
