// Model versions: what a successful training job leaves behind (weights, signature, metrics),
// numbered per model. The one writer and reader of the ModelVersion table: training registers
// versions through it, serving finds and loads them through it.
import { randomUUID } from "node:crypto";
import type { Db, Prisma } from "../db/prisma.ts";
import { storedModelFrom, type StoredModel } from "../engine/model-io.ts";
import { ConflictError, NotFoundError } from "../errors.ts";
import type { Batching, ModelVersionView, OnnxStatus } from "./model-schema.ts";
import { readSignature, type Signature } from "./signature.ts";
import type { OnnxCheck } from "./export/onnx/onnx-check.ts";

export interface NewVersion {
  tenantId: string;
  modelId: string;
  /** The job that trained it: one version per job, so registering twice is a no-op. */
  jobId: string;
  signature: Signature;
  model: StoredModel;
  metrics: Record<string, number>;
  /** Its ONNX check (onnx-check.ts), when one ran; otherwise the first inference thread to load it checks it. */
  onnx?: OnnxCheck | null;
}

const ONNX_FACTS = { status: true, opset: true, maxRelativeError: true, reason: true, checkedAt: true } as const;
const VIEW = {
  version: true, jobId: true, signature: true, metrics: true, sizeBytes: true, createdAt: true,
  job: { select: { datasetId: true } }, aliases: { select: { name: true }, orderBy: { name: "asc" } },
  onnx: { select: ONNX_FACTS },
} as const;
type OnnxFacts = { status: string; opset: number; maxRelativeError: number | null; reason: string | null; checkedAt: Date };
type ViewRow = { version: number; jobId: string | null; signature: unknown; metrics: unknown; sizeBytes: number; createdAt: Date; job: { datasetId: string } | null; aliases: { name: string }[]; onnx: OnnxFacts | null };

/** A version as the API describes it; what serves it (`runtime`) is the serving layer's answer, asked by the caller. */
export type StoredVersionView = Omit<ModelVersionView, "runtime" | "exports">;
const toView = (r: ViewRow): StoredVersionView => ({
  version: r.version, jobId: r.jobId, datasetId: r.job?.datasetId ?? null, signature: readSignature(r.signature), metrics: r.metrics as Record<string, number>,
  sizeBytes: r.sizeBytes, aliases: r.aliases.map((a) => a.name), createdAt: r.createdAt.toISOString(),
  onnx: r.onnx
    ? { status: r.onnx.status as OnnxStatus, opset: r.onnx.opset, maxRelativeError: r.onnx.maxRelativeError, reason: r.onnx.reason, checkedAt: r.onnx.checkedAt.toISOString() }
    : { status: "unchecked", opset: null, maxRelativeError: null, reason: null, checkedAt: null },
});

const onnxRow = (c: OnnxCheck) => ({ status: c.status, opset: c.opset, maxRelativeError: c.maxRelativeError, reason: c.reason, model: c.model ? new Uint8Array(c.model) : null });

export interface VersionRef {
  id: string;
  version: number;
}

/** Which version a request means: the model's default (its default alias, else the latest), a number, or an alias. */
export type VersionTarget = { kind: "default" } | { kind: "version"; version: number } | { kind: "alias"; alias: string };

/** What serving needs to call a version without reading it again: its id, number, signature and output shapes (-1 for a free dimension). */
export interface ResolvedVersion extends VersionRef {
  signature: Signature;
  outputShapes: number[][];
  /** The model's own batching, when it has one (cached with the lookup). */
  batching?: Batching;
  /** Its ONNX check's outcome; undefined while unchecked. */
  onnx?: OnnxStatus;
}

export class ModelVersionRepository {
  constructor(private readonly db: Db) {}

  /**
   * Registers a version inside the caller's transaction, numbered after the model's latest, and
   * returns its number. A job's version is registered once (registering it again returns the
   * first); an imported version has no job. Two versions of one model may land together: the
   * unique (model, version) refuses the second with P2002, and the caller retries its transaction.
   */
  static async register(tx: Prisma.TransactionClient, v: NewVersion | (Omit<NewVersion, "jobId"> & { jobId: null })): Promise<number> {
    if (v.jobId !== null) {
      const existing = await tx.modelVersion.findUnique({ where: { jobId: v.jobId }, select: { version: true } });
      if (existing) return existing.version;
    }
    const last = await tx.modelVersion.findFirst({ where: { modelId: v.modelId }, orderBy: { version: "desc" }, select: { version: true } });
    const version = (last?.version ?? 0) + 1;
    await tx.modelVersion.create({
      data: {
        id: randomUUID(), tenantId: v.tenantId, modelId: v.modelId, version, jobId: v.jobId,
        signature: v.signature as object, topology: v.model.topology, weightSpecs: v.model.weightSpecs as object[], weights: v.model.weights, sizeBytes: v.model.weights.byteLength, metrics: v.metrics,
        ...(v.onnx ? { onnx: { create: onnxRow(v.onnx) } } : {}),
      },
      // Not the row back: its weights would come back too.
      select: { id: true },
    });
    return version;
  }

