// Loss values and correct counts per batch, written with tfjs ops so that they differentiate, and
// targets shaped the way each loss wants them.
//
// Cross-entropy is computed from logits, never from probabilities: once a softmax or a sigmoid
// saturates, its probabilities are exactly 0 or 1 in float32, a clipped log(p) is a constant and
// its gradient exactly zero, so training never moves again (issue 9 measured a loss stuck at 11.61
// for every learning rate). log-softmax and the softplus form of sigmoid cross-entropy stay finite
// with a gradient (p − y) however large the logits. The model's output layer ends in that softmax
// or sigmoid (objectives.ts requires it), so the forward pass used for a loss runs the output
// layers without their activation (forwardForLoss) and applies it afterwards for the metrics.
import * as tf from "@tensorflow/tfjs";
import { StepActivation } from "../layers/index.ts";
import { TrainingSetupError, type LossName, type OutputObjective, type TargetTensor } from "./train-types.ts";

/** The losses computed from the output itself (mean squared error, contrastive); cross-entropy is lossFromLogits'. */
export function lossValue(loss: LossName, yTrue: tf.Tensor, yPred: tf.Tensor, margin = 1): tf.Scalar {
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
    throw new Error(`lossValue: ${loss} is computed from logits (lossFromLogits)`);
  });
}

/** How the training loss treats labels: smoothed toward uniform, and classes weighted (per class id). */
export interface LossShaping {
  /** ε: a one-hot target becomes (1 − ε)·y + ε/K (K classes; 2 for a sigmoid). */
  labelSmoothing?: number;
  /** Per class id, the weight of an example of that class (per position for per-pixel outputs). */
  classWeights?: number[];
}

/**
 * Cross-entropy from logits `z` (pre-activation), averaged as lossValue averages: stable for any z.
 * `shaping` (training only): label smoothing, and class weights as a weighted mean over examples
 * (Keras's sample-weight mean: Σ wᵢ·ℓᵢ / N).
 */
export function lossFromLogits(loss: "binaryCrossentropy" | "categoricalCrossentropy" | "sparseCategoricalCrossentropy", yTrue: tf.Tensor, z: tf.Tensor, shaping: LossShaping = {}): tf.Scalar {
  return tf.tidy((): tf.Scalar => {
    const eps = shaping.labelSmoothing ?? 0;
    if (loss === "binaryCrossentropy") {
      const y = eps ? tf.add(tf.mul(yTrue, 1 - eps), eps / 2) : yTrue;
      // −[y·log σ(z) + (1−y)·log(1−σ(z))] = max(z, 0) − z·y + log(1 + e^−|z|)
      const each = tf.add(tf.sub(tf.relu(z), tf.mul(z, y)), tf.softplus(tf.neg(tf.abs(z))));
      if (!shaping.classWeights) return tf.mean(each) as tf.Scalar;
      const [w0, w1] = shaping.classWeights;
      return tf.mean(tf.mul(each, tf.add(tf.mul(yTrue, w1 ?? 1), tf.mul(tf.sub(1, yTrue), w0 ?? 1)))) as tf.Scalar;
    }
    const k = z.shape[z.shape.length - 1]!;
    const y = eps ? tf.add(tf.mul(yTrue, 1 - eps), eps / k) : yTrue;
    const each = tf.neg(tf.sum(tf.mul(y, tf.logSoftmax(z, -1)), -1));
    if (!shaping.classWeights) return tf.mean(each) as tf.Scalar;
    // The weight of each example (position) is its true class's: the one-hot row times the weights.
    const weights = tf.sum(tf.mul(yTrue, tf.tensor1d(shaping.classWeights)), -1);
    return tf.mean(tf.mul(each, weights)) as tf.Scalar;
  });
}

const CROSS_ENTROPY = new Set<LossName>(["binaryCrossentropy", "categoricalCrossentropy", "sparseCategoricalCrossentropy"]);

