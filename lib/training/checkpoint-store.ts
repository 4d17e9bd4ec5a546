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

  /** Inside the caller's transaction: an epoch's metrics and checkpoint, pruning older checkpoints. Idempotent per epoch. */
  static async saveEpoch(tx: Prisma.TransactionClient, jobId: string, epoch: number, metrics: Record<string, number>, model: StoredModel): Promise<void> {
    await tx.metricPoint.createMany({ data: Object.entries(metrics).map(([name, value]) => ({ jobId, epoch, name, value })), skipDuplicates: true });
    const stored = { topology: model.topology, weightSpecs: model.weightSpecs as object[], weights: model.weights };
    await tx.checkpoint.upsert({ where: { jobId_epoch: { jobId, epoch } }, create: { id: randomUUID(), jobId, epoch, ...stored }, update: stored });
    await tx.checkpoint.deleteMany({ where: { jobId, epoch: { lte: epoch - CHECKPOINTS_KEPT } } });
  }
}
