// The training loop. Written out rather than model.fit() because a job needs what fit hides:
// seeded shuffles and dropout per epoch (exact resume), a cancel check between batches, loss
// checks that fail fast on NaN, and a hook after every epoch that stores metrics and a checkpoint.
import * as tf from "@tensorflow/tfjs";
import { ValidationError } from "../errors.ts";
import { DEFAULT_OUTPUT, type LossName } from "../spec/model-spec.ts";
import { deriveSeed, mulberry32, permutation, withSeededRandom } from "./seeded-random.ts";

export type Task = "classification" | "regression";
export type { LossName };

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

/** How one output is trained: its loss and that loss's weight in the total. */
export interface OutputObjective {
  name: string;
  loss: LossName;
  weight: number;
  /** contrastive only: the distance beyond which a dissimilar pair costs nothing (default 1). */
  margin?: number;
}

export type OptimizerConfig = {
  type: "sgd" | "adam" | "rmsprop" | "adagrad";
  learningRate: number;
  /** sgd and rmsprop. */
  momentum?: number;
  /** sgd with momentum. */
  nesterov?: boolean;
  beta1?: number;
  beta2?: number;
  epsilon?: number;
  /** rmsprop's discounting factor. */
  rho?: number;
  /** Decoupled weight decay (as in AdamW): kernels shrink by learningRate·weightDecay each step. */
  weightDecay?: number;
};

