// Truncated backpropagation through time (lib/engine/train/tbptt.ts) against references computed
// here by hand, with real tfjs: a window as long as the sequence is plain BPTT; with shorter
// windows no gradient crosses a window boundary; and the state is carried across them.
import assert from "node:assert/strict";
import { before, describe, test } from "node:test";
import * as tf from "@tensorflow/tfjs";
import { initBackend } from "../../lib/engine/backend.ts";
import { buildModel } from "../../lib/engine/build/build-model.ts";
import { withSeededRandom } from "../../lib/engine/seeded-random.ts";
import { forwardForLoss, logitLayers } from "../../lib/engine/train/losses.ts";
import { objectivesOf } from "../../lib/engine/train/metrics.ts";
import { Tbptt } from "../../lib/engine/train/tbptt.ts";
import { compileForTraining, TrainingSetupError } from "../../lib/engine/train/trainer.ts";
import { modelSpecSchema } from "../../lib/model-spec/model-spec-schema.ts";
import { tbpttProblem } from "../../lib/model-spec/tbptt-rule.ts";

before(async () => {
  await initBackend("auto");
});

function lcg(seed: number) {
  let s = seed >>> 0;
  return () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32);
}

async function model(spec: object, seed = 1, optimizer: { type: "sgd" | "adam"; learningRate: number } = { type: "sgd", learningRate: 0.5 }) {
  const m = await withSeededRandom(seed, () => buildModel(modelSpecSchema.parse(spec)).model);
  compileForTraining(m, optimizer, "meanSquaredError");
  return m;
}

function tbpttOf(m: tf.LayersModel, window: number) {
  const objectives = objectivesOf(m, "meanSquaredError");
  return new Tbptt(m, window, { objectives, logits: logitLayers(m, objectives), vars: m.trainableWeights.map((w) => w.read() as tf.Variable) });
}

/** The plain full-BPTT step of the trainer: one gradient over the whole sequence, one update. */
function plainStep(m: tf.LayersModel, x: tf.Tensor, y: tf.Tensor): number {
  const objectives = objectivesOf(m, "meanSquaredError");
  const logits = logitLayers(m, objectives);
  return tf.tidy(() => {
    const { value, grads } = tf.variableGrads(() => forwardForLoss(m, [x], [y], objectives, logits, true).terms[0], m.trainableWeights.map((w) => w.read() as tf.Variable));
    m.optimizer!.applyGradients(grads);
    return value.dataSync()[0];
  });
}

const weightsOf = (m: tf.LayersModel) => m.getWeights().map((w) => Array.from(w.dataSync()));
function maxDiff(a: number[][], b: number[][]): number {
  let d = 0;
  a.forEach((w, i) => w.forEach((v, j) => (d = Math.max(d, Math.abs(v - b[i][j])))));
  return d;
}

function randomTensor(shape: number[], seed: number, scale = 1): tf.Tensor {
  const r = lcg(seed);
  const n = shape.reduce((a, b) => a * b, 1);
  return tf.tensor(Float32Array.from({ length: n }, () => (r() * 2 - 1) * scale), shape);
}

const T = 8;
const seqToSeq = (type: string) => ({ input: { shape: [T, 2] }, layers: [{ type, units: 3, returnSequences: true }, { type: "dense", units: 1 }] });
const seqToOne = (type: string) => ({ input: { shape: [T, 2] }, layers: [{ type, units: 3 }, { type: "dense", units: 1 }] });

describe("TBPTT with a window as long as the sequence is plain BPTT", () => {
  for (const [kind, specOf] of [["sequence-to-sequence", seqToSeq], ["sequence-to-one", seqToOne]] as const) {
    for (const type of ["simpleRNN", "lstm", "gru"]) {
      test(`${kind} ${type}: same loss and same weights after each step, a last smaller batch included`, async () => {
        const a = await model(specOf(type));
        const b = await model(specOf(type));
        b.setWeights(a.getWeights());
        const step = tbpttOf(b, T + 3);
        assert.deepEqual(step.windows(), [[0, T]]);
        for (const [rows, seed] of [[5, 1], [3, 2]]) {
          const x = randomTensor([rows, T, 2], seed);
          const y = randomTensor(kind === "sequence-to-one" ? [rows, 1] : [rows, T, 1], seed + 10);
          const plain = plainStep(a, x, y);
          const [loss, perOutput, correct] = tf.tidy(() => step.step([x], [y], 0.5));
          assert.ok(Math.abs(loss - plain) < 1e-6, `${loss} vs ${plain}`);
          assert.deepEqual(perOutput.length, 1);
          assert.deepEqual(correct, [0]);
          assert.ok(maxDiff(weightsOf(a), weightsOf(b)) < 1e-5);
          tf.dispose([x, y]);
        }
        assert.ok(maxDiff(weightsOf(a), weightsOf(await model(specOf(type)))) > 1e-3, "the steps moved the weights");
      });
    }
  }
});