  /**
   * The version a target means, with what serving needs to call it. The version lookup cache in
   * lib/serving calls this on a miss; a default alias that points nowhere cannot happen (an alias
   * that is a model's default is not deleted).
   */
  async resolve(tenantId: string, modelName: string, target: VersionTarget): Promise<ResolvedVersion> {
    const model = await this.db.model.findUnique({ where: { tenantId_name: { tenantId, name: modelName } }, select: { id: true, defaultAlias: true, outputs: true, batching: true } });
    if (!model) throw new NotFoundError("model", modelName);
    const outputShapes = (model.outputs as { shape: (number | null)[] }[]).map((o) => o.shape.map((d) => d ?? -1));
    const select = { id: true, version: true, signature: true, onnx: { select: { status: true } } } as const;
    let row: { id: string; version: number; signature: unknown; onnx: { status: string } | null } | null;
    const alias = target.kind === "alias" ? target.alias : target.kind === "default" ? model.defaultAlias : null;
    if (alias !== null) {
      row = (await this.db.modelAlias.findUnique({ where: { modelId_name: { modelId: model.id, name: alias } }, select: { version: { select } } }))?.version ?? null;
      if (!row) throw new NotFoundError("model alias", `${modelName}/${alias}`);
    } else if (target.kind === "version") {
      row = await this.db.modelVersion.findUnique({ where: { modelId_version: { modelId: model.id, version: target.version } }, select });
      if (!row) throw new NotFoundError("model version", `${modelName}/${target.version}`);
    } else {
      row = await this.db.modelVersion.findFirst({ where: { modelId: model.id }, orderBy: { version: "desc" }, select });
      if (!row) throw new ConflictError(`model '${modelName}' has no trained version yet; train it with POST /v1/training-jobs`);
    }
    return {
      id: row.id, version: row.version, signature: readSignature(row.signature), outputShapes,
      ...(model.batching ? { batching: model.batching as Batching } : {}),
      ...(row.onnx ? { onnx: row.onnx.status as OnnxStatus } : {}),
    };
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

  /** A model's version numbers, newest first. */
  async numbers(tenantId: string, modelName: string): Promise<number[]> {
    const model = await this.modelId(tenantId, modelName);
    const rows = await this.db.modelVersion.findMany({ where: { modelId: model }, select: { version: true }, orderBy: { version: "desc" }, take: 1000 });
    return rows.map((r) => r.version);
  }

  /** The versions of a model, newest first, without their weights. */
  async list(tenantId: string, modelName: string): Promise<StoredVersionView[]> {
    const model = await this.modelId(tenantId, modelName);
    const rows = await this.db.modelVersion.findMany({ where: { modelId: model }, select: VIEW, orderBy: { version: "desc" }, take: 1000 });
    return rows.map(toView);
  }

  /** One version's description: its signature (with the fitted preprocessing) and metrics. */
  async describe(tenantId: string, modelName: string, version: number): Promise<StoredVersionView> {
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

  /** A version's weights and signature, to load for inference or export. */
  async load(versionId: string): Promise<{ model: StoredModel; signature: Signature }> {
    const row = await this.db.modelVersion.findUniqueOrThrow({ where: { id: versionId }, select: { topology: true, weightSpecs: true, weights: true, signature: true } });
    return { model: storedModelFrom(row), signature: readSignature(row.signature) };
  }

  /** A version's ONNX check with the checked bytes; null while unchecked. */
  async loadOnnx(versionId: string): Promise<{ status: OnnxStatus; model: Uint8Array | null } | null> {
    const row = await this.db.modelVersionOnnx.findUnique({ where: { versionId }, select: { status: true, model: true } });
    return row ? { status: row.status as OnnxStatus, model: row.model } : null;
  }

  /** Records a check made after registration (a version imported, or older than the checks); the first one recorded stays. */
  async recordOnnx(versionId: string, check: OnnxCheck): Promise<void> {
    await this.db.modelVersionOnnx.upsert({ where: { versionId }, create: { versionId, ...onnxRow(check) }, update: {}, select: { versionId: true } });
  }
}
