// A stored version in TensorFlow.js's standard "layers-model" format: model.json plus weight
// shards, loadable by a stock tf.loadLayersModel. The graph is rebuilt from the stored model's own
// layer objects, input by input: each raw input gets its fitted preprocessing as stock layers
// (preprocessing-layers.ts), each custom layer its stock form (stock-layers.ts), and tfjs itself
// serializes the result, so the topology is exactly what tfjs writes.
import * as tf from "@tensorflow/tfjs";
import { loadModel, withDepthMultipliers, type StoredModel } from "../../engine/model-io.ts";
import { ConflictError } from "../../errors.ts";
import type { FittedPreprocessing } from "../../data/preprocessing/preprocessing-schema.ts";
import type { Signature } from "../signature.ts";
import { preprocessingLayers } from "./preprocessing-layers.ts";
import { applyStock, type ExportTarget } from "./stock-layers.ts";

type Sym = tf.SymbolicTensor;

/** TensorFlow.js's shard size: a browser caches files of at most 4 MB well. */
export const SHARD_BYTES = 4 * 1024 * 1024;

export interface ModelJson {
  format: "layers-model";
  generatedBy: string;
  convertedBy: string;
  modelTopology: object;
  weightsManifest: { paths: string[]; weights: tf.io.WeightsManifestEntry[] }[];
  /**
   * Trainyard's; stock loaders ignore it. `signature`: how to call the exported graph (raw inputs,
   * outputs with their classes); `preprocessing`: what the graph applies to each input, with the
   * categories whose codes a tabular input takes and the fill values of missing cells.
   */
  userDefinedMetadata?: { signature: Signature; preprocessing: Record<string, FittedPreprocessing> };
}

export interface ExportedModel {
  modelJson: ModelJson;
  /** Shard file name → bytes, in manifest order. */
  shards: Map<string, Uint8Array>;
}

interface LayerInternals {
  inboundNodes: { inputTensors: Sym[]; outputTensors: Sym[]; callArgs?: tf.serialization.ConfigDict }[];
}

/** The stored model rebuilt over raw inputs with stock layers only. */
export async function stockGraph(stored: StoredModel, signature: Signature, target: ExportTarget = "tfjs", keep?: (cls: string) => boolean): Promise<{ model: tf.LayersModel; original: tf.LayersModel }> {
  const model = await loadModel(stored);
  const byName = new Map(signature.inputs.map((i) => [i.name, i]));
  const rawInputs: Sym[] = [];
  const mapped = new Map<Sym, Sym>();
  model.inputs.forEach((original, k) => {
    // Signature inputs follow the model's order; match by name, else by position (one input).
    const sig = byName.get(original.sourceLayer.name) ?? signature.inputs[k];
    const fitted = sig?.preprocessing;
    const shape = fitted && sig ? sig.shape : (original.shape.slice(1) as number[]);
    const input = tf.input({ shape, dtype: fitted ? "float32" : original.dtype, name: original.sourceLayer.name });
    rawInputs.push(input);
    mapped.set(original, fitted ? preprocessingLayers(input, fitted, shape, `${original.sourceLayer.name}_preprocessing`) : input);
  });
  const visit = (t: Sym): Sym => {
    const done = mapped.get(t);
    if (done) return done;
    const layer = t.sourceLayer as unknown as tf.layers.Layer & LayerInternals;
    const node = layer.inboundNodes[t.nodeIndex];
    const ins = node.inputTensors.map(visit);
    const again = mapped.get(t);
    if (again) return again;
    const outs = applyStock(layer, ins, node.callArgs, target, keep);
    const list = Array.isArray(outs) ? outs : [outs];
    node.outputTensors.forEach((o, i) => mapped.set(o, list[i]));
    return mapped.get(t)!;
  };
  try {
    const outputs = model.outputs.map(visit);
    return { model: tf.model({ inputs: rawInputs, outputs, name: model.name }), original: model };
  } catch (err) {
    model.dispose();
    throw err;
  }
}

/** The signature of the exported graph: raw inputs, their preprocessing inside the graph. */
export function exportedSignature(signature: Signature): Signature {
  return { inputs: signature.inputs.map(({ name, shape }) => ({ name, shape })), outputs: signature.outputs };
}

/** Splits weight bytes into shards of at most SHARD_BYTES, named as tfjs's converter names them. */
function shard(bytes: Uint8Array): Map<string, Uint8Array> {
  const count = Math.max(1, Math.ceil(bytes.length / SHARD_BYTES));
  const out = new Map<string, Uint8Array>();
  for (let i = 0; i < count; i++) out.set(`group1-shard${i + 1}of${count}.bin`, bytes.subarray(i * SHARD_BYTES, (i + 1) * SHARD_BYTES));
  return out;
}

export async function exportModel(stored: StoredModel, signature: Signature, generatedBy: string): Promise<ExportedModel> {
  const { model, original } = await stockGraph(stored, signature);
  let artifacts: tf.io.ModelArtifacts | undefined;
  try {
    await model.save(tf.io.withSaveHandler(async (a) => {
      artifacts = a;
      return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: "JSON" } };
    }));
  } finally {
    // The graph shares its layers with the loaded model; each disposes what it still holds.
    for (const m of [model, original]) {
      try {
        m.dispose();
      } catch {
        // already released through the other
      }
    }
  }
  const topology = JSON.stringify(artifacts!.modelTopology);
  const custom = /"class_name":\s*"(Trainyard[A-Za-z0-9]+)"/.exec(topology);
  // applyStock refuses every custom layer it cannot translate; this is the belt to those braces.
  if (custom) throw new ConflictError(`the exported graph still holds a custom layer (${custom[1]}); it cannot be exported in the standard TensorFlow.js format`);
  const data = artifacts!.weightData;
  const weights = new Uint8Array(data === undefined ? new ArrayBuffer(0) : Array.isArray(data) ? tf.io.concatenateArrayBuffers(data) : data);
  const shards = shard(weights);
  return {
    modelJson: {
      format: "layers-model",
      generatedBy,
      convertedBy: `Trainyard export (TensorFlow.js ${tf.version_layers})`,
      // Stock loaders need the separable convolutions' depth multipliers, which tfjs does not write.
      modelTopology: withDepthMultipliers(artifacts!.modelTopology as object, artifacts!.weightSpecs ?? []),
      weightsManifest: [{ paths: [...shards.keys()], weights: artifacts!.weightSpecs ?? [] }],
      userDefinedMetadata: {
        signature: exportedSignature(signature),
        preprocessing: Object.fromEntries(signature.inputs.flatMap((i) => (i.preprocessing ? [[i.name, i.preprocessing]] : []))),
      },
    },
    shards,
  };
}
