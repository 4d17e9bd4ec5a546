// Where a network looks, two ways, for inputs shaped [n, h, w, c] (images) or [n, steps, features]
// / [n, features] (treated as one row of cells):
// - saliency (Simonyan et al., 2014): |∂ score_c / ∂x|, the largest over channels, per cell;
// - occlusion (Zeiler & Fergus, 2014): a patch of `fill` slid over the input; each position's
//   value is how much the class's probability drops when the patch hides it.
import * as tf from "@tensorflow/tfjs";
import { argmaxRows, centredLogitOf, inputGradient, probabilities } from "./gradients.ts";

/** Rows per forward pass of occluded copies: bounds the memory of a big image's many positions. */
const OCCLUSION_BATCH = 64;

export interface CellGrid {
  height: number;
  width: number;
  channels: number;
}

/** How an input's shape (batch axis dropped) lays out as a picture: images as they are, sequences as one row per step, vectors as one row. */
export function gridOf(shape: number[]): CellGrid {
  if (shape.length === 3) return { height: shape[0], width: shape[1], channels: shape[2] };
  if (shape.length === 2) return { height: shape[0], width: 1, channels: shape[1] };
  return { height: 1, width: shape.reduce((a, b) => a * b, 1), channels: 1 };
}

/**
 * Saliency maps [n, h·w] for each row's class (`classes`, or each row's predicted class), with the
 * classes explained and the class probabilities [n, classes].
 */
export function saliency(model: tf.LayersModel, x: tf.Tensor, classes: Int32Array | undefined, output: number): { maps: Float32Array; probabilities: Float32Array; classes: Int32Array } {
  const grid = gridOf(x.shape.slice(1));
  return tf.tidy(() => {
    const p = probabilities(model, x, output);
    const explained = classes ?? argmaxRows(p);
    const c = tf.tensor1d(explained, "int32");
    const g = inputGradient((v) => centredLogitOf(probabilities(model, v, output), c), x);
    const maps = tf.max(tf.abs(g.reshape([x.shape[0], grid.height * grid.width, grid.channels])), 2);
    return { maps: maps.dataSync() as Float32Array, probabilities: p.dataSync() as Float32Array, classes: explained };
  });
}

export interface OcclusionOptions {
  /** The patch's side in cells (images: pixels). */
  patch: number;
  stride: number;
  /** The value the patch holds, raw (grey: the middle of the data's range). */
  fill: number;
  output: number;
}

/**
 * Occlusion maps: for each row, a grid of positions [rows, cols] (the patch's top-left corner at
 * multiples of the stride), each the drop p_c(x) − p_c(x with the patch) of the row's class.
 */
export function occlusion(model: tf.LayersModel, x: tf.Tensor, asked: Int32Array | undefined, o: OcclusionOptions): { maps: Float32Array; rows: number; cols: number; baseline: Float32Array; classes: Int32Array } {
  const grid = gridOf(x.shape.slice(1));
  const n = x.shape[0];
  const ph = Math.min(o.patch, grid.height);
  const pw = Math.min(o.patch, grid.width);
  const rows = Math.floor((grid.height - ph) / o.stride) + 1;
  const cols = Math.floor((grid.width - pw) / o.stride) + 1;
  const data = x.dataSync();
  const per = grid.height * grid.width * grid.channels;
  const classOf = (p: Float32Array, width: number, i: number, c: number) => p[i * width + c];
  const base = tf.tidy(() => probabilities(model, x, o.output));
  const width = base.shape[1];
  const baseP = base.dataSync() as Float32Array;
  // Each row's class: the one asked for, else the predicted one.
  const classes = asked ?? argmaxRows(base);
  base.dispose();
  const baseline = Float32Array.from(classes, (c, i) => classOf(baseP, width, i, c));
  const maps = new Float32Array(n * rows * cols);
  const positions = rows * cols;
  // Every (row, position) pair as one occluded copy, in passes of OCCLUSION_BATCH.
  for (let start = 0; start < n * positions; start += OCCLUSION_BATCH) {
    const count = Math.min(OCCLUSION_BATCH, n * positions - start);
    const copies = new Float32Array(count * per);
    for (let j = 0; j < count; j++) {
      const i = Math.floor((start + j) / positions);
      const pos = (start + j) % positions;
      const top = Math.floor(pos / cols) * o.stride;
      const left = (pos % cols) * o.stride;
      const copy = copies.subarray(j * per, (j + 1) * per);
      copy.set(data.subarray(i * per, (i + 1) * per));
      for (let r = top; r < top + ph; r++) copy.fill(o.fill, (r * grid.width + left) * grid.channels, (r * grid.width + left + pw) * grid.channels);
    }
    const p = tf.tidy(() => probabilities(model, tf.tensor(copies, [count, ...x.shape.slice(1)]), o.output).dataSync() as Float32Array);
    for (let j = 0; j < count; j++) {
      const i = Math.floor((start + j) / positions);
      maps[start + j] = baseline[i] - classOf(p, width, j, classes[i]);
    }
  }
  return { maps, rows, cols, baseline, classes };
}
