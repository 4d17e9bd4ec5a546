// Epoch metrics: running sums over a set of rows turned into `loss` and `accuracy` (per output
// with several outputs), and evaluation of a whole set in inference mode.
import * as tf from "@tensorflow/tfjs";
import { DEFAULT_OUTPUT } from "../../model-spec/model-spec-schema.ts";
import { correctCount, forwardForLoss, logitLayers, targetTensor } from "./losses.ts";
import { TrainingSetupError, type EpochMetrics, type LossName, type Objective, type OutputObjective, type TrainData } from "./train-types.ts";

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

export function metricsOf(objectives: OutputObjective[], outputShapes: number[][], t: Tally, rows: number, prefix = ""): EpochMetrics {
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
 * Loss (and accuracy for classification) over a whole set, in inference mode, batch by batch;
 * `ys` (one-hot for softmax outputs) in the model's output order.
 */
export function evaluate(model: tf.LayersModel, xs: tf.Tensor[], ys: tf.Tensor | tf.Tensor[], objective: Objective, batchSize: number, prefix = ""): EpochMetrics {
  const objectives = objectivesOf(model, objective);
  const outputShapes = outputShapesOf(model);
  const targets = Array.isArray(ys) ? ys : [ys];
  const n = targets[0].shape[0];
  const tally: Tally = { loss: 0, outputLoss: objectives.map(() => 0), correct: objectives.map(() => 0) };
  const logits = logitLayers(model, objectives);
  for (let start = 0; start < n; start += batchSize) {
    const size = Math.min(batchSize, n - start);
    const [losses, correct] = tf.tidy(() => {
      const xb = xs.map((x) => tf.slice(x, start, size));
      const ybs = targets.map((y) => tf.slice(y, start, size));
      const { preds, terms } = forwardForLoss(model, xb, ybs, objectives, logits, false);
      return [
        terms.map((t) => t.dataSync()[0]),
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

/** Loss and accuracy over some rows of `data` (a held-out test split, say), in inference mode. */
export function evaluateRows(model: tf.LayersModel, data: TrainData, rows: Int32Array, objective: Objective, batchSize: number, prefix = ""): EpochMetrics {
  const objectives = objectivesOf(model, objective);
  const outputShapes = outputShapesOf(model);
  const [xs, ys] = tf.tidy(() => {
    const i = tf.tensor1d(rows, "int32");
    return [
      data.inputs.map((t) => tf.gather(tf.tensor(t.data, [data.rows, ...t.shape], t.dtype ?? "float32"), i)),
      data.targets.map((t, k) => tf.gather(targetTensor(t, data.rows, objectives[k].loss, outputShapes[k]), i)),
    ];
  });
  try {
    return evaluate(model, xs, ys, objectives, batchSize, prefix);
  } finally {
    tf.dispose([...xs, ...ys]);
  }
}
