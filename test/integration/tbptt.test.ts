// Truncated backpropagation through time through the API and a real worker: a recurrent model
// learns running sums of 16-step sequences with windows of 4 steps, and jobs asking for tbptt on
// models it cannot train are refused with a 400 that says why.
import assert from "node:assert/strict";
import type { InjectOptions } from "fastify";
import { describe, test } from "node:test";
import { useTrainingEnv } from "../helpers/training-env.ts";
import { waitForJob } from "../helpers/training.ts";

const ctx = useTrainingEnv("tbptt");
const inject = (opts: InjectOptions) => ctx.env.app.inject(opts);

function lcg(seed: number) {
  let s = seed >>> 0;
  return () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32);
}

async function post(url: string, payload: object, status: number) {
  const res = await inject({ method: "POST", url, headers: ctx.auth, payload });
  assert.equal(res.statusCode, status, res.body);
  return res.json();
}

const T = 16;

/** Steps of ±1; the label of every step is a quarter of the sum so far (since the first step). */
function runningSums(rows: number, seed: number) {
  const r = lcg(seed);
  const features: number[][][] = [];
  const labels: number[][][] = [];
  for (let i = 0; i < rows; i++) {
    let sum = 0;
    const xs: number[][] = [];
    const ys: number[][] = [];
    for (let t = 0; t < T; t++) {
      const v = r() < 0.5 ? -1 : 1;
      sum += v;
      xs.push([v]);
      ys.push([sum / 4]);
    }
    features.push(xs);
    labels.push(ys);
  }
  return { features, labels };
}

const rnn = (layer: object) => ({ input: { shape: [T, 1] }, layers: [layer, { type: "dense", units: 1 }] });

describe("truncated backpropagation through time", () => {
  let dataset = "";

  test("a recurrent job with tbptt {window: 4} trains on 16-step sequences: the loss falls, metrics and diagnostics are stored", async (t) => {
    const { features, labels } = runningSums(320, 1);
    const ds = await post("/v1/datasets", { name: "running-sums", features, labels }, 201);
    assert.deepEqual(ds.inputShape, [T, 1]);
    dataset = ds.id;
    await post("/v1/models", { name: "sums-rnn", spec: rnn({ type: "simpleRNN", units: 8, activation: "linear", returnSequences: true }) }, 201);

    const job = await post("/v1/training-jobs", { model: "sums-rnn", dataset, epochs: 6, batchSize: 32, optimizer: { type: "adam", learningRate: 0.02 }, validationSplit: 0.2, seed: 4, tbptt: { window: 4 } }, 202);
    assert.deepEqual(job.hyperparameters.tbptt, { window: 4 });
    const done = await waitForJob(ctx.env.app.inject.bind(ctx.env.app), ctx.auth, job.id, undefined, 60_000);
    assert.equal(done.status, "succeeded", JSON.stringify(done));
    const epochs = (await inject({ url: `/v1/training-jobs/${job.id}/metrics`, headers: ctx.auth })).json().epochs;
    assert.equal(epochs.length, 6);
    const [first, last] = [epochs[0].metrics, epochs.at(-1).metrics];
    t.diagnostic(`loss ${first.loss.toFixed(4)} → ${last.loss.toFixed(4)}, val_loss ${first.val_loss.toFixed(4)} → ${last.val_loss.toFixed(4)}`);
    assert.ok(last.loss < first.loss * 0.5, `loss falls: ${first.loss} → ${last.loss}`);
    // Validation runs the whole sequences from a zero state: the carried state learned the sums since t = 0.
    assert.ok(last.val_loss < 0.05, `val_loss ${last.val_loss}`);
    const diagnostics = (await inject({ url: `/v1/training-jobs/${job.id}/diagnostics`, headers: ctx.auth })).json();
    assert.equal(diagnostics.epochs.length, 6);
    assert.ok(diagnostics.epochs[0].gradNorm > 0);
  });

  test("models tbptt cannot train, and windows that are not shorter than the sequence, are a 400 that says why", async () => {
    await post("/v1/models", { name: "sums-lstm", spec: rnn({ type: "lstm", units: 4, returnSequences: true }) }, 201);
    const job = (extra: object, model = "sums-lstm") => ({ model, dataset, epochs: 1, ...extra });

    const whole = await post("/v1/training-jobs", job({ tbptt: { window: T } }), 400);
    assert.match(whole.detail, /tbptt\.window: is 16 and the sequences are 16 steps long: the window must be shorter/);
    const zero = await post("/v1/training-jobs", job({ tbptt: { window: 0 } }), 400);
    assert.match(zero.detail, /tbptt\.window/);

    await post("/v1/models", { name: "sums-dense", spec: rnn({ type: "dense", units: 4, activation: "relu" }) }, 201);
    const dense = await post("/v1/training-jobs", job({ tbptt: { window: 4 } }, "sums-dense"), 400);
    assert.match(dense.detail, /tbptt\.window: needs a recurrent layer \(simpleRNN, lstm, gru\)/);

    await post("/v1/models", { name: "sums-free", spec: { input: { shape: [null, 1] }, layers: [{ type: "gru", units: 4 }, { type: "dense", units: T }] } }, 201);
    const free = await post("/v1/training-jobs", job({ tbptt: { window: 4 } }, "sums-free"), 400);
    assert.match(free.detail, /tbptt\.window: needs sequence inputs of a known length; input 'input' has shape \[null, 1\]/);

    await post("/v1/models", { name: "sums-bi", spec: rnn({ type: "bidirectional", layer: { type: "lstm", units: 4, returnSequences: true } }) }, 201);
    const bi = await post("/v1/training-jobs", job({ tbptt: { window: 4 } }, "sums-bi"), 400);
    assert.match(bi.detail, /tbptt: spec\.layers\[0\] is bidirectional: its backward direction starts from the end of the sequence/);

    await post("/v1/models", { name: "sums-conv", spec: { input: { shape: [T, 1] }, layers: [{ type: "conv1d", filters: 4, kernelSize: 3, padding: "same" }, { type: "lstm", units: 4, returnSequences: true }, { type: "dense", units: 1 }] } }, 201);
    const conv = await post("/v1/training-jobs", job({ tbptt: { window: 4 } }, "sums-conv"), 400);
    assert.match(conv.detail, /tbptt: spec\.layers\[0\] \(conv1d\) mixes time steps/);
  });
});
