// Trainyard's custom layers re-expressed with stock TensorFlow.js layers, for an export that a
// stock loader can read. A layer travels only when the stock form computes the same function;
// otherwise the export is refused, naming the layer and why (a model that loads but predicts
// differently is worse than none).
import * as tf from "@tensorflow/tfjs";
import { AdaptivePooling1D, AdaptivePooling2D, AddCoords2D, DilatedConv2D, PositionalEncoding, SpatialDropout2D } from "../../engine/layers/index.ts";
import { ConflictError } from "../../errors.ts";

type Sym = tf.SymbolicTensor;

/** Which export asks: the refusal names it. */
export type ExportTarget = "tfjs" | "onnx";

/** Why a custom layer class has no exact stock form (the ones not translated below). */
const CANNOT_TRAVEL: Record<string, string> = {
  TrainyardStepActivation: "a binary step (x > 0 → 1, else 0) has no stock layer or activation that computes it exactly",
  TrainyardAttention: "attention needs a batched product of two computed tensors with a masked softmax, which stock layers cannot express exactly",
  TrainyardMultiHeadSelfAttention: "multi-head self-attention needs per-head batched products of computed tensors, which stock layers cannot express exactly",
  TrainyardTransformerEncoder: "its self-attention needs per-head batched products of computed tensors, which stock layers cannot express exactly",
  TrainyardDistance: "a distance needs a square root or a norm of a difference, which no stock layer computes exactly",
};

const shapeOf = (x: Sym) => x.shape;

/** A constant tensor of `shape` (no batch axis) for every example of `like`: GlobalAveragePooling, then a Dense of zeros whose bias is the constant (0 × a finite number is exactly 0). */
function constantLike(like: Sym, values: Float32Array, shape: number[], name: string): Sym {
  const pool = like.shape.length === 4 ? tf.layers.globalAveragePooling2d({ name: `${name}_pool` }) : tf.layers.globalAveragePooling1d({ name: `${name}_pool` });
  const pooled = pool.apply(like) as Sym;
  const features = pooled.shape[1] as number;
  const dense = tf.layers.dense({ units: values.length, trainable: false, name: `${name}_values` });
  const flat = dense.apply(pooled) as Sym;
  dense.setWeights([tf.zeros([features, values.length]), tf.tensor1d(values)]);
  return tf.layers.reshape({ targetShape: shape, name }).apply(flat) as Sym;
}

function fixedDims(layer: tf.layers.Layer, x: Sym, what: string): number[] {
  const dims = shapeOf(x).slice(1);
  if (dims.some((d) => d === null)) throw new ConflictError(`layer '${layer.name}' (${layer.getClassName()}) cannot be exported: ${what} must be known, and its input shape is [${dims.map((d) => d ?? "null").join(", ")}]`);
  return dims as number[];
}

/** The layer's output for one all-zero example (the constant part of an additive layer). */
function outputForZeros(layer: tf.layers.Layer, dims: number[]): Float32Array {
  return tf.tidy(() => (layer.apply(tf.zeros([1, ...dims])) as tf.Tensor).dataSync() as Float32Array).slice();
}

/**
 * Applies `layer` to `inputs` in the exported graph: the layer itself when it is stock, its stock
 * form when it is one of ours that has one; a ConflictError naming it otherwise.
 */
