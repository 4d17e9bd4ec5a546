// What the probes share: a classification output's score as a differentiable function of one
// input. Models here end in probabilities (softmax, or one sigmoid unit), so the scores are built
// from them: log p for the attacks' cross-entropy, and log p_c − mean_k log p_k for saliency, which
// is the class's logit minus the mean logit (log-softmax differs from the logits by one constant
// per row), the pre-softmax score the saliency literature differentiates, recovered exactly.
import * as tf from "@tensorflow/tfjs";

/** Probabilities below this are clamped before a logarithm: a saturated softmax gives exact zeros. */
const TINY = 1e-30;

/** Per-row class probabilities [n, classes] of output `k`; a single sigmoid unit becomes [1 − p, p]. */
export function probabilities(model: tf.LayersModel, x: tf.Tensor, k: number): tf.Tensor2D {
  return tf.tidy(() => {
    const out = [model.apply(x, { training: false })].flat()[k] as tf.Tensor;
    const p = out.reshape([out.shape[0], -1]) as tf.Tensor2D;
    return p.shape[1] === 1 ? (tf.concat([tf.sub(1, p), p], 1) as tf.Tensor2D) : p;
  });
}

/** log p(class) per row [n]: minus the cross-entropy. */
export function logProbOf(p: tf.Tensor2D, classes: tf.Tensor1D): tf.Tensor1D {
  return tf.tidy(() => tf.sum(tf.mul(tf.log(tf.maximum(p, TINY)), tf.oneHot(classes, p.shape[1])), 1) as tf.Tensor1D);
}

/** The class's logit less the mean logit, per row [n], from probabilities. */
export function centredLogitOf(p: tf.Tensor2D, classes: tf.Tensor1D): tf.Tensor1D {
  return tf.tidy(() => {
    const logs = tf.log(tf.maximum(p, TINY));
    return tf.sub(tf.sum(tf.mul(logs, tf.oneHot(classes, p.shape[1])), 1), tf.mean(logs, 1)) as tf.Tensor1D;
  });
}

/** ∂ Σ_rows score(x) / ∂x: each row's gradient of its own score (rows do not interact in inference). */
export function inputGradient(score: (x: tf.Tensor) => tf.Tensor1D, x: tf.Tensor): tf.Tensor {
  return tf.grad((v: tf.Tensor) => tf.sum(score(v)))(x);
}

/** The predicted class per row. */
export function argmaxRows(p: tf.Tensor2D): Int32Array {
  return tf.tidy(() => tf.argMax(p, 1).dataSync() as Int32Array);
}
