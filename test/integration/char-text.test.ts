// Plain text for the zoo's char model, through the API: a text/plain upload becomes sequences of
// character ids with next-character labels, and char_model trains on it with a real worker.
import assert from "node:assert/strict";
import { gzipSync } from "node:zlib";
import { describe, test } from "node:test";
import { useTrainingEnv } from "../helpers/training-env.ts";
import { createModel, waitForJob } from "../helpers/training.ts";

// Lewis Carroll, Alice's Adventures in Wonderland (1865; public domain), the first two paragraphs.
const ALICE =
  "Alice was beginning to get very tired of sitting by her sister on the bank, and of having nothing to do: once or twice she had peeped into " +
  "the book her sister was reading, but it had no pictures or conversations in it, 'and what is the use of a book,' thought Alice 'without " +
  "pictures or conversations?'\n\nSo she was considering in her own mind (as well as she could, for the hot day made her feel very sleepy and " +
  "stupid), whether the pleasure of making a daisy-chain would be worth the trouble of getting up and picking the daisies, when suddenly a " +
  "White Rabbit with pink eyes ran close by her.\n";

const ctx = useTrainingEnv("text");

const upload = (query: string, body: string | Buffer, headers: Record<string, string> = {}) =>
  ctx.env.app.inject({ method: "POST", url: `/v1/datasets?${query}`, headers: { ...ctx.auth, "content-type": "text/plain; charset=utf-8", ...headers }, payload: body });

function problemAt(res: { statusCode: number; body: string; json(): any }, path: string, message: RegExp) {
  assert.equal(res.statusCode, 400, res.body);
  const problem = res.json().errors?.find((e: { path: string }) => e.path === path);
  assert.ok(problem, `a problem at ${path}; got ${res.body}`);
  assert.match(problem.message, message);
}

describe("text uploads", () => {
  test("text/plain is taken: rows of character ids, each step labelled with the next character", async () => {
    const res = await upload("name=alice&sequenceLength=16", ALICE);
    assert.equal(res.statusCode, 201, res.body);
    const ds = res.json();
    const vocabulary = [...new Set(ALICE)].sort();
    assert.deepEqual(ds.classes, ["", ...vocabulary]);
    assert.equal(ds.rows, Math.floor((ALICE.length - 1) / 16));
    assert.deepEqual(ds.inputs, [{ name: "input", shape: [16], kind: "sequence" }]);
    assert.deepEqual(ds.targetShape, [16]);
    assert.equal(ds.task, "classification");

    const gzipped = await upload("name=alice-gz&sequenceLength=16", gzipSync(ALICE), { "content-encoding": "gzip" });
    assert.equal(gzipped.statusCode, 201, gzipped.body);
    assert.deepEqual(gzipped.json().classes, ds.classes);
  });

  test("bad text uploads are 400s naming what", async () => {
    problemAt(await upload("name=t", ALICE), "querystring.sequenceLength", /is required/);
    problemAt(await upload("name=t&sequenceLength=5000", ALICE), "querystring.sequenceLength", /expected an integer from 1 to 1024/);
    problemAt(await upload("sequenceLength=8", ALICE), "querystring.name", /is required/);
    problemAt(await upload("name=t&sequenceLength=9", "too short"), "text", /has 9 characters; \?sequenceLength=9 needs at least 10/);
    problemAt(await upload("name=t&sequenceLength=8", "   \n  \n"), "text", /has 7 characters/);
    const wide = Array.from({ length: 1001 }, (_, i) => String.fromCodePoint(0x4e00 + i)).join("");
    problemAt(await upload("name=t&sequenceLength=8", wide), "text", /1001 distinct characters; at most 1000/);
    problemAt(await upload("name=t&sequenceLength=8", "line one\nline\u0000two"), "text line 2, column 5", /NUL/);
    problemAt(await upload("name=t&sequenceLength=8", ""), "text", /is empty/);
  });

  test("the zoo's char_model trains on it with a real worker: the loss goes down, and it predicts a distribution per step", async (t) => {
    const ds = (await upload("name=alice-train&sequenceLength=16", ALICE)).json();
    const template = await ctx.env.app.inject({ url: `/v1/templates/char_model?inputShape=16&classes=${ds.classes.length}&embeddingDim=16&units=64` });
    assert.equal(template.statusCode, 200, template.body);
    await createModel(ctx.env.app.inject.bind(ctx.env.app), ctx.auth, "alice", template.json().spec);
    const epochs = 12;
    const job = await ctx.env.app.inject({
      method: "POST", url: "/v1/training-jobs", headers: ctx.auth,
      payload: { model: "alice", dataset: ds.id, epochs, batchSize: 8, optimizer: { type: "adam", learningRate: 0.02 }, validationSplit: 0, seed: 3 },
    });
    assert.equal(job.statusCode, 202, job.body);
    const done = await waitForJob(ctx.env.app.inject.bind(ctx.env.app), ctx.auth, job.json().id, undefined, 300_000);
    assert.equal(done.status, "succeeded", JSON.stringify(done));
    const series = (await ctx.env.app.inject({ url: `/v1/training-jobs/${job.json().id}/metrics`, headers: ctx.auth })).json();
    const losses = series.epochs.map((e: { metrics: { loss: number } }) => e.metrics.loss);
    assert.equal(losses.length, epochs);
    t.diagnostic(`char_model loss by epoch: ${losses.map((l: number) => l.toFixed(3)).join(", ")}`);
    assert.ok(losses[epochs - 1] < 0.8 * losses[0], `loss went down: ${losses.map((l: number) => l.toFixed(3)).join(", ")}`);

    // "Alice was beginni" as ids: the model answers, at every step, a distribution over the vocabulary.
    const ids = [..."Alice was beginn"].map((c) => ds.classes.indexOf(c));
    const pred = await ctx.env.app.inject({ method: "POST", url: "/v1/models/alice:predict", headers: ctx.auth, payload: { instances: [ids] } });
    assert.equal(pred.statusCode, 200, pred.body);
    const [steps] = pred.json().predictions as number[][][];
    assert.equal(steps.length, 16);
    for (const p of steps) {
      assert.equal(p.length, ds.classes.length);
      assert.ok(Math.abs(p.reduce((a, b) => a + b, 0) - 1) < 1e-4);
    }
  });
});
