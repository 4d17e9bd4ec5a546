// Stock TensorFlow.js layers as ONNX operators. Tensors keep TensorFlow.js's channels-last layout
// (NHWC) between layers, so the exported model takes the input the service takes; a convolution or
// pooling, which ONNX defines on NCHW, is wrapped in a Transpose before and after (ONNX Runtime's
// optimizer cancels the pairs between consecutive ones). A layer without an exact mapping is a 409
// naming it and why, never a model that loads but predicts differently.
import * as tf from "@tensorflow/tfjs";
import { ConflictError } from "../../../errors.ts";
import { type Attr, float, type OnnxGraph } from "./onnx-graph.ts";

type Config = Record<string, unknown>;

const TO_NCHW = [0, 3, 1, 2];
const TO_NHWC = [0, 2, 3, 1];

function refuse(layer: tf.layers.Layer, why: string): never {
  throw new ConflictError(`layer '${layer.name}' (${layer.getClassName()}) cannot be exported to ONNX: ${why}`);
}

/** An activation by its serialized name, applied to `x`. */
export function activation(g: OnnxGraph, layer: tf.layers.Layer, name: unknown, x: string): string {
  const key = String(name ?? "linear").toLowerCase().replace(/_/g, "");
  const at = `${layer.name}_${key}`;
  switch (key) {
    case "linear":
      return x;
    case "relu":
      return g.node("Relu", [x], at)[0];
    case "sigmoid":
      return g.node("Sigmoid", [x], at)[0];
    case "tanh":
      return g.node("Tanh", [x], at)[0];
    case "softmax":
      return g.node("Softmax", [x], at, { axis: -1 })[0];
    case "elu":
      return g.node("Elu", [x], at, { alpha: float(1) })[0];
    case "selu":
      // tfjs's constants are the paper's, which are ONNX's defaults.
      return g.node("Selu", [x], at)[0];
    case "softplus":
      return g.node("Softplus", [x], at)[0];
    case "softsign":
      return g.node("Softsign", [x], at)[0];
    case "relu6":
      return g.node("Clip", [x, g.floats(`${at}_min`, [0], []), g.floats(`${at}_max`, [6], [])], at)[0];
    case "hardsigmoid":
      return g.node("HardSigmoid", [x], at, { alpha: float(0.2), beta: float(0.5) })[0];
    case "swish":
      return g.node("Mul", [x, g.node("Sigmoid", [x], `${at}_gate`)[0]], at)[0];
    case "mish":
      return g.node("Mul", [x, g.node("Tanh", [g.node("Softplus", [x], `${at}_softplus`)[0]], `${at}_tanh`)[0]], at)[0];
    default:
      return refuse(layer, `its activation '${String(name)}' has no ONNX mapping yet`);
  }
}

const pair = (v: unknown): [number, number] => (Array.isArray(v) ? [Number(v[0]), Number(v[1] ?? v[0])] : [Number(v), Number(v)]);

/** TensorFlow's 'same' pads the extra cell at the end: ONNX's SAME_UPPER. */
const autoPad = (padding: unknown) => (padding === "same" ? "SAME_UPPER" : "VALID");

function nchw(g: OnnxGraph, layer: tf.layers.Layer, x: string, body: (xNchw: string) => string): string {
  const inner = body(g.node("Transpose", [x], `${layer.name}_nchw`, { perm: TO_NCHW })[0]);
  return g.node("Transpose", [inner], `${layer.name}_nhwc`, { perm: TO_NHWC })[0];
}

/** A 4-D row-major array with its axes reordered: output axis k is input axis perm[k]. */
function permute4(data: Float32Array, shape: number[], perm: [number, number, number, number]): Float32Array {
  const stride = [shape[1] * shape[2] * shape[3], shape[2] * shape[3], shape[3], 1];
  const [d0, d1, d2, d3] = perm.map((p) => shape[p]);
  const [s0, s1, s2, s3] = perm.map((p) => stride[p]);
  const out = new Float32Array(data.length);
  let at = 0;
  for (let a = 0; a < d0; a++) for (let b = 0; b < d1; b++) for (let c = 0; c < d2; c++) for (let d = 0; d < d3; d++) out[at++] = data[a * s0 + b * s1 + c * s2 + d * s3];
  return out;
}

function weightsOf(layer: tf.layers.Layer): { data: Float32Array; shape: number[] }[] {
  return layer.getWeights().map((w) => ({ data: w.dataSync() as Float32Array, shape: w.shape }));
}

/** Trainyard layers with no stock TensorFlow.js form that ONNX operators express exactly. */
export const ONNX_CUSTOM = new Set(["TrainyardStepActivation", "TrainyardDistance", "TrainyardAttention", "TrainyardMultiHeadSelfAttention", "TrainyardTransformerEncoder"]);

/** MASKED of lib/engine/layers/attention.ts: what a causal mask adds above the diagonal. */
const MASKED = -1e9;

