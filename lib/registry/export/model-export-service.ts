// Export and import of versions in TensorFlow.js's standard format, and export to ONNX
// (onnx/export-onnx.ts). An export is built once per
// version (a small LRU: a stock loader asks for model.json, then each shard, in separate requests)
// and is deterministic, so any API replica answers the same bytes.
import * as tf from "@tensorflow/tfjs";
import type { Db } from "../../db/prisma.ts";
import { ConflictError, NotFoundError, ValidationError } from "../../errors.ts";
import { loadModel, type StoredModel } from "../../engine/model-io.ts";
import { fittedShape } from "../../data/preprocessing/preprocessor.ts";
import { modelInputs, modelSpecSchema } from "../../model-spec/model-spec-schema.ts";
import { ModelVersionRepository } from "../model-version-repository.ts";
import { signatureSchema, type Signature } from "../signature.ts";
import { exportModel, type ExportedModel, type ModelJson } from "./export-model.ts";
import { exportOnnx } from "./onnx/export-onnx.ts";
import { readZip, writeZip } from "./model-zip.ts";

/**
 * Registers an imported version (no training job) and returns its number: the registry's
 * ModelVersionRepository owns that write; the export service only checks what it is given.
 */
export type RegisterImported = (v: { tenantId: string; modelId: string; signature: Signature; model: StoredModel; metrics: Record<string, number> }) => Promise<number>;

export class ModelExportService {
  private readonly versions: ModelVersionRepository;
  private readonly cache = new Map<string, Promise<ExportedModel>>();
  private readonly onnxCache = new Map<string, Promise<Uint8Array>>();

  constructor(private readonly db: Db, private readonly generatedBy: string, private readonly cacheSize = 4, private readonly registerImported?: RegisterImported) {
    this.versions = new ModelVersionRepository(db);
  }

  /** model.json of a version, with shard paths relative to it. */
  async modelJson(tenantId: string, name: string, version: number): Promise<ModelJson> {
    return (await this.exported(tenantId, name, version)).modelJson;
  }

  async shard(tenantId: string, name: string, version: number, file: string): Promise<Uint8Array> {
    const data = (await this.exported(tenantId, name, version)).shards.get(file);
    if (!data) throw new NotFoundError("weight file", `${name}/${version}/${file}`);
    return data;
  }

  /** model.json, its shards and signature.json in one zip. */
  async zip(tenantId: string, name: string, version: number): Promise<Buffer> {
    const { modelJson, shards } = await this.exported(tenantId, name, version);
    const files = new Map<string, Uint8Array>([["model.json", Buffer.from(JSON.stringify(modelJson))]]);
    for (const [file, data] of shards) files.set(file, data);
    files.set("signature.json", Buffer.from(JSON.stringify(modelJson.userDefinedMetadata?.signature ?? null, null, 2)));
    return writeZip(files);
  }

  /** The version as one ONNX model file (raw inputs, preprocessing inside the graph); 409 naming a layer that has no ONNX form. */
  async onnx(tenantId: string, name: string, version: number): Promise<Uint8Array> {
    const ref = await this.versions.ref(tenantId, name, version);
    return this.cached(this.onnxCache, ref.id, async () => {
      const stored = await this.versions.load(ref.id);
      return exportOnnx(stored.model, stored.signature, this.generatedBy);
    });
  }

  private async exported(tenantId: string, name: string, version: number): Promise<ExportedModel> {
    const ref = await this.versions.ref(tenantId, name, version);
    return this.cached(this.cache, ref.id, async () => {
      const stored = await this.versions.load(ref.id);
      return exportModel(stored.model, stored.signature, this.generatedBy);
    });
  }

