// Binary step, the activation of Rosenblatt's perceptron. Its derivative is 0 almost everywhere,
// so gradient descent through it silently learns nothing: the gradient throws instead, to make a
// misconfigured network fail loudly rather than train to a constant.
import * as tf from "@tensorflow/tfjs";

type Shape = (number | null)[];

export const STEP_GRADIENT_ERROR =
  "binary step has no gradient: use it for inference or with the perceptron training mode";

// Defined once: tf.customGrad wraps the function, not a particular tensor.
const binaryStep = tf.customGrad((x) => ({
  value: tf.cast(tf.greater(x as tf.Tensor, 0), "float32"),
  gradFunc: () => {
    throw new Error(STEP_GRADIENT_ERROR);
  },
}));

/** Elementwise x > 0 → 1, else 0 (float32, same shape). Forward only: backprop through it throws. */
export class StepActivation extends tf.layers.Layer {
  static className = "TrainyardStepActivation";

  computeOutputShape(inputShape: Shape | Shape[]): Shape {
    return [...((Array.isArray(inputShape[0]) ? inputShape[0] : inputShape) as Shape)];
  }

  call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    return tf.tidy(() => binaryStep(Array.isArray(inputs) ? inputs[0] : inputs));
  }

  getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig() };
  }
}

tf.serialization.registerClass(StepActivation);
