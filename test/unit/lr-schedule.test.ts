// Learning-rate schedules: each type's rate at known positions against numbers worked out by hand,
// warm-up alone and composed, reduce-on-plateau's counting, resume equivalence, and the schema.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { z } from "zod";
import { LearningRateSchedule } from "../../lib/engine/train/lr-schedule.ts";
import { TrainingSetupError } from "../../lib/engine/train/train-types.ts";
import { lrScheduleSchema, scheduleIssues } from "../../lib/model-spec/schedule-schema.ts";

const schedule = (input: unknown, base = 0.1, batchesPerEpoch = 4) => new LearningRateSchedule(lrScheduleSchema.parse(input), base, batchesPerEpoch);

function close(actual: number, expected: number, what = "") {
  assert.ok(Math.abs(actual - expected) <= 1e-12 * Math.max(1, Math.abs(expected)), `${what} ${actual} != ${expected}`);
}

/** Rates at [epoch, batch] positions. */
const rates = (s: LearningRateSchedule, at: [number, number][]) => at.map(([e, b]) => s.rateAt(e, b));

const issues = (value: unknown) => {
  const r = lrScheduleSchema.safeParse(value);
  return r.success ? [] : r.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`);
};

describe("deterministic schedules", () => {
  test("constant is the base rate everywhere", () => {
    const s = schedule({ type: "constant" });
    assert.deepEqual(rates(s, [[1, 0], [1, 3], [50, 2]]), [0.1, 0.1, 0.1]);
  });

  test("step: every 3 epochs × 0.5, the same for every batch of an epoch", () => {
    const s = schedule({ type: "step", every: 3, factor: 0.5 }, 0.1, 4);
    const got = rates(s, [[1, 0], [3, 3], [4, 0], [6, 2], [7, 0], [10, 1]]);
    [0.1, 0.1, 0.05, 0.05, 0.025, 0.0125].forEach((want, i) => close(got[i], want, `#${i}`));
  });

  test("exponential per epoch: base·decay^(epoch − 1), fixed through the epoch", () => {
    const s = schedule({ type: "exponential", decay: 0.9 }, 0.1, 4);
    const got = rates(s, [[1, 0], [1, 3], [2, 0], [3, 2]]);
    [0.1, 0.1, 0.09, 0.081].forEach((want, i) => close(got[i], want, `#${i}`));
  });

  test("exponential per batch: base·decay^(batches done), continuing across epochs", () => {
    const s = schedule({ type: "exponential", decay: 0.9, per: "batch" }, 0.1, 4);
    const got = rates(s, [[1, 0], [1, 3], [2, 0], [3, 1]]);
    [0.1, 0.0729, 0.06561, 0.1 * 0.387420489].forEach((want, i) => close(got[i], want, `#${i}`)); // 0.9^9 = 0.387420489
  });

  test("cosine without restarts: from the base rate to the minimum over the period, then stays there", () => {
    // 4 epochs × 2 batches = 8 steps; the rate is (1 + cos(π·t/8))/2 at step t.
    const s = schedule({ type: "cosine", epochs: 4 }, 1, 2);
    const got = rates(s, [[1, 0], [1, 1], [2, 0], [3, 0], [4, 1], [5, 0], [9, 1]]);
    [1, 0.9619397662556434, 0.8535533905932737, 0.5, 0.03806023374435663, 0, 0].forEach((want, i) => close(got[i], want, `#${i}`));
    const floor = schedule({ type: "cosine", epochs: 4, minLearningRate: 0.1 }, 1, 2);
    close(floor.rateAt(3, 0), 0.1 + 0.9 * 0.5);
    close(floor.rateAt(5, 0), 0.1);
  });

  test("cosine with restarts (SGDR): back to the base rate at each period's start", () => {
    // Period 2 epochs × 2 batches = 4 steps.
    const s = schedule({ type: "cosine", epochs: 2, restarts: true }, 1, 2);
    const got = rates(s, [[1, 0], [2, 0], [2, 1], [3, 0], [4, 0], [4, 1], [5, 0]]);
    [1, 0.5, 0.14644660940672624, 1, 0.5, 0.14644660940672624, 1].forEach((want, i) => close(got[i], want, `#${i}`));
  });

  test("cosine with restarts and periodMultiplier 2: periods of 1, 2, 4, 8 epochs", () => {
    // Periods start at epochs 1, 2, 4, 8 (steps 0, 2, 6, 14 with 2 batches per epoch).
    const s = schedule({ type: "cosine", epochs: 1, restarts: true, periodMultiplier: 2 }, 1, 2);
    const got = rates(s, [[1, 0], [1, 1], [2, 0], [3, 0], [4, 0], [6, 0], [7, 1], [8, 0]]);
    // [7,1] is step 13: 7 into the period of 8 steps that began at step 6.
    [1, 0.5, 1, 0.5, 1, 0.5, 0.03806023374435663, 1].forEach((want, i) => close(got[i], want, `#${i}`));
  });

  test("positions outside an epoch are refused", () => {
    const s = schedule({ type: "constant" }, 0.1, 4);
    assert.throws(() => s.rateAt(0, 0), RangeError);
    assert.throws(() => s.rateAt(1, 4), RangeError);
    assert.throws(() => s.rateAt(1.5, 0), RangeError);
  });
});

