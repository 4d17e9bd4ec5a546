// Early stopping: when it stops in each mode, what minDelta, patience 0, a baseline and
// startFromEpoch change, the missing-metric message, resume equivalence, and the schema.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { EarlyStopping, type EarlyStoppingDecision } from "../../lib/engine/train/early-stopping.ts";
import { TrainingSetupError } from "../../lib/engine/train/train-types.ts";
import { earlyStoppingSchema, monitorMode } from "../../lib/model-spec/schedule-schema.ts";

const stopper = (input: object) => new EarlyStopping(earlyStoppingSchema.parse(input));

/** Feeds one value per epoch until a stop; the decisions, one per epoch fed. */
function run(input: object, values: number[], monitor = "val_loss"): EarlyStoppingDecision[] {
  const es = stopper({ monitor, ...input });
  const out: EarlyStoppingDecision[] = [];
  for (const [i, v] of values.entries()) {
    out.push(es.onEpochEnd(i + 1, { loss: 0.5, [monitor]: v }));
    if (out.at(-1)!.stop) break;
  }
  return out;
}
const stoppedAt = (d: EarlyStoppingDecision[]) => (d.at(-1)?.stop ? d.length : undefined);

const issues = (value: unknown) => {
  const r = earlyStoppingSchema.safeParse(value);
  return r.success ? [] : r.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`);
};

describe("when training stops", () => {
  test("min: the (patience + 1)-th epoch in a row without improvement stops", () => {
    const d = run({ patience: 2 }, [1, 0.9, 0.95, 0.92, 0.91, 0.5]);
    assert.equal(stoppedAt(d), 5);
    assert.deepEqual(d.map((x) => x.improved), [true, true, false, false, false]);
    assert.equal(d[4].reason, "val_loss has not improved for 3 epochs (best 0.9 at epoch 2), patience 2");
  });

  test("an improvement resets the count", () => {
    assert.equal(stoppedAt(run({ patience: 1 }, [1, 1.1, 0.9, 1.1, 0.8, 1.2, 1.3])), 7);
  });

  test("max: rising values are improvements", () => {
    assert.equal(stoppedAt(run({ mode: "max", patience: 1 }, [0.5, 0.6, 0.7, 0.8])), undefined);
    assert.equal(stoppedAt(run({ mode: "max", patience: 1 }, [0.8, 0.7, 0.6, 0.5])), 3);
  });

  test("auto: accuracy-like metrics are maximized, everything else minimized", () => {
    assert.equal(stopper({ monitor: "val_accuracy" }).mode, "max");
    assert.equal(stopper({ monitor: "val_loss" }).mode, "min");
    assert.equal(stoppedAt(run({ patience: 0 }, [0.5, 0.6, 0.7], "val_accuracy")), undefined);
    assert.equal(stoppedAt(run({ patience: 0 }, [0.5, 0.6, 0.7], "loss")), 2);
    for (const m of ["accuracy", "val_accuracy", "head_f1", "val_precision", "recall", "val_r2", "VAL_ACCURACY"]) assert.equal(monitorMode(m, "auto"), "max", m);
    // The metric's kind is the part after the last underscore: output names may contain anything.
    for (const m of ["loss", "val_loss", "layer2_loss", "accuracy_head_loss", "mse"]) assert.equal(monitorMode(m, "auto"), "min", m);
    assert.equal(monitorMode("val_accuracy", "min"), "min");
  });

  test("minDelta: an improvement must be larger than minDelta", () => {
    assert.equal(stoppedAt(run({ patience: 0, minDelta: 0.01 }, [1, 0.995, 0.98])), 2);
    assert.equal(stoppedAt(run({ patience: 0, minDelta: 0.01 }, [1, 0.985, 0.97])), undefined);
    assert.equal(stoppedAt(run({ patience: 0 }, [1, 0.995, 0.98])), undefined, "default minDelta 0");
    assert.equal(stoppedAt(run({ patience: 0 }, [1, 1])), 2, "equal is not better");
  });

  test("patience 0 stops at the first epoch without improvement", () => {
    assert.equal(stoppedAt(run({ patience: 0 }, [1, 0.9, 0.8, 0.85, 0.7])), 4);
  });

  test("baseline: epochs that do not beat it count against patience even when they improve", () => {
    const d = run({ patience: 1, baseline: 0.5 }, [0.8, 0.7, 0.6]);
    assert.equal(stoppedAt(d), 2);
    assert.equal(d[1].improved, true, "a new best is still reported, so its weights can be kept");
    assert.equal(d[1].reason, "val_loss has not beaten the baseline 0.5 in 2 epochs (best 0.7 at epoch 2)");
    // Once beaten, patience counts from the best as usual.
    const beaten = run({ patience: 1, baseline: 0.5 }, [0.8, 0.4, 0.45, 0.46]);
    assert.equal(stoppedAt(beaten), 4);
    assert.match(beaten[3].reason!, /^val_loss has not improved for 2 epochs \(best 0\.4 at epoch 2\)/);
    assert.equal(stoppedAt(run({ mode: "max", patience: 0, baseline: 0.9 }, [0.95, 0.96], "val_accuracy")), undefined);
  });

  test("startFromEpoch: the first epochs are not watched at all", () => {
    const es = stopper({ patience: 0, startFromEpoch: 2 });
    const d = [0.1, 0.2, 0.5, 0.6].map((v, i) => es.onEpochEnd(i + 1, { val_loss: v }));
    assert.deepEqual(d.map((x) => [x.stop, x.improved]), [[false, false], [false, false], [false, true], [true, false]]);
    assert.deepEqual(es.best, { epoch: 3, value: 0.5 });
  });

  test("NaN is never an improvement", () => {
    assert.equal(stoppedAt(run({ patience: 0 }, [1, Number.NaN])), 2);
    assert.equal(stopper({}).best, undefined);
  });

  test("the best epoch is tracked for restoreBestWeights", () => {
    const es = stopper({ patience: 5, restoreBestWeights: true });
    [0.9, 0.7, 0.8, 0.75, 0.71].forEach((v, i) => es.onEpochEnd(i + 1, { val_loss: v }));
    assert.deepEqual(es.best, { epoch: 2, value: 0.7 });
  });
});

test("a monitored metric the job does not report is a setup error listing what it does report", () => {
  const es = stopper({ startFromEpoch: 5 });
  assert.throws(() => es.onEpochEnd(1, { loss: 0.4, accuracy: 0.8 }), (e: Error) => {
    assert.ok(e instanceof TrainingSetupError);
    assert.equal(e.message, 'early stopping monitors "val_loss", which this job does not report (it reports loss, accuracy); there are no validation rows: set validationSplit > 0 or monitor "loss"');
    return true;
  });
  const typo = stopper({ monitor: "val_acc" });
  assert.throws(() => typo.onEpochEnd(1, { loss: 0.4, val_loss: 0.5, val_accuracy: 0.8 }), {
    message: 'early stopping monitors "val_acc", which this job does not report (it reports loss, val_loss, val_accuracy)',
  });
});

describe("resume", () => {
  const values = [0.9, 0.8, 0.85, 0.7, 0.72, 0.71, 0.69, 0.7, 0.7, 0.695, 0.71, 0.72, 0.73, 0.74];
  const config = earlyStoppingSchema.parse({ patience: 3, minDelta: 0.005, baseline: 0.75, startFromEpoch: 1 });

  function trace(es: EarlyStopping, from: number, to = values.length) {
    const out: EarlyStoppingDecision[] = [];
    for (let epoch = from; epoch <= to; epoch++) out.push(es.onEpochEnd(epoch, { val_loss: values[epoch - 1] }));
    return out;
  }

  test("a restored instance decides exactly as an uninterrupted one", () => {
    const whole = trace(new EarlyStopping(config), 1);
    assert.ok(whole.at(-1)!.stop, "the run must stop to test anything");
    for (const cut of [1, 4, 8, 11]) {
      const first = new EarlyStopping(config);
      const head = trace(first, 1, cut);
      const resumed = EarlyStopping.restore(config, JSON.parse(JSON.stringify(first.state())));
      assert.deepEqual([...head, ...trace(resumed, cut + 1)], whole, `cut after epoch ${cut}`);
      assert.deepEqual(resumed.best, new EarlyStopping(config, resumed.state()).best);
    }
  });

  test("state is small plain JSON, with null rather than Infinity before the first watched epoch", () => {
    assert.deepEqual(stopper({}).state(), { epoch: 0, best: null, bestEpoch: null, wait: 0 });
  });

  test("an unreadable state is refused, and so is an epoch seen twice", () => {
    assert.throws(() => EarlyStopping.restore(config, { epoch: 2, best: "x", bestEpoch: null, wait: 0 }), (e: Error) => e instanceof TrainingSetupError && /early-stopping state is unreadable/.test(e.message));
    const es = EarlyStopping.restore(config, { epoch: 4, best: 0.7, bestEpoch: 4, wait: 0 });
    assert.throws(() => es.onEpochEnd(4, { val_loss: 0.6 }), RangeError);
    assert.equal(es.onEpochEnd(5, { val_loss: 0.6 }).improved, true);
  });
});

describe("schema", () => {
  test("defaults are filled in", () => {
    assert.deepEqual(earlyStoppingSchema.parse({}), { monitor: "val_loss", mode: "auto", patience: 10, minDelta: 0, restoreBestWeights: false, startFromEpoch: 0 });
    assert.equal(earlyStoppingSchema.parse({ baseline: 0.3 }).baseline, 0.3);
  });

  test("bad values are reported at their path", () => {
    assert.deepEqual(issues({ patience: -1, minDelta: -0.1 }), ["patience: must be >= 0", "minDelta: must be >= 0"]);
    assert.deepEqual(issues({ patience: 1.5, startFromEpoch: 0.5 }), ["patience: expected an integer", "startFromEpoch: expected an integer"]);
    assert.deepEqual(issues({ mode: "up", monitor: "" }), ["monitor: must not be empty", "mode: must be one of min, max, auto"]);
    assert.deepEqual(issues({ pateince: 3 }), [': Unrecognized key: "pateince"']);
  });
});
