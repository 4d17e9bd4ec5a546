// Inference: the latest successful version of a model, loaded once into memory and kept in a
// small LRU, answering TensorFlow Serving's row format.
import * as tf from "@tensorflow/tfjs";
import type { Db } from "../db/prisma.ts";
import { loadModel, type StoredModel } from "../engine/model-io.ts";
import { flattenInto } from "../data/nested.ts";
import { ConflictError, NotFoundError, ValidationError } from "../errors.ts";

interface Loaded {
  model: tf.LayersModel;
  inputShape: number[];
}

export class PredictService {
  private readonly cache = new Map<string, Promise<Loaded>>();

  constructor(private readonly db: Db, private readonly cacheSize: number, private readonly maxInstances: number) {}

  async predict(tenantId: string, name: string, instances: unknown[]): Promise<{ predictions: number[][]; version: number }> {
    const model = await this.db.model.findUnique({ where: { tenantId_name: { tenantId, name } }, select: { id: true } });
    if (!model) throw new NotFoundError("model", name);
    const latest = await this.db.modelVersion.findFirst({ where: { modelId: model.id }, orderBy: { version: "desc" }, select: { id: true, version: true } });
    if (!latest) throw new ConflictError(`model '${name}' has no trained version yet; train it with POST /v1/training-jobs`);
    if (instances.length > this.maxInstances) throw ValidationError.at("instances", `at most ${this.maxInstances} instances per call, got ${instances.length}`);

    const loaded = await this.load(latest.id);
    const width = loaded.inputShape.reduce((a, b) => a * b, 1);
    const flat = new Float32Array(instances.length * width);
    instances.forEach((inst, i) => flattenInto(inst, loaded.inputShape, `instances[${i}]`, flat, i * width));
    const predictions = tf.tidy(() => {
      const x = tf.tensor(flat, [flat.length / width, ...loaded.inputShape]);
      const y = loaded.model.predict(x) as tf.Tensor;
      return y.reshape([y.shape[0], -1]).arraySync() as number[][];
    });
    return { predictions, version: latest.version };
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
      const row = await this.db.modelVersion.findUniqueOrThrow({ where: { id: versionId } });
      const model = await loadModel({ topology: row.topology as StoredModel["topology"], weightSpecs: row.weightSpecs as unknown as StoredModel["weightSpecs"], weights: row.weights });
      return { model, inputShape: (row.signature as { inputShape: number[] }).inputShape };
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