describe("warm-up", () => {
  test("alone: (k/N)·base for the k-th of N batches, then the base rate", () => {
    const s = schedule({ type: "constant", warmup: { batches: 4 } }, 0.2, 3);
    const got = rates(s, [[1, 0], [1, 1], [1, 2], [2, 0], [2, 1], [3, 0]]);
    [0.05, 0.1, 0.15, 0.2, 0.2, 0.2].forEach((want, i) => close(got[i], want, `#${i}`));
  });

  test("in epochs, fractional ones included, is counted in batches", () => {
    const s = schedule({ type: "constant", warmup: { epochs: 1.5 } }, 0.6, 4);
    assert.equal(s.warmupBatches, 6);
    const got = rates(s, [[1, 0], [1, 3], [2, 1], [2, 2]]);
    [0.1, 0.4, 0.6, 0.6].forEach((want, i) => close(got[i], want, `#${i}`));
    assert.equal(schedule({ type: "constant", warmup: { epochs: 1.1 } }, 0.1, 10).warmupBatches, 11);
    assert.equal(schedule({ type: "constant", warmup: { epochs: 0 } }, 0.1, 10).rateAt(1, 0), 0.1);
  });

  test("composed: the ramp scales the schedule's rate, whose clock is not delayed", () => {
    const step = schedule({ type: "step", every: 1, factor: 0.5, warmup: { batches: 2 } }, 0.1, 2);
    const got = rates(step, [[1, 0], [1, 1], [2, 0], [3, 1]]);
    [0.05, 0.1, 0.05, 0.025].forEach((want, i) => close(got[i], want, `#${i}`));

    // Cosine over 4 epochs × 2 batches, warm-up 1 epoch (2 batches): ½·cos-rate(0), then cos-rate(1).
    const cos = schedule({ type: "cosine", epochs: 4, warmup: { epochs: 1 } }, 1, 2);
    const c = rates(cos, [[1, 0], [1, 1], [2, 0]]);
    [0.5, 0.9619397662556434, 0.8535533905932737].forEach((want, i) => close(c[i], want, `#${i}`));
  });

  test("composed with reduce-on-plateau: the ramp scales the plateau's current rate", () => {
    const s = schedule({ type: "reduceOnPlateau", monitor: "loss", patience: 0, factor: 0.5, warmup: { batches: 4 } }, 1, 2);
    assert.deepEqual(rates(s, [[1, 0], [1, 1]]), [0.25, 0.5]);
    s.onEpochEnd(1, { loss: 1 });
    assert.equal(s.onEpochEnd(2, { loss: 1 }).reduced, true);
    // Warm-up has ended by epoch 3; the rate is the reduced one.
    assert.deepEqual(rates(s, [[3, 0], [3, 1]]), [0.5, 0.5]);
  });
});