// A simpleRNN written out with tf ops from the layer's weights: h_t = tanh(x_t·W + h_{t-1}·U + b).
type Weights = [tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor];
function rnnStates(w: Weights, x: tf.Tensor, h0: tf.Tensor, t0: number, steps: number): tf.Tensor[] {
  const hs: tf.Tensor[] = [];
  let h = h0;
  for (let t = t0; t < t0 + steps; t++) {
    const xt = tf.squeeze(tf.slice(x, [0, t, 0], [-1, 1, -1]), [1]);
    h = tf.tanh(tf.add(tf.add(tf.matMul(xt, w[0]), tf.matMul(h, w[1])), w[2]));
    hs.push(h);
  }
  return hs;
}
const head = (w: Weights, h: tf.Tensor) => tf.add(tf.matMul(h, w[3]), w[4]);
const halfMse = (y: tf.Tensor, p: tf.Tensor) => tf.mul(0.5, tf.mean(tf.square(tf.sub(y, p)))) as tf.Scalar;

/** Sequence-to-one by hand: the state advanced to `from` as a value (detached), then the loss's gradient over steps [from, T). */
function handUpdate(w0: Weights, x: tf.Tensor, y: tf.Tensor, from: number, lr: number): number[][] {
  return tf.tidy(() => {
    const rows = x.shape[0];
    const zero = tf.zeros([rows, w0[1].shape[0]]);
    // Detached for certain: read back to numbers and made into a new tensor.
    const hFrom = from === 0 ? zero : tf.tensor(rnnStates(w0, x, zero, 0, from).at(-1)!.arraySync() as number[][]);
    const grads = tf.grads((...w: tf.Tensor[]) => {
      const hs = rnnStates(w as Weights, x, hFrom, from, T - from);
      return halfMse(y, head(w as Weights, hs.at(-1)!));
    })([...w0]);
    return w0.map((w, i) => Array.from(tf.sub(w, tf.mul(lr, grads[i])).dataSync()));
  });
}

/** Sequence-to-sequence by hand: per window, the gradient of its steps' loss from the detached state, then an SGD update. */
function handWindows(w0: Weights, x: tf.Tensor, y: tf.Tensor, k: number, lr: number): number[][] {
  return tf.tidy(() => {
    let w = [...w0] as Weights;
    let h = tf.zeros([x.shape[0], w0[1].shape[0]]);
    for (let t0 = 0; t0 < T; t0 += k) {
      const steps = Math.min(k, T - t0);
      const yw = tf.slice(y, [0, t0, 0], [-1, steps, -1]);
      const h0 = tf.tensor(h.arraySync() as number[][]);
      const loss = (...ws: tf.Tensor[]) => halfMse(yw, tf.stack(rnnStates(ws as Weights, x, h0, t0, steps).map((hs) => head(ws as Weights, hs)), 1));
      const grads = tf.grads(loss)([...w]);
      // The carried state comes from the weights before this window's update, as in the engine.
      h = rnnStates(w, x, h0, t0, steps).at(-1)!;
      w = w.map((v, i) => tf.sub(v, tf.mul(lr, grads[i]))) as Weights;
    }
    return w.map((v) => Array.from(v.dataSync()));
  });
}

