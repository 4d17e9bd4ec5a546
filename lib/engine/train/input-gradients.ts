// A convolution fed straight by a model input must not compute the gradient with respect to that
// input: nothing uses it (the input is data, not a weight). TensorFlow.js computes it anyway:
// tf.layers' Conv2D runs tf.fused.conv2d (bias fused; the activation too, when linear), whose
// gradient is a customGrad that returns the input's, the filter's and the bias's gradients at once,
// so the tape cannot prune the first. On LeNet-5 that gradient (a full Conv2DBackpropInput over
// the images) is about 4 ms of a 27 ms step. While training, such layers run as tf.conv2d + bias +
// activation instead, ops whose registered gradients are computed only when asked for: the same
// numbers, and the tape skips the input's gradient. Upstream-ready: customGrad could take the
// gradient functions lazily, as registered gradients do.
import * as tf from "@tensorflow/tfjs";

interface ConvInternals {
  kernel: { read(): tf.Tensor };
  bias?: { read(): tf.Tensor } | null;
  useBias: boolean;
  strides: number[];
  padding: "valid" | "same";
  dataFormat: string;
  dilationRate: number[];
  activation?: { apply(x: tf.Tensor): tf.Tensor };
  inboundNodes: { inboundLayers: tf.layers.Layer[] }[];
  call(inputs: tf.Tensor | tf.Tensor[], kwargs: unknown): tf.Tensor | tf.Tensor[];
}

/** Makes the model's input convolutions skip their input gradient; returns what undoes it. */
export function skipInputGradients(model: tf.LayersModel): () => void {
  const inputLayers = new Set(model.inputs.map((t) => t.sourceLayer));
  const undo: (() => void)[] = [];
  for (const layer of model.layers) {
    if (layer.getClassName() !== "Conv2D") continue;
    const conv = layer as unknown as ConvInternals;
    const fedByInput = conv.inboundNodes.length === 1 && conv.inboundNodes[0].inboundLayers.every((l) => inputLayers.has(l));
    if (!fedByInput || conv.dataFormat !== "channelsLast" || conv.dilationRate.some((d) => d !== 1)) continue;
    const own = Object.prototype.hasOwnProperty.call(conv, "call") ? conv.call : undefined;
    conv.call = (inputs) =>
      tf.tidy(() => {
        const x = (Array.isArray(inputs) ? inputs[0] : inputs) as tf.Tensor4D;
        let y: tf.Tensor = tf.conv2d(x, conv.kernel.read() as tf.Tensor4D, conv.strides as [number, number], conv.padding);
        if (conv.useBias && conv.bias) y = tf.add(y, conv.bias.read());
        return conv.activation ? conv.activation.apply(y) : y;
      });
    undo.push(() => {
      if (own) conv.call = own;
      else delete (conv as Partial<ConvInternals>).call;
    });
  }
  return () => undo.forEach((u) => u());
}
