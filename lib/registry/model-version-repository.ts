// Model versions: what a successful training job leaves behind (weights, signature, metrics),
// numbered per model. The one writer and reader of the ModelVersion table: training registers
// versions through it, serving finds and loads them through it.
import { randomUUID } from "node:crypto";
import type { Db, Prisma } from "../db/prisma.ts";
import { storedModelFrom, type StoredModel } from "../engine/model-io.ts";
import { ConflictError, NotFoundError } from "../errors.ts";
import type { ModelVersionView } from "./model-schema.ts";
import { readSignature, type Signature } from "./signature.ts";

export interface NewVersion {
  tenantId: string;
  modelId: string;
  /** The job that trained it: one version per job, so registering twice is a no-op. */
  jobId: string;
  signature: Signature;
  model: StoredModel;
  metrics: Record<string, number>;
}

const VIEW = { version: true, jobId: true, signature: true, metrics: true, createdAt: true } as const;
const toView = (r: { version: number; jobId: string; signature: unknown; metrics: unknown; createdAt: Date }): ModelVersionView => ({
  version: r.version, jobId: r.jobId, signature: readSignature(r.signature), metrics: r.metrics as Record<string, number>, createdAt: r.createdAt.toISOString(),
});

export interface VersionRef {
  id: string;
  version: number;
}

export class ModelVersionRepository {
  constructor(private readonly db: Db) {}

  /**
   * Registers a job's version inside the caller's transaction, numbered after the model's latest.
   * Two jobs of one model may finish together: the unique (model, version) refuses the second
   * with P2002, and the caller retries its transaction.
   */
  static async register(tx: Prisma.TransactionClient, v: NewVersion): Promise<void> {
    const existing = await tx.modelVersion.findUnique({ where: { jobId: v.jobId }, select: { id: true } });
    if (existing) return;
    const last = await tx.modelVersion.findFirst({ where: { modelId: v.modelId }, orderBy: { version: "desc" }, select: { version: true } });
    await tx.modelVersion.create({
      data: {
        id: randomUUID(), tenantId: v.tenantId, modelId: v.modelId, version: (last?.version ?? 0) + 1, jobId: v.jobId,
        signature: v.signature as object, topology: v.model.topology, weightSpecs: v.model.weightSpecs as object[], weights: v.model.weights, metrics: v.metrics,
      },
    });
  }

  /** The version :predict serves: the model's latest. */
  async latest(tenantId: string, modelName: string): Promise<VersionRef> {
    const model = await this.db.model.findUnique({ where: { tenantId_name: { tenantId, name: modelName } }, select: { id: true } });
    if (!model) throw new NotFoundError("model", modelName);
    const latest = await this.db.modelVersion.findFirst({ where: { modelId: model.id }, orderBy: { version: "desc" }, select: { id: true, version: true } });
    if (!latest) throw new ConflictError(`model '${modelName}' has no trained version yet; train it with POST /v1/training-jobs`);
    return latest;
  }

  /** A version by number, or the latest; 404 for an unknown model or version, 409 when it has none yet. */
  async ref(tenantId: string, modelName: string, version: number | "latest"): Promise<VersionRef> {
    if (version === "latest") return this.latest(tenantId, modelName);
    const model = await this.modelId(tenantId, modelName);
    const row = await this.db.modelVersion.findUnique({ where: { modelId_version: { modelId: model, version } }, select: { id: true, version: true } });
    if (!row) throw new NotFoundError("model version", `${modelName}/${version}`);
    return row;
  }

  /** The versions of a model, newest first, without their weights. */
  async list(tenantId: string, modelName: string): Promise<ModelVersionView[]> {
    const model = await this.modelId(tenantId, modelName);
    const rows = await this.db.modelVersion.findMany({ where: { modelId: model }, select: VIEW, orderBy: { version: "desc" }, take: 1000 });
    return rows.map(toView);
  }

  /** One version's description: its signature (with the fitted preprocessing) and metrics. */
  async describe(tenantId: string, modelName: string, version: number): Promise<ModelVersionView> {
    const model = await this.modelId(tenantId, modelName);
    const row = await this.db.modelVersion.findUnique({ where: { modelId_version: { modelId: model, version } }, select: VIEW });
    if (!row) throw new NotFoundError("model version", `${modelName}/${version}`);
    return toView(row);
  }

  private async modelId(tenantId: string, modelName: string): Promise<string> {
    const model = await this.db.model.findUnique({ where: { tenantId_name: { tenantId, name: modelName } }, select: { id: true } });
    if (!model) throw new NotFoundError("model", modelName);
    return model.id;
  }

  /** A version's weights and signature, to load for inference. */
  async load(versionId: string): Promise<{ model: StoredModel; signature: Signature }> {
    const row = await this.db.modelVersion.findUniqueOrThrow({ where: { id: versionId } });
    return { model: storedModelFrom(row), signature: readSignature(row.signature) };
  }
}
