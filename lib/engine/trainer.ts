// The training loop. Written out rather than model.fit() because a job needs what fit hides:
// seeded shuffles and dropout per epoch (exact resume), a cancel check between batches, loss
// checks that fail fast on NaN, and a hook after every epoch that stores metrics and a checkpoint.
import * as tf from "@tensorflow/tfjs";
import { ValidationError } from "../errors.ts";
import { deriveSeed, mulberry32, permutation, withSeededRandom } from "./seeded-random.ts";

export type Task = "classification" | "regression";
export type LossName = "categoricalCrossentropy" | "binaryCrossentropy" | "meanSquaredError";

export interface TrainData {
  task: Task;
  rows: number;
  inputShape: number[];
  classes: string[];
  targetSize: number;
  x: Float32Array;
  /** Class ids (classification) or targets (regression), targetSize per row. */
  y: Float32Array;
}

export interface OptimizerConfig {
  type: "sgd" | "adam";
  learningRate: number;
}

export interface TrainConfig {
  epochs: number;
  batchSize: number;
  optimizer: OptimizerConfig;
  validationSplit: number;
  seed: number;
}

export type EpochMetrics = Record<string, number>;

export interface TrainHooks {
  /** Called after each epoch (1-based) with its metrics; may store a checkpoint. */
  onEpochEnd?: (epoch: number, metrics: EpochMetrics) => Promise<void>;
  /** Polled between batches: true stops training before the next batch. */
  shouldStop?: () => Promise<boolean> | boolean;
}

export interface TrainResult {
  stopped: boolean;
  lastEpoch: number;
  metrics: EpochMetrics;
}

/** Thrown when training itself shows the configuration cannot work (e.g. the loss diverged). */
export class TrainingDivergedError extends Error {}

/** Picks the loss from the dataset and the model's output, or explains why they do not fit. */
export function lossFor(data: Pick<TrainData, "task" | "classes" | "targetSize">, outputShape: number[]): LossName {
  const units = outputShape.reduce((a, b) => a * b, 1);
  if (outputShape.length !== 1) throw ValidationError.at("model", `output shape [${outputShape.join(", ")}] must be flat for this dataset`);
  if (data.task === "regression") {
    if (units !== data.targetSize) throw ValidationError.at("model", `output has ${units} units, the regression dataset has ${data.targetSize} target(s)`);
    return "meanSquaredError";
  }
  const k = data.classes.length;
  if (units === k) return "categoricalCrossentropy";
  if (units === 1 && k === 2) return "binaryCrossentropy";
  throw ValidationError.at("model", `output has ${units} units, the dataset has ${k} classes (${data.classes.join(", ")})`);
}

export function createOptimizer(cfg: OptimizerConfig): tf.Optimizer {
  return cfg.type === "adam" ? tf.train.adam(cfg.learningRate) : tf.train.sgd(cfg.learningRate);
}

const EPS = 1e-7;

function lossValue(loss: LossName, yTrue: tf.Tensor, yPred: tf.Tensor): tf.Scalar {
  return tf.tidy((): tf.Scalar => {
    if (loss === "meanSquaredError") return tf.mean(tf.square(tf.sub(yTrue, yPred))) as tf.Scalar;
    const p = tf.clipByValue(yPred, EPS, 1 - EPS);
    if (loss === "binaryCrossentropy") {
      return tf.neg(tf.mean(tf.add(tf.mul(yTrue, tf.log(p)), tf.mul(tf.sub(1, yTrue), tf.log(tf.sub(1, p)))))) as tf.Scalar;
    }
    return tf.neg(tf.mean(tf.sum(tf.mul(yTrue, tf.log(p)), -1))) as tf.Scalar;
  });
}

/** Number of correct predictions in a batch, for classification. */
function correctCount(loss: LossName, yTrue: tf.Tensor, yPred: tf.Tensor): tf.Scalar {
  return tf.tidy(() => {
    if (loss === "binaryCrossentropy") return tf.sum(tf.cast(tf.equal(tf.greater(yPred, 0.5), tf.greater(yTrue, 0.5)), "float32"));
    return tf.sum(tf.cast(tf.equal(tf.argMax(yPred, -1), tf.argMax(yTrue, -1)), "float32"));
  });
}

/** Targets as the loss wants them: one-hot rows for softmax outputs, the stored values otherwise. */
function targetTensor(data: TrainData, loss: LossName): tf.Tensor2D {
  if (loss === "categoricalCrossentropy") {
    return tf.tidy(() => tf.cast(tf.oneHot(tf.tensor1d(Int32Array.from(data.y), "int32"), data.classes.length), "float32") as tf.Tensor2D);
  }
  return tf.tensor2d(data.y, [data.rows, data.targetSize]);
}

/**
 * Compiles the model with the optimizer and loss so that saving with includeOptimizer carries
 * both (the trainingConfig a resumed job is rebuilt from).
 */
export function compileForTraining(model: tf.LayersModel, cfg: OptimizerConfig, loss: LossName): void {
  model.compile({ optimizer: createOptimizer(cfg), loss });
}