describe("reduce on plateau", () => {
  /** Feeds one value per epoch of `monitor`; returns the epochs at which the rate was reduced and the rate after each. */
  function run(input: object, values: number[], base = 1, monitor = "val_loss") {
    const s = schedule({ type: "reduceOnPlateau", ...input }, base, 2);
    const reducedAt: number[] = [];
    const after: number[] = [];
    values.forEach((v, i) => {
      if (s.onEpochEnd(i + 1, { loss: 0, [monitor]: v }).reduced) reducedAt.push(i + 1);
      after.push(s.rateAt(i + 2, 0));
    });
    return { reducedAt, after, s };
  }

  test("patience 2: the third epoch in a row without improvement reduces, from the next epoch on", () => {
    const { reducedAt, after, s } = run({ patience: 2, factor: 0.5, minDelta: 0 }, [1, 0.9, 0.9, 0.95, 0.91, 0.92, 0.93, 0.94]);
    assert.deepEqual(reducedAt, [5, 8]);
    assert.deepEqual(after, [1, 1, 1, 1, 0.5, 0.5, 0.5, 0.25]);
    assert.equal(s.rateAt(5, 1), 0.25, "the plateau rate is the one in effect now");
  });

  test("the reason names the metric, the best epoch and the rates", () => {
    const s = schedule({ type: "reduceOnPlateau", patience: 0, factor: 0.5 }, 0.2, 1);
    s.onEpochEnd(1, { val_loss: 0.7 });
    assert.deepEqual(s.onEpochEnd(2, { val_loss: 0.8 }), { reduced: true, reason: "val_loss has not improved for 1 epochs (best 0.7 at epoch 1): learning rate 0.2 → 0.1" });
  });

  test("cooldown: epochs right after a reduction do not count", () => {
    const { reducedAt } = run({ patience: 0, cooldown: 2, factor: 0.5 }, [1, 1, 1, 1, 1, 1, 1, 1]);
    assert.deepEqual(reducedAt, [2, 5, 8]);
  });

  test("minLearningRate is a floor; at the floor nothing is reduced", () => {
    const { reducedAt, after } = run({ patience: 0, factor: 0.1, minLearningRate: 0.05 }, [1, 1, 1, 1]);
    assert.deepEqual(reducedAt, [2, 3]);
    after.forEach((r, i) => close(r, [1, 0.1, 0.05, 0.05][i], `#${i}`));
  });

  test("minDelta: improvements of at most minDelta count as none", () => {
    assert.deepEqual(run({ patience: 0 }, [0.5, 0.49995]).reducedAt, [2], "default minDelta 1e-4");
    assert.deepEqual(run({ patience: 0, minDelta: 0 }, [0.5, 0.49995]).reducedAt, []);
  });

  test("mode auto maximizes accuracy and minimizes losses; an explicit mode wins", () => {
    assert.deepEqual(run({ monitor: "val_accuracy", patience: 0 }, [0.5, 0.6, 0.7], 1, "val_accuracy").reducedAt, []);
    assert.deepEqual(run({ monitor: "val_accuracy", patience: 0 }, [0.7, 0.6], 1, "val_accuracy").reducedAt, [2]);
    assert.deepEqual(run({ monitor: "layer2_loss", patience: 0 }, [0.7, 0.6], 1, "layer2_loss").reducedAt, [], "layer2 contains r2, but the metric is a loss");
    assert.deepEqual(run({ monitor: "val_loss", mode: "max", patience: 0 }, [0.7, 0.6]).reducedAt, [2]);
  });

  test("a monitored metric the job does not report is a setup error naming what there is", () => {
    const s = schedule({ type: "reduceOnPlateau" });
    assert.throws(() => s.onEpochEnd(1, { loss: 0.3, accuracy: 0.9 }), (e: Error) => {
      assert.ok(e instanceof TrainingSetupError);
      assert.equal(e.message, 'reduceOnPlateau monitors "val_loss", which this job does not report (it reports loss, accuracy); there are no validation rows: set validationSplit > 0 or monitor "loss"');
      return true;
    });
  });
});

