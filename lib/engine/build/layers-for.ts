// One spec layer as TensorFlow.js layers: tfjs's own where they exist, Trainyard's custom layers
// (lib/engine/layers) where tfjs has none or cannot train its own (dilated convolutions).
import * as tf from "@tensorflow/tfjs";
import type { Activation, LayerOf, LayerSpec } from "../../model-spec/model-spec-schema.ts";
import { AdaptivePooling2D, AddCoords2D, Attention, DilatedConv2D, Distance, MultiHeadSelfAttention, PositionalEncoding, SpatialDropout2D, StepActivation, TransformerEncoder } from "../layers/index.ts";

const LEAKY_RELU_ALPHA = 0.2;
const TFJS_ACTIVATIONS = new Set(["sigmoid", "tanh", "relu", "elu", "selu", "gelu", "swish", "softmax", "linear"]);

/** A size given once or per dimension, as two. */
export const pair = (v: number | number[]): [number, number] => (Array.isArray(v) ? [v[0], v[1]] : [v, v]);

function activationLayers(activation: Activation, name: string, alpha?: number): tf.layers.Layer[] {
  if (activation === "linear") return [];
  if (activation === "leakyRelu") return [tf.layers.leakyReLU({ alpha: alpha ?? LEAKY_RELU_ALPHA, name })];
  if (activation === "step") return [new StepActivation({ name })];
  return [tf.layers.activation({ activation: activation as "relu", name })];
}

/** Splits an activation field into what tfjs can fuse into the layer and what needs a layer of its own. */
function fused(activation: Activation): { inner: string; separate: boolean } {
  return TFJS_ACTIVATIONS.has(activation) ? { inner: activation, separate: false } : { inner: "linear", separate: true };
}

function weightArgs(l: { useBias?: boolean; kernelInitializer?: string; biasInitializer?: string; kernelRegularizer?: { l1: number; l2: number }; biasRegularizer?: { l1: number; l2: number } }) {
  const reg = (r?: { l1: number; l2: number }) => (r && (r.l1 || r.l2) ? tf.regularizers.l1l2({ l1: r.l1, l2: r.l2 }) : undefined);
  return {
    useBias: l.useBias ?? true,
    // The spec's initializer names are tfjs's own identifiers.
    ...(l.kernelInitializer ? { kernelInitializer: l.kernelInitializer as "glorotUniform" } : {}),
    ...(l.biasInitializer ? { biasInitializer: l.biasInitializer as "zeros" } : {}),
    ...(reg(l.kernelRegularizer) ? { kernelRegularizer: reg(l.kernelRegularizer) } : {}),
    ...(reg(l.biasRegularizer) ? { biasRegularizer: reg(l.biasRegularizer) } : {}),
  };
}

/**
 * A dilated convolution that can be trained (tfjs cannot differentiate its own): a conv2d, or a
 * conv1d viewed as [time, 1, channels], followed by its activation.
 */
function dilatedConv(spec: LayerOf<"conv2d"> | LayerOf<"conv1d">, name: string): tf.layers.Layer[] {
  const oneD = spec.type === "conv1d";
  const conv = new DilatedConv2D({
    filters: spec.filters,
    kernelSize: oneD ? [spec.kernelSize, 1] : pair(spec.kernelSize),
    dilationRate: oneD ? [spec.dilationRate, 1] : pair(spec.dilationRate),
    strides: oneD ? [spec.strides, 1] : pair(spec.strides),
    padding: spec.padding,
    useBias: spec.useBias,
    kernelInitializer: spec.kernelInitializer ?? "glorotUniform",
    biasInitializer: spec.biasInitializer ?? "zeros",
    kernelRegularizer: spec.kernelRegularizer ?? null,
    name,
  });
  return [conv, ...activationLayers(spec.activation, `${name}_act`, spec.alpha)];
}

