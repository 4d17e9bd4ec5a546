// Inference: the latest successful version of a model, loaded once into memory and kept in a
// small LRU, answering TensorFlow Serving's row format.
import * as tf from "@tensorflow/tfjs";
import { flattenInto } from "../data/nested.ts";
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
      const x = xs.map((flat, k) => tf.tensor(flat, [instances.length, ...inputs[k].shape]));
      const y = loaded.model.predict(x.length === 1 ? x[0] : x) as tf.Tensor | tf.Tensor[];
      if (!Array.isArray(y)) return y.arraySync() as Nested[][];
      const perOutput = y.map((t) => t.arraySync() as Nested[]);
      return instances.map((_, i) => Object.fromEntries(outputs.map((o, k) => [o.name, perOutput[k][i]])));
    });
    return { predictions, version: latest.version };
  }

  /**
   * Checks every instance against the model's inputs and packs them, one buffer per input. An
   * instance is the input itself (one-input models) or an object of inputs by name.
   */
  private readInstances(inputs: Signature["inputs"], instances: unknown[]): Float32Array[] {
    const widths = inputs.map((i) => i.shape.reduce((a, b) => a * b, 1));
    const xs = widths.map((w) => new Float32Array(instances.length * w));
    const names = inputs.map((i) => i.name);
    instances.forEach((inst, i) => {
      if (Array.isArray(inst) && inputs.length === 1) return flattenInto(inst, inputs[0].shape, `instances[${i}]`, xs[0], i * widths[0]);
      if (!isRecord(inst)) {
        throw ValidationError.at(`instances[${i}]`, `the model has ${inputs.length} inputs (${names.join(", ")}): expected an object of them by name`);
      }
      const unknown = Object.keys(inst).filter((k) => !names.includes(k));
      if (unknown.length) throw ValidationError.at(`instances[${i}].${unknown[0]}`, `is not an input of the model (its inputs: ${names.join(", ")})`);
      inputs.forEach((input, k) => {
        if (!(input.name in inst)) throw ValidationError.at(`instances[${i}]`, `lacks input '${input.name}'`);
        flattenInto(inst[input.name], input.shape, `instances[${i}].${input.name}`, xs[k], i * widths[k]);
      });
    });
    return xs;
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
