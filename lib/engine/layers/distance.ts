// Distance between two embeddings, the head of a siamese network (trained with a contrastive or
// triplet loss on the distance). tfjs-layers' Dot with normalize covers cosine similarity only.
import * as tf from "@tensorflow/tfjs";

type Shape = (number | null)[];
type LayerArgs = NonNullable<ConstructorParameters<typeof tf.layers.Layer>[0]>;

export type DistanceMetric = "euclidean" | "manhattan" | "cosine";

export interface DistanceConfig {
  /** euclidean: sqrt(Σ(a-b)² + ε); manhattan: Σ|a-b|; cosine: 1 - a·b / (|a||b|), in [0, 2]. */
  metric: DistanceMetric;
}

// d sqrt(s)/ds is infinite at s = 0, i.e. for identical embeddings, which a siamese network
// produces for every positive pair it has learned: ε keeps that gradient finite (it is 0 there).
// Adds at most sqrt(ε) = 1e-6 to the distance.
const EUCLIDEAN_EPSILON = 1e-12;
// Floor on squared norms so a zero embedding gives cosine distance 1, not NaN.
const COSINE_EPSILON = 1e-12;

/** Inputs [a, b], each [batch, d] → [batch, 1]. */
export class Distance extends tf.layers.Layer {
  static className = "TrainyardDistance";
  readonly metric: DistanceMetric;

  constructor(args: DistanceConfig & LayerArgs) {
    super(args);
    if (args.metric !== "euclidean" && args.metric !== "manhattan" && args.metric !== "cosine") {
      throw new Error(`${Distance.className}: metric must be "euclidean", "manhattan" or "cosine", got ${JSON.stringify(args.metric)}`);
    }
    this.metric = args.metric;
  }

  computeOutputShape(inputShape: Shape | Shape[]): Shape {
    const shapes = (Array.isArray(inputShape[0]) ? inputShape : [inputShape]) as Shape[];
    const cls = Distance.className;
    if (shapes.length !== 2) throw new Error(`${cls} takes two inputs [a, b], got ${shapes.length}`);
    const [a, b] = shapes;
    if (a.length !== 2 || b.length !== 2) {
      throw new Error(`${cls} inputs must be [batch, features], got [${a.join(", ")}] and [${b.join(", ")}]`);
    }
    if (a[1] !== null && b[1] !== null && a[1] !== b[1]) {
      throw new Error(`${cls}: inputs have ${a[1]} and ${b[1]} features; they must match`);
    }
    return [a[0] ?? b[0], 1];
  }

  call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    return tf.tidy(() => {
      if (!Array.isArray(inputs) || inputs.length !== 2) throw new Error(`${Distance.className} takes two inputs [a, b]`);
      const [a, b] = inputs;
      switch (this.metric) {
        case "euclidean":
          return tf.sqrt(tf.add(tf.sum(tf.square(tf.sub(a, b)), -1, true), EUCLIDEAN_EPSILON));
        case "manhattan":
          return tf.sum(tf.abs(tf.sub(a, b)), -1, true);
        case "cosine": {
          const dot = tf.sum(tf.mul(a, b), -1, true);
          const norms = tf.mul(tf.sum(tf.square(a), -1, true), tf.sum(tf.square(b), -1, true));
          return tf.sub(1, tf.div(dot, tf.sqrt(tf.maximum(norms, COSINE_EPSILON * COSINE_EPSILON))));
        }
      }
    });
  }

  getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig(), metric: this.metric };
  }
}

tf.serialization.registerClass(Distance);
