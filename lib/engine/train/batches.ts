// A batch's rows, taken from the dataset's typed arrays in JavaScript and made into fresh tensors.
// On the wasm backend the tensor ways of doing this cost far more than the copy itself: `tf.slice`
// reads the whole source tensor back out of wasm memory before it slices (6–7 ms a batch for a
// 12.8 MB training set), and `tf.gather` allocates per element (3.3 ms); copying a batch's rows
// with TypedArray.set and calling `tf.tensor` takes 0.1–0.2 ms. It also keeps no second copy of the
// training and validation sets in backend memory. The values are the same, so training is too.
import * as tf from "@tensorflow/tfjs";
import { targetTensor } from "./losses.ts";
import type { LossName, TrainData } from "./train-types.ts";

export interface Batch {
  xs: tf.Tensor[];
  ys: tf.Tensor[];
}

/** Rows' values, per input and per target, in the dataset's layout. */
export interface RowValues {
  xs: Float32Array[];
  ys: Float32Array[];
}

/** Rows to evaluate or train on, `size` of them at a time from `start`; every tensor returned is the caller's. */
export interface Batches {
  readonly rows: number;
  take(start: number, size: number): Batch;
}

/** The rows `ids` of `data` (ids into the dataset), targets as the outputs' losses take them. */
export class RowBatches implements Batches {
  readonly rows: number;

  constructor(
    readonly data: TrainData,
    private readonly ids: Int32Array,
    readonly losses: LossName[],
    readonly outputShapes: number[][],
  ) {
    this.rows = ids.length;
  }

  take(start: number, size: number): Batch {
    return this.rowsAt(this.ids.subarray(start, start + size));
  }

  /** The given dataset rows, in that order. */
  rowsAt(ids: ArrayLike<number>): Batch {
    return this.tensorsOf(this.valuesAt(ids), ids.length);
  }

  /** The given dataset rows' values, per input and per target, as stored (class ids for classification targets). */
  valuesAt(ids: ArrayLike<number>): RowValues {
    const n = ids.length;
    const copy = (source: Float32Array, width: number) => {
      const out = new Float32Array(n * width);
      for (let j = 0; j < n; j++) out.set(source.subarray(ids[j] * width, (ids[j] + 1) * width), j * width);
      return out;
    };
    return { xs: this.data.inputs.map((t) => copy(t.data, this.width(t))), ys: this.data.targets.map((t) => copy(t.data, this.width(t))) };
  }

  /** A row's values in one input's or target's array. */
  width(t: { data: Float32Array }): number {
    // From the array itself: a target's declared shape may describe the output (one-hot) while it holds class ids.
    return t.data.length / this.data.rows;
  }

  /** Tensors of `n` rows' values, targets as the outputs' losses take them. */
  tensorsOf(values: RowValues, n: number): Batch {
    return {
      xs: this.data.inputs.map((t, k) => tf.tensor(values.xs[k], [n, ...t.shape], t.dtype ?? "float32")),
      ys: this.data.targets.map((t, k) => targetTensor({ ...t, data: values.ys[k] }, n, this.losses[k], this.outputShapes[k])),
    };
  }
}

/** Batches sliced from tensors the caller holds (small sets, already in tensors). */
export function tensorBatches(xs: tf.Tensor[], ys: tf.Tensor[]): Batches {
  return {
    rows: ys[0].shape[0],
    take: (start, size) => ({ xs: xs.map((x) => tf.slice(x, start, size)), ys: ys.map((y) => tf.slice(y, start, size)) }),
  };
}
