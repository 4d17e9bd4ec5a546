// Early stopping: watches one epoch metric and says when it has stopped improving. Plain
// bookkeeping, no tfjs: the trainer asks after every epoch, keeps the best weights when told
// `improved` (restoreBestWeights), and stores state() with each checkpoint so a resumed job
// counts patience exactly as an uninterrupted one.
import { z } from "zod";
import { monitorMode, type EarlyStoppingConfig } from "../../model-spec/schedule-schema.ts";
import { TrainingSetupError, type EpochMetrics } from "./train-types.ts";

/** The monitored metric's value this epoch; a setup error naming what there is if it is absent. */
export function monitoredValue(metrics: EpochMetrics, monitor: string, user: string): number {
  const value = metrics[monitor];
  if (value !== undefined) return value;
  const names = Object.keys(metrics);
  // The usual cause: val_* monitored (the default) by a job without validation rows.
  const hint = monitor.startsWith("val_") && !names.some((n) => n.startsWith("val_")) ? `; there are no validation rows: set validationSplit > 0 or monitor "${monitor.slice(4)}"` : "";
  throw new TrainingSetupError(`${user} monitors "${monitor}", which this job does not report (it reports ${names.join(", ") || "nothing"})${hint}`);
}

/**
 * Whether `value` beats `reference` by more than `minDelta` (strictly) in the direction of `mode`;
 * anything beats no reference yet, and NaN beats nothing.
 */
export function improves(mode: "min" | "max", value: number, reference: number | null, minDelta: number): boolean {
  if (Number.isNaN(value)) return false;
  if (reference === null) return true;
  return mode === "min" ? value < reference - minDelta : value > reference + minDelta;
}

/** What a checkpoint stores. `best` is null, not ±Infinity, until an epoch was watched: JSON has no Infinity. */
export const earlyStoppingStateSchema = z.strictObject({
  /** The last epoch seen (0 before the first). */
  epoch: z.number().int().min(0),
  best: z.number().nullable(),
  bestEpoch: z.number().int().min(1).nullable(),
  /** Epochs in a row that did not count as an improvement. */
  wait: z.number().int().min(0),
});
export type EarlyStoppingState = z.infer<typeof earlyStoppingStateSchema>;

export interface EarlyStoppingDecision {
  stop: boolean;
  /** A new best value: the weights to keep with restoreBestWeights. */
  improved: boolean;
  /** Why training stops, for the job's record. */
  reason?: string;
}

export class EarlyStopping {
  readonly mode: "min" | "max";
  #s: EarlyStoppingState = { epoch: 0, best: null, bestEpoch: null, wait: 0 };

  constructor(readonly config: EarlyStoppingConfig, state?: EarlyStoppingState) {
    this.mode = monitorMode(config.monitor, config.mode);
    if (state) this.#s = { ...state };
  }

  /** Continues from a checkpoint's state() (a JSON column: checked, not trusted). */
  static restore(config: EarlyStoppingConfig, state: unknown): EarlyStopping {
    const parsed = earlyStoppingStateSchema.safeParse(state);
    if (!parsed.success) throw new TrainingSetupError(`the checkpoint's early-stopping state is unreadable: ${z.prettifyError(parsed.error)}`);
    return new EarlyStopping(config, parsed.data);
  }

  /** The best epoch watched so far and its value. */
  get best(): { epoch: number; value: number } | undefined {
    const { best, bestEpoch } = this.#s;
    return best === null || bestEpoch === null ? undefined : { epoch: bestEpoch, value: best };
  }

  /** Epoch is 1-based and must follow the last one seen (a replayed epoch would count twice). */
  onEpochEnd(epoch: number, metrics: EpochMetrics): EarlyStoppingDecision {
    if (!Number.isInteger(epoch) || epoch <= this.#s.epoch) throw new RangeError(`early stopping: epoch ${epoch} ended after epoch ${this.#s.epoch}; restore the state saved with the checkpoint being resumed`);
    const { monitor, minDelta, patience, baseline, startFromEpoch } = this.config;
    // Read before startFromEpoch is checked, so a missing metric fails at epoch 1, not hours later.
    const value = monitoredValue(metrics, monitor, "early stopping");
    this.#s.epoch = epoch;
    if (epoch <= startFromEpoch) return { stop: false, improved: false };

    const improved = improves(this.mode, value, this.#s.best, minDelta);
    if (improved) {
      this.#s.best = value;
      this.#s.bestEpoch = epoch;
    }
    // A new best below the baseline is kept (its weights may still be the best there are) but does
    // not buy more patience.
    const counts = improved && (baseline === undefined || improves(this.mode, value, baseline, minDelta));
    this.#s.wait = counts ? 0 : this.#s.wait + 1;
    if (this.#s.wait <= patience) return { stop: false, improved };

    const n = this.#s.wait;
    const bestText = this.#s.bestEpoch === null ? "" : ` (best ${this.#s.best} at epoch ${this.#s.bestEpoch})`;
    const reason =
      baseline !== undefined && this.#s.best !== null && !improves(this.mode, this.#s.best, baseline, minDelta)
        ? `${monitor} has not beaten the baseline ${baseline} in ${n} epochs${bestText}`
        : `${monitor} has not improved for ${n} epochs${bestText}, patience ${patience}`;
    return { stop: true, improved, reason };
  }

  /** A small JSON-able snapshot; restore() from it continues identically. */
  state(): EarlyStoppingState {
    return { ...this.#s };
  }
}
