// Epoch metrics: running sums over a set of rows turned into `loss` and `accuracy` (per output
// with several outputs), and evaluation of a whole set in inference mode, which adds per-class
// and regression scores (output-scores.ts) and gives each classification output's confusion matrix.
import * as tf from "@tensorflow/tfjs";
import { DEFAULT_OUTPUT } from "../../model-spec/model-spec-schema.ts";
import { type Batches, RowBatches, tensorBatches } from "./batches.ts";
import { correctCount, forwardForLoss, logitLayers } from "./losses.ts";
import { classScores, ConfusionCounts, PER_CLASS_LIMIT, RegressionSums, type ConfusionMatrix } from "./output-scores.ts";
import { TrainingSetupError, type EpochMetrics, type LossName, type Objective, type OutputObjective, type TrainData } from "./train-types.ts";

export { PER_CLASS_LIMIT, type ConfusionMatrix } from "./output-scores.ts";

export function objectivesOf(model: tf.LayersModel, objective: Objective): OutputObjective[] {
  const list = typeof objective === "string" ? [{ name: DEFAULT_OUTPUT, loss: objective, weight: 1 }] : objective;
  if (list.length !== model.outputs.length) throw new TrainingSetupError(`the model has ${model.outputs.length} outputs, ${list.length} objectives were given`);
  return list;
}

export const outputShapesOf = (model: tf.LayersModel) => model.outputs.map((o) => (o.shape as number[]).slice(1));
export const positionsOf = (loss: LossName, outputShape: number[]) => (loss === "meanSquaredError" ? 1 : Math.max(1, outputShape.slice(0, -1).reduce((a, b) => a * b, 1)));

/** Sums over a set of rows, turned into metrics: `loss` and `accuracy`, or per output `<name>_loss` and `<name>_accuracy` plus the total `loss`. */
export interface Tally {
  loss: number;
  outputLoss: number[];
  correct: number[];
}

/** The metric name of `kind` for output `k`: `<prefix><kind>` with one output, `<prefix><output>_<kind>` with several. */
const metricName = (objectives: OutputObjective[], k: number, kind: string, prefix: string) => `${prefix}${objectives.length === 1 ? "" : `${objectives[k].name}_`}${kind}`;

export function metricsOf(objectives: OutputObjective[], outputShapes: number[][], t: Tally, rows: number, prefix = ""): EpochMetrics {
  const m: EpochMetrics = { [`${prefix}loss`]: t.loss / rows };
  const single = objectives.length === 1;
  objectives.forEach((o, k) => {
    if (!single) m[metricName(objectives, k, "loss", prefix)] = t.outputLoss[k] / rows;
    if (o.loss !== "meanSquaredError") m[metricName(objectives, k, "accuracy", prefix)] = t.correct[k] / (rows * positionsOf(o.loss, outputShapes[k]));
  });
  return m;
}

/** What evaluate counts for an output beyond loss and accuracy. */
const scoredAs = (loss: LossName) => (loss === "meanSquaredError" ? "regression" : loss === "contrastive" ? undefined : "classification");

/** Classes of a classification output: 2 for a sigmoid (p > 0.5 is class 1), the softmax's units otherwise. */
const classCountOf = (loss: LossName, outputShape: number[]) => (loss === "binaryCrossentropy" ? 2 : outputShape[outputShape.length - 1]);

/**
 * A batch's confusion counts for a classification output, flat (index true·k + predicted), every
 * position of a per-pixel output counted. int32 counts: exact however many positions a batch has.
 */
export function batchConfusion(loss: LossName, yTrue: tf.Tensor, yPred: tf.Tensor, classes: number): tf.Tensor1D {
  return tf.tidy(() => {
    const ids = (y: tf.Tensor) => (loss === "binaryCrossentropy" ? tf.cast(tf.greater(y, 0.5), "int32") : tf.argMax(y, -1)).reshape([-1]);
    const flat = tf.add(tf.mul(ids(yTrue), tf.scalar(classes, "int32")), ids(yPred)) as tf.Tensor1D;
    return tf.bincount(flat, tf.tensor1d([], "int32"), classes * classes);
  });
}