  /** A small LRU of exports in progress or done; a failed one is forgotten. */
  private cached<T>(cache: Map<string, Promise<T>>, key: string, make: () => Promise<T>): Promise<T> {
    let entry = cache.get(key);
    if (entry) {
      cache.delete(key);
      cache.set(key, entry);
      return entry;
    }
    entry = make();
    cache.set(key, entry);
    entry.catch(() => cache.delete(key));
    while (cache.size > this.cacheSize) cache.delete(cache.keys().next().value!);
    return entry;
  }

  /**
   * A zip of model.json and its shards (and optionally signature.json), trained anywhere, as a
   * new version of `name`, after its inputs and outputs are checked against the model's spec.
   */
  async importZip(tenantId: string, name: string, zip: Buffer, maxBytes: number): Promise<number> {
    const files = await readZip(zip, maxBytes);
    const modelJsonBytes = files.get("model.json");
    if (!modelJsonBytes) throw ValidationError.at("body", `the zip has no model.json (it holds ${[...files.keys()].slice(0, 10).join(", ") || "nothing"})`);
    let json: Partial<ModelJson> & { weightsManifest?: { paths: string[]; weights: tf.io.WeightsManifestEntry[] }[] };
    try {
      json = JSON.parse(modelJsonBytes.toString("utf8"));
    } catch (err) {
      throw ValidationError.at("model.json", `is not JSON (${(err as Error).message})`);
    }
    if (!json.modelTopology || typeof json.modelTopology !== "object") throw ValidationError.at("model.json.modelTopology", "is missing: only TensorFlow.js layers models (format \"layers-model\") can be imported");
    if (json.format !== undefined && json.format !== "layers-model") throw ValidationError.at("model.json.format", `is '${json.format}'; only "layers-model" can be imported (a graph model has no layers to train or serve here)`);
    const manifest = Array.isArray(json.weightsManifest) ? json.weightsManifest : [];
    const weightSpecs: tf.io.WeightsManifestEntry[] = [];
    const buffers: Buffer[] = [];
    manifest.forEach((group, g) => {
      weightSpecs.push(...(group.weights ?? []));
      (group.paths ?? []).forEach((p, i) => {
        const file = files.get(String(p).split("/").pop()!);
        if (!file) throw ValidationError.at(`model.json.weightsManifest[${g}].paths[${i}]`, `'${p}' is not in the zip`);
        buffers.push(file);
      });
    });
    const weights = new Uint8Array(Buffer.concat(buffers));

    let signature: Signature | undefined;
    const rawSignature = files.has("signature.json") ? parseJson(files.get("signature.json")!, "signature.json") : (json.userDefinedMetadata as { signature?: unknown } | undefined)?.signature;
    if (rawSignature !== undefined && rawSignature !== null) {
      const parsed = signatureSchema.safeParse(rawSignature);
      if (!parsed.success) throw ValidationError.at(files.has("signature.json") ? "signature.json" : "model.json.userDefinedMetadata.signature", parsed.error.issues.map((i) => `${i.path.join(".") || "(root)"}: ${i.message}`).join("; "));
      signature = parsed.data;
    }
    const stored: StoredModel = { topology: { modelTopology: json.modelTopology }, weightSpecs, weights };
    const { modelId, signature: checked } = await this.check(tenantId, name, stored, signature);
    if (!this.registerImported) throw new ConflictError("importing a version needs the registry to register a version without a training job, which this build lacks");
    return this.registerImported({ tenantId, modelId, signature: checked, model: stored, metrics: {} });
  }