describe("with a window shorter than the sequence, no gradient crosses a window boundary", () => {
  test("sequence-to-one: one update, equal to the gradient over the last window from the detached state, not to full BPTT's", async () => {
    const m = await model(seqToOne("simpleRNN"), 3);
    const w0 = m.getWeights().map((w) => w.clone()) as Weights;
    const x = randomTensor([6, T, 2], 4, 1.5);
    const y = randomTensor([6, 1], 5);
    const step = tbpttOf(m, 3);
    assert.deepEqual(step.windows(), [[0, 3], [3, 3], [6, 2]]);
    tf.tidy(() => step.step([x], [y], 0.5));
    const got = weightsOf(m);
    const truncated = handUpdate(w0, x, y, 6, 0.5);
    const full = handUpdate(w0, x, y, 0, 0.5);
    assert.ok(maxDiff(got, truncated) < 1e-5, `differs from the truncated reference by ${maxDiff(got, truncated)}`);
    // The references differ, so matching the truncated one is not an accident.
    assert.ok(maxDiff(truncated, full) > 1e-3, `full and truncated references differ by only ${maxDiff(truncated, full)}`);
    tf.dispose([...w0, x, y]);
  });

  test("sequence-to-sequence: an update per window, each from the detached carried state", async () => {
    const m = await model(seqToSeq("simpleRNN"), 6);
    const w0 = m.getWeights().map((w) => w.clone()) as Weights;
    const x = randomTensor([6, T, 2], 7, 1.5);
    const y = randomTensor([6, T, 1], 8);
    tf.tidy(() => tbpttOf(m, 3).step([x], [y], 0.5));
    const got = weightsOf(m);
    const reference = handWindows(w0, x, y, 3, 0.5);
    assert.ok(maxDiff(got, reference) < 1e-5, `differs from the by-hand windows by ${maxDiff(got, reference)}`);
    // Not the same as restarting each window from zeros, nor as one full-BPTT step.
    const reset = tf.tidy(() => {
      const copy = w0.map((w) => w.clone()) as Weights;
      const out: number[][][] = [];
      // Windows from zero state = the same by-hand windows over independent chunks.
      let w = copy;
      for (let t0 = 0; t0 < T; t0 += 3) {
        const steps = Math.min(3, T - t0);
        const xw = tf.slice(x, [0, t0, 0], [-1, steps, -1]);
        const yw = tf.slice(y, [0, t0, 0], [-1, steps, -1]);
        const grads = tf.grads((...ws: tf.Tensor[]) => halfMse(yw, tf.stack(rnnStates(ws as Weights, xw, tf.zeros([6, 3]), 0, steps).map((h) => head(ws as Weights, h)), 1)))([...w]);
        w = w.map((v, i) => tf.sub(v, tf.mul(0.5, grads[i]))) as Weights;
      }
      out.push(w.map((v) => Array.from(v.dataSync())));
      return out[0];
    });
    assert.ok(maxDiff(reference, reset) > 1e-3);
    tf.dispose([...w0, x, y]);
  });
});

/** x ∈ {−1, 1}; the target at every step is a quarter of the sum of the inputs so far (since t = 0). */
function runningSums(rows: number, length: number, seed: number): { x: tf.Tensor; y: tf.Tensor } {
  const r = lcg(seed);
  const xs = new Float32Array(rows * length);
  const ys = new Float32Array(rows * length);
  for (let i = 0; i < rows; i++) {
    let sum = 0;
    for (let t = 0; t < length; t++) {
      const v = r() < 0.5 ? -1 : 1;
      sum += v;
      xs[i * length + t] = v;
      ys[i * length + t] = sum / 4;
    }
  }
  return { x: tf.tensor(xs, [rows, length, 1]), y: tf.tensor(ys, [rows, length, 1]) };
}

describe("the state is carried across windows", () => {
  const L = 16;
  const K = 4;
  const spec = { input: { shape: [L, 1] }, layers: [{ type: "simpleRNN", units: 4, activation: "linear", returnSequences: true }, { type: "dense", units: 1 }] };

  test("the windows' forward pass is the whole sequence's: with a zero rate the reported loss is the full-sequence loss", async () => {
    const m = await model(spec, 11, { type: "sgd", learningRate: 0 });
    const { x, y } = runningSums(8, L, 12);
    const [loss] = tf.tidy(() => tbpttOf(m, K).step([x], [y], 0));
    const full = tf.tidy(() => forwardForLoss(m, [x], [y], objectivesOf(m, "meanSquaredError"), [undefined], false).terms[0].dataSync()[0]);
    assert.ok(Math.abs(loss - full) < 1e-5, `${loss} vs ${full}`);
    tf.dispose([x, y]);
  });

  test("running sums since t = 0: TBPTT(4) on 16 steps learns them; the same windows restarted from zeros cannot", async () => {
    const carried = await model(spec, 13, { type: "adam", learningRate: 0.03 });
    const reset = await model(spec, 13, { type: "adam", learningRate: 0.03 });
    const windowed = tbpttOf(carried, K);
    const chunked = tbpttOf(reset, K);
    const last = { carried: [] as number[], reset: [] as number[] };
    for (let s = 0; s < 120; s++) {
      const { x, y } = runningSums(32, L, 100 + s);
      last.carried.push(tf.tidy(() => windowed.step([x], [y], 0.03))[0]);
      // The same windows as independent sequences: each starts from zeros.
      const xr = tf.reshape(x, [32 * (L / K), K, 1]);
      const yr = tf.reshape(y, [32 * (L / K), K, 1]);
      last.reset.push(tf.tidy(() => chunked.step([xr], [yr], 0.03))[0]);
      tf.dispose([x, y, xr, yr]);
    }
    const mean = (a: number[]) => a.slice(-10).reduce((p, q) => p + q, 0) / 10;
    // Restarted windows cannot know the sum before them: about ½·mean(t0)/16 = 0.19 at best.
    assert.ok(mean(last.reset) > 0.1, `reset: ${mean(last.reset)}`);
    assert.ok(mean(last.carried) < 0.02, `carried: ${mean(last.carried)}`);
    // And the model trained with carried state computes the running sum over whole fresh sequences.
    const { x, y } = runningSums(64, L, 7);
    const held = tf.tidy(() => forwardForLoss(carried, [x], [y], objectivesOf(carried, "meanSquaredError"), [undefined], false).terms[0].dataSync()[0]);
    assert.ok(held < 0.02, `held-out full-sequence loss ${held}`);
    tf.dispose([x, y]);
  });
});

