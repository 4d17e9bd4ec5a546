// Rosenblatt's perceptron rule, the training mode for a single dense layer with a step
// activation (which has no gradient for backpropagation).
import * as tf from "@tensorflow/tfjs";
import { TrainingSetupError } from "./train-types.ts";

export interface PerceptronParts {
  kernel: tf.LayerVariable;
  bias?: tf.LayerVariable;
}

export function perceptronParts(model: tf.LayersModel): PerceptronParts {
  const dense = model.layers.find((l) => l.getClassName() === "Dense");
  if (!dense) throw new TrainingSetupError("perceptron mode needs a dense layer");
  const [kernel, bias] = dense.trainableWeights;
  return { kernel, bias };
}

/**
 * Rosenblatt's rule: for each misclassified example, raise the weights of its active inputs when
 * the unit should have fired and lower them when it should not: w += lr · xᵀ(y − ŷ). Returns the
 * batch's 0/1 loss (fraction of wrong outputs) and its correct count.
 */
export function perceptronStep(p: PerceptronParts, x: tf.Tensor, y: tf.Tensor, lr: number): [number, number] {
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
