// Models as bytes, for Postgres: TensorFlow.js's own artifact format (topology JSON + weight specs
// + one weight buffer), so what we store loads in any TensorFlow.js, in Node or a browser.
import * as tf from "@tensorflow/tfjs";
// Custom layers register themselves on import; they must be known before a model using them loads.
import "./layers/index.ts";

export interface StoredModel {
  /** `{ modelTopology, trainingConfig? }` — trainingConfig is present when optimizer state is included. */
  topology: { modelTopology: object; trainingConfig?: object };
  weightSpecs: tf.io.WeightsManifestEntry[];
  weights: Uint8Array<ArrayBuffer>;
}

/** A stored model as read back from a database row, whose JSON columns come back untyped. */
export function storedModelFrom(row: { topology: unknown; weightSpecs: unknown; weights: Uint8Array }): StoredModel {
  return { topology: row.topology as StoredModel["topology"], weightSpecs: row.weightSpecs as StoredModel["weightSpecs"], weights: row.weights as Uint8Array<ArrayBuffer> };
}

export async function saveModel(model: tf.LayersModel, includeOptimizer = false): Promise<StoredModel> {
  let saved: StoredModel | undefined;
  await model.save(
    tf.io.withSaveHandler(async (artifacts) => {
      const data = artifacts.weightData;
      const buffer = data === undefined ? new ArrayBuffer(0) : Array.isArray(data) ? tf.io.concatenateArrayBuffers(data) : data;
      saved = {
        topology: { modelTopology: artifacts.modelTopology as object, ...(artifacts.trainingConfig ? { trainingConfig: artifacts.trainingConfig as object } : {}) },
        weightSpecs: artifacts.weightSpecs ?? [],
        weights: new Uint8Array(buffer),
      };
      return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: "JSON" } };
    }),
    { includeOptimizer },
  );
  return saved!;
}

export async function loadModel(stored: StoredModel): Promise<tf.LayersModel> {
  // Copy: the stored bytes may be a view into a larger (or unaligned) buffer.
  const weightData = stored.weights.slice().buffer;
  return tf.loadLayersModel(
    tf.io.fromMemory({
      modelTopology: stored.topology.modelTopology,
      trainingConfig: stored.topology.trainingConfig as tf.io.TrainingConfig | undefined,
      weightSpecs: stored.weightSpecs,
      weightData,
    }),
  );
}