export interface TrainConfig {
  epochs: number;
  batchSize: number;
  optimizer: OptimizerConfig;
  validationSplit: number;
  seed: number;
  /** "perceptron": Rosenblatt's rule for a single dense layer with a step activation. */
  mode?: "backprop" | "perceptron";
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

const sameShape = (a: number[], b: number[]) => a.length === b.length && a.every((d, i) => d === b[i]);
const fmt = (s: number[]) => `[${s.join(", ")}]`;

/**
 * Picks the loss from the dataset and the model's output (or checks the one the spec names), or
 * explains why they do not fit. Classification targets are class ids, one per output position:
 * an output [k] takes one id per row, a per-pixel output [H, W, k] takes [H, W] ids.
 */
export function lossFor(data: { task: Task; classes: string[]; targetShape: number[] }, outputShape: (number | null)[], requested?: LossName): LossName {
  const out = outputShape.map((d) => d ?? -1);
  if (requested === "contrastive") {
    // A distance per pair against 0 (similar) or 1 (dissimilar): numbers, or the classes "0" and "1".
    const one = (s: number[]) => s.reduce((a, b) => a * b, 1) === 1;
    if (!one(out)) throw ValidationError.at("model", `contrastive loss needs one value per pair (a distance); the output is ${fmt(out)}`);
    if (!one(data.targetShape)) throw ValidationError.at("model", `contrastive loss needs one label per pair; the labels have shape ${fmt(data.targetShape)}`);
    if (data.task === "classification" && !(data.classes.length === 2 && data.classes[0] === "0" && data.classes[1] === "1")) {
      throw ValidationError.at("spec.loss", `contrastive needs labels 0 (similar) and 1 (dissimilar); the dataset's classes are ${data.classes.join(", ")}`);
    }
    return "contrastive";
  }
  if (data.task === "regression") {
    if (requested && requested !== "meanSquaredError") throw ValidationError.at("spec.loss", `${requested} needs a classification dataset; this one is regression`);
    const units = out.reduce((a, b) => a * b, 1);
    const want = data.targetShape.reduce((a, b) => a * b, 1);
    if (units !== want) throw ValidationError.at("model", `output ${fmt(out)} has ${units} values, the regression dataset has ${want} target(s) per row`);
    return "meanSquaredError";
  }
  if (requested === "meanSquaredError") throw ValidationError.at("spec.loss", "meanSquaredError needs a regression dataset; this one is classification");
  const k = data.classes.length;
  const last = out[out.length - 1];
  const positions = out.slice(0, -1);
  const targetPositions = data.targetShape.length === 1 && data.targetShape[0] === 1 ? [] : data.targetShape;
  if (!sameShape(positions, targetPositions) && !(last === 1 && sameShape(out, data.targetShape))) {
    throw ValidationError.at("model", `output ${fmt(out)} does not fit targets of shape ${fmt(data.targetShape)} with ${k} classes`);
  }
  if (last === k && requested !== "binaryCrossentropy") return requested ?? "categoricalCrossentropy";
  if (last === 1 && k === 2 && (!requested || requested === "binaryCrossentropy")) return "binaryCrossentropy";
  throw ValidationError.at("model", `output has ${last} units, the dataset has ${k} classes (${data.classes.join(", ")})`);
}

export function createOptimizer(cfg: OptimizerConfig): tf.Optimizer {
  switch (cfg.type) {
    case "adam":
      return tf.train.adam(cfg.learningRate, cfg.beta1 ?? 0.9, cfg.beta2 ?? 0.999, cfg.epsilon ?? 1e-7);
    case "rmsprop":
      return tf.train.rmsprop(cfg.learningRate, cfg.rho ?? 0.9, cfg.momentum ?? 0, cfg.epsilon ?? 1e-7);
    case "adagrad":
      return tf.train.adagrad(cfg.learningRate);
    case "sgd":
      return cfg.momentum ? tf.train.momentum(cfg.learningRate, cfg.momentum, cfg.nesterov ?? false) : tf.train.sgd(cfg.learningRate);
  }
}

const EPS = 1e-7;

function lossValue(loss: LossName, yTrue: tf.Tensor, yPred: tf.Tensor, margin = 1): tf.Scalar {
  return tf.tidy((): tf.Scalar => {
    // ½(y−ŷ)²: the ½ makes the gradient exactly (ŷ − y).
    if (loss === "meanSquaredError") return tf.mul(0.5, tf.mean(tf.square(tf.sub(yTrue, yPred)))) as tf.Scalar;
    if (loss === "contrastive") {
      // Hadsell, Chopra & LeCun 2006: similar pairs (y = 0) are pulled together by ½d²,
      // dissimilar ones (y = 1) pushed apart by ½·max(0, margin − d)² until they are margin apart.
      const d = yPred.reshape(yTrue.shape);
      const pull = tf.mul(tf.sub(1, yTrue), tf.square(d));
      const push = tf.mul(yTrue, tf.square(tf.relu(tf.sub(margin, d))));
      return tf.mul(0.5, tf.mean(tf.add(pull, push))) as tf.Scalar;
    }
    const p = tf.clipByValue(yPred, EPS, 1 - EPS);
    if (loss === "binaryCrossentropy") {
      return tf.neg(tf.mean(tf.add(tf.mul(yTrue, tf.log(p)), tf.mul(tf.sub(1, yTrue), tf.log(tf.sub(1, p)))))) as tf.Scalar;
    }
    return tf.neg(tf.mean(tf.sum(tf.mul(yTrue, tf.log(p)), -1))) as tf.Scalar;
  });
}

/** Correct predictions in a batch (per position for per-pixel outputs), for classification. */
function correctCount(loss: LossName, yTrue: tf.Tensor, yPred: tf.Tensor, margin = 1): tf.Scalar {
  return tf.tidy(() => {
    // A pair is judged similar when its distance is under half the margin.
    if (loss === "contrastive") return tf.sum(tf.cast(tf.equal(tf.less(yPred.reshape(yTrue.shape), margin / 2), tf.less(yTrue, 0.5)), "float32"));
    if (loss === "binaryCrossentropy") return tf.sum(tf.cast(tf.equal(tf.greater(yPred, 0.5), tf.greater(yTrue, 0.5)), "float32"));
    return tf.sum(tf.cast(tf.equal(tf.argMax(yPred, -1), tf.argMax(yTrue, -1)), "float32"));
  });
}

/** Targets as the loss wants them: one-hot for softmax outputs, the stored values shaped like the output otherwise. */
function targetTensor(target: TargetTensor, rows: number, loss: LossName, outputShape: number[]): tf.Tensor {
  if (loss === "categoricalCrossentropy" || loss === "sparseCategoricalCrossentropy") {
    const positions = outputShape.slice(0, -1);
    return tf.tidy(() => tf.cast(tf.oneHot(tf.tensor(Int32Array.from(target.data), [rows * Math.max(1, positions.reduce((a, b) => a * b, 1))], "int32"), target.classes.length), "float32").reshape([rows, ...outputShape]));
  }
  return tf.tensor(target.data, [rows, ...outputShape]);
}

/** A single loss for a one-output model, or one objective per output. */
export type Objective = LossName | OutputObjective[];

function objectivesOf(model: tf.LayersModel, objective: Objective): OutputObjective[] {
  const list = typeof objective === "string" ? [{ name: DEFAULT_OUTPUT, loss: objective, weight: 1 }] : objective;
  if (list.length !== model.outputs.length) throw new Error(`the model has ${model.outputs.length} outputs, ${list.length} objectives were given`);
  return list;
}

const outputShapesOf = (model: tf.LayersModel) => model.outputs.map((o) => (o.shape as number[]).slice(1));
const positionsOf = (loss: LossName, outputShape: number[]) => (loss === "meanSquaredError" ? 1 : Math.max(1, outputShape.slice(0, -1).reduce((a, b) => a * b, 1)));

/** Sums over a set of rows, turned into metrics: `loss` and `accuracy`, or per output `<name>_loss` and `<name>_accuracy` plus the total `loss`. */
interface Tally {
  loss: number;
  outputLoss: number[];
  correct: number[];
}

function metricsOf(objectives: OutputObjective[], outputShapes: number[][], t: Tally, rows: number, prefix = ""): EpochMetrics {
  const m: EpochMetrics = { [`${prefix}loss`]: t.loss / rows };
  const single = objectives.length === 1;
  objectives.forEach((o, k) => {
    const name = single ? "" : `${o.name}_`;
    if (!single) m[`${prefix}${name}loss`] = t.outputLoss[k] / rows;
    if (o.loss !== "meanSquaredError") m[`${prefix}${name}accuracy`] = t.correct[k] / (rows * positionsOf(o.loss, outputShapes[k]));
  });
  return m;
}

/**
 * Compiles the model with the optimizer and loss so that saving with includeOptimizer carries
 * both (the trainingConfig a resumed job is rebuilt from).
 */
export function compileForTraining(model: tf.LayersModel, cfg: OptimizerConfig, objective: Objective): void {
  // tfjs has no sparse loss identifier that serializes (the targets are one-hot either way) and
  // no contrastive one; the stored name only has to load, since train() computes the loss itself.
  const name = (l: LossName) => (l === "sparseCategoricalCrossentropy" ? "categoricalCrossentropy" : l === "contrastive" ? "meanSquaredError" : l);
  const loss = typeof objective === "string" ? name(objective) : objective.map((o) => name(o.loss));
  model.compile({ optimizer: createOptimizer(cfg), loss: Array.isArray(loss) && loss.length === 1 ? loss[0] : loss });
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
export async function train(model: tf.LayersModel, data: TrainData, cfg: TrainConfig, objective: Objective, hooks: TrainHooks = {}, startEpoch = 0): Promise<TrainResult> {
  const optimizer = model.optimizer;
  if (!optimizer) throw new Error("train() needs a compiled model (compileForTraining)");
  const objectives = objectivesOf(model, objective);
  const outputShapes = outputShapesOf(model);
  const { train: trainIdx, validation: valIdx } = splitIndices(data.rows, cfg.validationSplit, cfg.seed);
  if (trainIdx.length === 0) throw ValidationError.at("validationSplit", `leaves no training rows out of ${data.rows}`);

  const allX = data.inputs.map((t) => tf.tensor(t.data, [data.rows, ...t.shape], t.dtype ?? "float32"));
  const allY = data.targets.map((t, k) => targetTensor(t, data.rows, objectives[k].loss, outputShapes[k]));
  const pick = (idx: Int32Array) => tf.tidy(() => {
    const i = tf.tensor1d(idx, "int32");
    return { xs: allX.map((x) => tf.gather(x, i)), ys: allY.map((y) => tf.gather(y, i)) };
  });
  const trainSet = pick(trainIdx);
  const valSet = valIdx.length ? pick(valIdx) : undefined;
  tf.dispose([...allX, ...allY]);
  const vars = model.trainableWeights.map((w) => w.read() as tf.Variable);
  const decayed = cfg.optimizer.weightDecay ? vars.filter((v) => !/(bias|gamma|beta|moving_\w+)(_\d+)?$/.test(v.name)) : [];
  const perceptron = cfg.mode === "perceptron" ? perceptronParts(model) : undefined;
  const regularized = model.layers.some((l) => l.losses.length > 0);

  let metrics: EpochMetrics = {};
  let lastEpoch = startEpoch;
  try {
    for (let epoch = startEpoch + 1; epoch <= cfg.epochs; epoch++) {
      const random = mulberry32(deriveSeed(cfg.seed, epoch));
      const order = permutation(trainIdx.length, random);
      const tally: Tally = { loss: 0, outputLoss: objectives.map(() => 0), correct: objectives.map(() => 0) };
      let stopped = false;
      await withSeededRandom(deriveSeed(cfg.seed, epoch + 0x10000), async () => {
        for (let start = 0; start < order.length; start += cfg.batchSize) {
          if (hooks.shouldStop && (await hooks.shouldStop())) {
            stopped = true;
            return;
          }
          const batchIdx = order.subarray(start, Math.min(start + cfg.batchSize, order.length));
          const [batchLoss, outputLosses, batchCorrect] = tf.tidy((): [number, number[], number[]] => {
            const i = tf.tensor1d(batchIdx, "int32");
            const xb = trainSet.xs.map((x) => tf.gather(x, i));
            const ybs = trainSet.ys.map((y) => tf.gather(y, i));
            if (perceptron) {
              const [l, c] = perceptronStep(perceptron, xb[0], ybs[0], cfg.optimizer.learningRate);
              return [l, [l], [c]];
            }
            let preds: tf.Tensor[] = [];
            let terms: tf.Scalar[] = [];
            const { value, grads } = tf.variableGrads(() => {
              const out = model.apply(xb.length === 1 ? xb[0] : xb, { training: true }) as tf.Tensor | tf.Tensor[];
              // keep(): predictions and per-output losses outlive the gradient tape, for the metrics below.
              preds = (Array.isArray(out) ? out : [out]).map((p) => tf.keep(p));
              terms = preds.map((p, k) => tf.keep(lossValue(objectives[k].loss, ybs[k], p, objectives[k].margin)));
              const weighted = terms.map((t, k) => (objectives[k].weight === 1 ? t : tf.mul(objectives[k].weight, t)));
              // Regularizers (l1/l2 on kernels) add their penalty to the loss being minimized.
              const extra = regularized ? (model as unknown as { calculateLosses(): tf.Scalar[] }).calculateLosses() : [];
              const all = [...weighted, ...extra];
              return (all.length === 1 ? all[0] : tf.addN(all)) as tf.Scalar;
            }, vars);
            optimizer.applyGradients(grads);
            for (const v of decayed) v.assign(tf.mul(v, 1 - cfg.optimizer.learningRate * cfg.optimizer.weightDecay!));
            const correct = objectives.map((o, k) => (o.loss === "meanSquaredError" ? 0 : correctCount(o.loss, ybs[k], preds[k], o.margin).dataSync()[0]));
            // Read before disposing: with one output and no regularizer, `value` is terms[0] itself.
            const losses = terms.map((t) => t.dataSync()[0]);
            const total = value.dataSync()[0];
            tf.dispose([...preds, ...terms]);
            return [total, losses, correct];
          });
          if (!Number.isFinite(batchLoss)) {
            throw new TrainingDivergedError(
              `loss became ${batchLoss} at epoch ${epoch}, batch ${Math.floor(start / cfg.batchSize) + 1}: the gradients exploded; lower the learning rate or normalize the inputs`,
            );
          }
          tally.loss += batchLoss * batchIdx.length;
          outputLosses.forEach((l, k) => (tally.outputLoss[k] += l * batchIdx.length));
          batchCorrect.forEach((c, k) => (tally.correct[k] += c));
        }
      });
      if (stopped) return { stopped: true, lastEpoch, metrics };

      metrics = metricsOf(objectives, outputShapes, tally, order.length);
      if (valSet) Object.assign(metrics, evaluate(model, valSet.xs, valSet.ys, objectives, cfg.batchSize, "val_"));
      lastEpoch = epoch;
      await hooks.onEpochEnd?.(epoch, metrics);
    }
    return { stopped: false, lastEpoch, metrics };
  } finally {
    tf.dispose([...trainSet.xs, ...trainSet.ys, ...(valSet ? [...valSet.xs, ...valSet.ys] : [])]);
  }
}

interface PerceptronParts {
  kernel: tf.LayerVariable;
  bias?: tf.LayerVariable;
}

function perceptronParts(model: tf.LayersModel): PerceptronParts {
  const dense = model.layers.find((l) => l.getClassName() === "Dense");
  if (!dense) throw ValidationError.at("spec.mode", "perceptron mode needs a dense layer");
  const [kernel, bias] = dense.trainableWeights;
  return { kernel, bias };
}

/**
 * Rosenblatt's rule: for each misclassified example, raise the weights of its active inputs when
 * the unit should have fired and lower them when it should not: w += lr · xᵀ(y − ŷ). Returns the
 * batch's 0/1 loss (fraction of wrong outputs) and its correct count.
 */
function perceptronStep(p: PerceptronParts, x: tf.Tensor, y: tf.Tensor, lr: number): [number, number] {
  const flatX = x.reshape([x.shape[0], -1]);
  const w = p.kernel.read();
  const b = p.bias?.read();
  const z = b ? tf.add(tf.matMul(flatX, w), b) : tf.matMul(flatX, w);
  const fired = tf.cast(tf.greater(z, 0), "float32");
  const target = y.reshape(fired.shape);
  const error = tf.sub(target, fired);
  p.kernel.write(tf.add(w, tf.mul(lr, tf.matMul(flatX, error, true, false))));
  if (p.bias && b) p.bias.write(tf.add(b, tf.mul(lr, tf.sum(error, 0))));
  const wrong = tf.sum(tf.abs(error)).dataSync()[0];
  const units = fired.shape[1] as number;
  // One-vs-rest for several units: an example is right when every unit is.
  const correct = tf.sum(tf.cast(tf.equal(tf.sum(tf.abs(error), 1), 0), "float32")).dataSync()[0];
  return [wrong / (x.shape[0] * units), correct];
}

/**
 * Loss (and accuracy for classification) over a whole set, in inference mode, batch by batch;
 * `ys` (one-hot for softmax outputs) in the model's output order.
 */
export function evaluate(model: tf.LayersModel, xs: tf.Tensor[], ys: tf.Tensor | tf.Tensor[], objective: Objective, batchSize: number, prefix = ""): EpochMetrics {
  const objectives = objectivesOf(model, objective);
  const outputShapes = outputShapesOf(model);
  const targets = Array.isArray(ys) ? ys : [ys];
  const n = targets[0].shape[0];
  const tally: Tally = { loss: 0, outputLoss: objectives.map(() => 0), correct: objectives.map(() => 0) };
  for (let start = 0; start < n; start += batchSize) {
    const size = Math.min(batchSize, n - start);
    const [losses, correct] = tf.tidy(() => {
      const xb = xs.map((x) => tf.slice(x, start, size));
      const out = model.apply(xb.length === 1 ? xb[0] : xb, { training: false }) as tf.Tensor | tf.Tensor[];
      const preds = Array.isArray(out) ? out : [out];
      const ybs = targets.map((y) => tf.slice(y, start, size));
      return [
        preds.map((p, k) => lossValue(objectives[k].loss, ybs[k], p, objectives[k].margin).dataSync()[0]),
        preds.map((p, k) => (objectives[k].loss === "meanSquaredError" ? 0 : correctCount(objectives[k].loss, ybs[k], p, objectives[k].margin).dataSync()[0])),
      ];
    });
    losses.forEach((l, k) => {
      tally.outputLoss[k] += l * size;
      tally.loss += objectives[k].weight * l * size;
    });
    correct.forEach((c, k) => (tally.correct[k] += c));
  }
  return metricsOf(objectives, outputShapes, tally, n, prefix);
}
