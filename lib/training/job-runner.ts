// Runs one training job, worker side. Idempotent and resumable: it claims the job in Postgres,
// resumes from the job's latest checkpoint if an earlier attempt died, writes each epoch's metrics
// and a checkpoint in one transaction, and registers a model version when done.
import { randomUUID } from "node:crypto";
import * as tf from "@tensorflow/tfjs";
import type { Redis } from "ioredis";
import { z } from "zod";
import { DatasetService, toTrainData } from "../data/dataset-service.ts";
import { Prisma, type Db } from "../db/prisma.ts";
import { loadModel, saveModel, type StoredModel } from "../engine/model-io.ts";
import { deriveSeed, withSeededRandom } from "../engine/seeded-random.ts";
import { compileForTraining, train, TrainingDivergedError, type EpochMetrics } from "../engine/trainer.ts";
import type { Signature } from "../serving/signature.ts";
import { ValidationError } from "../errors.ts";
import { cancelKey } from "../queue/training-queue.ts";
import { buildModel } from "../spec/build-model.ts";
import { modelInputs, modelSpecSchema } from "../spec/model-spec.ts";
import { fitModelToDataset } from "./fit.ts";
import type { Hyperparameters } from "./training-job-schema.ts";

/** Checkpoints kept per job: enough to resume, without keeping every epoch's weights forever. */
const CHECKPOINTS_KEPT = 2;

/** A failure that retrying cannot fix (bad spec or data, diverged loss): fail the job now. */
export class PermanentJobError extends Error {}

/** Another attempt has claimed the job since this one did: this one must stop writing. */
class SupersededError extends Error {}

// Storing a checkpoint moves the whole model (weights and optimizer state) inside a transaction;
// Prisma's 5 s default for interactive transactions is too short for a large one.
const WRITE_TX = { timeout: 120_000, maxWait: 10_000 };

export interface RunContext {
  db: Db;
  redis: Redis;
  queuePrefix: string;
  /** Reports progress to the queue (BullMQ job.updateProgress). */
  progress?: (p: object) => Promise<void>;
  log?: (msg: string) => void;
}

/** skipped: nothing to do (cancelled while queued, or finished). superseded: another attempt took the job over. */
export type RunOutcome = "succeeded" | "cancelled" | "skipped" | "superseded";

export async function runTrainingJob(ctx: RunContext, jobId: string, tenantId: string): Promise<RunOutcome> {
  const { db, redis } = ctx;
  const row = await db.trainingJob.findFirst({ where: { id: jobId, tenantId }, include: { model: true } });
  if (!row) throw new PermanentJobError(`training job ${jobId} does not exist`);
  // The claim numbers this attempt. Every later write checks that number (a fencing token): a
  // worker whose lock expired while it was still alive (a long pause, a network split) finds
  // itself superseded and stops, instead of training on next to the worker that took over.
  const claimed = await db.trainingJob
    .update({
      where: { id: jobId, status: { in: ["queued", "running"] }, cancelRequested: false },
      data: { status: "running", startedAt: row.startedAt ?? new Date(), attempts: { increment: 1 }, error: null },
      select: { attempts: true },
    })
    .catch((err) => {
      if (err instanceof Prisma.PrismaClientKnownRequestError && err.code === "P2025") return null;
      throw err;
    });
  if (!claimed) {
    // Cancelled while queued, or already finished by an earlier attempt: nothing to do.
    if (row.status === "queued" || row.status === "running") await markCancelled(db, jobId);
    return "skipped";
  }
  const attempt = claimed.attempts;

  let model: tf.LayersModel | undefined;
  try {
    const hp = row.hyperparameters as Hyperparameters;
    const spec = parseOrFail(modelSpecSchema, row.model.spec, "model spec");
    const dataset = await new DatasetService(db).loadTensors(tenantId, row.datasetId);
    // The job's model is built (or loaded) below; its stored output shapes are the same, and
    // deciding the fit first fails a job that cannot train before any work.
    const outputShapes = (row.model.outputs as { shape: (number | null)[] }[]).map((o) => o.shape);
    const fit = fitModelToDataset(spec, outputShapes, dataset);
    const data = toTrainData(dataset, fit.inputOrder, fit.outputOrder);

    const checkpoint = await db.checkpoint.findFirst({ where: { jobId }, orderBy: { epoch: "desc" } });
    let startEpoch = 0;
    let metrics = (row.metrics as EpochMetrics | null) ?? {};
    if (checkpoint) {
      model = await loadModel(checkpoint as unknown as StoredModel);
      startEpoch = checkpoint.epoch;
      // Epochs after the checkpoint will be trained again: their old metrics would be duplicates.
      await db.metricPoint.deleteMany({ where: { jobId, epoch: { gt: startEpoch } } });
      ctx.log?.(`job ${jobId}: resuming from the checkpoint of epoch ${startEpoch}`);
    } else {
      model = await withSeededRandom(deriveSeed(hp.seed, 0), () => buildModel(spec).model);
      compileForTraining(model, hp.optimizer, fit.objectives);
    }

    let lastCancelCheck = 0;
    const result = await train(model, data, { ...hp, mode: spec.mode }, fit.objectives, {
      shouldStop: async () => {
        if ((await redis.exists(cancelKey(ctx.queuePrefix, jobId))) === 1) return true;
        // The Redis signal is the fast path; the database flag is the record, checked now and then.
        if (Date.now() - lastCancelCheck > 2000) {
          lastCancelCheck = Date.now();
          const j = await db.trainingJob.findUnique({ where: { id: jobId }, select: { cancelRequested: true } });
          return j?.cancelRequested ?? true;
        }
        return false;
      },
      onEpochEnd: async (epoch, m) => {
        metrics = m;
        const saved = await saveModel(model!, true);
        await db.$transaction(async (tx) => {
          // First, so that the job row stays locked until commit: a claim waits for this epoch's
          // checkpoint, and the attempt that takes over resumes from it.
          await own(tx, jobId, attempt, { epoch, metrics: m });
          await tx.metricPoint.createMany({ data: Object.entries(m).map(([name, value]) => ({ jobId, epoch, name, value })), skipDuplicates: true });
          await tx.checkpoint.upsert({
            where: { jobId_epoch: { jobId, epoch } },
            create: { id: randomUUID(), jobId, epoch, topology: saved.topology, weightSpecs: saved.weightSpecs as object[], weights: saved.weights },
            update: { topology: saved.topology, weightSpecs: saved.weightSpecs as object[], weights: saved.weights },
          });
          await tx.checkpoint.deleteMany({ where: { jobId, epoch: { lte: epoch - CHECKPOINTS_KEPT } } });
        }, WRITE_TX);
        await ctx.progress?.({ epoch, epochs: hp.epochs, metrics: m });
      },
    }, startEpoch);

    if (result.stopped) {
      await markCancelled(db, jobId);
      return "cancelled";
    }
    const signature: Signature = {
      inputs: modelInputs(spec).map((i, k) => ({ name: i.name, shape: data.inputs[k].shape })),
      outputs: fit.objectives.map((o, k) => ({ name: o.name, task: data.targets[k].task, classes: data.targets[k].classes })),
    };
    await registerVersion(db, { ...row, attempt }, model, signature, metrics);
    return "succeeded";
  } catch (err) {
    if (err instanceof SupersededError) {
      ctx.log?.(`job ${jobId}: attempt ${attempt} was superseded by a later one; stopping`);
      return "superseded";
    }
    if (err instanceof ValidationError || err instanceof TrainingDivergedError || err instanceof PermanentJobError) {
      throw new PermanentJobError(err.message);
    }
    throw err;
  } finally {
    model?.dispose();
  }
}

