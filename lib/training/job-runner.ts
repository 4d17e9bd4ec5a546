// Runs one training job, worker side: orchestration only. Idempotent and resumable: it claims the
// job, resumes from the job's latest checkpoint if an earlier attempt died, writes each epoch's
// metrics and checkpoint in one transaction, and registers a model version when done.
import * as tf from "@tensorflow/tfjs";
import type { Redis } from "ioredis";
import { z } from "zod";
import { DatasetRepository } from "../data/dataset-repository.ts";
import { unpack } from "../data/packing.ts";
import { perturbationBounds } from "../data/preprocessing/preprocessor.ts";
import { Prisma, type Db } from "../db/prisma.ts";
import { buildModel } from "../engine/build/build-model.ts";
import { loadModel, saveModel, type StoredModel } from "../engine/model-io.ts";
import { deriveSeed, withSeededRandom } from "../engine/seeded-random.ts";
import { evaluateRowsReport } from "../engine/train/metrics.ts";
import type { ConfusionMatrix } from "../engine/train/output-scores.ts";
import { compileForTraining, train, TrainingDivergedError, TrainingSetupError, type EpochMetrics } from "../engine/train/trainer.ts";
import { isDependencyDown, ValidationError } from "../errors.ts";
import { modelInputs, modelSpecSchema } from "../model-spec/model-spec-schema.ts";
import { cancelKey } from "../queue/queues.ts";
import type { MaskKeeper } from "../engine/probes/pruning.ts";
import { checkOnnx } from "../registry/export/onnx/onnx-check.ts";
import { keeperFromZeros, prune, sparsityOf } from "./pruning-step.ts";
import { ModelVersionRepository } from "../registry/model-version-repository.ts";
import type { Signature } from "../registry/signature.ts";
import { CheckpointStore } from "./checkpoint-store.ts";
import { DependencyPatience } from "./dependency-patience.ts";
import { prepareData } from "./data-preparation.ts";
import { matchModelToDataset } from "./dataset-matching.ts";
import { DiagnosticsStore } from "./diagnostics-store.ts";
import { ashaVerdict } from "./studies/asha.ts";
import { JobEventPublisher, ProgressReporter, type JobEvent } from "./job-events.ts";
import { claimJob, markCancelled, SupersededError, writeAsOwner } from "./training-job-repository.ts";
import type { Hyperparameters } from "./training-job-schema.ts";

export { markFailed } from "./training-job-repository.ts";

/** A failure that retrying cannot fix (bad spec or data, diverged loss): fail the job now. */
export class PermanentJobError extends Error {}

// Storing a checkpoint moves the whole model (weights and optimizer state) inside a transaction;
// Prisma's 5 s default for interactive transactions is too short for a large one.
const WRITE_TX = { timeout: 120_000, maxWait: 10_000 };
// How often a running job looks for the fast cancel signal in Redis (the database flags: every 500 ms).
const SIGNAL_CHECK_MS = 50;
// How long the end of an attempt waits for its last event to reach Redis (it never waits for an outage).
const FINAL_EVENT_WAIT_MS = 2000;

export interface RunContext {
  db: Db;
  redis: Redis;
  queuePrefix: string;
  /** Called after each epoch is stored (tests use it to act between epochs). */
  progress?: (p: { epoch: number; epochs: number; metrics: EpochMetrics }) => Promise<void>;
  log?: (msg: string) => void;
  /** The job fails when this many attempts in a row, this one included, have not finished an epoch (default 5). */
  maxAttemptsWithoutProgress?: number;
  /** How long this attempt waits for an unreachable database before giving up (default 5 minutes). */
  dependencyWaitMs?: number;
  /** Aborted when the worker shuts down: the attempt checkpoints at the next batch boundary and hands the job back. */
  signal?: AbortSignal;
  /** A checkpoint inside an epoch once this long has passed since the last one (0: only at the end of epochs). */
  checkpointIntervalMs?: number;
  /** The most threads a job may train on (TRAINYARD_TRAINING_THREADS); default 1. */
  maxThreads?: number;
  /** Jobs of one tenant that may run at once (0: no limit); a job over it waits queued, and says why. */
  maxRunningPerTenant?: number;
}