/** The tfjs layers for one spec layer, applied in sequence (one for most; two for coordConv or a separate activation). */
export function layersFor(spec: LayerSpec, name: string): tf.layers.Layer[] {
  const withActivation = (main: tf.layers.Layer, activation: Activation, alpha?: number) =>
    fused(activation).separate ? [main, ...activationLayers(activation, `${name}_act`, alpha)] : [main];
  switch (spec.type) {
    case "dense":
      return withActivation(tf.layers.dense({ units: spec.units, activation: fused(spec.activation).inner as "linear", ...weightArgs(spec), name }), spec.activation, spec.alpha);
    case "activation": {
      const layers = activationLayers(spec.activation, name, spec.alpha);
      return layers.length ? layers : [tf.layers.activation({ activation: "linear", name })];
    }
    case "dropout":
      return [tf.layers.dropout({ rate: spec.rate, name })];
    case "spatialDropout":
      return [new SpatialDropout2D({ rate: spec.rate, name })];
    case "batchNormalization":
      return [tf.layers.batchNormalization({ momentum: spec.momentum, epsilon: spec.epsilon, name })];
    case "layerNormalization":
      return [tf.layers.layerNormalization({ epsilon: spec.epsilon, name })];
    case "conv1d":
      if (spec.dilationRate > 1) return dilatedConv(spec, name);
      return withActivation(
        tf.layers.conv1d({ filters: spec.filters, kernelSize: spec.kernelSize, strides: spec.strides, padding: spec.padding, dilationRate: spec.dilationRate, activation: fused(spec.activation).inner as "linear", ...weightArgs(spec), name }),
        spec.activation, spec.alpha,
      );
    case "conv2d":
      if (pair(spec.dilationRate).some((d) => d > 1)) return dilatedConv(spec, name);
      return withActivation(
        tf.layers.conv2d({ filters: spec.filters, kernelSize: spec.kernelSize, strides: spec.strides, padding: spec.padding, dilationRate: pair(spec.dilationRate), activation: fused(spec.activation).inner as "linear", ...weightArgs(spec), name }),
        spec.activation, spec.alpha,
      );
    case "coordConv":
      return [
        new AddCoords2D({ withRadius: spec.withRadius, name: `${name}_coords` }),
        ...withActivation(
          tf.layers.conv2d({ filters: spec.filters, kernelSize: spec.kernelSize, strides: spec.strides, padding: spec.padding, activation: fused(spec.activation).inner as "linear", ...weightArgs(spec), name }),
          spec.activation, spec.alpha,
        ),
      ];
    case "separableConv2d":
      return withActivation(
        tf.layers.separableConv2d({ filters: spec.filters, kernelSize: spec.kernelSize, strides: spec.strides, padding: spec.padding, depthMultiplier: spec.depthMultiplier, useBias: spec.useBias, activation: fused(spec.activation).inner as "linear", name }),
        spec.activation, spec.alpha,
      );
    case "depthwiseConv2d":
      return withActivation(
        tf.layers.depthwiseConv2d({ kernelSize: pair(spec.kernelSize), strides: spec.strides, padding: spec.padding, depthMultiplier: spec.depthMultiplier, useBias: spec.useBias, activation: fused(spec.activation).inner as "linear", name }),
        spec.activation, spec.alpha,
      );
    case "conv2dTranspose":
      return withActivation(
        tf.layers.conv2dTranspose({ filters: spec.filters, kernelSize: spec.kernelSize, strides: spec.strides, padding: spec.padding, activation: fused(spec.activation).inner as "linear", ...weightArgs(spec), name }),
        spec.activation, spec.alpha,
      );
    case "upSampling2d":
      return [tf.layers.upSampling2d({ size: pair(spec.size), interpolation: spec.interpolation, name })];
    case "maxPooling1d":
      return [tf.layers.maxPooling1d({ poolSize: spec.poolSize, strides: spec.strides ?? spec.poolSize, padding: spec.padding, name })];
    case "averagePooling1d":
      return [tf.layers.averagePooling1d({ poolSize: spec.poolSize, strides: spec.strides ?? spec.poolSize, padding: spec.padding, name })];
    case "maxPooling2d":
      return [tf.layers.maxPooling2d({ poolSize: pair(spec.poolSize), strides: pair(spec.strides ?? spec.poolSize), padding: spec.padding, name })];
    case "averagePooling2d":
      return [tf.layers.averagePooling2d({ poolSize: pair(spec.poolSize), strides: pair(spec.strides ?? spec.poolSize), padding: spec.padding, name })];
    case "globalMaxPooling1d":
      return [tf.layers.globalMaxPooling1d({ name })];
    case "globalAveragePooling1d":
      return [tf.layers.globalAveragePooling1d({ name })];
    case "globalMaxPooling2d":
      return [tf.layers.globalMaxPooling2d({ name })];
    case "globalAveragePooling2d":
      return [tf.layers.globalAveragePooling2d({ name })];
    case "adaptiveAveragePooling2d":
      return [new AdaptivePooling2D({ outputSize: pair(spec.outputSize), mode: "avg", name })];
    case "adaptiveMaxPooling2d":
      return [new AdaptivePooling2D({ outputSize: pair(spec.outputSize), mode: "max", name })];
    case "flatten":
      return [tf.layers.flatten({ name })];
    case "reshape":
      return [tf.layers.reshape({ targetShape: spec.targetShape, name })];
    case "permute":
      return [tf.layers.permute({ dims: spec.dims, name })];
    case "cropping2d":
      return [tf.layers.cropping2D({ cropping: spec.cropping as number, name })];
    case "zeroPadding2d":
      return [tf.layers.zeroPadding2d({ padding: spec.padding as [number, number], name })];
    case "concatenate":
      return [tf.layers.concatenate({ axis: spec.axis, name })];
    case "add":
      return [tf.layers.add({ name })];
    case "multiply":
      return [tf.layers.multiply({ name })];
    case "distance":
      return [new Distance({ metric: spec.metric, name })];
    case "embedding":
      return [tf.layers.embedding({ inputDim: spec.inputDim, outputDim: spec.outputDim, maskZero: spec.maskZero, name })];
    case "masking":
      return [tf.layers.masking({ maskValue: spec.maskValue, name })];
    case "simpleRNN":
      return [tf.layers.simpleRNN({ units: spec.units, activation: fused(spec.activation).inner as "tanh", returnSequences: spec.returnSequences, dropout: spec.dropout, recurrentDropout: spec.recurrentDropout, name })];
    case "lstm":
      return [tf.layers.lstm({ units: spec.units, returnSequences: spec.returnSequences, dropout: spec.dropout, recurrentDropout: spec.recurrentDropout, name })];
    case "gru":
      return [tf.layers.gru({ units: spec.units, returnSequences: spec.returnSequences, dropout: spec.dropout, recurrentDropout: spec.recurrentDropout, name })];
    case "bidirectional": {
      const inner = spec.layer;
      const args = { units: inner.units, returnSequences: inner.returnSequences, name: `${name}_inner` };
      const rnn = inner.type === "lstm" ? tf.layers.lstm(args) : inner.type === "gru" ? tf.layers.gru(args) : tf.layers.simpleRNN(args);
      return [tf.layers.bidirectional({ layer: rnn as tf.RNN, mergeMode: spec.mergeMode, name })];
    }
    case "positionalEncoding":
      return [new PositionalEncoding({ maxLength: spec.maxLength, name })];
    case "attention":
      return [new Attention({ score: spec.score, causal: spec.causal, name })];
    case "multiHeadSelfAttention":
      return [new MultiHeadSelfAttention({ numHeads: spec.numHeads, keyDim: spec.keyDim, causal: spec.causal, dropout: spec.dropout, name })];
    case "transformerEncoder":
      return [new TransformerEncoder({ numHeads: spec.numHeads, keyDim: spec.keyDim, ffDim: spec.ffDim, dropout: spec.dropout, causal: spec.causal, name })];
  }
}