/**
 * A batch's sums for a regression output, in one tensor to read back at once: [Σ(y−ŷ)², Σ|y−ŷ|,
 * then per target column Σ(y−s), then Σ(y−s)²], for `shift` s of shape [1, columns].
 */
function batchRegressionSums(yTrue: tf.Tensor, yPred: tf.Tensor, shift: tf.Tensor): tf.Tensor1D {
  return tf.tidy(() => {
    const rows = yTrue.shape[0];
    const y = yTrue.reshape([rows, -1]);
    const e = tf.sub(y, yPred.reshape([rows, -1]));
    const d = tf.sub(y, shift);
    return tf.concat([tf.stack([tf.sum(tf.square(e)), tf.sum(tf.abs(e))]), tf.sum(d, 0), tf.sum(tf.square(d), 0)]) as tf.Tensor1D;
  });
}

export interface EvaluateOptions {
  /** Per output (model order), its class names, which name per-class metrics and the confusion matrix's classes; class ids when absent. */
  classNames?: (readonly string[] | undefined)[];
}

/** A set evaluated: its scalar metrics, and the confusion matrix of each classification output (model order). */
export interface Evaluation {
  metrics: EpochMetrics;
  confusion: ConfusionMatrix[];
}

/**
 * Loss and accuracy over a whole set, in inference mode, batch by batch, plus for each output
 * (named as metricsOf names it: `val_f1` with one output, `val_<output>_f1` with several):
 * - classification (softmax, per-pixel softmax, sigmoid at 0.5): macro `precision`, `recall`,
 *   `f1`, and with at most PER_CLASS_LIMIT classes the same per class as `<metric>/<class>`
 *   (`val_f1/cat`, `val_head_recall/cat`): node names have no "/", so the first "/" ends the
 *   metric and the class name is everything after it. Conventions: output-scores.ts.
 * - regression: `mse` (the plain mean squared error; the loss is ½·MSE), `mae`, `r2`.
 * - contrastive: loss and accuracy only.
 * Memory stays bounded by the outputs' sizes: counts and sums are taken per batch with tf ops and
 * only those are read back. `ys` (one-hot for softmax outputs) in the model's output order.
 */
export function evaluateReport(model: tf.LayersModel, xs: tf.Tensor[], ys: tf.Tensor | tf.Tensor[], objective: Objective, batchSize: number, prefix = "", options: EvaluateOptions = {}): Evaluation {
  return evaluateBatches(model, tensorBatches(xs, Array.isArray(ys) ? ys : [ys]), objective, batchSize, prefix, options);
}

