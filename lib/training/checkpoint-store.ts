// Checkpoints: a job's weights and optimizer state after an epoch, so that an attempt that dies
// is resumed by the next one from where it stood. Written in the same transaction as the epoch's
// metrics, so the two never disagree.
import { randomUUID } from "node:crypto";
import type { Db, Prisma } from "../db/prisma.ts";
import { storedModelFrom, type StoredModel } from "../engine/model-io.ts";

/** Checkpoints kept per job: enough to resume, without keeping every epoch's weights forever. */
const CHECKPOINTS_KEPT = 2;

export class CheckpointStore {
  constructor(private readonly db: Db) {}

  /** The job's latest checkpoint, if any; the metrics of later epochs (trained again on resume) are dropped. */
  async resumePoint(jobId: string): Promise<{ epoch: number; model: StoredModel } | null> {
    const checkpoint = await this.db.checkpoint.findFirst({ where: { jobId }, orderBy: { epoch: "desc" } });
    if (!checkpoint) return null;
    await this.db.metricPoint.deleteMany({ where: { jobId, epoch: { gt: checkpoint.epoch } } });
    return { epoch: checkpoint.epoch, model: storedModelFrom(checkpoint) };
  }

  /** The checkpoint of one epoch (the best one, kept for restoreBestWeights), if it is still stored. */
  async at(jobId: string, epoch: number): Promise<StoredModel | null> {
    const checkpoint = await this.db.checkpoint.findUnique({ where: { jobId_epoch: { jobId, epoch } } });
    return checkpoint && storedModelFrom(checkpoint);
  }

  /** One epoch's metrics (early stopping's best, which the version takes). */
  async metricsAt(jobId: string, epoch: number): Promise<Record<string, number>> {
    const points = await this.db.metricPoint.findMany({ where: { jobId, epoch }, select: { name: true, value: true } });
    return Object.fromEntries(points.map((p) => [p.name, p.value]));
  }

  /** Epochs 1..`upTo`'s metrics, in order: what a resumed schedule and early stopping replay. */
  async history(jobId: string, upTo: number): Promise<Record<string, number>[]> {
    const points = await this.db.metricPoint.findMany({ where: { jobId, epoch: { lte: upTo } }, select: { epoch: true, name: true, value: true } });
    const epochs = Array.from({ length: upTo }, () => ({}) as Record<string, number>);
    for (const p of points) epochs[p.epoch - 1][p.name] = p.value;
    return epochs;
  }

  /**
   * Inside the caller's transaction: an epoch's metrics and checkpoint, pruning older checkpoints
   * but the one of epoch `keep` (early stopping's best, whose weights the version may take).
   * Idempotent per epoch.
   */
  static async saveEpoch(tx: Prisma.TransactionClient, jobId: string, epoch: number, metrics: Record<string, number>, model: StoredModel, keep?: number): Promise<void> {
    await tx.metricPoint.createMany({ data: Object.entries(metrics).map(([name, value]) => ({ jobId, epoch, name, value })), skipDuplicates: true });
    const stored = { topology: model.topology, weightSpecs: model.weightSpecs as object[], weights: model.weights };
    await tx.checkpoint.upsert({ where: { jobId_epoch: { jobId, epoch } }, create: { id: randomUUID(), jobId, epoch, ...stored }, update: stored });
    await tx.checkpoint.deleteMany({ where: { jobId, epoch: { lte: epoch - CHECKPOINTS_KEPT, ...(keep !== undefined ? { not: keep } : {}) } } });
  }
}
