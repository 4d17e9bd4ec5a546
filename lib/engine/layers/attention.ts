// Single-head attention over a query and a value sequence, the tfjs counterpart of Keras's
// Attention (Luong, dot) and AdditiveAttention (Bahdanau, additive) layers, which tfjs-layers lacks.
import * as tf from "@tensorflow/tfjs";

type Shape = (number | null)[];
type LayerArgs = NonNullable<ConstructorParameters<typeof tf.layers.Layer>[0]>;

export type AttentionScore = "dot" | "additive";

export interface AttentionConfig {
  /** "dot": score = q·k (Luong 2015); "additive": score = vᵀ tanh(q + k) (Bahdanau 2015). */
  score: AttentionScore;
  /** Query step i attends only to value steps j ≤ i. Default false. */
  causal?: boolean;
  /**
   * dot only: multiply scores by a learned scalar, initialised to 1/sqrt(d) so an untrained layer
   * is Vaswani's scaled dot product (Keras starts its scalar at 1). Default false: raw q·k.
   * Additive attention always learns its vector v, which already sets the scale, so this is
   * ignored there.
   */
  scale?: boolean;
}

// Large but finite: -Infinity would turn a fully masked row into NaN instead of a zero row.
const MASKED = -1e9;

/**
 * [tq, tv] additive mask: 0 where key step j ≤ query step i, MASKED after. After softmax the
 * masked weights are exactly 0, so later steps cannot change earlier outputs at all.
 */
export function causalMaskBias(tq: number, tv: number): tf.Tensor2D {
  const bias = new Float32Array(tq * tv);
  for (let i = 0; i < tq; i++) for (let j = i + 1; j < tv; j++) bias[i * tv + j] = MASKED;
  return tf.tensor2d(bias, [tq, tv]);
}

/**
 * Inputs [query, value] or [query, value, key] (key defaults to value), shapes [b, Tq, d],
 * [b, Tv, dv], [b, Tv, d]. Output [b, Tq, dv]: softmax over Tv of the scores, times value.
 * Like Keras, no projections of its own: put dense layers before it for Bahdanau's W₁q, W₂k.
 */
export class Attention extends tf.layers.Layer {
  static className = "TrainyardAttention";
  readonly score: AttentionScore;
  readonly causal: boolean;
  readonly scale: boolean;
  private scaleWeight: tf.LayerVariable | undefined;
  private v: tf.LayerVariable | undefined;

  constructor(args: AttentionConfig & LayerArgs) {
    super(args);
    if (args.score !== "dot" && args.score !== "additive") {
      throw new Error(`${Attention.className}: score must be "dot" or "additive", got ${JSON.stringify(args.score)}`);
    }
    this.score = args.score;
    this.causal = args.causal ?? false;
    this.scale = args.scale ?? false;
  }

  private checkShapes(inputShape: Shape | Shape[]): Shape[] {
    const shapes = (Array.isArray(inputShape[0]) ? inputShape : [inputShape]) as Shape[];
    const cls = Attention.className;
    if (shapes.length !== 2 && shapes.length !== 3) {
      throw new Error(`${cls} takes [query, value] or [query, value, key], got ${shapes.length} input(s)`);
    }
    for (const s of shapes) {
      if (s.length !== 3) throw new Error(`${cls} inputs must be [batch, time, features], got [${s.join(", ")}]`);
    }
    const [query, value, key = value] = shapes;
    if (query[2] !== null && key[2] !== null && query[2] !== key[2]) {
      throw new Error(`${cls}: query has ${query[2]} features, key has ${key[2]}; they must match`);
    }
    if (key[1] !== null && value[1] !== null && key[1] !== value[1]) {
      throw new Error(`${cls}: key has ${key[1]} time steps, value has ${value[1]}; they must match`);
    }
    return shapes;
  }

  build(inputShape: Shape | Shape[]): void {
    const [query] = this.checkShapes(inputShape);
    const d = query[2];
    if (d === null) throw new Error(`${Attention.className} needs a known query feature size`);
    if (this.score === "dot" && this.scale) {
      this.scaleWeight = this.addWeight("scale", [], "float32", tf.initializers.constant({ value: 1 / Math.sqrt(d) }));
    }
    if (this.score === "additive") {
      this.v = this.addWeight("v", [d], "float32", tf.initializers.glorotUniform({}));
    }
    this.built = true;
  }

  computeOutputShape(inputShape: Shape | Shape[]): Shape {
    const [query, value] = this.checkShapes(inputShape);
    return [query[0], query[1], value[2]];
  }

  call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    return tf.tidy(() => {
      const list = Array.isArray(inputs) ? inputs : [inputs];
      const [query, value, key = value] = list as tf.Tensor3D[];
      let scores: tf.Tensor3D;
      if (this.score === "dot") {
        scores = tf.matMul(query, key, false, true);
        if (this.scaleWeight) scores = tf.mul(scores, this.scaleWeight.read());
      } else {
        // [b, Tq, 1, d] + [b, 1, Tv, d] → [b, Tq, Tv, d], reduced against v to [b, Tq, Tv].
        const summed = tf.tanh(tf.add(tf.expandDims(query, 2), tf.expandDims(key, 1)));
        scores = tf.sum(tf.mul(summed, (this.v as tf.LayerVariable).read()), -1);
      }
      if (this.causal) scores = tf.add(scores, causalMaskBias(query.shape[1], key.shape[1]));
      return tf.matMul(tf.softmax(scores), value);
    });
  }

  getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig(), score: this.score, causal: this.causal, scale: this.scale };
  }
}

tf.serialization.registerClass(Attention);