/**
 * skipped: nothing to do (cancelled or paused while queued, or finished). superseded: another
 * attempt took the job over. paused: paused on request, with a checkpoint. handedBack: the worker
 * is shutting down; the job is checkpointed and queued again. waiting: over its tenant's limit of
 * running jobs; the caller delays it.
 */
export type RunOutcome = "succeeded" | "cancelled" | "skipped" | "superseded" | "paused" | "handedBack" | "waiting";

export async function runTrainingJob(ctx: RunContext, jobId: string, tenantId: string): Promise<RunOutcome> {
  const events = new JobEventPublisher(ctx.redis, ctx.queuePrefix);
  // Events go out as they happen, unawaited and in order (one connection); an attempt's last one is
  // awaited briefly, so that it leaves before the process moves on. None of them can fail the job.
  const emit = (event: JobEvent) => void events.publish(jobId, event);
  const finish = async (event: JobEvent) => {
    // Sent first on the same connection, so done once the event is (or dropped with it): never awaited on its own.
    void events.clearProgress(jobId);
    await events.publishWithin(jobId, event, FINAL_EVENT_WAIT_MS);
  };
  try {
    return await runAttempt(ctx, jobId, tenantId, events, emit, finish);
  } catch (err) {
    // The caller records the failure (markFailed); the event says it now.
    if (err instanceof PermanentJobError && !(err instanceof MissingJobError)) await finish({ type: "status", data: { status: "failed", error: err.message.slice(0, 2000) } });
    else if (!(err instanceof PermanentJobError)) emit({ type: "warning", data: { code: "attempt-failed", message: `the attempt failed and will be retried from the last checkpoint: ${(err as Error).message}` } });
    throw err;
  }
}

class MissingJobError extends PermanentJobError {}

