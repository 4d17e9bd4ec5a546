// How a job steers itself while it trains: the learning-rate schedule and early stopping, in the
// same JSON language as the optimizer. The engine (lib/engine/train/lr-schedule.ts and
// early-stopping.ts) takes the parsed values as they are, so their types are inferred here only.
import { z } from "zod";

const positiveInt = () => z.number().int("expected an integer").min(1, "must be >= 1");
const count = () => z.number().int("expected an integer").min(0, "must be >= 0");
const nonNegative = () => z.number().min(0, "must be >= 0");

/** Metric kinds (the last `_` part of a metric's name) that get better as they grow. */
const MAXIMIZED = new Set(["accuracy", "acc", "f1", "precision", "recall", "r2", "auc"]);

/**
 * Whether a monitored metric should go down or up. "auto" reads the metric's kind, the part after
 * its last underscore: val_accuracy and head_f1 are maximized, everything else (val_loss,
 * head_loss) minimized. The last part and not a substring, because output names are free text and
 * `layer2_loss` contains "r2".
 */
export function monitorMode(monitor: string, mode: "min" | "max" | "auto"): "min" | "max" {
  if (mode !== "auto") return mode;
  // Per-class metrics are `<metric>/<class>`: the class name says nothing about the direction.
  const kind = monitor.toLowerCase().split("/")[0].split("_").at(-1) ?? "";
  return MAXIMIZED.has(kind) ? "max" : "min";
}

const monitor = (what: string) =>
  z
    .string()
    .min(1, "must not be empty")
    .default("val_loss")
    .describe(`The epoch metric ${what} watches: loss, accuracy, val_loss, val_accuracy, or per output <output>_loss etc. (val_ needs validationSplit > 0).`);
const mode = z
  .enum(["min", "max", "auto"], { error: "must be one of min, max, auto" })
  .default("auto")
  .describe("Whether the monitored metric should go down (min) or up (max). auto: max when its last _ part is accuracy, acc, f1, precision, recall, r2 or auc; min otherwise.");

export const warmupSchema = z
  .strictObject({
    epochs: nonNegative().optional().describe("Warm-up length in epochs (may be fractional: 0.5 is half an epoch's batches, rounded)."),
    batches: count().optional().describe("Warm-up length in batches."),
  })
  .superRefine((w, ctx) => {
    if ((w.epochs === undefined) === (w.batches === undefined)) ctx.addIssue({ code: "custom", path: [], message: "give exactly one of epochs, batches" });
  })
  .meta({
    id: "Warmup",
    description:
      "Linear warm-up, batch by batch: over the first N batches the rate is (k/N)·rate for the k-th batch (k = 1..N), then the schedule's rate. The schedule keeps the job's clock (it is not delayed by the warm-up), so cosine over the job's epochs still ends at its minimum.",
  });

/** Every schedule may start with a warm-up. */
const withWarmup = { warmup: warmupSchema.optional() };

const constantSchema = z
  .strictObject({ type: z.literal("constant"), ...withWarmup })
  .describe("The optimizer's learningRate throughout; with warmup, a warm-up alone.");

const stepSchema = z
  .strictObject({
    type: z.literal("step"),
    every: positiveInt().describe("Epochs between reductions: epochs 1..every train at the base rate, the next `every` at base·factor, and so on."),
    factor: z.number().gt(0, "must be > 0").max(1, "must be <= 1").default(0.1).describe("What the rate is multiplied by every `every` epochs."),
    ...withWarmup,
  })
  .describe("Step decay: rate · factor^floor((epoch − 1) / every).");

const exponentialSchema = z
  .strictObject({
    type: z.literal("exponential"),
    decay: z.number().gt(0, "must be > 0").max(1, "must be <= 1").describe("What the rate is multiplied by per epoch or per batch."),
    per: z.enum(["epoch", "batch"], { error: "must be one of epoch, batch" }).default("epoch").describe("epoch: rate · decay^(epoch − 1), fixed through an epoch; batch: rate · decay^(batches done)."),
    ...withWarmup,
  })
  .describe("Exponential decay.");

