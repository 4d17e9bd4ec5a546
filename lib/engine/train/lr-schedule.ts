// The learning rate of every batch, from a job's schedule (lib/model-spec/schedule-schema.ts).
// Plain arithmetic, no tfjs: the trainer asks rateAt(epoch, batch) before each batch and hands the
// answer to the optimizer. Deterministic schedules are pure functions of the position, so a resumed
// job gets the same rates for free; reduce-on-plateau depends on past metrics, so its state() goes
// into each checkpoint and restore() picks it up.
import { z } from "zod";
import { monitorMode, scheduleIssues, type LrSchedule } from "../../model-spec/schedule-schema.ts";
import { improves, monitoredValue } from "./early-stopping.ts";
import { TrainingSetupError, type EpochMetrics } from "./train-types.ts";

/** What a checkpoint stores; `plateau` only for reduceOnPlateau. `best` is null (not Infinity, which JSON lacks) until an epoch was seen. */
export const lrScheduleStateSchema = z.strictObject({
  /** The last epoch ended (0 before the first). */
  epoch: z.number().int().min(0),
  plateau: z
    .strictObject({
      rate: z.number().min(0),
      best: z.number().nullable(),
      bestEpoch: z.number().int().min(1).nullable(),
      /** Epochs in a row without improvement, outside cooldown. */
      wait: z.number().int().min(0),
      /** Epochs of cooldown still to go. */
      cooldown: z.number().int().min(0),
    })
    .optional(),
});
export type LrScheduleState = z.infer<typeof lrScheduleStateSchema>;
type PlateauState = NonNullable<LrScheduleState["plateau"]>;

export interface LrEpochDecision {
  /** The plateau rule lowered the rate; it applies from the next epoch's first batch. */
  reduced: boolean;
  /** Why, for the job's record. */
  reason?: string;
}

export class LearningRateSchedule {
  /** Batches the warm-up ramp lasts (0: none). */
  readonly warmupBatches: number;
  #epoch = 0;
  #plateau: PlateauState | undefined;