async function runAttempt(ctx: RunContext, jobId: string, tenantId: string, events: JobEventPublisher, emit: (e: JobEvent) => void, finish: (e: JobEvent) => Promise<void>): Promise<RunOutcome> {
  const { db, redis } = ctx;
  const patience = new DependencyPatience(ctx.dependencyWaitMs ?? 300_000, (m) => ctx.log?.(`job ${jobId}: ${m}`));
  const row = await patience.run("loading the job", () => db.trainingJob.findFirst({ where: { id: jobId, tenantId }, include: { model: true } }));
  if (!row) throw new MissingJobError(`training job ${jobId} does not exist`);
  // Every later write of this attempt names its number: a worker whose lock expired while it was
  // still alive finds itself superseded and stops, instead of training on next to its successor.
  const claim = await patience.run("claiming the job", () => claimJob(db, jobId, ctx.maxRunningPerTenant ?? 0));
  if (claim && "waiting" in claim) {
    // Said once per reason, not on every recheck.
    if (claim.waiting !== row.waitingReason) emit({ type: "status", data: { status: "queued", reason: claim.waiting } });
    return "waiting";
  }
  if (!claim) {
    // Cancelled while queued, or already finished by an earlier attempt: nothing to do.
    if (row.status === "queued" || row.status === "running") {
      await markCancelled(db, jobId);
      await finish({ type: "status", data: { status: "cancelled", cancelRequested: true } });
    }
    return "skipped";
  }
  const { attempt } = claim;
  const claimedAt = Date.now();
  emit({ type: "status", data: { status: "running", attempt } });
  if (attempt > 1) emit({ type: "warning", data: { code: "resumed", message: `attempt ${attempt - 1} stopped before finishing; attempt ${attempt} resumes at epoch ${claim.epoch}` } });
  // Deaths that leave progress behind do not use up the job's life; only attempts that end
  // without finishing an epoch count, so a job that cannot run fails, and says why.
  const limit = ctx.maxAttemptsWithoutProgress ?? 5;
  if (claim.attemptsWithoutProgress + 1 > limit) {
    throw new PermanentJobError(
      `the job made no progress in ${claim.attemptsWithoutProgress} attempts in a row (each stopped before finishing an epoch: its worker or process died, or it failed); it stands at epoch ${claim.epoch}`,
    );
  }

  let model: tf.LayersModel | undefined;
  try {
    const hp = row.hyperparameters as Hyperparameters;
    const spec = parseOrFail(modelSpecSchema, row.model.spec, "model spec");
    const loadStarted = Date.now();
    const dataset = await patience.run("loading the dataset", () => new DatasetRepository(db).loadTensors(tenantId, row.datasetId));
    const megabytes = (dataset.x.byteLength + dataset.y.byteLength) / 1e6;
    ctx.log?.(`job ${jobId}: loaded the dataset: ${dataset.rows} rows, ${megabytes.toFixed(1)} MB in ${((Date.now() - loadStarted) / 1000).toFixed(2)} s`);
    // The job's model is built (or loaded) below; its stored output shapes are the same, and
    // deciding the match first fails a job that cannot train before any work.
    const outputShapes = (row.model.outputs as { shape: (number | null)[] }[]).map((o) => o.shape);
    const match = matchModelToDataset(spec, outputShapes, dataset, hp.preprocessing);
    // Split, and preprocessing fitted on the training rows: the same on every attempt.
    const prepared = prepareData(dataset, unpack(dataset, match.inputOrder, match.outputOrder), match.inputOrder, hp);
    const { data, split } = prepared;

    const checkpoints = new CheckpointStore(db);
    const resume = await patience.run("loading the checkpoint", () => checkpoints.resumePoint(jobId));
    const startEpoch = resume?.epoch ?? 0;
    const within = resume?.within;
    // What a schedule and early stopping replay to stand where an uninterrupted run would.
    const history = startEpoch && (hp.lrSchedule || hp.earlyStopping) ? await patience.run("loading the metrics", () => checkpoints.history(jobId, startEpoch)) : undefined;
    // And the diagnostics so far, so that trends span the interruption and no warning is raised twice.
    const diagnosticsHistory = startEpoch ? (await patience.run("loading the diagnostics", () => new DiagnosticsStore(db).series(jobId))).epochs : undefined;
    let metrics = (row.metrics as EpochMetrics | null) ?? {};
    if (resume) {
      model = await loadModel(resume.model);
      ctx.log?.(`job ${jobId}: resuming from the checkpoint of epoch ${startEpoch}${within ? `, batch ${within.batch} of epoch ${startEpoch + 1}` : ""}`);
    } else {
      model = await withSeededRandom(deriveSeed(hp.seed, 0), () => buildModel(spec).model);
      if (hp.initFrom?.versionId) {
        const source = await patience.run("loading the version to fine-tune from", () => new ModelVersionRepository(db).load(hp.initFrom!.versionId!));
        const moved = await transferWeights(model, source.model, hp.freeze ?? []);
        ctx.log?.(`job ${jobId}: started from version weights for ${moved.length} layer(s): ${moved.join(", ")}`);
      }
      compileForTraining(model, hp.optimizer, match.objectives);
    }
    // Frozen layers train nothing (a checkpoint keeps the flag too; set again, whatever it holds).
    for (const name of hp.freeze ?? []) model.getLayer(name).trainable = false;
    // Pruning: measured and done before the first epoch; a resumed job's zeros are its masks.
    let keeper: MaskKeeper | undefined;
    if (hp.prune && resume) keeper = keeperFromZeros(model);
    else if (hp.prune) {
      const pruned = prune(model, data, split, match.objectives, hp);
      keeper = pruned.keeper;
      await patience.run("storing the pruning measurements", () => writeAsOwner(db, jobId, attempt, { pruning: pruned.report as object }));
      ctx.log?.(`job ${jobId}: pruned by ${hp.prune.criterion} to ${(pruned.report.achieved * 100).toFixed(1)}% sparsity`);
    }

    let lastCancelCheck = 0;
    let lastSignalCheck = 0;
    let lastCheckpoint = Date.now();
    let suspendFor: "pause" | "shutdown" | undefined;
    let bestEpoch: number | undefined;
    const progress = new ProgressReporter(events, jobId, { epochs: hp.epochs, trainRows: split.train.length, startedAt: row.startedAt?.getTime() ?? claimedAt });
    // Adversarial training perturbs preprocessed rows: ε from raw units, per value.
    const adversarial = hp.adversarial && { fraction: hp.adversarial.fraction, ...perturbationBounds(prepared.inputs[0].fitted, prepared.inputs[0].rawShape, hp.adversarial.epsilon) };
    const threads = threadsFor(hp, model, ctx.maxThreads ?? 1);
    if (typeof hp.threads === "number" && hp.threads > threads) emit({ type: "warning", data: { code: "threads-capped", message: `asked for ${hp.threads} threads; this worker allows ${threads}` } });
    // The epoch's checkpoint write runs while the next epoch trains: a Postgres transaction of a
    // few megabytes took 100–250 ms, a fifth of a short epoch (bench/train-compare.ts, MLP batch 512).
    let pendingWrite: Promise<void> = Promise.resolve();
    let writeFailed: unknown;
    const settleWrites = async () => {
      await pendingWrite;
      if (writeFailed) throw writeFailed;
    };
    const result = await train(model, data, { ...hp, threads, mode: spec.mode, split: { train: split.train, validation: split.validation }, history, diagnosticsHistory, classWeights: classWeightsFor(hp, dataset, match.outputOrder, data, split.train), adversarial }, match.objectives, {
      shouldStop: async () => {
        // The last epoch's write failed (superseded, Postgres gone for too long): stop here.
        if (writeFailed) throw writeFailed;
        // The worker is shutting down: checkpoint here and hand the job back, so that no batch is lost.
        if (ctx.signal?.aborted) {
          suspendFor = "shutdown";
          return "suspend";
        }
        // Redis down: cannot see the fast signal now; the database flag below still counts. Asked
        // every 50 ms, not every batch: a round trip a batch was 5% of a LeNet-5 epoch.
        if (Date.now() - lastSignalCheck >= SIGNAL_CHECK_MS) {
          lastSignalCheck = Date.now();
          if ((await redis.exists(cancelKey(ctx.queuePrefix, jobId)).catch(() => 0)) === 1) return "cancel";
        }
        // The Redis signal is the fast path; the database flags are the record, checked now and then.
        // An unreachable database stops nothing: the next epoch's write waits for it anyway.
        if (Date.now() - lastCancelCheck > 500) {
          lastCancelCheck = Date.now();
          const j = await db.trainingJob.findUnique({ where: { id: jobId }, select: { cancelRequested: true, pauseRequested: true } }).catch((err) => {
            if (isDependencyDown(err)) return { cancelRequested: false, pauseRequested: false };
            throw err;
          });
          if (!j || j.cancelRequested) return "cancel";
          if (j.pauseRequested) {
            suspendFor = "pause";
            return "suspend";
          }
        }
        // A long epoch is checkpointed now and then: a worker that dies in it loses minutes, not the epoch.
        if (ctx.checkpointIntervalMs && Date.now() - lastCheckpoint > ctx.checkpointIntervalMs) return "checkpoint";
        return false;
      },
      onCheckpoint: async (epoch, at) => {
        const saved = await saveModel(model!, true);
        await settleWrites();
        await patience.run(`storing a checkpoint inside epoch ${epoch}`, () =>
          db.$transaction(async (tx) => {
            await writeAsOwner(tx, jobId, attempt, { attemptsWithoutProgress: 0 });
            await CheckpointStore.savePartial(tx, jobId, epoch, at, saved);
          }, WRITE_TX),
        );
        lastCheckpoint = Date.now();
        ctx.log?.(`job ${jobId}: checkpoint inside epoch ${epoch}, after batch ${at.batch}`);
      },
      onBatchEnd: (epoch, batch, batches, rows) => {
        // The optimizer's step may move pruned weights: back to zero before the next batch.
        keeper?.reapply();
        return progress.batch(epoch, batch, batches, rows);
      },
      onEpochEnd: async (epoch, m, verdict, health) => {
        metrics = m;
        bestEpoch = verdict?.bestEpoch;
        progress.epochEnd();
        const saved = await saveModel(model!, true);
        await settleWrites();
        const write = async () => {
          await patience.run(`storing epoch ${epoch}`, () =>
            db.$transaction(async (tx) => {
              // First, so that the job row stays locked until commit: a claim waits for this epoch's
              // checkpoint, and the attempt that takes over resumes from it.
              const waited = patience.takeReport(epoch, attempt);
              await writeAsOwner(tx, jobId, attempt, { epoch, metrics: m, attemptsWithoutProgress: 0, ...(waited ? { lastInterruption: waited } : {}) });
              await CheckpointStore.saveEpoch(tx, jobId, epoch, m, saved, bestEpoch);
              if (health) await DiagnosticsStore.saveEpoch(tx, jobId, { ...health.diagnostics, ...(health.confusion ? { confusion: health.confusion } : {}) }, health.warnings);
            }, WRITE_TX),
          );
          for (const w of health?.warnings ?? []) {
            ctx.log?.(`job ${jobId}: ${w.message}`);
            emit({ type: "warning", data: { code: w.kind, message: w.message } });
          }
          lastCheckpoint = Date.now();
          emit({ type: "epoch", data: { epoch, epochs: hp.epochs, metrics: m, ...(bestEpoch !== undefined ? { bestEpoch } : {}) } });
          await ctx.progress?.({ epoch, epochs: hp.epochs, metrics: m });
        };
        // A study's trial: successive halving may end it here (it still succeeds, with this epoch's version).
        if (row.studyId) {
          await write();
          return patience.run(`asking ASHA after epoch ${epoch}`, () => ashaVerdict(db, { jobId, studyId: row.studyId!, epoch, epochs: hp.epochs, metrics: m }));
        }
        // Stored while the next epoch trains (the weights are already copied out): the epoch is
        // durable, and its event sent, a write later; one write at a time, in order.
        pendingWrite = write().catch((err) => void (writeFailed ??= err));
      },
    }, startEpoch, within).finally(() => pendingWrite);
    await settleWrites();

    if (result.suspended) {
      const where = `epoch ${result.suspended.epoch}, batch ${result.suspended.within.batch}`;
      if (suspendFor === "pause") {
        await patience.run("recording the pause", () => writeAsOwner(db, jobId, attempt, { status: "paused", pauseRequested: false }));
        await finish({ type: "status", data: { status: "paused", reason: `paused on request at ${where}; POST :resume to go on` } });
        return "paused";
      }
      // Queued again (the caller moves the queue's job back to waiting): not a death, so the next claim counts no lost attempt.
      const reason = `attempt ${attempt} was handed back at ${where} by a worker shutting down; the next one resumes there`;
      await patience.run("handing the job back", () => writeAsOwner(db, jobId, attempt, { status: "queued", lastInterruption: reason }));
      await finish({ type: "status", data: { status: "queued", reason } });
      return "handedBack";
    }
    if (result.stopped) {
      await patience.run("recording the cancellation", () => markCancelled(db, jobId));
      await finish({ type: "status", data: { status: "cancelled", cancelRequested: true } });
      return "cancelled";
    }
    // Early stopping's best epoch: its weights (kept in its checkpoint) become the version's.
    let stoppedEarly: string | undefined;
    if (result.earlyStop) stoppedEarly = `${result.earlyStop.reason}; stopped after epoch ${result.earlyStop.epoch} of ${hp.epochs}`;
    if (hp.earlyStopping?.restoreBestWeights && bestEpoch !== undefined && bestEpoch !== result.lastEpoch) {
      const best = await patience.run("loading the best checkpoint", () => checkpoints.at(jobId, bestEpoch!));
      if (best) {
        const restored = await loadModel(best);
        model.setWeights(restored.getWeights());
        restored.dispose();
        metrics = await patience.run("loading the metrics", () => checkpoints.metricsAt(jobId, bestEpoch!));
        stoppedEarly = `${stoppedEarly ?? `the best epoch was ${bestEpoch} of ${result.lastEpoch}`}; the version has the weights of epoch ${bestEpoch}`;
      }
    }
    // Held-out rows are scored once, at the end: they never steered training.
    let testConfusion: ConfusionMatrix[] | undefined;
    if (split.test.length) {
      const report = evaluateRowsReport(model, data, split.test, match.objectives, hp.batchSize, "test_");
      metrics = { ...metrics, ...report.metrics };
      if (report.confusion.length) testConfusion = report.confusion;
    }
    const signature: Signature = {
      inputs: modelInputs(spec).map((i, k) => ({
        name: i.name,
        shape: prepared.inputs[k].rawShape,
        ...(prepared.inputs[k].fitted ? { preprocessing: prepared.inputs[k].fitted } : {}),
      })),
      outputs: match.objectives.map((o, k) => ({ name: o.name, task: match.labels[k].task, classes: match.labels[k].classes })),
    };
    // Pruned and not fine-tuned (epochs 0): the version's metrics are the pruned weights' own.
    if (hp.epochs === 0 && split.validation.length) metrics = { ...evaluateRowsReport(model, data, split.validation, match.objectives, hp.batchSize, "val_").metrics, ...metrics };
    if (keeper) {
      metrics = { ...metrics, sparsity: sparsityOf(model!) };
      keeper.dispose();
    }
    await patience.run("registering the version", () => registerVersion(db, { ...row, attempt }, model!, signature, metrics, { stoppedEarly, testConfusion }));
    await finish({ type: "status", data: { status: "succeeded", metrics, ...(stoppedEarly ? { stoppedEarly } : {}) } });
    return "succeeded";
  } catch (err) {
    if (err instanceof SupersededError) {
      ctx.log?.(`job ${jobId}: attempt ${attempt} was superseded by a later one; stopping`);
      return "superseded";
    }
    if (err instanceof ValidationError || err instanceof TrainingDivergedError || err instanceof TrainingSetupError || err instanceof PermanentJobError) {
      throw new PermanentJobError(err.message);
    }
    throw err;
  } finally {
    model?.dispose();
  }
}