/** A layer's weights by their own names (`wq`, `ln1_gamma`, …). */
function namedWeights(layer: tf.layers.Layer): Map<string, { data: Float32Array; shape: number[] }> {
  const values = weightsOf(layer);
  return new Map(layer.weights.map((w, i) => [w.originalName.split("/").pop()!, values[i]]));
}

/** Scores + the causal bias over [Tq, Tv] (both must be known). */
function causalMask(g: OnnxGraph, layer: tf.layers.Layer, scores: string, tq: number | null, tv: number | null): string {
  if (tq === null || tv === null) refuse(layer, "a causal mask needs a known sequence length");
  const bias = new Float32Array(tq! * tv!);
  for (let i = 0; i < tq!; i++) for (let j = i + 1; j < tv!; j++) bias[i * tv! + j] = MASKED;
  return g.node("Add", [scores, g.floats(`${layer.name}_causal`, bias, [tq!, tv!])], `${layer.name}_masked`)[0];
}

/** x · w (+ b) on the last axis. */
function project(g: OnnxGraph, x: string, w: { data: Float32Array; shape: number[] }, b: { data: Float32Array; shape: number[] } | undefined, at: string): string {
  const y = g.node("MatMul", [x, g.floats(`${at}_w`, w.data, w.shape)], `${at}_matmul`)[0];
  return b ? g.node("Add", [y, g.floats(`${at}_b`, b.data, b.shape)], at)[0] : y;
}

/**
 * Multi-head self-attention (lib/engine/layers/multi-head-attention.ts) as MatMul and Softmax:
 * [b, T, d] projected, split into heads [b, h, T, size], softmax(q·kᵀ / √size) · v, merged and
 * projected back.
 */
function selfAttention(g: OnnxGraph, layer: tf.layers.Layer, x: string, t: number | null, w: Map<string, { data: Float32Array; shape: number[] }>, o: { heads: number; keyDim: number; valueDim: number; causal: boolean }, at: string): string {
  const heads = (v: string, size: number, what: string) => {
    const split = g.node("Reshape", [v, g.ints(`${at}_${what}_shape`, [0, 0, o.heads, size])], `${at}_${what}_split`)[0];
    return g.node("Transpose", [split], `${at}_${what}_heads`, { perm: [0, 2, 1, 3] })[0];
  };
  const q = heads(project(g, x, w.get("wq")!, w.get("bq"), `${at}_q`), o.keyDim, "q");
  const k = heads(project(g, x, w.get("wk")!, w.get("bk"), `${at}_k`), o.keyDim, "k");
  const v = heads(project(g, x, w.get("wv")!, w.get("bv"), `${at}_v`), o.valueDim, "v");
  const kT = g.node("Transpose", [k], `${at}_kT`, { perm: [0, 1, 3, 2] })[0];
  let scores = g.node("Mul", [g.node("MatMul", [q, kT], `${at}_qk`)[0], g.floats(`${at}_scale`, [1 / Math.sqrt(o.keyDim)], [])], `${at}_scores`)[0];
  if (o.causal) scores = causalMask(g, layer, scores, t, t);
  const attended = g.node("MatMul", [g.node("Softmax", [scores], `${at}_weights`, { axis: -1 })[0], v], `${at}_attended`)[0];
  const merged = g.node("Reshape", [g.node("Transpose", [attended], `${at}_unheads`, { perm: [0, 2, 1, 3] })[0], g.ints(`${at}_merge_shape`, [0, 0, o.heads * o.valueDim])], `${at}_merged`)[0];
  return project(g, merged, w.get("wo")!, w.get("bo"), at);
}

/** The attention layer (lib/engine/layers/attention.ts): dot (optionally scaled by its weight) or additive scores. */
function attention(g: OnnxGraph, layer: tf.layers.Layer, inputs: string[], cfg: Config, shapes: (number | null)[][]): string {
  const name = layer.name;
  const [query, value, key = value] = inputs;
  const w = namedWeights(layer);
  let scores: string;
  if (cfg.score === "dot") {
    const kT = g.node("Transpose", [key], `${name}_kT`, { perm: [0, 2, 1] })[0];
    scores = g.node("MatMul", [query, kT], `${name}_scores`)[0];
    const scale = w.get("scale");
    if (scale) scores = g.node("Mul", [scores, g.floats(`${name}_scale`, scale.data, [])], `${name}_scaled`)[0];
  } else {
    // tanh(q[:, :, None] + k[:, None]) · v, summed over features: [b, Tq, Tv].
    const q4 = g.node("Unsqueeze", [query, g.ints(`${name}_q_axis`, [2])], `${name}_q4`)[0];
    const k4 = g.node("Unsqueeze", [key, g.ints(`${name}_k_axis`, [1])], `${name}_k4`)[0];
    const summed = g.node("Tanh", [g.node("Add", [q4, k4], `${name}_sum`)[0]], `${name}_tanh`)[0];
    const weighted = g.node("Mul", [summed, g.floats(`${name}_v`, w.get("v")!.data, w.get("v")!.shape)], `${name}_weighted`)[0];
    scores = g.node("ReduceSum", [weighted, g.ints(`${name}_axes`, [-1])], `${name}_scores`, { keepdims: 0 })[0];
  }
  if (cfg.causal) scores = causalMask(g, layer, scores, shapes[0][1], (shapes[2] ?? shapes[1])[1]);
  return g.node("MatMul", [g.node("Softmax", [scores], `${name}_weights`, { axis: -1 })[0], value], name)[0];
}