  /**
   * `baseRate` is the optimizer's learningRate; `batchesPerEpoch` is ceil(training rows / batch
   * size), the same every epoch. A setup error if the schedule cannot apply to that rate.
   */
  constructor(readonly schedule: LrSchedule, readonly baseRate: number, readonly batchesPerEpoch: number, state?: LrScheduleState) {
    if (!(baseRate > 0) || !Number.isFinite(baseRate)) throw new TrainingSetupError(`learning-rate schedule: the base rate must be a positive number, got ${baseRate}`);
    if (!Number.isInteger(batchesPerEpoch) || batchesPerEpoch < 1) throw new TrainingSetupError(`learning-rate schedule: batchesPerEpoch must be a positive integer, got ${batchesPerEpoch}`);
    const issue = scheduleIssues(schedule, baseRate)[0];
    if (issue) throw new TrainingSetupError(`learning-rate schedule ${issue.path.join(".")}: ${issue.message}`);
    const w = schedule.warmup;
    // Math.round, not ceil: 1.1 epochs × 10 batches is 11.000000000000002.
    this.warmupBatches = !w ? 0 : w.batches ?? Math.round((w.epochs ?? 0) * batchesPerEpoch);

    if (schedule.type === "reduceOnPlateau") this.#plateau = { rate: baseRate, best: null, bestEpoch: null, wait: 0, cooldown: 0 };
    if (state) {
      if ((state.plateau === undefined) !== (this.#plateau === undefined)) throw new TrainingSetupError(`the checkpoint's learning-rate state does not belong to a ${schedule.type} schedule`);
      this.#epoch = state.epoch;
      this.#plateau = state.plateau && { ...state.plateau };
    }
  }

  /** Continues from a checkpoint's state() (a JSON column: checked, not trusted). */
  static restore(schedule: LrSchedule, baseRate: number, batchesPerEpoch: number, state: unknown): LearningRateSchedule {
    const parsed = lrScheduleStateSchema.safeParse(state);
    if (!parsed.success) throw new TrainingSetupError(`the checkpoint's learning-rate state is unreadable: ${z.prettifyError(parsed.error)}`);
    return new LearningRateSchedule(schedule, baseRate, batchesPerEpoch, parsed.data);
  }

  /**
   * The rate for a batch: epoch 1-based, batch 0-based within the epoch. For reduceOnPlateau it is
   * the rate in effect now (onEpochEnd moves it), whatever the epoch asked about.
   */
  rateAt(epoch: number, batch: number): number {
    if (!Number.isInteger(epoch) || epoch < 1) throw new RangeError(`epoch must be an integer >= 1, got ${epoch}`);
    if (!Number.isInteger(batch) || batch < 0 || batch >= this.batchesPerEpoch) throw new RangeError(`batch must be an integer in [0, ${this.batchesPerEpoch}), got ${batch}`);
    const step = (epoch - 1) * this.batchesPerEpoch + batch;
    const rate = this.#scheduled(epoch, step);
    return step < this.warmupBatches ? (rate * (step + 1)) / this.warmupBatches : rate;
  }

  #scheduled(epoch: number, step: number): number {
    const s = this.schedule;
    const base = this.baseRate;
    switch (s.type) {
      case "constant":
        return base;
      case "step":
        return base * s.factor ** Math.floor((epoch - 1) / s.every);
      case "exponential":
        return base * s.decay ** (s.per === "batch" ? step : epoch - 1);
      case "cosine":
        return cosine(s, base, step, this.batchesPerEpoch);
      case "reduceOnPlateau":
        return this.#plateau!.rate;
    }
  }

  /** After each epoch (1-based, following the last one): only reduceOnPlateau acts on the metrics. */
  onEpochEnd(epoch: number, metrics: EpochMetrics): LrEpochDecision {
    if (!Number.isInteger(epoch) || epoch <= this.#epoch) throw new RangeError(`learning-rate schedule: epoch ${epoch} ended after epoch ${this.#epoch}; restore the state saved with the checkpoint being resumed`);
    const s = this.schedule;
    const p = this.#plateau;
    if (s.type !== "reduceOnPlateau" || !p) {
      this.#epoch = epoch;
      return { reduced: false };
    }
    const value = monitoredValue(metrics, s.monitor, "reduceOnPlateau");
    this.#epoch = epoch;
    // PyTorch's ReduceLROnPlateau order: count, then cooldown forgives, then act past patience.
    if (improves(monitorMode(s.monitor, s.mode), value, p.best, s.minDelta)) {
      p.best = value;
      p.bestEpoch = epoch;
      p.wait = 0;
    } else p.wait++;
    if (p.cooldown > 0) {
      p.cooldown--;
      p.wait = 0;
    }
    if (p.wait <= s.patience) return { reduced: false };

    const waited = p.wait;
    p.wait = 0;
    p.cooldown = s.cooldown;
    const to = Math.max(p.rate * s.factor, s.minLearningRate);
    if (!(to < p.rate)) return { reduced: false };
    const from = p.rate;
    p.rate = to;
    const best = p.bestEpoch === null ? "" : ` (best ${p.best} at epoch ${p.bestEpoch})`;
    return { reduced: true, reason: `${s.monitor} has not improved for ${waited} epochs${best}: learning rate ${from} → ${to}` };
  }

  /** A small JSON-able snapshot; restore() from it continues identically. */
  state(): LrScheduleState {
    return { epoch: this.#epoch, ...(this.#plateau && { plateau: { ...this.#plateau } }) };
  }
}

/**
 * SGDR (Loshchilov & Hutter): cosine from `base` to the minimum over each period, counted in
 * batches so that period boundaries are exact integers; without restarts, the minimum after one.
 */
function cosine(s: Extract<LrSchedule, { type: "cosine" }>, base: number, step: number, batchesPerEpoch: number): number {
  let t = step;
  let period = s.epochs * batchesPerEpoch;
  if (!s.restarts) {
    if (t >= period) return s.minLearningRate;
  } else if (s.periodMultiplier === 1) t %= period;
  else {
    // Periods grow geometrically, so this runs a handful of times.
    while (t >= period) {
      t -= period;
      period *= s.periodMultiplier;
    }
  }
  return s.minLearningRate + ((base - s.minLearningRate) * (1 + Math.cos((Math.PI * t) / period))) / 2;
}