/** Splits rows into train and validation sets by a seeded permutation (data files are often sorted by class). */
export function splitIndices(rows: number, validationSplit: number, seed: number): { train: Int32Array; validation: Int32Array } {
  const order = permutation(rows, mulberry32(deriveSeed(seed, 0x5eed)));
  const nVal = Math.floor(rows * validationSplit);
  return { train: order.slice(0, rows - nVal), validation: order.slice(rows - nVal) };
}

/**
 * Trains a compiled model from `startEpoch` (0 for a fresh job, the checkpoint's epoch to resume)
 * to cfg.epochs. Math.random is seeded per epoch for the duration of that epoch.
 */
export async function train(model: tf.LayersModel, data: TrainData, cfg: TrainConfig, loss: LossName, hooks: TrainHooks = {}, startEpoch = 0): Promise<TrainResult> {
  const optimizer = model.optimizer;
  if (!optimizer) throw new Error("train() needs a compiled model (compileForTraining)");
  const classification = loss !== "meanSquaredError";
  const { train: trainIdx, validation: valIdx } = splitIndices(data.rows, cfg.validationSplit, cfg.seed);
  if (trainIdx.length === 0) throw ValidationError.at("validationSplit", `leaves no training rows out of ${data.rows}`);

  const all = { x: tf.tensor(data.x, [data.rows, ...data.inputShape]), y: targetTensor(data, loss) };
  const pick = (idx: Int32Array) => tf.tidy(() => {
    const i = tf.tensor1d(idx, "int32");
    return { x: tf.gather(all.x, i), y: tf.gather(all.y, i) };
  });
  const trainSet = pick(trainIdx);
  const valSet = valIdx.length ? pick(valIdx) : undefined;
  tf.dispose([all.x, all.y]);
  const vars = model.trainableWeights.map((w) => w.read() as tf.Variable);

  let metrics: EpochMetrics = {};
  let lastEpoch = startEpoch;
  try {
    for (let epoch = startEpoch + 1; epoch <= cfg.epochs; epoch++) {
      const random = mulberry32(deriveSeed(cfg.seed, epoch));
      const order = permutation(trainIdx.length, random);
      let lossSum = 0;
      let correct = 0;
      let stopped = false;
      await withSeededRandom(deriveSeed(cfg.seed, epoch + 0x10000), async () => {
        for (let start = 0; start < order.length; start += cfg.batchSize) {
          if (hooks.shouldStop && (await hooks.shouldStop())) {
            stopped = true;
            return;
          }
          const batchIdx = order.subarray(start, Math.min(start + cfg.batchSize, order.length));
          const [batchLoss, batchCorrect] = tf.tidy(() => {
            const i = tf.tensor1d(batchIdx, "int32");
            const xb = tf.gather(trainSet.x, i);
            const yb = tf.gather(trainSet.y, i);
            let pred: tf.Tensor | undefined;
            const { value, grads } = tf.variableGrads(() => {
              // keep(): the predictions outlive the gradient tape, for the accuracy count below.
              pred = tf.keep(model.apply(xb, { training: true }) as tf.Tensor);
              return lossValue(loss, yb, pred);
            }, vars);
            optimizer.applyGradients(grads);
            const c = classification ? correctCount(loss, yb, pred!).dataSync()[0] : 0;
            pred!.dispose();
            return [value.dataSync()[0], c];
          });
          if (!Number.isFinite(batchLoss)) {
            throw new TrainingDivergedError(
              `loss became ${batchLoss} at epoch ${epoch}, batch ${Math.floor(start / cfg.batchSize) + 1}: the gradients exploded; lower the learning rate or normalize the inputs`,
            );
          }
          lossSum += batchLoss * batchIdx.length;
          correct += batchCorrect;
        }
      });
      if (stopped) return { stopped: true, lastEpoch, metrics };

      metrics = { loss: lossSum / order.length };
      if (classification) metrics.accuracy = correct / order.length;
      if (valSet) Object.assign(metrics, evaluate(model, valSet.x, valSet.y, loss, cfg.batchSize, "val_"));
      lastEpoch = epoch;
      await hooks.onEpochEnd?.(epoch, metrics);
    }
    return { stopped: false, lastEpoch, metrics };
  } finally {
    tf.dispose([trainSet.x, trainSet.y, ...(valSet ? [valSet.x, valSet.y] : [])]);
  }
}

/** Loss (and accuracy for classification) over a whole set, in inference mode, batch by batch. */
export function evaluate(model: tf.LayersModel, x: tf.Tensor, y: tf.Tensor, loss: LossName, batchSize: number, prefix = ""): EpochMetrics {
  const n = x.shape[0];
  let lossSum = 0;
  let correct = 0;
  for (let start = 0; start < n; start += batchSize) {
    const size = Math.min(batchSize, n - start);
    const [l, c] = tf.tidy(() => {
      const xb = tf.slice(x, start, size);
      const yb = tf.slice(y, start, size);
      const pred = model.apply(xb, { training: false }) as tf.Tensor;
      return [lossValue(loss, yb, pred).dataSync()[0], loss === "meanSquaredError" ? 0 : correctCount(loss, yb, pred).dataSync()[0]];
    });
    lossSum += l * size;
    correct += c;
  }
  const out: EpochMetrics = { [`${prefix}loss`]: lossSum / n };
  if (loss !== "meanSquaredError") out[`${prefix}accuracy`] = correct / n;
  return out;
}