/** The transformer encoder block (lib/engine/layers/transformer-encoder.ts): post-norm, ReLU feed-forward. */
function transformerEncoder(g: OnnxGraph, layer: tf.layers.Layer, x: string, t: number | null, cfg: Config): string {
  const name = layer.name;
  const w = namedWeights(layer);
  const keyDim = Number(cfg.keyDim);
  const attended = selfAttention(g, layer, x, t, w, { heads: Number(cfg.numHeads), keyDim, valueDim: keyDim, causal: cfg.causal === true }, `${name}_mhsa`);
  const norm = (v: string, which: string) => g.node("LayerNormalization", [v, g.floats(`${name}_${which}_gamma`, w.get(`${which}_gamma`)!.data, w.get(`${which}_gamma`)!.shape), g.floats(`${name}_${which}_beta`, w.get(`${which}_beta`)!.data, w.get(`${which}_beta`)!.shape)], `${name}_${which}`, { axis: -1, epsilon: float(Number(cfg.epsilon ?? 1e-5)) })[0];
  const y = norm(g.node("Add", [x, attended], `${name}_residual1`)[0], "ln1");
  const hidden = g.node("Relu", [project(g, y, w.get("ffn_w1")!, w.get("ffn_b1"), `${name}_ffn1`)], `${name}_ffn_relu`)[0];
  const ff = project(g, hidden, w.get("ffn_w2")!, w.get("ffn_b2"), `${name}_ffn2`);
  return norm(g.node("Add", [y, ff], `${name}_residual2`)[0], "ln2");
}

/** Σ over the last axis, kept: ReduceSum takes its axes as an input since opset 13. */
const sumLast = (g: OnnxGraph, x: string, at: string) => g.node("ReduceSum", [x, g.ints(`${at}_axes`, [-1])], at, { keepdims: 1 })[0];

/** The Distance layer (lib/engine/layers/distance.ts), its epsilons included. */
function distance(g: OnnxGraph, layer: tf.layers.Layer, [a, b]: string[], metric: unknown): string {
  const name = layer.name;
  const diff = () => g.node("Sub", [a, b], `${name}_diff`)[0];
  if (metric === "euclidean") {
    const d = diff();
    const squares = sumLast(g, g.node("Mul", [d, d], `${name}_squares`)[0], `${name}_sum`);
    return g.node("Sqrt", [g.node("Add", [squares, g.floats(`${name}_eps`, [1e-12], [])], `${name}_eps_add`)[0]], name)[0];
  }
  if (metric === "manhattan") return sumLast(g, g.node("Abs", [diff()], `${name}_abs`)[0], name);
  if (metric === "cosine") {
    const dot = sumLast(g, g.node("Mul", [a, b], `${name}_ab`)[0], `${name}_dot`);
    const na = sumLast(g, g.node("Mul", [a, a], `${name}_aa`)[0], `${name}_na`);
    const nb = sumLast(g, g.node("Mul", [b, b], `${name}_bb`)[0], `${name}_nb`);
    const norms = g.node("Max", [g.node("Mul", [na, nb], `${name}_norms`)[0], g.floats(`${name}_eps`, [1e-24], [])], `${name}_norms_eps`)[0];
    const ratio = g.node("Div", [dot, g.node("Sqrt", [norms], `${name}_sqrt`)[0]], `${name}_ratio`)[0];
    return g.node("Sub", [g.floats(`${name}_one`, [1], []), ratio], name)[0];
  }
  return refuse(layer, `its metric '${String(metric)}' is not exported`);
}

/** ONNX's name (and alpha, beta) of an activation inside a recurrent cell. */
function cellActivation(layer: tf.layers.Layer, name: unknown): { op: string; alpha: number; beta: number } {
  const key = String(name ?? "linear").toLowerCase().replace(/_/g, "");
  if (key === "tanh") return { op: "Tanh", alpha: 0, beta: 0 };
  if (key === "sigmoid") return { op: "Sigmoid", alpha: 0, beta: 0 };
  if (key === "hardsigmoid") return { op: "HardSigmoid", alpha: 0.2, beta: 0.5 };
  if (key === "relu") return { op: "Relu", alpha: 0, beta: 0 };
  return refuse(layer, `its cell activation '${String(name)}' has no ONNX recurrent form`);
}

