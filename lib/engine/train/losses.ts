// Loss values and correct counts per batch, written with tfjs ops so that they differentiate, and
// targets shaped the way each loss wants them.
import * as tf from "@tensorflow/tfjs";
import type { LossName, TargetTensor } from "./train-types.ts";

const EPS = 1e-7;

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
    const p = tf.clipByValue(yPred, EPS, 1 - EPS);
    if (loss === "binaryCrossentropy") {
      return tf.neg(tf.mean(tf.add(tf.mul(yTrue, tf.log(p)), tf.mul(tf.sub(1, yTrue), tf.log(tf.sub(1, p)))))) as tf.Scalar;
    }
    return tf.neg(tf.mean(tf.sum(tf.mul(yTrue, tf.log(p)), -1))) as tf.Scalar;
  });
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
