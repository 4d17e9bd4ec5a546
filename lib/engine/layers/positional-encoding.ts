// The fixed sinusoidal positional encoding of Vaswani et al. (2017), "Attention is all you need",
// §3.5: attention is order-blind, so each time step gets a position signal added before it.
import * as tf from "@tensorflow/tfjs";

type Shape = (number | null)[];
type LayerArgs = NonNullable<ConstructorParameters<typeof tf.layers.Layer>[0]>;

export interface PositionalEncodingConfig {
  /** Longest sequence the layer accepts; the encoding is precomputed for this many steps. */
  maxLength: number;
}

/**
 * Row-major [length, dModel] table: PE(pos, 2i) = sin(pos / 10000^(2i/dModel)),
 * PE(pos, 2i+1) = cos(pos / 10000^(2i/dModel)) — interleaved as in the paper, not concatenated.
 */
export function sinusoidalEncoding(length: number, dModel: number): Float32Array {
  const table = new Float32Array(length * dModel);
  for (let pos = 0; pos < length; pos++) {
    for (let j = 0; j < dModel; j++) {
      const angle = pos / Math.pow(10000, (2 * Math.floor(j / 2)) / dModel);
      table[pos * dModel + j] = j % 2 === 0 ? Math.sin(angle) : Math.cos(angle);
    }
  }
  return table;
}

/** [batch, T, dModel] → same shape, x + PE[0..T); T may be unknown until call time (≤ maxLength). */
export class PositionalEncoding extends tf.layers.Layer {
  static className = "TrainyardPositionalEncoding";
  readonly maxLength: number;
  // A plain array, not a tensor: nothing to dispose, and a slice of it becomes a tensor per call.
  // Computed for the longest sequence seen so far, not for maxLength at build: a spec may allow
  // millions of steps, and building (which :validate does) must not compute them all.
  private table: Float32Array = new Float32Array(0);
  private dModel = 0;

  constructor(args: PositionalEncodingConfig & LayerArgs) {
    super(args);
    if (!Number.isInteger(args.maxLength) || args.maxLength < 1) {
      throw new Error(`${PositionalEncoding.className}: maxLength must be a positive integer, got ${JSON.stringify(args.maxLength)}`);
    }
    this.maxLength = args.maxLength;
  }

  private checkShape(inputShape: Shape | Shape[]): Shape {
    const shape = (Array.isArray(inputShape[0]) ? inputShape[0] : inputShape) as Shape;
    if (shape.length !== 3) {
      throw new Error(`${PositionalEncoding.className} expects [batch, time, dModel], got [${shape.join(", ")}]`);
    }
    const time = shape[1];
    if (time !== null) this.checkTime(time);
    return shape;
  }

  private checkTime(time: number): void {
    if (time > this.maxLength) {
      throw new Error(
        `${PositionalEncoding.className} "${this.name}": input has ${time} time steps, more than maxLength ${this.maxLength}`,
      );
    }
  }

  build(inputShape: Shape | Shape[]): void {
    const dModel = this.checkShape(inputShape)[2];
    if (dModel === null) throw new Error(`${PositionalEncoding.className} needs a known dModel (last dimension)`);
    this.dModel = dModel;
    this.built = true;
  }

  computeOutputShape(inputShape: Shape | Shape[]): Shape {
    return [...this.checkShape(inputShape)];
  }

  call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    return tf.tidy(() => {
      const x = Array.isArray(inputs) ? inputs[0] : inputs;
      const time = x.shape[1] as number;
      this.checkTime(time);
      if (this.table.length < time * this.dModel) {
        // Grow by doubling, so that sequences of growing length cost a logarithmic number of rebuilds.
        this.table = sinusoidalEncoding(Math.min(this.maxLength, Math.max(time, 2 * (this.table.length / this.dModel))), this.dModel);
      }
      const encoding = tf.tensor3d(this.table.subarray(0, time * this.dModel), [1, time, this.dModel]);
      return tf.add(x, encoding);
    });
  }

  getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig(), maxLength: this.maxLength };
  }
}

tf.serialization.registerClass(PositionalEncoding);
