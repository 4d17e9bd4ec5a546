// Spatial dropout (Tompson et al. 2015): neighbouring pixels of a feature map are strongly
// correlated, so dropping single activations barely regularises a conv net; dropping whole
// channels does. tfjs-layers has SpatialDropout1D only.
import * as tf from "@tensorflow/tfjs";

type Shape = (number | null)[];
type LayerArgs = NonNullable<ConstructorParameters<typeof tf.layers.Layer>[0]>;
type Kwargs = { [key: string]: unknown };

export interface SpatialDropout2DConfig {
  /** Fraction of channels dropped per example, in [0, 1). */
  rate: number;
}

/**
 * [batch, H, W, C] → same shape. While training, each (example, channel) map is zeroed with
 * probability `rate` and the rest scaled by 1 / (1 - rate) (inverted dropout, so inference needs
 * no rescaling); at inference it is the identity.
 */
export class SpatialDropout2D extends tf.layers.Layer {
  static className = "TrainyardSpatialDropout2D";
  readonly rate: number;

  constructor(args: SpatialDropout2DConfig & LayerArgs) {
    super(args);
    if (typeof args.rate !== "number" || !(args.rate >= 0 && args.rate < 1)) {
      throw new Error(`${SpatialDropout2D.className}: rate must be in [0, 1), got ${JSON.stringify(args.rate)}`);
    }
    this.rate = args.rate;
  }

  computeOutputShape(inputShape: Shape | Shape[]): Shape {
    const shape = (Array.isArray(inputShape[0]) ? inputShape[0] : inputShape) as Shape;
    if (shape.length !== 4) {
      throw new Error(`${SpatialDropout2D.className} expects [batch, height, width, channels], got [${shape.join(", ")}]`);
    }
    return [...shape];
  }

  call(inputs: tf.Tensor | tf.Tensor[], kwargs: Kwargs): tf.Tensor {
    return tf.tidy(() => {
      const x = Array.isArray(inputs) ? inputs[0] : inputs;
      if (kwargs?.training !== true || this.rate === 0) return tf.clone(x);
      const [batch, , , channels] = x.shape;
      // One keep/drop draw per (example, channel), broadcast over height and width.
      return tf.dropout(x, this.rate, [batch, 1, 1, channels]);
    });
  }

  getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig(), rate: this.rate };
  }
}

tf.serialization.registerClass(SpatialDropout2D);