/**
 * The job's class weights as the trainer takes them: per model output, per class id; only the
 * output trained on the dataset's first set of labels is weighted. "balanced" is n / (K · count)
 * over the training rows (a class absent from them weighs 1).
 */
function classWeightsFor(hp: Hyperparameters, dataset: { rows: number; outputs: { name: string; classes: string[] }[] }, outputOrder: string[], data: { targets: { data: ArrayLike<number> }[] }, trainRows: Int32Array): (number[] | undefined)[] | undefined {
  if (!hp.classWeights) return undefined;
  const labels = dataset.outputs[0];
  const k = outputOrder.indexOf(labels.name);
  if (k < 0) return undefined;
  const classes = labels.classes;
  let weights: number[];
  if (hp.classWeights === "balanced") {
    const counts = new Array<number>(classes.length).fill(0);
    const targets = data.targets[k].data;
    // Per row (or per pixel of a mask), the stored class ids of the training rows.
    const perRow = targets.length / dataset.rows;
    for (const r of trainRows) for (let p = 0; p < perRow; p++) counts[targets[r * perRow + p]]++;
    const n = counts.reduce((a, b) => a + b, 0);
    weights = counts.map((c) => (c > 0 ? n / (classes.length * c) : 1));
  } else {
    const named = hp.classWeights;
    weights = classes.map((c) => named[c] ?? 1);
  }
  return outputOrder.map((_, i) => (i === k ? weights : undefined));
}