  /** Loads the imported model (it must load here to be served) and checks its inputs and outputs against the model's spec. */
  private async check(tenantId: string, name: string, stored: StoredModel, given: Signature | undefined): Promise<{ modelId: string; signature: Signature }> {
    const row = await this.db.model.findUnique({ where: { tenantId_name: { tenantId, name } }, select: { id: true, spec: true, outputs: true } });
    if (!row) throw new NotFoundError("model", name);
    const spec = modelSpecSchema.parse(row.spec);
    const specInputs = modelInputs(spec);
    const specOutputs = (row.outputs as { name: string; shape: (number | null)[] }[]).map((o) => ({ name: o.name, shape: o.shape.map((d) => (d === null || d < 0 ? null : d)) }));
    let model: tf.LayersModel;
    try {
      model = await loadModel(stored);
    } catch (err) {
      throw ValidationError.at("model.json", `does not load as a TensorFlow.js layers model: ${(err as Error).message}`);
    }
    try {
      const shapeText = (s: (number | null)[]) => `[${s.map((d) => d ?? "null").join(", ")}]`;
      const fits = (got: (number | null)[], want: (number | null)[]) => got.length === want.length && got.every((d, i) => want[i] === null || d === want[i]);
      const problems: { path: string; message: string }[] = [];
      if (model.inputs.length !== specInputs.length) problems.push({ path: "model.json.modelTopology", message: `has ${model.inputs.length} inputs; model '${name}' has ${specInputs.length} (${specInputs.map((i) => i.name).join(", ")})` });
      else model.inputs.forEach((t, k) => {
        const got = t.shape.slice(1);
        if (!fits(got, specInputs[k].shape)) problems.push({ path: `model.json inputs[${k}] (${t.sourceLayer.name})`, message: `has shape ${shapeText(got)}; input '${specInputs[k].name}' of model '${name}' is ${shapeText(specInputs[k].shape)}` });
      });
      if (model.outputs.length !== specOutputs.length) problems.push({ path: "model.json.modelTopology", message: `has ${model.outputs.length} outputs; model '${name}' has ${specOutputs.length} (${specOutputs.map((o) => o.name).join(", ")})` });
      else model.outputs.forEach((t, k) => {
        const got = t.shape.slice(1);
        if (!fits(got, specOutputs[k].shape)) problems.push({ path: `model.json outputs[${k}] (${t.sourceLayer.name})`, message: `has shape ${shapeText(got)}; output '${specOutputs[k].name}' of model '${name}' is ${shapeText(specOutputs[k].shape)}` });
      });
      if (problems.length) throw new ValidationError(problems);
      if (given) {
        if (given.inputs.length !== specInputs.length || given.outputs.length !== specOutputs.length) {
          throw ValidationError.at("signature.json", `describes ${given.inputs.length} inputs and ${given.outputs.length} outputs; the model has ${specInputs.length} and ${specOutputs.length}`);
        }
        given.inputs.forEach((i, k) => {
          const processed = i.preprocessing ? fittedShape(i.preprocessing, i.shape) : i.shape;
          if (!fits(processed, model.inputs[k].shape.slice(1))) throw ValidationError.at(`signature.json.inputs[${k}].shape`, `gives the graph ${shapeText(processed)}; its input takes ${shapeText(model.inputs[k].shape.slice(1))}`);
        });
        return { modelId: row.id, signature: given };
      }
      // No signature: inputs as the graph takes them; outputs classify when they end in a softmax.
      const signature: Signature = {
        inputs: specInputs.map((i, k) => ({ name: i.name, shape: model.inputs[k].shape.slice(1).map((d) => d ?? 1) })),
        outputs: specOutputs.map((o, k) => {
          const activation = (model.outputs[k].sourceLayer.getConfig() as { activation?: string }).activation;
          const classes = activation === "softmax" || activation === "sigmoid" ? (o.shape[o.shape.length - 1] ?? 0) : 0;
          return { name: o.name, task: classes ? "classification" as const : "regression" as const, classes: Array.from({ length: activation === "sigmoid" && classes === 1 ? 2 : classes }, (_, c) => String(c)) };
        }),
      };
      return { modelId: row.id, signature };
    } finally {
      model.dispose();
    }
  }
}

function parseJson(bytes: Buffer, where: string): unknown {
  try {
    return JSON.parse(bytes.toString("utf8"));
  } catch (err) {
    throw ValidationError.at(where, `is not JSON (${(err as Error).message})`);
  }
}
