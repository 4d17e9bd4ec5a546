// Checkpoints: a job's weights and optimizer state after an epoch, so that an attempt that dies
// is resumed by the next one from where it stood. Written in the same transaction as the epoch's
// metrics, so the two never disagree.
import { randomUUID } from "node:crypto";
import { Prisma, type Db } from "../db/prisma.ts";
import type { WithinEpoch } from "../engine/train/trainer.ts";
import { storedModelFrom, type StoredModel } from "../engine/model-io.ts";

/** Checkpoints kept per job: enough to resume, without keeping every epoch's weights forever. */
const CHECKPOINTS_KEPT = 2;

export class CheckpointStore {
  constructor(private readonly db: Db) {}

  /**
   * Where the job resumes: after `epoch` whole epochs, and `within` the next one when the latest
   * checkpoint was taken inside it. The metrics of later epochs (trained again) are dropped.
   */
  async resumePoint(jobId: string): Promise<{ epoch: number; within?: WithinEpoch; model: StoredModel } | null> {
    const checkpoint = await this.db.checkpoint.findFirst({ where: { jobId }, orderBy: { epoch: "desc" } });
    if (!checkpoint) return null;
    const within = checkpoint.partial as WithinEpoch | null;
    const epoch = within ? checkpoint.epoch - 1 : checkpoint.epoch;
    await this.db.metricPoint.deleteMany({ where: { jobId, epoch: { gt: epoch } } });
    return { epoch, ...(within ? { within } : {}), model: storedModelFrom(checkpoint) };
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
    // select: the row comes back otherwise, weights and all (megabytes of hex to parse, every epoch).
    await tx.checkpoint.upsert({ where: { jobId_epoch: { jobId, epoch } }, create: { id: randomUUID(), jobId, epoch, ...stored }, update: { ...stored, partial: Prisma.DbNull }, select: { id: true } });
    await tx.checkpoint.deleteMany({ where: { jobId, epoch: { lte: epoch - CHECKPOINTS_KEPT, ...(keep !== undefined ? { not: keep } : {}) } } });
  }

  /**
   * Inside the caller's transaction: a checkpoint taken inside epoch `epoch` after `within.batch`
   * batches (it replaces an earlier one of that epoch; the end of the epoch replaces it in turn).
   */
  static async savePartial(tx: Prisma.TransactionClient, jobId: string, epoch: number, within: WithinEpoch, model: StoredModel): Promise<void> {
    const stored = { topology: model.topology, weightSpecs: model.weightSpecs as object[], weights: model.weights, partial: within as unknown as Prisma.InputJsonValue };
    await tx.checkpoint.upsert({ where: { jobId_epoch: { jobId, epoch } }, create: { id: randomUUID(), jobId, epoch, ...stored }, update: stored, select: { id: true } });
  }
}
