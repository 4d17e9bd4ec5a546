// Models as bytes, for Postgres: TensorFlow.js's own artifact format (topology JSON + weight specs
// + one weight buffer), so what we store loads in any TensorFlow.js, in Node or a browser.
import * as tf from "@tensorflow/tfjs";
// Custom layers register themselves on import; they must be known before a model using them loads.
import "./layers/index.ts";
import { optimizerState, restoreOptimizerState, type OptimizerState } from "./train/optimizers.ts";

export interface StoredModel {
  /**
   * `{ modelTopology, trainingConfig?, optimizerState? }` — trainingConfig is present when the
   * optimizer is included; optimizerState then carries what tfjs's optimizer weights leave out
   * (Adam's β powers), so that a resumed job continues bit for bit. Ours, not tfjs's: other
   * TensorFlow.js readers ignore it, and a checkpoint without it loads as tfjs alone loads it.
   */
  topology: { modelTopology: object; trainingConfig?: object; optimizerState?: OptimizerState };
  weightSpecs: tf.io.WeightsManifestEntry[];
  weights: Uint8Array<ArrayBuffer>;
}

/** A stored model as read back from a database row, whose JSON columns come back untyped. */
export function storedModelFrom(row: { topology: unknown; weightSpecs: unknown; weights: Uint8Array }): StoredModel {
  return { topology: row.topology as StoredModel["topology"], weightSpecs: row.weightSpecs as StoredModel["weightSpecs"], weights: row.weights as Uint8Array<ArrayBuffer> };
}

export async function saveModel(model: tf.LayersModel, includeOptimizer = false): Promise<StoredModel> {
  let saved: StoredModel | undefined;
  const state = includeOptimizer && model.optimizer ? optimizerState(model.optimizer) : undefined;
  await model.save(
    tf.io.withSaveHandler(async (artifacts) => {
      const data = artifacts.weightData;
      const buffer = data === undefined ? new ArrayBuffer(0) : Array.isArray(data) ? tf.io.concatenateArrayBuffers(data) : data;
      const topology: StoredModel["topology"] = { modelTopology: artifacts.modelTopology as object };
      if (artifacts.trainingConfig) topology.trainingConfig = artifacts.trainingConfig as object;
      if (state) topology.optimizerState = state;
      saved = {
        topology,
        weightSpecs: artifacts.weightSpecs ?? [],
        weights: new Uint8Array(buffer),
      };
      return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: "JSON" } };
    }),
    { includeOptimizer },
  );
  return saved!;
}

/**
 * TensorFlow.js's SeparableConv2D leaves `depthMultiplier` out of its config (tfjs-layers 4.x), so
 * a saved model whose multiplier is not 1 fails to load ("Shape mismatch") and could never be
 * served, resumed or exported. The multiplier is the last axis of its depthwise kernel: this puts
 * it back into the topology (a copy), for versions saved before the fix as well.
 */
export function withDepthMultipliers(topology: object, weightSpecs: tf.io.WeightsManifestEntry[]): object {
  const kernels = new Map(weightSpecs.filter((w) => w.name.endsWith("/depthwise_kernel")).map((w) => [w.name.slice(0, -"/depthwise_kernel".length), w.shape]));
  if (!kernels.size) return topology;
  const fix = (node: unknown): unknown => {
    if (Array.isArray(node)) return node.map(fix);
    if (node === null || typeof node !== "object") return node;
    const o = node as Record<string, unknown>;
    const out: Record<string, unknown> = Object.fromEntries(Object.entries(o).map(([k, v]) => [k, fix(v)]));
    const config = out.config as Record<string, unknown> | undefined;
    if (o.class_name === "SeparableConv2D" && config && config.depth_multiplier === undefined) {
      const shape = kernels.get(String(config.name));
      if (shape) out.config = { ...config, depth_multiplier: shape[3] };
    }
    return out;
  };
  return fix(topology) as object;
}

export async function loadModel(stored: StoredModel): Promise<tf.LayersModel> {
  // Copy: the stored bytes may be a view into a larger (or unaligned) buffer.
  const weightData = stored.weights.slice().buffer;
  const model = await tf.loadLayersModel(
    tf.io.fromMemory({
      modelTopology: withDepthMultipliers(stored.topology.modelTopology, stored.weightSpecs),
      trainingConfig: stored.topology.trainingConfig as tf.io.TrainingConfig | undefined,
      weightSpecs: stored.weightSpecs,
      weightData,
    }),
  );
  const state = stored.topology.optimizerState;
  if (state && model.optimizer) restoreOptimizerState(model.optimizer, state);
  return model;
}