describe("resume", () => {
  // A noisy, slowly improving loss: plateaus, reductions and cooldowns all happen in 40 epochs.
  const losses = Array.from({ length: 40 }, (_, i) => 1 / (1 + i / 8) + 0.05 * Math.sin(i * 1.7));
  const input = { type: "reduceOnPlateau", patience: 2, cooldown: 1, factor: 0.5, minLearningRate: 0.01, warmup: { batches: 5 } };
  const bpe = 3;

  /** Every batch's rate and every epoch's decision, epochs `from` to `to`. */
  function trace(s: LearningRateSchedule, from: number, to = losses.length) {
    const out: unknown[] = [];
    for (let epoch = from; epoch <= to; epoch++) {
      for (let b = 0; b < bpe; b++) out.push(s.rateAt(epoch, b));
      out.push(s.onEpochEnd(epoch, { loss: losses[epoch - 1], val_loss: losses[epoch - 1] }));
    }
    return out;
  }

  test("a restored plateau schedule continues exactly as an uninterrupted one", () => {
    const parsed = lrScheduleSchema.parse(input);
    const whole = trace(new LearningRateSchedule(parsed, 0.3, bpe), 1);
    assert.ok(whole.filter((d) => (d as { reduced?: boolean }).reduced).length >= 2, "the run must reduce more than once to test anything");
    for (const cut of [1, 7, 13, 26]) {
      const first = new LearningRateSchedule(parsed, 0.3, bpe);
      const head = trace(first, 1, cut);
      // What a checkpoint holds: the state after epoch `cut`, through JSON.
      const resumed = LearningRateSchedule.restore(parsed, 0.3, bpe, JSON.parse(JSON.stringify(first.state())));
      assert.deepEqual([...head, ...trace(resumed, cut + 1)], whole, `cut after epoch ${cut}`);
    }
  });

  test("state is small plain JSON, without Infinity before the first epoch", () => {
    const s = schedule(input);
    assert.deepEqual(s.state(), { epoch: 0, plateau: { rate: 0.1, best: null, bestEpoch: null, wait: 0, cooldown: 0 } });
    assert.deepEqual(schedule({ type: "cosine", epochs: 3 }).state(), { epoch: 0 });
  });

  test("a deterministic schedule resumes from its epoch alone", () => {
    const parsed = lrScheduleSchema.parse({ type: "cosine", epochs: 2, restarts: true, periodMultiplier: 2, warmup: { epochs: 1 } });
    const whole = new LearningRateSchedule(parsed, 0.1, 3);
    whole.onEpochEnd(1, {});
    whole.onEpochEnd(2, {});
    const resumed = LearningRateSchedule.restore(parsed, 0.1, 3, JSON.parse(JSON.stringify(whole.state())));
    for (let e = 3; e <= 12; e++) for (let b = 0; b < 3; b++) assert.equal(resumed.rateAt(e, b), whole.rateAt(e, b));
    assert.doesNotThrow(() => resumed.onEpochEnd(3, {}));
  });

  test("a state that does not fit is refused, and so is an epoch seen twice", () => {
    const plateau = lrScheduleSchema.parse({ type: "reduceOnPlateau" });
    assert.throws(() => LearningRateSchedule.restore(plateau, 0.1, 2, { epoch: -1 }), /learning-rate state is unreadable/);
    assert.throws(() => LearningRateSchedule.restore(plateau, 0.1, 2, { epoch: 3 }), /does not belong to a reduceOnPlateau schedule/);
    const s = LearningRateSchedule.restore(plateau, 0.1, 2, { epoch: 3, plateau: { rate: 0.05, best: 0.4, bestEpoch: 2, wait: 1, cooldown: 0 } });
    assert.equal(s.rateAt(4, 0), 0.05);
    assert.throws(() => s.onEpochEnd(3, { val_loss: 1 }), RangeError);
  });
});