/** A layer whose activation (the final softmax or sigmoid) is taken off while a loss is computed. */
interface ActivatedLayer {
  activation: { getClassName(): string; apply(x: tf.Tensor): tf.Tensor };
  inboundNodes: unknown[];
}

// tfjs reads a layer's activation when it is called (fused kernels included), so an instance of its
// linear activation, taken from a throwaway layer, stands in for the softmax during that call.
let linear: ActivatedLayer["activation"] | undefined;
const linearActivation = () => (linear ??= (tf.layers.dense({ units: 1, activation: "linear" }) as unknown as ActivatedLayer).activation);

/**
 * Per output, the layer whose softmax or sigmoid a cross-entropy output's loss is computed
 * before, or undefined (other losses). An output layer shared by several calls (its activation
 * cannot be taken off for one of them) is a setup error rather than a silently clipped loss.
 * A step unit (what Rosenblatt's perceptron rule trains) has no logits and no gradient; its
 * cross-entropy is only reported (see stepCrossEntropy).
 */
export function logitLayers(model: tf.LayersModel, objectives: OutputObjective[]): (ActivatedLayer | undefined)[] {
  return objectives.map((o, k) => {
    if (!CROSS_ENTROPY.has(o.loss)) return undefined;
    const source = model.outputs[k].sourceLayer;
    if (source.getClassName() === StepActivation.className) return undefined;
    const layer = source as unknown as Partial<ActivatedLayer>;
    const name = layer.activation?.getClassName();
    if (name !== "softmax" && name !== "sigmoid") {
      throw new TrainingSetupError(`output '${o.name}': ${o.loss} needs the output layer to end in ${o.loss === "binaryCrossentropy" ? "sigmoid" : "softmax"}, it ends in ${name ?? "no activation"}`);
    }
    if ((layer.inboundNodes?.length ?? 1) > 1) throw new TrainingSetupError(`output '${o.name}': its layer is shared by several calls, so its logits cannot be read for ${o.loss}`);
    return layer as ActivatedLayer;
  });
}

/**
 * A perceptron's step outputs (exactly 0 or 1) scored by binary cross-entropy with the
 * probabilities held within [1e-7, 1 − 1e-7]: about 16.1 per wrong answer, 0 per right one. Only
 * reported, never differentiated: Rosenblatt's rule needs no loss gradient.
 */
function stepCrossEntropy(yTrue: tf.Tensor, yPred: tf.Tensor): tf.Scalar {
  return tf.tidy(() => {
    const p = tf.clipByValue(yPred, 1e-7, 1 - 1e-7);
    return tf.neg(tf.mean(tf.add(tf.mul(yTrue, tf.log(p)), tf.mul(tf.sub(1, yTrue), tf.log(tf.sub(1, p)))))) as tf.Scalar;
  });
}

/**
 * The model applied to `xs` for a loss: per output, the probabilities (what the model outputs,
 * for metrics) and the loss against `ys`, cross-entropy from the logits. Inside a gradient tape,
 * the loss differentiates through the logits.
 */
export function forwardForLoss(
  model: tf.LayersModel, xs: tf.Tensor[], ys: tf.Tensor[], objectives: OutputObjective[], logits: (ActivatedLayer | undefined)[], training: boolean, shaping: LossShaping[] = [],
): { preds: tf.Tensor[]; terms: tf.Scalar[] } {
  const swapped = logits.filter((l): l is ActivatedLayer => l !== undefined);
  const saved = swapped.map((l) => l.activation);
  for (const l of swapped) l.activation = linearActivation();
  let outs: tf.Tensor[];
  try {
    const out = model.apply(xs.length === 1 ? xs[0] : xs, { training }) as tf.Tensor | tf.Tensor[];
    outs = Array.isArray(out) ? out : [out];
  } finally {
    swapped.forEach((l, i) => (l.activation = saved[i]));
  }
  const preds: tf.Tensor[] = [];
  const terms: tf.Scalar[] = [];
  outs.forEach((z, k) => {
    const o = objectives[k];
    const layer = logits[k];
    if (layer) {
      terms.push(lossFromLogits(o.loss as "categoricalCrossentropy", ys[k], z, shaping[k]));
      preds.push(layer.activation.getClassName() === "sigmoid" ? tf.sigmoid(z) : tf.softmax(z, -1));
    } else if (CROSS_ENTROPY.has(o.loss)) {
      terms.push(stepCrossEntropy(ys[k], z));
      preds.push(z);
    } else {
      terms.push(lossValue(o.loss, ys[k], z, o.margin));
      preds.push(z);
    }
  });
  return { preds, terms };
}

