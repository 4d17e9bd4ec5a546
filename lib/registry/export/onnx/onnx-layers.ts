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

function weightsOf(layer: tf.layers.Layer): { data: Float32Array; shape: number[] }[] {
  return layer.getWeights().map((w) => ({ data: w.dataSync() as Float32Array, shape: w.shape }));
}

/**
 * Adds `layer` applied to `inputs` (NHWC value names) and returns its outputs' names. `rank`: the
 * rank of each input, batch included.
 */
export function convertLayer(g: OnnxGraph, layer: tf.layers.Layer, inputs: string[], ranks: number[]): string[] {
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
      const w = new Float32Array(kernel.data.length);
      for (let i = 0; i < kh; i++) for (let j = 0; j < kw; j++) for (let c = 0; c < cin; c++) for (let o = 0; o < cout; o++) w[((o * cin + c) * kh + i) * kw + j] = kernel.data[((i * kw + j) * cin + c) * cout + o];
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
      const w = new Float32Array(kernel.data.length);
      for (let i = 0; i < kh; i++) for (let j = 0; j < kw; j++) for (let c = 0; c < cin; c++) for (let m = 0; m < mult; m++) w[((c * mult + m) * kh + i) * kw + j] = kernel.data[((i * kw + j) * cin + c) * mult + m];
      const ins = (xc: string) => [xc, g.floats(`${name}_kernel`, w, [cin * mult, 1, kh, kw]), ...(bias ? [g.floats(`${name}_bias`, bias.data, bias.shape)] : [])];
      const y = nchw(g, layer, x, (xc) => g.node("Conv", ins(xc), name, { kernel_shape: [kh, kw], strides: pair(cfg.strides), dilations: pair(cfg.dilationRate ?? 1), group: cin, auto_pad: autoPad(cfg.padding) })[0]);
      return [activation(g, layer, cfg.activation, y)];
    }
    case "Conv2DTranspose": {
      if (cfg.dataFormat === "channelsFirst") refuse(layer, "channels-first convolutions are not exported");
      const [kernel, bias] = weightsOf(layer);
      // tfjs [kh, kw, out, in] → ONNX ConvTranspose [in, out, kh, kw].
      const [kh, kw, cout, cin] = kernel.shape;
      const w = new Float32Array(kernel.data.length);
      for (let i = 0; i < kh; i++) for (let j = 0; j < kw; j++) for (let o = 0; o < cout; o++) for (let c = 0; c < cin; c++) w[((c * cout + o) * kh + i) * kw + j] = kernel.data[((i * kw + j) * cout + o) * cin + c];
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
      return refuse(layer, "it has no ONNX mapping yet (exported today: Dense, activations, Flatten, Reshape, Conv2D, DepthwiseConv2D, Conv2DTranspose, UpSampling2D, ZeroPadding2D, Cropping2D, Embedding, 2D pooling, global pooling, BatchNormalization, dropout, Add/Multiply/Average/Maximum/Minimum, Concatenate)");
  }
}