function parseOrFail<T>(schema: z.ZodType<T>, value: unknown, what: string): T {
  const r = schema.safeParse(value);
  if (!r.success) throw new PermanentJobError(`the stored ${what} is no longer valid: ${r.error.issues[0]?.message}`);
  return r.data;
}

/** Marks the job succeeded and registers its version, in one transaction that this attempt must still own. */
async function registerVersion(
  db: Db,
  row: { id: string; tenantId: string; modelId: string; attempt: number },
  model: tf.LayersModel,
  signature: Signature,
  metrics: EpochMetrics,
  extra: { stoppedEarly?: string; testConfusion?: ConfusionMatrix[] },
) {
  const saved = await saveModel(model, false);
  // Whether ONNX Runtime may serve it (lib/registry/export/onnx/onnx-check.ts): checked now, so
  // the version's metadata says what will serve it before anyone asks it anything.
  const onnx = await checkOnnx(saved, signature);
  // Two jobs of one model may finish together; the unique (model, version) decides, and the loser retries.
  for (let tries = 1; ; tries++) {
    try {
      await db.$transaction(async (tx) => {
        await writeAsOwner(tx, row.id, row.attempt, { status: "succeeded", finishedAt: new Date(), metrics, ...(extra.stoppedEarly ? { stoppedEarly: extra.stoppedEarly } : {}), ...(extra.testConfusion ? { testConfusion: extra.testConfusion as object[] } : {}) });
        await ModelVersionRepository.register(tx, { tenantId: row.tenantId, modelId: row.modelId, jobId: row.id, signature, model: saved, metrics, onnx });
      }, WRITE_TX);
      return;
    } catch (err) {
      const conflict = err instanceof Prisma.PrismaClientKnownRequestError && err.code === "P2002";
      if (!conflict || tries >= 6) throw err;
    }
  }
}