/**
 * One training step's loss and gradients for `vars` on a batch: the objectives' weighted losses
 * plus the layers' regularization penalties. `preds` and `terms` outlive the gradient tape (for
 * metrics); they and `grads` are the caller's to dispose. The training loop and its data-parallel
 * threads (data-parallel.ts) call this one function, so that they compute the same thing.
 */
export function stepGradients(
  model: tf.LayersModel, xs: tf.Tensor[], ys: tf.Tensor[], objectives: OutputObjective[], logits: (ActivatedLayer | undefined)[], shaping: LossShaping[], vars: tf.Variable[],
): { value: tf.Scalar; grads: tf.NamedTensorMap; preds: tf.Tensor[]; terms: tf.Scalar[] } {
  const regularized = model.layers.some((l) => l.losses.length > 0);
  let preds: tf.Tensor[] = [];
  let terms: tf.Scalar[] = [];
  const { value, grads } = tf.variableGrads(() => {
    const forward = forwardForLoss(model, xs, ys, objectives, logits, true, shaping);
    // keep(): predictions and per-output losses outlive the gradient tape, for the metrics.
    preds = forward.preds.map((p) => tf.keep(p));
    terms = forward.terms.map((t) => tf.keep(t));
    const weighted = terms.map((t, k) => (objectives[k].weight === 1 ? t : tf.mul(objectives[k].weight, t)));
    // Regularizers (l1/l2 on kernels) add their penalty to the loss being minimized.
    const extra = regularized ? (model as unknown as { calculateLosses(): tf.Scalar[] }).calculateLosses() : [];
    const all = [...weighted, ...extra];
    return (all.length === 1 ? all[0] : tf.addN(all)) as tf.Scalar;
  }, vars);
  return { value, grads, preds, terms };
}

/** Correct predictions in a batch (per position for per-pixel outputs), for classification. */
export function correctCount(loss: LossName, yTrue: tf.Tensor, yPred: tf.Tensor, margin = 1): tf.Scalar {
  return tf.tidy(() => {
    // A pair is judged similar when its distance is under half the margin.
    if (loss === "contrastive") return tf.sum(tf.cast(tf.equal(tf.less(yPred.reshape(yTrue.shape), margin / 2), tf.less(yTrue, 0.5)), "float32"));
    if (loss === "binaryCrossentropy") return tf.sum(tf.cast(tf.equal(tf.greater(yPred, 0.5), tf.greater(yTrue, 0.5)), "float32"));
    return tf.sum(tf.cast(tf.equal(tf.argMax(yPred, -1), tf.argMax(yTrue, -1)), "float32"));
  });
}

/** Targets as the loss wants them: one-hot for softmax outputs, the stored values shaped like the output otherwise. */
export function targetTensor(target: TargetTensor, rows: number, loss: LossName, outputShape: number[]): tf.Tensor {
  if (loss === "categoricalCrossentropy" || loss === "sparseCategoricalCrossentropy") {
    const positions = outputShape.slice(0, -1);
    return tf.tidy(() => tf.cast(tf.oneHot(tf.tensor(Int32Array.from(target.data), [rows * Math.max(1, positions.reduce((a, b) => a * b, 1))], "int32"), target.classes.length), "float32").reshape([rows, ...outputShape]));
  }
  return tf.tensor(target.data, [rows, ...outputShape]);
}