/**
 * SimpleRNN, LSTM and GRU as ONNX's RNN, LSTM and GRU, one direction, sequence-major inside
 * (Transpose in and out). Weights are transposed to [gates·units, in], and LSTM's gates reordered
 * from TensorFlow.js's i, f, c, o to ONNX's i, o, f, c; GRU's z, r, h is the same in both, and its
 * reset gate applies before the recurrent product (tfjs's GRU, ONNX's linear_before_reset = 0).
 */
function recurrent(g: OnnxGraph, layer: tf.layers.Layer, x: string, directions: tf.layers.Layer[], merge?: unknown): string {
  const name = layer.name;
  const cells = directions.map((d) => ({ layer: d, cls: d.getClassName(), cfg: d.getConfig() as Config }));
  const { cls, cfg } = cells[0];
  if (cls !== "SimpleRNN" && cls !== "LSTM" && cls !== "GRU") return refuse(layer, `its recurrent layer ${cls} has no ONNX form`);
  for (const c of cells) {
    // The backward layer of a Bidirectional runs backwards by construction; ONNX's direction says so.
    if (c.cfg.goBackwards && directions.length === 1) refuse(layer, "goBackwards is not exported");
    if (c.cfg.stateful) refuse(layer, "a stateful layer is not exported");
    if (c.cfg.returnState) refuse(layer, "returnState is not exported");
    if (c.cfg.resetAfter) refuse(layer, "a GRU with resetAfter is not exported");
  }
  const units = Number(cfg.units);
  const gates = cls === "LSTM" ? 4 : cls === "GRU" ? 3 : 1;
  // ONNX gate k reads tfjs gate order[k].
  const order = cls === "LSTM" ? [0, 3, 1, 2] : Array.from({ length: gates }, (_, k) => k);
  const transposeGates = (m: { data: Float32Array; shape: number[] }, rows: number) => {
    const out = new Float32Array(gates * units * rows);
    for (let k = 0; k < gates; k++) for (let u = 0; u < units; u++) for (let r = 0; r < rows; r++) out[(k * units + u) * rows + r] = m.data[r * gates * units + order[k] * units + u];
    return out;
  };
  // Per direction: W [gates·units, in], R [gates·units, units], B (the input biases, reordered, then the recurrent ones: zeros).
  const dirs = directions.map((d) => {
    const [kernel, recurrentKernel, bias] = weightsOf(d);
    const b = new Float32Array(2 * gates * units);
    if (bias) for (let k = 0; k < gates; k++) b.set(bias.data.subarray(order[k] * units, (order[k] + 1) * units), k * units);
    return { W: transposeGates(kernel, kernel.shape[0]), R: transposeGates(recurrentKernel, units), B: b, input: kernel.shape[0] };
  });
  const stack = (parts: Float32Array[]) => {
    const out = new Float32Array(parts.reduce((a, p) => a + p.length, 0));
    parts.reduce((at, p) => (out.set(p, at), at + p.length), 0);
    return out;
  };
  const n = dirs.length;
  const W = g.floats(`${name}_W`, stack(dirs.map((d) => d.W)), [n, gates * units, dirs[0].input]);
  const R = g.floats(`${name}_R`, stack(dirs.map((d) => d.R)), [n, gates * units, units]);
  const B = g.floats(`${name}_B`, stack(dirs.map((d) => d.B)), [n, 2 * gates * units]);
  const acts = cls === "SimpleRNN" ? [cellActivation(layer, cfg.activation)] : cls === "LSTM"
    ? [cellActivation(layer, cfg.recurrentActivation), cellActivation(layer, cfg.activation), cellActivation(layer, cfg.activation)]
    : [cellActivation(layer, cfg.recurrentActivation), cellActivation(layer, cfg.activation)];
  const perDirection = Array.from({ length: n }, () => acts).flat();
  const op = cls === "SimpleRNN" ? "RNN" : cls;
  const seqMajor = g.node("Transpose", [x], `${name}_time_major`, { perm: [1, 0, 2] })[0];
  const attrs: Record<string, Attr> = {
    hidden_size: units, direction: n === 2 ? "bidirectional" : "forward",
    activations: perDirection.map((a) => a.op),
  };
  // ONNX Runtime takes each alpha and beta in turn by the activations that have them (HardSigmoid
  // here), not one per activation: a list padded for the others shifts the second direction's.
  const scaled = perDirection.filter((a) => a.op === "HardSigmoid");
  if (scaled.length) Object.assign(attrs, { activation_alpha: { floats: scaled.map((a) => a.alpha) }, activation_beta: { floats: scaled.map((a) => a.beta) } });
  if (cls === "GRU") attrs.linear_before_reset = 0;
  const [y, yH] = g.node(op, [seqMajor, W, R, B], name, attrs, 2);
  // Y: [steps, directions, batch, units] → [batch, steps, directions, units]; Y_h: [directions, batch, units] → [batch, directions, units].
  const sequences = cfg.returnSequences === true;
  const batchMajor = sequences
    ? g.node("Transpose", [y], `${name}_batch_major`, { perm: [2, 0, 1, 3] })[0]
    : g.node("Transpose", [yH], `${name}_batch_major`, { perm: [1, 0, 2] })[0];
  const dirAxis = sequences ? 2 : 1;
  if (n === 1) return g.node("Squeeze", [batchMajor, g.ints(`${name}_dir_axis`, [dirAxis])], `${name}_out`)[0];
  // A Bidirectional's merge: ONNX's reverse direction is already in time order, as tfjs re-reverses its backward outputs.
  switch (merge ?? "concat") {
    case "concat":
      return g.node("Reshape", [batchMajor, g.ints(`${name}_concat_shape`, sequences ? [0, 0, 2 * units] : [0, 2 * units])], `${name}_out`)[0];
    case "sum":
      return g.node("ReduceSum", [batchMajor, g.ints(`${name}_merge_axis`, [dirAxis])], `${name}_out`, { keepdims: 0 })[0];
    case "ave": {
      const sum = g.node("ReduceSum", [batchMajor, g.ints(`${name}_merge_axis`, [dirAxis])], `${name}_sum`, { keepdims: 0 })[0];
      return g.node("Mul", [sum, g.floats(`${name}_half`, [0.5], [])], `${name}_out`)[0];
    }
    case "mul":
      return g.node("ReduceProd", [batchMajor], `${name}_out`, { axes: [dirAxis], keepdims: 0 })[0];
    default:
      return refuse(layer, `merge mode '${String(merge)}' is not exported`);
  }
}