/**
 * Fine-tuning: copies a version's weights into the freshly built model, layer by layer, where a
 * layer of the same name has weights of the same shapes; returns the layers copied. A frozen layer
 * that gets nothing would be frozen at random values: that is a configuration error, said now.
 */
async function transferWeights(model: tf.LayersModel, stored: StoredModel, frozen: string[]): Promise<string[]> {
  const source = await loadModel(stored);
  try {
    const moved: string[] = [];
    for (const layer of model.layers) {
      const weights = layer.getWeights();
      if (!weights.length) continue;
      const from = source.layers.find((l) => l.name === layer.name)?.getWeights();
      if (!from || from.length !== weights.length || from.some((w, i) => !tf.util.arraysEqual(w.shape, weights[i].shape))) continue;
      layer.setWeights(from);
      moved.push(layer.name);
    }
    const missed = frozen.filter((name) => !moved.includes(name));
    if (missed.length) throw new PermanentJobError(`frozen layer(s) ${missed.join(", ")} got no weights from the version (no layer of that name and shape there); they would stay at their random start`);
    if (!moved.length) throw new PermanentJobError("the version to fine-tune from has no layer matching this model's by name and shape: nothing to start from");
    return moved;
  } finally {
    source.dispose();
  }
}

const CONVOLUTIONS = new Set(["Conv1D", "Conv2D", "Conv3D", "SeparableConv2D", "DepthwiseConv2D", "Conv2DTranspose"]);

/**
 * The threads a job trains on: as asked, within the worker's cap. "auto" takes the cap for models
 * with convolutions (heavy steps, which gain: bench/train-compare.ts) while every thread gets at
 * least 16 rows of a batch, and one thread otherwise (a small dense step loses to the averaging).
 */
export function threadsFor(hp: Pick<Hyperparameters, "threads" | "batchSize">, model: tf.LayersModel, cap: number): number {
  if (hp.threads !== "auto") return Math.max(1, Math.min(hp.threads ?? 1, cap));
  if (!model.layers.some((l) => CONVOLUTIONS.has(l.getClassName()))) return 1;
  return Math.max(1, Math.min(cap, Math.floor(hp.batchSize / 16)));
}