describe("schema", () => {
  test("defaults are filled in", () => {
    assert.deepEqual(lrScheduleSchema.parse({ type: "step", every: 5 }), { type: "step", every: 5, factor: 0.1 });
    assert.deepEqual(lrScheduleSchema.parse({ type: "exponential", decay: 0.95 }), { type: "exponential", decay: 0.95, per: "epoch" });
    assert.deepEqual(lrScheduleSchema.parse({ type: "cosine", epochs: 10 }), { type: "cosine", epochs: 10, minLearningRate: 0, restarts: false, periodMultiplier: 1 });
    assert.deepEqual(lrScheduleSchema.parse({ type: "reduceOnPlateau" }), {
      type: "reduceOnPlateau",
      monitor: "val_loss",
      mode: "auto",
      factor: 0.1,
      patience: 10,
      minDelta: 1e-4,
      cooldown: 0,
      minLearningRate: 0,
    });
    assert.deepEqual(lrScheduleSchema.parse({ type: "constant", warmup: { batches: 100 } }), { type: "constant", warmup: { batches: 100 } });
  });

  test("bad values are reported at their path", () => {
    assert.deepEqual(issues({ type: "linear" }), ["type: must be one of constant, step, exponential, cosine, reduceOnPlateau"]);
    assert.deepEqual(issues({ every: 2 }), ["type: must be one of constant, step, exponential, cosine, reduceOnPlateau"]);
    assert.deepEqual(issues({ type: "step", every: 0, factor: 0 }), ["every: must be >= 1", "factor: must be > 0"]);
    assert.deepEqual(issues({ type: "step", every: 2, factor: 1.5 }), ["factor: must be <= 1"]);
    assert.deepEqual(issues({ type: "exponential", decay: 0.9, per: "step" }), ["per: must be one of epoch, batch"]);
    assert.deepEqual(issues({ type: "cosine", epochs: 10, periodMultiplier: 2 }), ["periodMultiplier: applies only with restarts: true"]);
    assert.deepEqual(issues({ type: "cosine", epochs: 10, restarts: true, periodMultiplier: 1.5 }), ["periodMultiplier: expected an integer"]);
    assert.deepEqual(issues({ type: "reduceOnPlateau", factor: 1, patience: -1, mode: "down" }), ["mode: must be one of min, max, auto", "factor: must be < 1", "patience: must be >= 0"]);
    assert.deepEqual(issues({ type: "constant", warmup: {} }), ["warmup: give exactly one of epochs, batches"]);
    assert.deepEqual(issues({ type: "constant", warmup: { epochs: 1, batches: 4 } }), ["warmup: give exactly one of epochs, batches"]);
    assert.deepEqual(issues({ type: "constant", warmup: { batches: 2.5 } }), ["warmup.batches: expected an integer"]);
    assert.deepEqual(issues({ type: "step", every: 2, evry: 3 }), [': Unrecognized key: "evry"']);
  });

  test("a floor above the optimizer's rate is caught, by the schema's helper and by the engine", () => {
    const s = lrScheduleSchema.parse({ type: "cosine", epochs: 5, minLearningRate: 0.01 });
    assert.deepEqual(scheduleIssues(s, 0.001), [{ path: ["minLearningRate"], message: "0.01 is above the optimizer's learningRate 0.001" }]);
    assert.deepEqual(scheduleIssues(s, 0.01), []);
    assert.throws(() => new LearningRateSchedule(s, 0.001, 10), TrainingSetupError);
    assert.throws(() => new LearningRateSchedule(s, 0.1, 0), TrainingSetupError);
  });

  test("every field but the discriminator is described in the JSON schema (OpenAPI reads these)", () => {
    type Prop = { description?: string; $ref?: string };
    const json = z.toJSONSchema(lrScheduleSchema, { io: "input" }) as { $defs: Record<string, Prop & { oneOf?: { properties: Record<string, Prop> }[] }> };
    const variants = json.$defs.LearningRateSchedule.oneOf!;
    assert.equal(variants.length, 5);
    for (const variant of variants) {
      for (const [name, prop] of Object.entries(variant.properties)) {
        // A named schema ($ref, like Warmup) carries its description in $defs.
        const described = prop.$ref ? json.$defs[prop.$ref.replace("#/$defs/", "")].description : prop.description;
        if (name !== "type") assert.ok(described, `${JSON.stringify(variant.properties.type)}.${name} has no description`);
      }
    }
  });
});