describe("models TBPTT cannot carry state through are refused", () => {
  test("bidirectional, no recurrent layer, an unknown sequence length", async () => {
    const bi = await model({ input: { shape: [T, 2] }, layers: [{ type: "bidirectional", layer: { type: "lstm", units: 2 } }, { type: "dense", units: 1 }] });
    assert.throws(() => tbpttOf(bi, 2), (e) => e instanceof TrainingSetupError && /bidirectional/.test(e.message));
    const dense = await model({ input: { shape: [T, 2] }, layers: [{ type: "flatten" }, { type: "dense", units: 1 }] });
    assert.throws(() => tbpttOf(dense, 2), /needs a recurrent layer/);
    const free = await model({ input: { shape: [null, 2] }, layers: [{ type: "gru", units: 2 }, { type: "dense", units: 1 }] });
    assert.throws(() => tbpttOf(free, 2), /known length/);
  });
});

describe("the spec rule the API checks (tbptt-rule.ts)", () => {
  const problem = (spec: object, window = 4) => tbpttProblem(modelSpecSchema.parse(spec), window);

  test("per-step layers before the recurrent layers, token ids through an embedding, and graphs pass", () => {
    assert.equal(problem({ input: { shape: [T, 2] }, layers: [{ type: "dense", units: 4, activation: "relu" }, { type: "dropout", rate: 0.1 }, { type: "lstm", units: 3 }, { type: "dense", units: 1 }] }), undefined);
    assert.equal(problem({ input: { shape: [T], dtype: "int32" }, layers: [{ type: "embedding", inputDim: 10, outputDim: 4, maskZero: true }, { type: "gru", units: 3, returnSequences: true }, { type: "dense", units: 10, activation: "softmax" }] }), undefined);
    // After a summary (returnSequences false) anything goes: the graph's head sees a vector.
    assert.equal(problem({
      inputs: { a: { shape: [T, 2] }, b: { shape: [T, 3] } },
      nodes: { ra: { type: "lstm", units: 3, inputs: ["a"] }, rb: { type: "gru", units: 3, returnSequences: true, inputs: ["b"] }, pool: { type: "lstm", units: 2, inputs: ["rb"] }, cat: { type: "concatenate", inputs: ["ra", "pool"] }, out: { type: "dense", units: 1, inputs: ["cat"] } },
      outputs: ["out"],
    }), undefined);
  });

  test("what cannot be windowed is named at its node", () => {
    assert.match(problem({ input: { shape: [T, 2] }, layers: [{ type: "lstm", units: 3, returnSequences: true }, { type: "globalAveragePooling1d" }, { type: "dense", units: 1 }] })!.message, /spec\.layers\[1\] \(globalAveragePooling1d\) mixes time steps/);
    assert.match(problem({ input: { shape: [T] }, layers: [{ type: "dense", units: 4 }, { type: "dense", units: 1 }] })!.message, /spec\.layers\[0\] \(dense\) mixes time steps/);
    const shared = problem({ inputs: { a: { shape: [T, 2] } }, nodes: { r: { type: "simpleRNN", units: 3, returnSequences: true, inputs: ["a"] }, again: { type: "shared", of: "r", inputs: ["r"] }, out: { type: "dense", units: 1, inputs: ["again"] } }, outputs: ["out"] });
    assert.match(shared!.message, /spec\.nodes\.again calls the recurrent layer of 'r' a second time/);
    const mixed = problem({ inputs: { a: { shape: [T, 2] } }, nodes: { r: { type: "lstm", units: 3, inputs: ["a"] }, s: { type: "lstm", units: 3, returnSequences: true, inputs: ["a"] }, m: { type: "add", inputs: ["s", "r"] }, out: { type: "dense", units: 1, inputs: ["m"] } }, outputs: ["out"] });
    assert.equal(mixed!.path, "tbptt");
    assert.match(mixed!.message, /merges a sequence with a recurrent layer's summary/);
    assert.deepEqual(problem(seqToSeq("gru"), T), { path: "tbptt.window", message: `is ${T} and the sequences are ${T} steps long: the window must be shorter (a window of the whole sequence is plain backpropagation through time)` });
    assert.equal(problem(seqToSeq("gru"), T - 1), undefined);
  });
});
