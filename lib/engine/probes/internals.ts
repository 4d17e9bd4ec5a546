// What a network computed and what it learned: a layer's output for given inputs, and a
// convolution's kernels.
import * as tf from "@tensorflow/tfjs";
import { ValidationError } from "../../errors.ts";

interface LayerInternals {
  inboundNodes: { outputTensors: tf.SymbolicTensor[] }[];
}

/** The model's layer of that name, or a 400 at `path` listing the names there are. */
export function layerNamed(model: tf.LayersModel, name: string, path: string): tf.layers.Layer {
  const layer = model.layers.find((l) => l.name === name);
  if (!layer) {
    const names = model.layers.filter((l) => l.getClassName() !== "InputLayer").map((l) => l.name);
    throw ValidationError.at(path, `no layer '${name}'; the layers are ${names.slice(0, 50).join(", ")}${names.length > 50 ? ", …" : ""}`);
  }
  return layer;
}

/**
 * A layer's output for a batch: a model from the inputs to that layer. The layer's newest node is
 * the one in `model`'s graph (a graph rebuilt over the stored layers, as the raw-input graph is,
 * adds a node to each layer).
 */
export function activations(model: tf.LayersModel, x: tf.Tensor, layerName: string, path: string): { data: Float32Array; shape: number[] } {
  const layer = layerNamed(model, layerName, path) as unknown as tf.layers.Layer & LayerInternals;
  const nodes = layer.inboundNodes;
  const output = nodes[nodes.length - 1].outputTensors[0];
  const probe = tf.model({ inputs: model.inputs, outputs: output });
  return tf.tidy(() => {
    const y = probe.apply(x, { training: false }) as tf.Tensor;
    return { data: y.dataSync() as Float32Array, shape: y.shape };
  });
}

/** A convolution's kernel [kh, kw, in, out] (a 1-D one as [k, 1, in, out]), or a 400 for a layer that has none. */
export function filters(model: tf.LayersModel, layerName: string, path: string): { data: Float32Array; shape: number[] } {
  const layer = layerNamed(model, layerName, path);
  const kernel = layer.getWeights()[0];
  const cls = layer.getClassName();
  if (!kernel || !/Conv(1D|2D)$|DilatedConv2D$/.test(cls) || /Transpose/.test(cls)) {
    throw ValidationError.at(path, `layer '${layerName}' (${cls}) is not a convolution; filters are shown for conv1d, conv2d and coordConv layers`);
  }
  const shape = kernel.shape.length === 3 ? [kernel.shape[0], 1, kernel.shape[1], kernel.shape[2]] : kernel.shape;
  return { data: kernel.dataSync() as Float32Array, shape };
}
