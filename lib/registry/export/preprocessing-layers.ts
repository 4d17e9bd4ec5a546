// A version's fitted preprocessing as stock TensorFlow.js layers, so that an exported model takes
// the raw inputs :predict takes. Every step is exact up to float32 rounding:
// - (x − shift) × scale is a BatchNormalization in inference with moving mean = shift, moving
//   variance = 1, epsilon = 0 and gamma = scale: tfjs computes (x − mean) × gamma / √(1 + 0);
// - a one-hot column is an Embedding whose rows are the unit vectors of its block of the output
//   (a lookup, no arithmetic), its code cut out of the row by Reshape + Cropping2D (no arithmetic);
// - numeric and ordinal columns are moved to their place in the output by a Dense of 0s and 1s.
// Missing-value imputation does not travel: no stock layer replaces NaN. The exported model takes
// complete rows (the fill values are in the signature for a client that needs them).
import * as tf from "@tensorflow/tfjs";
import type { FittedColumn, FittedPreprocessing } from "../../data/preprocessing/preprocessing-schema.ts";

type Sym = tf.SymbolicTensor;

/** A layer applied once with the weights it must have; its weights are set after it is built. */
function applyWithWeights(layer: tf.layers.Layer, x: Sym | Sym[], weights: tf.Tensor[]): Sym {
  const y = layer.apply(x) as Sym;
  layer.setWeights(weights);
  weights.forEach((w) => w.dispose());
  return y;
}

/**
 * (x − shift) × scale along the last axis, as a frozen BatchNormalization. With a zero beta rather
 * than none: tfjs's batch-norm gradient fails without an offset, and the probes (attacks,
 * saliency) differentiate through this graph.
 */
function affine(x: Sym, shift: number[], scale: number[], name: string): Sym {
  const bn = tf.layers.batchNormalization({ axis: -1, epsilon: 0, center: true, scale: true, trainable: false, name });
  // Weights in order: gamma, beta, moving mean, moving variance.
  return applyWithWeights(bn, x, [tf.tensor1d(scale), tf.zeros([shift.length]), tf.tensor1d(shift), tf.ones([shift.length])]);
}

const widthOf = (c: FittedColumn) => (c.type === "categorical" && c.encoding === "onehot" ? c.categories.length : 1);

/** The processed tensor of one raw input, built from stock layers; `prefix` names the layers. */
export function preprocessingLayers(input: Sym, fitted: FittedPreprocessing, rawShape: number[], prefix: string): Sym {
  if (fitted.kind === "image") {
    const channels = rawShape[rawShape.length - 1];
    let x = affine(input, new Array(channels).fill(0), new Array(channels).fill(fitted.scale), `${prefix}_scale`);
    if (fitted.center === "perChannel" && fitted.mean) x = affine(x, fitted.mean, new Array(channels).fill(1), `${prefix}_center`);
    if (fitted.center === "meanImage" && fitted.mean) {
      const flat = tf.layers.flatten({ name: `${prefix}_flatten` }).apply(x) as Sym;
      const centered = affine(flat, fitted.mean, new Array(fitted.mean.length).fill(1), `${prefix}_center`);
      x = tf.layers.reshape({ targetShape: rawShape, name: `${prefix}_unflatten` }).apply(centered) as Sym;
    }
    return x;
  }
  const columns = fitted.columns;
  const width = columns.reduce((a, c) => a + widthOf(c), 0);
  // Numeric columns scaled, category codes kept (shift 0, scale 1: exact).
  const scaled = affine(
    input,
    columns.map((c) => (c.type === "numeric" ? c.shift : 0)),
    columns.map((c) => (c.type === "numeric" ? c.scale : 1)),
    `${prefix}_standardize`,
  );
  const isOneHot = (c: FittedColumn) => c.type === "categorical" && c.encoding === "onehot";
  if (!columns.some(isOneHot)) return scaled;

  const m = columns.length;
  const parts: Sym[] = [];
  const placement = new Float32Array(m * width);
  const asSteps = tf.layers.reshape({ targetShape: [m, 1, 1], name: `${prefix}_columns` }).apply(input) as Sym;
  let o = 0;
  columns.forEach((c, j) => {
    if (c.type === "categorical" && isOneHot(c)) {
      const k = c.categories.length;
      const code = tf.layers.cropping2D({ cropping: [[j, m - j - 1], [0, 0]], name: `${prefix}_${j}_code` }).apply(asSteps) as Sym;
      const flatCode = tf.layers.reshape({ targetShape: [1], name: `${prefix}_${j}_flat` }).apply(code) as Sym;
      const rows = new Float32Array(k * width);
      for (let c2 = 0; c2 < k; c2++) rows[c2 * width + o + c2] = 1;
      const embedding = tf.layers.embedding({ inputDim: Math.max(1, k), outputDim: width, trainable: false, name: `${prefix}_${j}_onehot` });
      const looked = applyWithWeights(embedding, flatCode, [tf.tensor2d(k ? rows : new Float32Array(width), [Math.max(1, k), width])]);
      parts.push(tf.layers.flatten({ name: `${prefix}_${j}_vector` }).apply(looked) as Sym);
      o += k;
    } else {
      placement[j * width + o] = 1;
      o += 1;
    }
  });
  if (!columns.every(isOneHot)) {
    const place = tf.layers.dense({ units: width, useBias: false, trainable: false, name: `${prefix}_place` });
    parts.unshift(applyWithWeights(place, scaled, [tf.tensor2d(placement, [m, width])]));
  }
  return parts.length === 1 ? parts[0] : (tf.layers.add({ name: `${prefix}_encoded` }).apply(parts) as Sym);
}