export function applyStock(layer: tf.layers.Layer, inputs: Sym[], kwargs?: tf.serialization.ConfigDict, target: ExportTarget = "tfjs", keep?: (cls: string) => boolean): Sym | Sym[] {
  const cls = layer.getClassName();
  const x = inputs[0];
  // A format that expresses this custom layer itself (ONNX: the step, distances) takes it as it is.
  if (keep?.(cls)) return layer.apply(inputs.length === 1 ? x : inputs, kwargs) as Sym | Sym[];
  if (layer instanceof SpatialDropout2D) {
    // Dropout is the identity in inference; the rate is kept for anyone who fine-tunes it.
    return tf.layers.dropout({ rate: (layer as unknown as { rate: number }).rate, name: layer.name }).apply(x) as Sym;
  }
  if (layer instanceof DilatedConv2D) {
    const cfg = layer.getConfig() as unknown as { filters: number; kernelSize: [number, number]; dilationRate: [number, number]; strides: [number, number]; padding: "valid" | "same"; useBias: boolean };
    const weights = layer.getWeights();
    const oneD = x.shape.length === 3;
    const stock = oneD
      ? tf.layers.conv1d({ filters: cfg.filters, kernelSize: cfg.kernelSize[0], dilationRate: cfg.dilationRate[0], strides: cfg.strides[0], padding: cfg.padding, useBias: cfg.useBias, name: layer.name })
      : tf.layers.conv2d({ filters: cfg.filters, kernelSize: cfg.kernelSize, dilationRate: cfg.dilationRate, strides: cfg.strides, padding: cfg.padding, useBias: cfg.useBias, name: layer.name });
    const y = stock.apply(x) as Sym;
    // A conv1d's kernel is the [k, 1, in, out] one without its unit axis.
    stock.setWeights(oneD ? [weights[0].reshape([cfg.kernelSize[0], weights[0].shape[2]!, cfg.filters]), ...weights.slice(1)] : weights);
    return y;
  }
  if (layer instanceof AdaptivePooling2D || layer instanceof AdaptivePooling1D) {
    const dims = fixedDims(layer, x, "the pooled size");
    const out = layer instanceof AdaptivePooling2D ? layer.outputSize : [layer.outputSize];
    const spatial = dims.slice(0, out.length);
    const indivisible = spatial.findIndex((n, i) => n % out[i] !== 0);
    if (indivisible >= 0) {
      throw new ConflictError(`layer '${layer.name}' (${cls}) cannot be exported: it pools ${spatial[indivisible]} steps into ${out[indivisible]} bins of unequal size, which no stock pooling layer does; an output size that divides the input size (${spatial.join("×")}) travels as a stock pooling layer`);
    }
    const pool = spatial.map((n, i) => n / out[i]);
    const args = { poolSize: pool, strides: pool, padding: "valid" as const, name: layer.name };
    const stock = layer instanceof AdaptivePooling2D
      ? layer.mode === "avg" ? tf.layers.averagePooling2d({ ...args, poolSize: [pool[0], pool[1]], strides: [pool[0], pool[1]] }) : tf.layers.maxPooling2d({ ...args, poolSize: [pool[0], pool[1]], strides: [pool[0], pool[1]] })
      : layer.mode === "avg" ? tf.layers.averagePooling1d({ ...args, poolSize: pool[0], strides: pool[0] }) : tf.layers.maxPooling1d({ ...args, poolSize: pool[0], strides: pool[0] });
    return stock.apply(x) as Sym;
  }
  if (layer instanceof PositionalEncoding) {
    // x + PE: PE is the layer's output for zeros (0 + PE is exact), added as a constant.
    const dims = fixedDims(layer, x, "the sequence length");
    const pe = constantLike(x, outputForZeros(layer, dims), dims, `${layer.name}_table`);
    return tf.layers.add({ name: layer.name }).apply([x, pe]) as Sym;
  }
  if (layer instanceof AddCoords2D) {
    const dims = fixedDims(layer, x, "the image size");
    const [h, w, c] = dims;
    const k = layer.withRadius ? 3 : 2;
    const all = outputForZeros(layer, dims);
    const coords = new Float32Array(h * w * k);
    for (let p = 0; p < h * w; p++) coords.set(all.subarray(p * (c + k) + c, (p + 1) * (c + k)), p * k);
    const constant = constantLike(x, coords, [h, w, k], `${layer.name}_coords`);
    return tf.layers.concatenate({ axis: -1, name: layer.name }).apply([x, constant]) as Sym;
  }
  if (cls.startsWith("Trainyard")) {
    const why = CANNOT_TRAVEL[cls] ?? "it is a Trainyard layer with no stock TensorFlow.js form";
    throw new ConflictError(target === "tfjs"
      ? `layer '${layer.name}' (${cls}) cannot be exported in the standard TensorFlow.js format: ${why}; a stock tf.loadLayersModel cannot construct it`
      : `layer '${layer.name}' (${cls}) cannot be exported to ONNX yet: the ONNX export starts from the stock TensorFlow.js graph, and ${why}`);
  }
  return layer.apply(inputs.length === 1 ? x : inputs, kwargs) as Sym | Sym[];
}