/** A 1-D convolution or pooling on [batch, steps, channels]: ONNX's on [batch, channels, steps], transposed in and out. */
function ncl(g: OnnxGraph, layer: tf.layers.Layer, x: string, body: (xNcl: string) => string): string {
  const inner = body(g.node("Transpose", [x], `${layer.name}_ncl`, { perm: [0, 2, 1] })[0]);
  return g.node("Transpose", [inner], `${layer.name}_nlc`, { perm: [0, 2, 1] })[0];
}

const single = (v: unknown): number => (Array.isArray(v) ? Number(v[0]) : Number(v));

/**
 * Adds `layer` applied to `inputs` (NHWC value names) and returns its outputs' names. `shapes`:
 * each input's shape, batch included.
 */
export function convertLayer(g: OnnxGraph, layer: tf.layers.Layer, inputs: string[], shapes: (number | null)[][]): string[] {
  const ranks = shapes.map((sh) => sh.length);
  const cls = layer.getClassName();
  const cfg = layer.getConfig() as Config;
  const x = inputs[0];
  const name = layer.name;
  switch (cls) {
    case "Dense": {
      const [kernel, bias] = weightsOf(layer);
      let y = g.node("MatMul", [x, g.floats(`${name}_kernel`, kernel.data, kernel.shape)], `${name}_matmul`)[0];
      if (bias) y = g.node("Add", [y, g.floats(`${name}_bias`, bias.data, bias.shape)], `${name}_bias_add`)[0];
      return [activation(g, layer, cfg.activation, y)];
    }
    case "Activation":
      return [activation(g, layer, cfg.activation, x)];
    case "ReLU": {
      if (cfg.maxValue !== undefined && cfg.maxValue !== null) {
        return [g.node("Clip", [x, g.floats(`${name}_min`, [0], []), g.floats(`${name}_max`, [Number(cfg.maxValue)], [])], name)[0]];
      }
      return [g.node("Relu", [x], name)[0]];
    }
    case "LeakyReLU":
      return [g.node("LeakyRelu", [x], name, { alpha: float(Number(cfg.alpha ?? 0.3)) })[0]];
    case "ELU":
      return [g.node("Elu", [x], name, { alpha: float(Number(cfg.alpha ?? 1)) })[0]];
    case "Softmax":
      if (cfg.axis !== undefined && cfg.axis !== -1 && cfg.axis !== ranks[0] - 1) refuse(layer, "only a softmax over the last axis is exported");
      return [g.node("Softmax", [x], name, { axis: -1 })[0]];
    case "Dropout":
    case "SpatialDropout1D":
    case "GaussianNoise":
    case "GaussianDropout":
    case "AlphaDropout":
      // The identity in inference.
      return [g.node("Identity", [x], name)[0]];
    case "Flatten":
      // Channels-last tensors flatten in TensorFlow.js's order.
      return [g.node("Flatten", [x], name, { axis: 1 })[0]];
    case "Reshape": {
      const target = (cfg.targetShape as number[]).map((d) => (d === null ? -1 : d));
      return [g.node("Reshape", [x, g.ints(`${name}_shape`, [0, ...target])], name)[0]];
    }
    case "Conv2D": {
      if (cfg.dataFormat === "channelsFirst") refuse(layer, "channels-first convolutions are not exported");
      const [kernel, bias] = weightsOf(layer);
      // tfjs [kh, kw, in, out] → ONNX [out, in, kh, kw].
      const [kh, kw, cin, cout] = kernel.shape;
      const w = permute4(kernel.data, kernel.shape, [3, 2, 0, 1]);
      const ins = (xc: string) => [xc, g.floats(`${name}_kernel`, w, [cout, cin, kh, kw]), ...(bias ? [g.floats(`${name}_bias`, bias.data, bias.shape)] : [])];
      const y = nchw(g, layer, x, (xc) => g.node("Conv", ins(xc), name, { kernel_shape: [kh, kw], strides: pair(cfg.strides), dilations: pair(cfg.dilationRate ?? 1), auto_pad: autoPad(cfg.padding) })[0]);
      return [activation(g, layer, cfg.activation, y)];
    }
    case "DepthwiseConv2D": {
      if (cfg.dataFormat === "channelsFirst") refuse(layer, "channels-first convolutions are not exported");
      const [kernel, bias] = weightsOf(layer);
      // tfjs [kh, kw, in, multiplier] → a grouped ONNX Conv, one group per input channel, whose
      // output channel c·multiplier + m is tfjs's too: weights [in·multiplier, 1, kh, kw].
      const [kh, kw, cin, mult] = kernel.shape;
      const w = permute4(kernel.data, kernel.shape, [2, 3, 0, 1]);
      const ins = (xc: string) => [xc, g.floats(`${name}_kernel`, w, [cin * mult, 1, kh, kw]), ...(bias ? [g.floats(`${name}_bias`, bias.data, bias.shape)] : [])];
      const y = nchw(g, layer, x, (xc) => g.node("Conv", ins(xc), name, { kernel_shape: [kh, kw], strides: pair(cfg.strides), dilations: pair(cfg.dilationRate ?? 1), group: cin, auto_pad: autoPad(cfg.padding) })[0]);
      return [activation(g, layer, cfg.activation, y)];
    }
    case "Conv2DTranspose": {
      if (cfg.dataFormat === "channelsFirst") refuse(layer, "channels-first convolutions are not exported");
      const [kernel, bias] = weightsOf(layer);
      // tfjs [kh, kw, out, in] → ONNX ConvTranspose [in, out, kh, kw].
      const [kh, kw, cout, cin] = kernel.shape;
      const w = permute4(kernel.data, kernel.shape, [3, 2, 0, 1]);
      const [sh, sw] = pair(cfg.strides);
      const shape = layer.outputShape as (number | null)[];
      const ins = (xc: string) => [xc, g.floats(`${name}_kernel`, w, [cin, cout, kh, kw]), ...(bias ? [g.floats(`${name}_bias`, bias.data, bias.shape)] : [])];
      // The output size tfjs computes, stated: ONNX then places the padding as TensorFlow does.
      const attrs: Record<string, Attr> = { kernel_shape: [kh, kw], strides: [sh, sw] };
      if (cfg.padding === "same") {
        if (shape[1] === null || shape[2] === null) refuse(layer, "a 'same' transposed convolution needs a known image size");
        attrs.output_shape = [shape[1]!, shape[2]!];
      }
      const y = nchw(g, layer, x, (xc) => g.node("ConvTranspose", ins(xc), name, attrs)[0]);
      return [activation(g, layer, cfg.activation, y)];
    }
    case "UpSampling2D": {
      if (cfg.interpolation !== undefined && cfg.interpolation !== "nearest") refuse(layer, `'${String(cfg.interpolation)}' upsampling is not exported (nearest is)`);
      const [sh, sw] = pair(cfg.size);
      // Nearest neighbour at integer scales: output cell i reads input cell floor(i / scale), on the NHWC axes directly.
      return [g.node("Resize", [x, "", g.floats(`${name}_scales`, [1, sh, sw, 1], [4])], name, { mode: "nearest", coordinate_transformation_mode: "asymmetric", nearest_mode: "floor" })[0]];
    }
    case "ZeroPadding2D": {
      const [[top, bottom], [left, right]] = cfg.padding as [[number, number], [number, number]];
      return [g.node("Pad", [x, g.ints(`${name}_pads`, [0, top, left, 0, 0, bottom, right, 0])], name, { mode: "constant" })[0]];
    }
    case "Cropping2D": {
      const [[top, bottom], [left, right]] = cfg.cropping as [[number, number], [number, number]];
      // Negative ends count from the end, so an unknown image size is fine.
      const ends = [bottom ? -bottom : Number.MAX_SAFE_INTEGER, right ? -right : Number.MAX_SAFE_INTEGER];
      return [g.node("Slice", [x, g.ints(`${name}_starts`, [top, left]), g.ints(`${name}_ends`, ends), g.ints(`${name}_axes`, [1, 2])], name)[0]];
    }
    case "Embedding": {
      const [table] = weightsOf(layer);
      // Codes arrive as floats (the graph's inputs are float32): cast, then look up rows.
      const codes = g.node("Cast", [x], `${name}_codes`, { to: 7 })[0];
      return [g.node("Gather", [g.floats(`${name}_table`, table.data, table.shape), codes], name, { axis: 0 })[0]];
    }
    case "SimpleRNN":
    case "LSTM":
    case "GRU":
      return [recurrent(g, layer, x, [layer])];
    case "Bidirectional": {
      const wrapper = layer as unknown as { forwardLayer: tf.layers.Layer; backwardLayer: tf.layers.Layer };
      return [recurrent(g, layer, x, [wrapper.forwardLayer, wrapper.backwardLayer], cfg.mergeMode)];
    }
    case "Masking": {
      // x where any feature of the step differs from the mask value, else 0. (A recurrent layer
      // reading the mask is refused in export-onnx.ts: ONNX's take sequence lengths, not masks.)
      const differs = g.node("Not", [g.node("Equal", [x, g.floats(`${name}_value`, [Number(cfg.maskValue ?? 0)], [])], `${name}_equal`)[0]], `${name}_differs`)[0];
      const keep = g.node("ReduceMax", [g.node("Cast", [differs], `${name}_differs_f`, { to: 1 })[0]], `${name}_keep`, { axes: [-1], keepdims: 1 })[0];
      return [g.node("Mul", [x, keep], name)[0]];
    }
    case "LayerNormalization": {
      const axis = Array.isArray(cfg.axis) ? (cfg.axis as number[]) : [Number(cfg.axis ?? -1)];
      if (axis.length !== 1 || (axis[0] !== -1 && axis[0] !== ranks[0] - 1)) refuse(layer, "only a normalization over the last axis is exported");
      const w = weightsOf(layer);
      const channels = shapes[0][ranks[0] - 1]!;
      let k = 0;
      const gamma = cfg.scale !== false ? w[k++].data : new Float32Array(channels).fill(1);
      const beta = cfg.center !== false ? w[k++].data : new Float32Array(channels);
      return [g.node("LayerNormalization", [x, g.floats(`${name}_gamma`, gamma, [channels]), g.floats(`${name}_beta`, beta, [channels])], name, { axis: -1, epsilon: float(Number(cfg.epsilon ?? 1e-3)) })[0]];
    }
    case "Permute":
      return [g.node("Transpose", [x], name, { perm: [0, ...(cfg.dims as number[])] })[0]];
    case "Conv1D": {
      if (cfg.dataFormat === "channelsFirst") refuse(layer, "channels-first convolutions are not exported");
      const [kernel, bias] = weightsOf(layer);
      // tfjs [k, in, out] → ONNX [out, in, k].
      const [k, cin, cout] = kernel.shape;
      const w = permute4(kernel.data, [1, ...kernel.shape], [3, 2, 0, 1]);
      const dilation = single(cfg.dilationRate ?? 1);
      // 'causal' pads (k − 1)·dilation steps before the sequence only.
      const pads: Record<string, Attr> = cfg.padding === "causal" ? { pads: [(k - 1) * dilation, 0] } : { auto_pad: autoPad(cfg.padding) };
      const ins = (xc: string) => [xc, g.floats(`${name}_kernel`, w, [cout, cin, k]), ...(bias ? [g.floats(`${name}_bias`, bias.data, bias.shape)] : [])];
      const y = ncl(g, layer, x, (xc) => g.node("Conv", ins(xc), name, { kernel_shape: [k], strides: [single(cfg.strides ?? 1)], dilations: [dilation], ...pads })[0]);
      return [activation(g, layer, cfg.activation, y)];
    }
    case "SeparableConv2D": {
      if (cfg.dataFormat === "channelsFirst") refuse(layer, "channels-first convolutions are not exported");
      const [depthwise, pointwise, bias] = weightsOf(layer);
      // A depthwise convolution (grouped, as DepthwiseConv2D's) then a 1×1 convolution with the bias.
      const [kh, kw, cin, mult] = depthwise.shape;
      const cout = pointwise.shape[3];
      const dw = permute4(depthwise.data, depthwise.shape, [2, 3, 0, 1]);
      const pw = permute4(pointwise.data, pointwise.shape, [3, 2, 0, 1]);
      const y = nchw(g, layer, x, (xc) => {
        const spread = g.node("Conv", [xc, g.floats(`${name}_depthwise`, dw, [cin * mult, 1, kh, kw])], `${name}_dw`, { kernel_shape: [kh, kw], strides: pair(cfg.strides), dilations: pair(cfg.dilationRate ?? 1), group: cin, auto_pad: autoPad(cfg.padding) })[0];
        return g.node("Conv", [spread, g.floats(`${name}_pointwise`, pw, [cout, cin * mult, 1, 1]), ...(bias ? [g.floats(`${name}_bias`, bias.data, bias.shape)] : [])], name, { kernel_shape: [1, 1] })[0];
      });
      return [activation(g, layer, cfg.activation, y)];
    }
    case "MaxPooling1D":
    case "AveragePooling1D": {
      const pool = single(cfg.poolSize);
      const op = cls === "MaxPooling1D" ? "MaxPool" : "AveragePool";
      const extra: Record<string, number> = op === "AveragePool" ? { count_include_pad: 0 } : {};
      return [ncl(g, layer, x, (xc) => g.node(op, [xc], name, { kernel_shape: [pool], strides: [single(cfg.strides ?? cfg.poolSize)], auto_pad: autoPad(cfg.padding), ...extra })[0])];
    }
    case "TrainyardStepActivation":
      // x > 0 → 1, else 0.
      return [g.node("Cast", [g.node("Greater", [x, g.floats(`${name}_zero`, [0], [])], `${name}_positive`)[0]], name, { to: 1 })[0]];
    case "TrainyardDistance":
      return [distance(g, layer, inputs, cfg.metric)];
    case "TrainyardAttention":
      return [attention(g, layer, inputs, cfg, shapes)];
    case "TrainyardMultiHeadSelfAttention":
      return [selfAttention(g, layer, x, shapes[0][1], namedWeights(layer), { heads: Number(cfg.numHeads), keyDim: Number(cfg.keyDim), valueDim: Number(cfg.valueDim ?? cfg.keyDim), causal: cfg.causal === true }, name)];
    case "TrainyardTransformerEncoder":
      return [transformerEncoder(g, layer, x, shapes[0][1], cfg)];
    case "MaxPooling2D":
    case "AveragePooling2D": {
      if (cfg.dataFormat === "channelsFirst") refuse(layer, "channels-first pooling is not exported");
      const pool = pair(cfg.poolSize);
      const strides = pair(cfg.strides ?? cfg.poolSize);
      const op = cls === "MaxPooling2D" ? "MaxPool" : "AveragePool";
      // TensorFlow averages over the window's cells inside the image only.
      const extra: Record<string, number> = op === "AveragePool" ? { count_include_pad: 0 } : {};
      return [nchw(g, layer, x, (xc) => g.node(op, [xc], name, { kernel_shape: pool, strides, auto_pad: autoPad(cfg.padding), ...extra })[0])];
    }
    case "GlobalAveragePooling2D":
    case "GlobalMaxPooling2D":
      // Over the spatial axes of NHWC: a reduction needs no transpose.
      return [g.node(cls === "GlobalAveragePooling2D" ? "ReduceMean" : "ReduceMax", [x], name, { axes: [1, 2], keepdims: 0 })[0]];
    case "GlobalAveragePooling1D":
    case "GlobalMaxPooling1D":
      return [g.node(cls === "GlobalAveragePooling1D" ? "ReduceMean" : "ReduceMax", [x], name, { axes: [1], keepdims: 0 })[0]];
    case "BatchNormalization": {
      const axis = Number(cfg.axis ?? -1);
      if (axis !== -1 && axis !== ranks[0] - 1) refuse(layer, "only a normalization over the last axis is exported");
      // Inference: (x − mean) / √(var + ε) · γ + β, folded into one scale and one shift per channel.
      const w = weightsOf(layer);
      let k = 0;
      const gamma = cfg.scale !== false ? w[k++].data : undefined;
      const beta = cfg.center !== false ? w[k++].data : undefined;
      const mean = w[k++].data;
      const variance = w[k++].data;
      const eps = Number(cfg.epsilon ?? 1e-3);
      const scale = new Float32Array(mean.length);
      const shift = new Float32Array(mean.length);
      for (let c = 0; c < mean.length; c++) {
        scale[c] = (gamma ? gamma[c] : 1) / Math.sqrt(variance[c] + eps);
        shift[c] = (beta ? beta[c] : 0) - mean[c] * scale[c];
      }
      const scaled = g.node("Mul", [x, g.floats(`${name}_scale`, scale, [mean.length])], `${name}_mul`)[0];
      return [g.node("Add", [scaled, g.floats(`${name}_shift`, shift, [mean.length])], name)[0]];
    }
    case "Add":
    case "Multiply":
    case "Maximum":
    case "Minimum": {
      const op = { Add: "Add", Multiply: "Mul", Maximum: "Max", Minimum: "Min" }[cls]!;
      let y = inputs[0];
      for (let i = 1; i < inputs.length; i++) y = g.node(op, [y, inputs[i]], i === inputs.length - 1 ? name : `${name}_${i}`)[0];
      return [y];
    }
    case "Average": {
      const sum = inputs.slice(1).reduce((acc, v, i) => g.node("Add", [acc, v], `${name}_sum_${i}`)[0], inputs[0]);
      return [g.node("Mul", [sum, g.floats(`${name}_n`, [1 / inputs.length], [])], name)[0]];
    }
    case "Concatenate": {
      const axis = Number(cfg.axis ?? -1);
      return [g.node("Concat", inputs, name, { axis: axis < 0 ? ranks[0] + axis : axis })[0]];
    }
    default:
      return refuse(layer, "it has no ONNX mapping");
  }
}