/** evaluateReport over batches taken from anywhere (the training loop takes them from the dataset's rows: batches.ts). */
export function evaluateBatches(model: tf.LayersModel, batches: Batches, objective: Objective, batchSize: number, prefix = "", options: EvaluateOptions = {}): Evaluation {
  const objectives = objectivesOf(model, objective);
  const outputShapes = outputShapesOf(model);
  const n = batches.rows;
  const tally: Tally = { loss: 0, outputLoss: objectives.map(() => 0), correct: objectives.map(() => 0) };
  const logits = logitLayers(model, objectives);
  const kinds = objectives.map((o) => scoredAs(o.loss));
  const confusion = objectives.map((o, k) => (kinds[k] === "classification" ? new ConfusionCounts(classCountOf(o.loss, outputShapes[k])) : undefined));
  const regression = objectives.map((_, k) => (kinds[k] === "regression" ? new RegressionSums(outputShapes[k].reduce((a, b) => a * b, 1)) : undefined));
  // Each regression target shifted by the set's first row: see RegressionBatch.
  const first = regression.some((r) => r) && n > 0 ? batches.take(0, 1) : undefined;
  const shifts = regression.map((r, k) => (r && first ? tf.tidy(() => first.ys[k].reshape([1, -1])) : undefined));
  if (first) tf.dispose([...first.xs, ...first.ys]);
  try {
    for (let start = 0; start < n; start += batchSize) {
      const size = Math.min(batchSize, n - start);
      const [losses, correct, counts] = tf.tidy(() => {
        const { xs: xb, ys: ybs } = batches.take(start, size);
        const { preds, terms } = forwardForLoss(model, xb, ybs, objectives, logits, false);
        return [
          terms.map((t) => t.dataSync()[0]),
          preds.map((p, k) => (objectives[k].loss === "meanSquaredError" ? 0 : correctCount(objectives[k].loss, ybs[k], p, objectives[k].margin).dataSync()[0])),
          preds.map((p, k) => {
            const c = confusion[k];
            if (c) return batchConfusion(objectives[k].loss, ybs[k], p, c.classes).dataSync();
            const s = shifts[k];
            return s ? batchRegressionSums(ybs[k], p, s).dataSync() : undefined;
          }),
        ];
      });
      losses.forEach((l, k) => {
        tally.outputLoss[k] += l * size;
        tally.loss += objectives[k].weight * l * size;
      });
      correct.forEach((c, k) => (tally.correct[k] += c));
      counts.forEach((c, k) => {
        if (!c) return;
        confusion[k]?.add(c);
        const r = regression[k];
        if (r) r.add({ rows: size, squaredError: c[0], absoluteError: c[1], shiftedSum: c.subarray(2, 2 + r.columns), shiftedSquares: c.subarray(2 + r.columns) });
      });
    }
  } finally {
    tf.dispose(shifts.filter((s): s is tf.Tensor => s !== undefined));
  }
  const metrics = metricsOf(objectives, outputShapes, tally, n, prefix);
  const matrices: ConfusionMatrix[] = [];
  objectives.forEach((o, k) => {
    const name = (kind: string) => metricName(objectives, k, kind, prefix);
    const counts = confusion[k];
    if (counts) {
      const given = options.classNames?.[k];
      const classes = given?.length === counts.classes ? [...given] : Array.from({ length: counts.classes }, (_, i) => String(i));
      const matrix = counts.matrix();
      matrices.push({ output: o.name, classes, matrix });
      const s = classScores(matrix);
      for (const kind of ["precision", "recall", "f1"] as const) metrics[name(kind)] = s.macro[kind];
      if (classes.length <= PER_CLASS_LIMIT) {
        for (const kind of ["precision", "recall", "f1"] as const) classes.forEach((c, i) => (metrics[`${name(kind)}/${c}`] = s[kind][i]));
      }
    }
    const scores = regression[k]?.scores();
    if (scores) for (const kind of ["mse", "mae", "r2"] as const) metrics[name(kind)] = scores[kind];
  });
  return { metrics, confusion: matrices };
}

/** The metrics of evaluateReport, without the confusion matrices. */
export function evaluate(model: tf.LayersModel, xs: tf.Tensor[], ys: tf.Tensor | tf.Tensor[], objective: Objective, batchSize: number, prefix = "", options: EvaluateOptions = {}): EpochMetrics {
  return evaluateReport(model, xs, ys, objective, batchSize, prefix, options).metrics;
}

/** evaluateReport over some rows of `data` (a held-out test split, say), in inference mode; classes named as `data` names them. */
export function evaluateRowsReport(model: tf.LayersModel, data: TrainData, rows: Int32Array, objective: Objective, batchSize: number, prefix = ""): Evaluation {
  const objectives = objectivesOf(model, objective);
  const batches = new RowBatches(data, rows, objectives.map((o) => o.loss), outputShapesOf(model));
  return evaluateBatches(model, batches, objectives, batchSize, prefix, { classNames: data.targets.map((t) => t.classes) });
}

/** Metrics over some rows of `data` (a held-out test split, say), in inference mode. */
export function evaluateRows(model: tf.LayersModel, data: TrainData, rows: Int32Array, objective: Objective, batchSize: number, prefix = ""): EpochMetrics {
  return evaluateRowsReport(model, data, rows, objective, batchSize, prefix).metrics;
}
