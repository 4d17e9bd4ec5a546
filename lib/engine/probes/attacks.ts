// Adversarial examples by the fast gradient sign method (Goodfellow et al., 2015) and its iterated
// form, projected gradient descent (Madry et al., 2018), on a model that takes raw inputs (the
// fitted preprocessing inside the graph), so ε is in the units of the data a client sends.
//   untargeted: x' = x + ε·sign(∇ₓ CE(x, y))     (away from the true class)
//   targeted:   x' = x − ε·sign(∇ₓ CE(x, t))     (towards the chosen class)
// PGD takes `steps` such steps of size α and projects back onto the ε-ball around x after each;
// both keep x' inside the data's valid range when one is known.
import * as tf from "@tensorflow/tfjs";
import { argmaxRows, inputGradient, logProbOf, probabilities } from "./gradients.ts";

export interface AttackOptions {
  method: "fgsm" | "pgd";
  epsilon: number;
  /** PGD only. */
  steps: number;
  /** PGD's step α; default 2.5·ε / steps (Madry et al.'s choice), so the walk can reach the ball's edge. */
  stepSize?: number;
  /** Step towards this class instead of away from each row's label. */
  targetClass?: number;
  /** The data's valid range, e.g. [0, 255] for pixels. */
  range?: [number, number];
  /** Which output is attacked (a classification output). */
  output: number;
}

export interface AttackResult {
  /** The adversarial inputs, raw, shaped like x. */
  adversarial: Float32Array;
  /** Class probabilities after the attack, [n, classes]. */
  after: Float32Array;
  predictedAfter: Int32Array;
}

/** Runs the attack on a batch `x` (raw) with true classes `labels`. */
export function attack(model: tf.LayersModel, x: tf.Tensor, labels: Int32Array, o: AttackOptions): AttackResult {
  const targeted = o.targetClass !== undefined;
  const classes = tf.tensor1d(targeted ? new Int32Array(labels.length).fill(o.targetClass!) : labels, "int32");
  // Gradient ascent on the cross-entropy of the true class, or descent on the target's.
  const direction = targeted ? -1 : 1;
  const loss = (v: tf.Tensor) => tf.neg(logProbOf(probabilities(model, v, o.output), classes));
  const clip = (v: tf.Tensor) => (o.range ? tf.clipByValue(v, o.range[0], o.range[1]) : v);
  try {
    let adv = tf.keep(x.clone());
    const steps = o.method === "fgsm" ? 1 : o.steps;
    const alpha = o.method === "fgsm" ? o.epsilon : (o.stepSize ?? (2.5 * o.epsilon) / steps);
    for (let s = 0; s < steps; s++) {
      const next = tf.tidy(() => {
        const g = inputGradient(loss, adv);
        const stepped = tf.add(adv, tf.mul(tf.sign(g), direction * alpha));
        // Projection onto the ε-ball around x (a no-op for FGSM's single step of ε).
        const projected = tf.clipByValue(tf.sub(stepped, x), -o.epsilon, o.epsilon);
        return clip(tf.add(x, projected));
      });
      adv.dispose();
      adv = tf.keep(next);
    }
    const p = tf.tidy(() => probabilities(model, adv, o.output));
    const result = { adversarial: adv.dataSync() as Float32Array, after: p.dataSync() as Float32Array, predictedAfter: argmaxRows(p) };
    tf.dispose([adv, p]);
    return result;
  } finally {
    classes.dispose();
  }
}
