// Inference: resolve the version a request targets (the lookup cache: no database round trip on
// a hit), parse the request in its protocol, check and preprocess the inputs, run the model,
// format the answer. The forward pass is a `RunModel` passed to the constructor: the inference
// runtime's worker threads (lib/serving/runtime), never this event loop.
import type { Db } from "../db/prisma.ts";
import { DomainError, ValidationError } from "../errors.ts";
import { chooseRuntime, type Runtime, type ServingFacts } from "../registry/export/onnx/onnx-check.ts";
import { ModelVersionRepository, type ResolvedVersion, type VersionTarget } from "../registry/model-version-repository.ts";
import { formatInfer, type InferRequest, modelMetadata, parseInfer, selectOutputs } from "./protocols/kserve-v2.ts";
import { packInputs, type RawInputs, type Tensor, type TopClass, topK } from "./protocols/tensors.ts";
import { formatOf, formatTfPredict, parseTfPredict, type TfPredictRequest, tfModelMetadata, tfModelStatus } from "./protocols/tf-serving.ts";
import { VersionResolver } from "./version-resolver.ts";

/**
 * Runs a version's forward pass. Inputs are already preprocessed, in the model's input order,
 * batch axis first; outputs are in the model's output order, batch axis first. `batching`: the
 * model's own settings, if it has any.
 */
export type RunModel = (versionId: string, inputs: Tensor[], batching?: { maxBatchSize?: number; maxDelayMs?: number }) => Promise<{ outputs: Tensor[]; runtime: Runtime }>;

export interface PredictOptions {
  maxInstances: number;
  /** How long a cached version lookup may be served without asking Postgres again. */
  lookupTtlMs: number;
  /** The forward pass: the inference runtime's worker threads (lib/serving/runtime), which keep the loaded versions. */
  run: RunModel;
  /** TRAINYARD_SERVING_RUNTIME and whether ONNX Runtime loads here: what metadata says serves a version (default tfjs). */
  serving?: ServingFacts;
}

type TopK = TopClass[][] | Record<string, TopClass[][]>;

export class PredictService {
  readonly resolver: VersionResolver;

  private readonly versions: ModelVersionRepository;

  private readonly run: RunModel;

  constructor(db: Db, private readonly opts: PredictOptions) {
    this.versions = new ModelVersionRepository(db);
    this.resolver = new VersionResolver((t, m, target) => this.versions.resolve(t, m, target), opts.lookupTtlMs);
    this.run = opts.run;
  }

  resolve(tenantId: string, name: string, target: VersionTarget): Promise<ResolvedVersion> {
    return this.resolver.resolve(tenantId, name, target);
  }

  /** TensorFlow Serving's predict, row or columnar format; `topK` adds the k most probable classes. */
  async tfPredict(tenantId: string, name: string, target: VersionTarget, body: TfPredictRequest, k?: number) {
    const { version, signature, outputs, runtime } = await this.execute(tenantId, name, target, (v) => parseTfPredict(v.signature, body));
    const topk: TopK | undefined = k ? topK(signature.outputs, outputs, k) : undefined;
    return { version, runtime, body: { ...formatTfPredict(formatOf(body), signature, outputs), ...(topk ? { top_k: topk } : {}) } };
  }

  /** Open Inference Protocol's infer. */
  async infer(tenantId: string, name: string, target: VersionTarget, body: InferRequest, k?: number) {
    let selected: number[] = [];
    const { version, signature, outputs, runtime } = await this.execute(tenantId, name, target, (v) => {
      selected = selectOutputs(v.signature, body);
      return parseInfer(v.signature, body);
    });
    const topk: TopK | undefined = k ? topK(signature.outputs, outputs, k) : undefined;
    return { version, runtime, body: { ...formatInfer(name, version, signature, outputs, selected, body.id), ...(topk ? { top_k: topk } : {}) } };
  }

  /** TF Serving's model status: of the version a target means, or (no target) of every version. */
  async tfStatus(tenantId: string, name: string, target?: VersionTarget) {
    return tfModelStatus(target ? [(await this.resolve(tenantId, name, target)).version] : await this.versions.numbers(tenantId, name));
  }

  async tfMetadata(tenantId: string, name: string, target: VersionTarget) {
    const v = await this.resolve(tenantId, name, target);
    return tfModelMetadata(name, v.version, v.signature, v.outputShapes);
  }

  /** Open Inference Protocol's model metadata: the version a target means, and every version number. */
  async inferMetadata(tenantId: string, name: string, target: VersionTarget) {
    const [v, versions] = await Promise.all([this.resolve(tenantId, name, target), this.versions.numbers(tenantId, name)]);
    return { version: v.version, body: modelMetadata(name, versions, v.signature, v.outputShapes, this.runtimeOf(v) ?? "onnx") };
  }

  /** What serves a version on this replica, as its metadata says (null: refused, TRAINYARD_SERVING_RUNTIME onnx and no passed check). */
  runtimeOf(v: ResolvedVersion): Runtime | null {
    const { mode, ortInstalled } = this.opts.serving ?? { mode: "tfjs", ortInstalled: false };
    return chooseRuntime(mode, v.onnx, ortInstalled).runtime;
  }

  /** Open Inference Protocol's model readiness: a version the target means exists (and can be loaded on demand). */
  async inferReady(tenantId: string, name: string, target: VersionTarget): Promise<boolean> {
    try {
      await this.resolve(tenantId, name, target);
      return true;
    } catch (err) {
      if (err instanceof DomainError && err.status === 409) return false;
      throw err;
    }
  }

  private async execute(tenantId: string, name: string, target: VersionTarget, parse: (v: ResolvedVersion) => RawInputs) {
    const resolved = await this.resolve(tenantId, name, target);
    const raw = parse(resolved);
    if (raw.batch > this.opts.maxInstances) throw ValidationError.at("instances", `at most ${this.opts.maxInstances} instances per call, got ${raw.batch}`);
    const { outputs, runtime } = await this.run(resolved.id, packInputs(resolved.signature.inputs, raw), resolved.batching);
    return { version: resolved.version, signature: resolved.signature, outputs, runtime };
  }

  dispose(): void {
    this.resolver.clear();
  }
}