const cosineSchema = z
  .strictObject({
    type: z.literal("cosine"),
    epochs: positiveInt().describe("The period: epochs from the base rate down to minLearningRate (the first period, with restarts)."),
    minLearningRate: nonNegative().default(0).describe("The rate at the end of a period; must not exceed the optimizer's learningRate."),
    restarts: z.boolean().default(false).describe("SGDR: jump back to the base rate at the end of each period. Without restarts the rate stays at minLearningRate after the period."),
    periodMultiplier: positiveInt().default(1).describe("With restarts: each period is this many times longer than the one before (an integer, so restarts fall on epoch boundaries)."),
    ...withWarmup,
  })
  .describe("Cosine annealing, updated every batch: min + (rate − min)·(1 + cos(π·t/T))/2, t the epochs done (fractional) in the current period of T epochs.");

const reduceOnPlateauSchema = z
  .strictObject({
    type: z.literal("reduceOnPlateau"),
    monitor: monitor("reduce-on-plateau"),
    mode,
    factor: z.number().gt(0, "must be > 0").lt(1, "must be < 1").default(0.1).describe("What the rate is multiplied by on a plateau."),
    patience: count().default(10).describe("Epochs in a row without improvement that are tolerated; the next one reduces the rate (0: every epoch without improvement does)."),
    minDelta: nonNegative().default(1e-4).describe("An improvement must beat the best value so far by more than this (absolute)."),
    cooldown: count().default(0).describe("Epochs after a reduction during which epochs without improvement are not counted."),
    minLearningRate: nonNegative().default(0).describe("The rate is never reduced below this."),
    ...withWarmup,
  })
  .describe("Reduce the rate by `factor` when the monitored metric stops improving (evaluated at the end of each epoch; takes effect from the next one).");

const SCHEDULE_TYPES = ["constant", "step", "exponential", "cosine", "reduceOnPlateau"] as const;

export const lrScheduleSchema = z
  .discriminatedUnion("type", [constantSchema, stepSchema, exponentialSchema, cosineSchema, reduceOnPlateauSchema], {
    error: (iss) => (iss.code === "invalid_union" ? `must be one of ${SCHEDULE_TYPES.join(", ")}` : undefined),
  })
  .superRefine((s, ctx) => {
    if (s.type === "cosine" && s.periodMultiplier !== 1 && !s.restarts) ctx.addIssue({ code: "custom", path: ["periodMultiplier"], message: "applies only with restarts: true" });
  })
  .meta({
    id: "LearningRateSchedule",
    description: "How the optimizer's learningRate changes during training (it is the base rate every schedule starts from). Any type may begin with a linear warm-up.",
  });
export type LrSchedule = z.infer<typeof lrScheduleSchema>;

/**
 * The checks that need the optimizer's base rate, which lives in another schema: the job schema
 * asks this in its superRefine, the engine before it trains. Paths are relative to the schedule.
 */
export function scheduleIssues(schedule: LrSchedule, learningRate: number): { path: (string | number)[]; message: string }[] {
  if ((schedule.type === "cosine" || schedule.type === "reduceOnPlateau") && schedule.minLearningRate > learningRate) {
    return [{ path: ["minLearningRate"], message: `${schedule.minLearningRate} is above the optimizer's learningRate ${learningRate}` }];
  }
  return [];
}

export const earlyStoppingSchema = z
  .strictObject({
    monitor: monitor("early stopping"),
    mode,
    patience: count().default(10).describe("Epochs in a row without improvement that are tolerated; the next one stops training (0: the first epoch without improvement does)."),
    minDelta: nonNegative().default(0).describe("An improvement must beat the best value so far by more than this (absolute)."),
    restoreBestWeights: z.boolean().default(false).describe("The job's result is the weights of the best epoch, not of the last one."),
    baseline: z.number().optional().describe("A value the metric must beat: epochs that do not beat it count against patience even when they improve on the best so far."),
    startFromEpoch: count().default(0).describe("Epochs at the start that are not watched at all (the model is still settling)."),
  })
  .meta({ id: "EarlyStopping", description: "Stop training when the monitored metric stops improving." });
export type EarlyStoppingConfig = z.infer<typeof earlyStoppingSchema>;
