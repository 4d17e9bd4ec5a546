// Turns a validated ModelSpec into a TensorFlow.js model. Layer names are derived from their
// position, not from tfjs's global counters, so the same spec builds the same weight names in any
// process — which is what lets a checkpoint written by one worker resume in another.
import * as tf from "@tensorflow/tfjs";
import { ValidationError } from "../errors.ts";
import type { Activation, LayerSpec, ModelSpec } from "./model-spec.ts";

export interface BuiltModel {
  model: tf.LayersModel;
  paramCount: number;
  /** Output shape without the batch dimension. */
  outputShape: number[];
}

const LEAKY_RELU_ALPHA = 0.2;

function activationLayer(activation: Activation, name: string, alpha?: number): tf.layers.Layer {
  if (activation === "leakyRelu") return tf.layers.leakyReLU({ alpha: alpha ?? LEAKY_RELU_ALPHA, name });
  return tf.layers.activation({ activation: activation as Exclude<Activation, "leakyRelu">, name });
}

function layersFor(spec: LayerSpec, index: number): tf.layers.Layer[] {
  const name = `l${index}_${spec.type}`;
  switch (spec.type) {
    case "dense": {
      // tfjs has no leakyRelu activation identifier: apply it as a separate layer after a linear dense.
      if (spec.activation === "leakyRelu") {
        return [tf.layers.dense({ units: spec.units, useBias: spec.useBias, name }), activationLayer("leakyRelu", `${name}_act`)];
      }
      return [tf.layers.dense({ units: spec.units, useBias: spec.useBias, activation: spec.activation, name })];
    }
    case "dropout":
      return [tf.layers.dropout({ rate: spec.rate, name })];
    case "batchNormalization":
      return [tf.layers.batchNormalization({ momentum: spec.momentum, epsilon: spec.epsilon, name })];
    case "activation":
      return [activationLayer(spec.activation, name, spec.alpha)];
  }
}

/** Builds the network; a layer that cannot be applied to its input answers a ValidationError at its path. */
export function buildModel(spec: ModelSpec, path = "spec"): BuiltModel {
  const model = tf.sequential({ name: "trainyard" });
  model.add(tf.layers.inputLayer({ inputShape: spec.input.shape, name: "input" }));
  spec.layers.forEach((layerSpec, i) => {
    for (const layer of layersFor(layerSpec, i)) {
      try {
        model.add(layer);
      } catch (err) {
        model.dispose();
        throw ValidationError.at(`${path}.layers[${i}]`, `cannot be applied to its input: ${(err as Error).message}`);
      }
    }
  });
  const outputShape = (model.outputs[0].shape as (number | null)[]).slice(1) as number[];
  return { model, paramCount: model.countParams(), outputShape };
}