function parseOrFail<T>(schema: z.ZodType<T>, value: unknown, what: string): T {
  const r = schema.safeParse(value);
  if (!r.success) throw new PermanentJobError(`the stored ${what} is no longer valid: ${r.error.issues[0]?.message}`);
  return r.data;
}

async function markCancelled(db: Db, jobId: string) {
  await db.trainingJob.updateMany({ where: { id: jobId, status: { in: ["queued", "running"] } }, data: { status: "cancelled", finishedAt: new Date() } });
}

async function registerVersion(
  db: Db,
  row: { id: string; tenantId: string; modelId: string; attempt: number },
  model: tf.LayersModel,
  signature: Signature,
  metrics: EpochMetrics,
) {
  const saved = await saveModel(model, false);
  // Two jobs of one model may finish together; the unique (model, version) decides, and the loser retries.
  for (let tries = 1; ; tries++) {
    try {
      await db.$transaction(async (tx) => {
        await own(tx, row.id, row.attempt, { status: "succeeded", finishedAt: new Date(), metrics });
        const existing = await tx.modelVersion.findUnique({ where: { jobId: row.id }, select: { id: true } });
        if (!existing) {
          const last = await tx.modelVersion.findFirst({ where: { modelId: row.modelId }, orderBy: { version: "desc" }, select: { version: true } });
          await tx.modelVersion.create({
            data: {
              id: randomUUID(), tenantId: row.tenantId, modelId: row.modelId, version: (last?.version ?? 0) + 1, jobId: row.id,
              signature: signature as object, topology: saved.topology, weightSpecs: saved.weightSpecs as object[], weights: saved.weights, metrics,
            },
          });
        }
      }, WRITE_TX);
      return;
    } catch (err) {
      const conflict = err instanceof Prisma.PrismaClientKnownRequestError && err.code === "P2002";
      if (!conflict || tries >= 6) throw err;
    }
  }
}

/** Writes `data` to the job if `attempt` still owns it (and locks its row to the end of `tx`); otherwise SupersededError. */
async function own(tx: Prisma.TransactionClient, jobId: string, attempt: number, data: Prisma.TrainingJobUpdateManyMutationInput) {
  const { count } = await tx.trainingJob.updateMany({ where: { id: jobId, attempts: attempt }, data });
  if (count === 0) throw new SupersededError(`job ${jobId}: attempt ${attempt} no longer owns it`);
}

/** Records a final failure (permanent, or the last retry of a transient one). */
export async function markFailed(db: Db, jobId: string, message: string) {
  await db.trainingJob.updateMany({
    where: { id: jobId, status: { in: ["queued", "running"] } },
    data: { status: "failed", error: message.slice(0, 2000), finishedAt: new Date() },
  });
}
