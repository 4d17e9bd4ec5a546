// What the training loop takes and gives back. Plain data: the caller (lib/training) packs a
// dataset into these, and the loop knows nothing of where it came from.
import type { Augmentation } from "../../model-spec/augmentation-schema.ts";
import type { OptimizerConfig } from "../../model-spec/optimizer-schema.ts";
import type { LossName } from "../../model-spec/model-spec-schema.ts";
import type { OutputObjective, Task } from "../../model-spec/objectives.ts";
import type { EarlyStoppingConfig, LrSchedule } from "../../model-spec/schedule-schema.ts";
import type { DiagnosticWarning, EpochDiagnostics } from "./diagnostics.ts";
import type { ConfusionMatrix } from "./output-scores.ts";

export type { LossName, OptimizerConfig, OutputObjective };

/** One tensor's worth of rows: `rows × prod(shape)` values, row-major. */
export interface RowTensor {
  data: Float32Array;
  /** Shape of one row (without the batch axis). */
  shape: number[];
  dtype?: "float32" | "int32";
}

/** What one model output trains on: class ids (classification; one per position of `shape`) or values (regression). */
export interface TargetTensor extends RowTensor {
  /** The model output it trains. */
  name: string;
  task: Task;
  classes: string[];
}

export interface TrainData {
  rows: number;
  /** One entry per model input, in the model's input order. */
  inputs: RowTensor[];
  /** One entry per model output, in the model's output order. */
  targets: TargetTensor[];
}

/** A single loss for a one-output model, or one objective per output. */
export type Objective = LossName | OutputObjective[];

export interface TrainConfig {
  epochs: number;
  batchSize: number;
  optimizer: OptimizerConfig;
  validationSplit: number;
  seed: number;
  /** "perceptron": Rosenblatt's rule for a single dense layer with a step activation. */
  mode?: "backprop" | "perceptron";
  /**
   * Threads that share each batch (data-parallel.ts); default 1. The perceptron's rule, truncated
   * BPTT and adversarial training always run on one.
   */
  threads?: number;
  /** Truncated backpropagation through time (tbptt.ts): windows of `window` steps, the recurrent state carried across them. */
  tbptt?: { window: number };
  /** Rows to train and validate on (e.g. a stratified split made by the caller); default: a seeded split by validationSplit. */
  split?: { train: Int32Array; validation: Int32Array };
  /** Random transforms of the training images, per batch (never of validation rows); see augment.ts. */
  augmentation?: Augmentation;
  /** The learning rate over time (lr-schedule.ts); default the optimizer's, constant. Its rate in force is the `lr` metric. */
  lrSchedule?: LrSchedule;
  /** Stop once a monitored metric stops improving (early-stopping.ts). */
  earlyStopping?: EarlyStoppingConfig;
  /**
   * Resuming after `startEpoch` epochs: their metrics, in order (epoch 1 first). The schedule and
   * early stopping decide from the metrics they have seen, so they replay these to stand where an
   * uninterrupted run would.
   */
  history?: EpochMetrics[];
  /** Clip each step's gradients: each value into [−value, value], and their global L2 norm to at most `norm`. */
  gradientClipping?: { norm?: number; value?: number };
  /** ε of label smoothing for cross-entropy outputs (training loss only). */
  labelSmoothing?: number;
  /** Per output, per class id, the weight of that class's examples in the training loss (undefined: all 1). */
  classWeights?: (number[] | undefined)[];
  /**
   * Adversarial training: `fraction` of each training batch replaced by its FGSM examples,
   * x + ε·sign(∇ₓ loss), per value of the (preprocessed) input row: `epsilon`, and the range
   * `[low, high]` they are clipped to, each one value per value of a row (one input only).
   */
  adversarial?: { fraction: number; epsilon: Float32Array; low?: Float32Array; high?: Float32Array };
  /** Measure gradients, dead ReLUs and saturation each epoch (diagnostics.ts); default true (not in perceptron mode). */
  diagnostics?: boolean;
  /** Resuming: the diagnostics of the epochs already trained, so trends (exploding gradients) span the interruption and no warning is raised twice. */
  diagnosticsHistory?: EpochDiagnostics[];
}

export type EpochMetrics = Record<string, number>;

/** An epoch's diagnostics and the warnings first raised at it. */
export interface EpochHealth {
  diagnostics: EpochDiagnostics;
  warnings: DiagnosticWarning[];
  /** Per classification output, the validation confusion matrix (rows: true class, columns: predicted). */
  confusion?: ConfusionMatrix[];
}

/** What early stopping made of an epoch: whether it is the best so far (keep its weights), and whether to stop. */
export interface EpochVerdict {
  improved: boolean;
  stop: boolean;
  reason?: string;
  /** The best epoch so far (this one when improved). */
  bestEpoch?: number;
}

/** Returned by onEpochEnd to end training after that epoch, like early stopping (e.g. a search's successive halving). */
export interface EpochStop {
  stop: string;
}

export interface TrainHooks {
  /**
   * Called after each epoch (1-based) with its metrics; may store a checkpoint. `verdict` with early
   * stopping; `health` with diagnostics (diagnostics.ts): the epoch's measurements and the warnings first raised at it.
   */
  onEpochEnd?: (epoch: number, metrics: EpochMetrics, verdict?: EpochVerdict, health?: EpochHealth) => Promise<void | EpochStop>;
  /** After each batch: its epoch (1-based), its number in the epoch (1-based), batches per epoch and rows in it. */
  onBatchEnd?: (epoch: number, batch: number, batches: number, rows: number) => Promise<void> | void;
  /**
   * Polled before each batch. true or "cancel": stop at once (nothing stored). "checkpoint": store a
   * mid-epoch checkpoint (onCheckpoint) and go on. "suspend": store one and stop (a pause, a worker
   * shutting down): the result says where, and train() resumes there given `within`.
   */
  shouldStop?: () => Promise<boolean | BatchControl> | boolean | BatchControl;
  /** Stores a mid-epoch checkpoint: the model as it stands after `within.batch` batches of `epoch`. */
  onCheckpoint?: (epoch: number, within: WithinEpoch) => Promise<void>;
}

export type BatchControl = "cancel" | "checkpoint" | "suspend";

/** How far into an epoch training stands: batches done, and the epoch's running sums (its metrics at the end). */
export interface WithinEpoch {
  batch: number;
  tally: { loss: number; outputLoss: number[]; correct: number[] };
}

export interface TrainResult {
  /** Cancelled (shouldStop). */
  stopped: boolean;
  /** Suspended inside an epoch ("suspend"), after its checkpoint was stored: where. */
  suspended?: { epoch: number; within: WithinEpoch };
  lastEpoch: number;
  metrics: EpochMetrics;
  /** Ended by early stopping before the last epoch: why, and the best epoch (whose weights restoreBestWeights wants). */
  earlyStop?: { epoch: number; bestEpoch?: number; reason: string };
}

/** Training itself shows that the configuration cannot work (the loss diverged). */
export class TrainingDivergedError extends Error {}

/** The model, data or configuration handed to the loop cannot be trained as given. */
export class TrainingSetupError extends Error {}
