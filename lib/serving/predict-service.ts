// Inference: the latest successful version of a model, loaded once into memory and kept in a
// small LRU, answering TensorFlow Serving's row format.
import * as tf from "@tensorflow/tfjs";
import { flattenInto } from "../data/nested.ts";
import { applyPreprocessing, encodeTabularInstance, fittedShape } from "../data/preprocessing/preprocessor.ts";
import type { Db } from "../db/prisma.ts";
import { loadModel } from "../engine/model-io.ts";
import { ValidationError } from "../errors.ts";
import { ModelVersionRepository } from "../registry/model-version-repository.ts";
import type { Signature } from "../registry/signature.ts";

interface Loaded {
  model: tf.LayersModel;
  signature: Signature;
}

type Nested = number | Nested[];
/** One instance's outputs: the output itself, or for a model with several outputs, an object of them by name (TensorFlow Serving's row format). */
export type Prediction = Nested[] | Record<string, Nested>;

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);

export class PredictService {
  private readonly cache = new Map<string, Promise<Loaded>>();

  private readonly versions: ModelVersionRepository;

  constructor(db: Db, private readonly cacheSize: number, private readonly maxInstances: number) {
    this.versions = new ModelVersionRepository(db);
  }

  async predict(tenantId: string, name: string, instances: unknown[]): Promise<{ predictions: Prediction[]; version: number }> {
    const latest = await this.versions.latest(tenantId, name);
    if (instances.length > this.maxInstances) throw ValidationError.at("instances", `at most ${this.maxInstances} instances per call, got ${instances.length}`);

    const loaded = await this.load(latest.id);
    const { inputs, outputs } = loaded.signature;
    const xs = this.readInstances(inputs, instances);
    const predictions = tf.tidy((): Prediction[] => {
      const x = xs.map((input) => tf.tensor(input.data, [instances.length, ...input.shape]));
      const y = loaded.model.predict(x.length === 1 ? x[0] : x) as tf.Tensor | tf.Tensor[];
      if (!Array.isArray(y)) return y.arraySync() as Nested[][];
      const perOutput = y.map((t) => t.arraySync() as Nested[]);
      return instances.map((_, i) => Object.fromEntries(outputs.map((o, k) => [o.name, perOutput[k][i]])));
    });
    return { predictions, version: latest.version };
  }

  /**
   * Checks every instance against the model's inputs and packs them, one buffer per input, then
   * applies each input's fitted preprocessing (the training split's statistics) so that clients
   * send raw values. An instance is the input itself (one-input models) or an object of inputs by
   * name; a tabular input's row may also be an object of its columns by name, with category names.
   */
  private readInstances(inputs: Signature["inputs"], instances: unknown[]): { data: Float32Array; shape: number[] }[] {
    const n = instances.length;
    const widths = inputs.map((i) => i.shape.reduce((a, b) => a * b, 1));
    const xs = widths.map((w) => new Float32Array(n * w));
    const names = inputs.map((i) => i.name);
    const readOne = (k: number, value: unknown, i: number, path: string) => {
      const fitted = inputs[k].preprocessing;
      if (fitted?.kind === "tabular") xs[k].set(encodeTabularInstance(fitted.columns, value, path), i * widths[k]);
      else flattenInto(value, inputs[k].shape, path, xs[k], i * widths[k]);
    };
    instances.forEach((inst, i) => {
      const byInputName = isRecord(inst) && (inputs.length > 1 || Object.keys(inst).every((key) => names.includes(key)));
      if (inputs.length === 1 && !byInputName) return readOne(0, inst, i, `instances[${i}]`);
      if (!isRecord(inst)) {
        throw ValidationError.at(`instances[${i}]`, `the model has ${inputs.length} inputs (${names.join(", ")}): expected an object of them by name`);
      }
      const unknown = Object.keys(inst).filter((k) => !names.includes(k));
      if (unknown.length) throw ValidationError.at(`instances[${i}].${unknown[0]}`, `is not an input of the model (its inputs: ${names.join(", ")})`);
      inputs.forEach((input, k) => {
        if (!(input.name in inst)) throw ValidationError.at(`instances[${i}]`, `lacks input '${input.name}'`);
        readOne(k, inst[input.name], i, `instances[${i}].${input.name}`);
      });
    });
    return xs.map((raw, k) => {
      const fitted = inputs[k].preprocessing;
      return fitted ? { data: applyPreprocessing(fitted, raw, n, "instances"), shape: fittedShape(fitted, inputs[k].shape) } : { data: raw, shape: inputs[k].shape };
    });
  }

  private load(versionId: string): Promise<Loaded> {
    let entry = this.cache.get(versionId);
    if (entry) {
      // Map keeps insertion order: re-inserting marks it most recently used.
      this.cache.delete(versionId);
      this.cache.set(versionId, entry);
      return entry;
    }
    entry = (async () => {
      const stored = await this.versions.load(versionId);
      return { model: await loadModel(stored.model), signature: stored.signature };
    })();
    entry.catch(() => this.cache.delete(versionId));
    this.cache.set(versionId, entry);
    while (this.cache.size > this.cacheSize) {
      const [oldest, value] = this.cache.entries().next().value!;
      this.cache.delete(oldest);
      value.then((l) => l.model.dispose(), () => {});
    }
    return entry;
  }

  dispose(): void {
    for (const entry of this.cache.values()) entry.then((l) => l.model.dispose(), () => {});
    this.cache.clear();
  }
}
