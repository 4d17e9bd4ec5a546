// Training jobs, API side: check that model and dataset fit together, record the job, enqueue it.
// Postgres holds the job's truth; the BullMQ job is only the delivery of its id to a worker.
import { randomInt, randomUUID } from "node:crypto";
import type { Readable } from "node:stream";
import type { Queue } from "bullmq";
import type { Redis } from "ioredis";
import { DatasetRepository } from "../data/dataset-repository.ts";
import type { Db } from "../db/prisma.ts";
import { ConflictError, DomainError, NotFoundError, UnavailableError, ValidationError, withTimeout } from "../errors.ts";
import { checkAugmentation } from "../model-spec/augmentation-schema.ts";
import { tbpttProblem } from "../model-spec/tbptt-rule.ts";
import { planOf } from "../model-spec/graph-plan.ts";
import { ModelVersionRepository } from "../registry/model-version-repository.ts";
import { modelInputs, modelSpecSchema, type ModelSpec } from "../model-spec/model-spec-schema.ts";
import { CANCEL_TTL_SECONDS, cancelKey, enqueueTraining, QUEUES, type TrainJobPayload } from "../queue/queues.ts";
import { strataOutput, stratifyProblem } from "./data-split.ts";
import { matchModelToDataset } from "./dataset-matching.ts";
import { eventStreamKey, JobEventPublisher, JobEventReader, type ProgressSnapshot, type StatusEvent } from "./job-events.ts";
import { CURVE_MEDIA_TYPES, learningCurvesSvg, type CurveFormat, type CurvesInput } from "./learning-curves.ts";
import { svgToPng } from "./svg.ts";
import { DiagnosticsStore } from "./diagnostics-store.ts";
import type { ContinueTrainingJob, CreateTrainingJob, DiagnosticSeries, Hyperparameters, TrainingJobView } from "./training-job-schema.ts";

const ENQUEUE_TIMEOUT_MS = 5000;

type JobRow = {
  id: string; status: TrainingJobView["status"]; datasetId: string; hyperparameters: unknown; epoch: number; epochs: number;
  metrics: unknown; warnings: unknown; pruning: unknown; stoppedEarly: string | null; error: string | null; cancelRequested: boolean; pauseRequested: boolean; waitingReason: string | null; continuedFromId: string | null; studyId: string | null; trial: number | null; trialParams: unknown; attempts: number; lastInterruption: string | null; createdAt: Date; startedAt: Date | null; finishedAt: Date | null;
  model: { name: string }; version: { version: number } | null;
};

const jobInclude = { model: { select: { name: true } }, version: { select: { version: true } } } as const;

const ENDED = new Set<TrainingJobView["status"]>(["succeeded", "failed", "cancelled"]);

/** Postgres's epoch, with the worker's live snapshot (Redis) while the job runs. */
function progressOf(row: JobRow, live: ProgressSnapshot | undefined, now = Date.now()): TrainingJobView["progress"] {
  const progress: TrainingJobView["progress"] = { epoch: row.epoch, epochs: row.epochs };
  if (row.status !== "running") return progress;
  if (row.startedAt) progress.elapsedSeconds = Math.round((now - row.startedAt.getTime()) / 10) / 100;
  if (!live) return progress;
  // A snapshot from before the epoch Postgres has since stored: the next epoch has just begun.
  progress.batch = live.epoch >= row.epoch ? live.batch : 0;
  progress.batches = live.batches;
  progress.samplesPerSecond = live.samplesPerSecond;
  progress.remainingSeconds = Math.max(0, Math.round((live.remainingSeconds - (now - live.at) / 1000) * 100) / 100);
  return progress;
}

function toView(row: JobRow, live?: ProgressSnapshot): TrainingJobView {
  return {
    id: row.id, status: row.status, model: row.model.name, dataset: row.datasetId,
    hyperparameters: row.hyperparameters as TrainingJobView["hyperparameters"],
    progress: progressOf(row, live),
    metrics: (row.metrics as Record<string, number> | null) ?? null,
    warnings: (row.warnings as TrainingJobView["warnings"] | null) ?? [], pruning: (row.pruning as TrainingJobView["pruning"] | null) ?? null, stoppedEarly: row.stoppedEarly, error: row.error, cancelRequested: row.cancelRequested,
    pauseRequested: row.pauseRequested, waitingReason: row.status === "queued" ? row.waitingReason : null, continuedFrom: row.continuedFromId,
    study: row.studyId ? { id: row.studyId, trial: row.trial ?? 0, params: (row.trialParams as Record<string, unknown> | null) ?? {} } : null, attempts: row.attempts, lastInterruption: row.lastInterruption, modelVersion: row.version?.version ?? null,
    createdAt: row.createdAt.toISOString(), startedAt: row.startedAt?.toISOString() ?? null, finishedAt: row.finishedAt?.toISOString() ?? null,
  };
}

/** A dataset's layout, as a job is checked against it. */
export type DatasetShapes = NonNullable<Awaited<ReturnType<DatasetRepository["findShapes"]>>>;

/** What create writes once the checks have passed. */
export interface CheckedJob {
  model: { id: string; name: string; spec: ModelSpec; outputShapes: (number | null)[][] };
  datasetId: string;
  dataset: DatasetShapes;
  hyperparameters: Hyperparameters;
}

export class TrainingJobService {
  private readonly publisher: JobEventPublisher;
  private readonly eventReader: JobEventReader;

  constructor(
    private readonly db: Db,
    private readonly queue: Queue<TrainJobPayload>,
    private readonly redis: Redis,
    private readonly queuePrefix: string,
  ) {
    this.publisher = new JobEventPublisher(redis, queuePrefix);
    this.eventReader = new JobEventReader(redis, queuePrefix, this.publisher);
  }

  async create(tenantId: string, body: CreateTrainingJob): Promise<TrainingJobView> {
    const { model, datasetId, hyperparameters } = await this.check(tenantId, body);
    const id = randomUUID();
    // The dataset is held until the job row exists, so a concurrent delete either sees this job
    // (409) or happened first (this is a 400).
    const row = await this.db.$transaction(async (tx) => {
      if (!(await DatasetRepository.lockForUse(tx, tenantId, datasetId))) throw ValidationError.at("dataset", `no dataset with id '${datasetId}'`);
      return tx.trainingJob.create({
        data: { id, tenantId, modelId: model.id, datasetId, hyperparameters, epochs: hyperparameters.epochs },
        include: jobInclude,
      });
    });
    try {
      // BullMQ waits for a connection that may never come; a producer must answer now instead.
      if (this.redis.status !== "ready") throw new Error(`Redis connection is ${this.redis.status}`);
      // Before the enqueue: a worker may take the job at once, and its `running` must come after.
      await this.publisher.publishWithin(id, { type: "status", data: { status: "queued" } }, ENQUEUE_TIMEOUT_MS);
      await withTimeout(this.queue.add(QUEUES.training.job, { jobId: id, tenantId }, QUEUES.training.options(id, hyperparameters.priority)), ENQUEUE_TIMEOUT_MS, "enqueue timed out");
    } catch (err) {
      // Nothing will ever run this job: remove the row rather than leave a job queued forever.
      await this.db.trainingJob.delete({ where: { id } }).catch(() => {});
      await this.redis.del(eventStreamKey(this.queuePrefix, id)).catch(() => 0);
      throw new UnavailableError(`the job queue is unavailable (${(err as Error).message}); try again later`);
    }
    return toView(row);
  }

  /**
   * Everything create checks before it writes: the model and the dataset exist and fit together,
   * and the hyperparameters as the job records them. Studies check each trial with it too.
   */
  async check(tenantId: string, body: CreateTrainingJob): Promise<CheckedJob> {
    const { model: modelName, dataset: datasetId, ...rest } = body;
    const model = await this.db.model.findUnique({ where: { tenantId_name: { tenantId, name: modelName } } });
    if (!model) throw ValidationError.at("model", `no model named '${modelName}'`);
    const dataset = await new DatasetRepository(this.db).findShapes(tenantId, datasetId);
    if (!dataset) throw ValidationError.at("dataset", `no dataset with id '${datasetId}'`);
    const spec = modelSpecSchema.parse(model.spec);
    const outputShapes = (model.outputs as { shape: (number | null)[] }[]).map((o) => o.shape);
    const hyperparameters = TrainingJobService.fit(spec, outputShapes, dataset, rest);
    if (hyperparameters.initFrom) {
      // Resolved now: "latest" means the version that is latest when the job is created.
      const from = hyperparameters.initFrom as { model?: string; version: number | "latest" };
      const source = from.model ?? model.name;
      const ref = await new ModelVersionRepository(this.db).ref(tenantId, source, from.version).catch((err: unknown) => {
        if (err instanceof DomainError) throw ValidationError.at("initFrom", `${err.message}: there is no version to start from`);
        throw err;
      });
      hyperparameters.initFrom = { model: source, version: ref.version, versionId: ref.id } as Hyperparameters["initFrom"];
    }
    return { model: { id: model.id, name: model.name, spec, outputShapes }, datasetId, dataset, hyperparameters };
  }

  /** Whether a job's hyperparameters fit a model (its spec and output shapes) and a dataset; the hyperparameters as the job records them (a seed chosen when none is given). */
  static fit(spec: ModelSpec, outputShapes: (number | null)[][], dataset: DatasetShapes, rest: Omit<CreateTrainingJob, "model" | "dataset">): Hyperparameters {
    // The job's own preprocessing, else the one declared with the dataset; recorded with the job.
    const preprocessing = rest.preprocessing ?? dataset.preprocessing;
    matchModelToDataset(spec, outputShapes, dataset, preprocessing);
    checkAugmentation(rest.augmentation, dataset.inputs);
    checkClassWeights(rest.classWeights, dataset.outputs[0]);
    checkTbptt(rest.tbptt, spec);
    if (rest.prune && !rest.initFrom) throw ValidationError.at("prune", "pruning starts from a trained version: name it with initFrom");
    if (rest.adversarial) {
      if (dataset.inputs.length !== 1 || modelInputs(spec).length !== 1) throw ValidationError.at("adversarial", "adversarial training takes a model with one input");
      if (rest.tbptt) throw ValidationError.at("adversarial", "adversarial training does not combine with tbptt");
      if (spec.mode === "perceptron") throw ValidationError.at("adversarial", "the perceptron rule has no gradient to attack with");
    }
    checkFrozen(spec, rest.freeze);
    const trainRows = dataset.rows - Math.floor(dataset.rows * rest.validationSplit) - Math.floor(dataset.rows * rest.testSplit);
    if (trainRows < 1) throw ValidationError.at("validationSplit", `leaves no training rows out of ${dataset.rows}`);
    const strata = strataOutput(dataset.outputs, rest.stratify);
    const counts = strata === undefined ? undefined : dataset.outputs[strata].counts;
    const tooSmall = counts && stratifyProblem(counts, dataset.outputs[strata!].classes, rest);
    if (tooSmall) throw ValidationError.at("dataset", tooSmall);
    return { ...rest, ...(preprocessing ? { preprocessing } : {}), seed: rest.seed ?? randomInt(2 ** 31) } as Hyperparameters;
  }

  async get(tenantId: string, id: string): Promise<TrainingJobView> {
    const row = await this.db.trainingJob.findFirst({ where: { id, tenantId }, include: jobInclude });
    if (!row) throw new NotFoundError("training job", id);
    const [live] = row.status === "running" ? await this.publisher.readProgress([id]) : [];
    return toView(row, live);
  }

  async list(tenantId: string): Promise<TrainingJobView[]> {
    const rows = await this.db.trainingJob.findMany({ where: { tenantId }, include: jobInclude, orderBy: { createdAt: "desc" }, take: 100 });
    const running = rows.filter((r) => r.status === "running").map((r) => r.id);
    const live = new Map((await this.publisher.readProgress(running)).map((p, i) => [running[i], p]));
    return rows.map((r) => toView(r, live.get(r.id)));
  }

  /**
   * The job's events as Server-Sent Events after `lastEventId` (from the start without one),
   * ending after its final status; null when the job has ended and the client has seen its end.
   */
  async events(tenantId: string, id: string, lastEventId?: string): Promise<Readable | null> {
    await this.get(tenantId, id);
    try {
      return await this.eventReader.open(id, lastEventId, () => this.settled(tenantId, id));
    } catch (err) {
      if (err instanceof DomainError) throw err;
      throw new UnavailableError(`the job's event stream is unavailable (${(err as Error).message}); try again later`);
    }
  }

  /** Ends the open event streams (the API is shutting down; clients reconnect to another replica). */
  closeEventStreams(): void {
    this.eventReader.closeAll();
  }

  /** Whether a job has ended, as Postgres records it: the final status event it makes. */
  private async settled(tenantId: string, id: string): Promise<{ event: StatusEvent; finishedAt: number } | null> {
    const row = await this.db.trainingJob.findFirst({ where: { id, tenantId }, select: { status: true, error: true, stoppedEarly: true, metrics: true, cancelRequested: true, finishedAt: true } });
    if (!row || !ENDED.has(row.status)) return null;
    const event: StatusEvent = {
      status: row.status,
      ...(row.error ? { error: row.error } : {}),
      ...(row.stoppedEarly ? { stoppedEarly: row.stoppedEarly } : {}),
      ...(row.status === "succeeded" && row.metrics ? { metrics: row.metrics as Record<string, number> } : {}),
      ...(row.status === "cancelled" ? { cancelRequested: row.cancelRequested } : {}),
    };
    return { event, finishedAt: row.finishedAt?.getTime() ?? 0 };
  }

  /** The jobs that still need a dataset (queued, running or paused), oldest first: while there are any, the dataset may not be deleted. */
  async activeJobsUsing(tenantId: string, datasetId: string): Promise<string[]> {
    const rows = await this.db.trainingJob.findMany({ where: { tenantId, datasetId, status: { in: ["queued", "running", "paused"] } }, select: { id: true }, orderBy: { createdAt: "asc" } });
    return rows.map((r) => r.id);
  }

  async metrics(tenantId: string, id: string) {
    await this.get(tenantId, id);
    return { jobId: id, epochs: await this.epochMetrics(id) };
  }

  /** Every epoch's metrics of a job already checked to be the tenant's. */
  private async epochMetrics(id: string): Promise<{ epoch: number; metrics: Record<string, number> }[]> {
    const points = await this.db.metricPoint.findMany({ where: { jobId: id }, orderBy: [{ epoch: "asc" }, { name: "asc" }] });
    const byEpoch = new Map<number, Record<string, number>>();
    for (const p of points) byEpoch.set(p.epoch, { ...byEpoch.get(p.epoch), [p.name]: p.value });
    return [...byEpoch].map(([epoch, metrics]) => ({ epoch, metrics }));
  }


  /**
   * The learning curves as a picture. A job without epochs yet is still a picture (saying so), not
   * an error: a dashboard that shows it from the moment the job is queued never shows a broken image.
   * `settled` tells the caller the picture will not change any more.
   */
  async curves(tenantId: string, id: string, format: CurveFormat): Promise<JobPicture> {
    const job = await this.get(tenantId, id);
    return drawJob(job, format, {
      title: `${job.model} — training job ${job.id}`,
      subtitle: `${job.status} · epoch ${job.progress.epoch} of ${job.progress.epochs}`,
      epochs: await this.epochMetrics(id),
      // The test scores are taken once, after the last epoch, and stored with the job, not per epoch.
      final: job.metrics ?? undefined,
    });
  }


  /** Every epoch's diagnostics (gradient norms, dead and saturated shares per layer, validation confusion matrices) and the warnings raised. */
  async diagnostics(tenantId: string, id: string): Promise<DiagnosticSeries> {
    await this.get(tenantId, id);
    const { epochs, warnings } = await new DiagnosticsStore(this.db).series(id);
    const { testConfusion } = await this.db.trainingJob.findUniqueOrThrow({ where: { id }, select: { testConfusion: true } });
    return { jobId: id, warnings, testConfusion: (testConfusion as DiagnosticSeries["testConfusion"]) ?? null, epochs };
  }

  /** The gradient norm of every layer with weights over the epochs, one line per layer, as a picture (log10: norms span orders of magnitude). */
  async diagnosticsPicture(tenantId: string, id: string, format: CurveFormat): Promise<JobPicture> {
    const job = await this.get(tenantId, id);
    const { epochs } = await new DiagnosticsStore(this.db).series(id);
    return drawJob(job, format, {
      title: `${job.model} — gradient norms, training job ${job.id}`,
      subtitle: `log10 of each layer's gradient norm · ${job.status} · epoch ${job.progress.epoch} of ${job.progress.epochs}`,
      epochs: epochs.map((e) => ({
        epoch: e.epoch,
        metrics: Object.fromEntries(e.layers.filter((l) => l.gradNorm !== undefined).map((l) => [l.layer, Math.log10(l.gradNorm!)])),
      })),
      singlePanel: "log10 gradient norm",
    });
  }


  /**
   * A queued job is cancelled at once; a running one is asked to stop, and its worker stops it
   * before the next batch. Cancelling a finished job changes nothing.
   */
  async cancel(tenantId: string, id: string): Promise<TrainingJobView> {
    await this.get(tenantId, id);
    const now = new Date();
    const queued = await this.db.trainingJob.updateMany({ where: { id, tenantId, status: { in: ["queued", "paused"] } }, data: { status: "cancelled", finishedAt: now, cancelRequested: true } });
    if (queued.count) {
      // Best effort: a worker that still receives it sees the status and skips it.
      await withTimeout(this.queue.remove(id), ENQUEUE_TIMEOUT_MS, "remove timed out").catch(() => 0);
      await this.publisher.publishWithin(id, { type: "status", data: { status: "cancelled", cancelRequested: true } }, ENQUEUE_TIMEOUT_MS);
    } else {
      const running = await this.db.trainingJob.updateMany({ where: { id, tenantId, status: "running" }, data: { cancelRequested: true } });
      if (running.count) {
        // Before the signal: the worker's `cancelled` must come after it. The request is recorded already.
        await this.publisher.publishWithin(id, { type: "status", data: { status: "running", cancelRequested: true } }, ENQUEUE_TIMEOUT_MS);
        try {
          await this.redis.set(cancelKey(this.queuePrefix, id), "1", "EX", CANCEL_TTL_SECONDS);
        } catch (err) {
          throw new UnavailableError(`could not signal the worker (${(err as Error).message}); try again`);
        }
      }
    }
    return this.get(tenantId, id);
  }

  /**
   * A queued job is paused at once; a running one is asked to, and its worker checkpoints it at
   * the next batch boundary (within seconds) and marks it paused. Resume goes on from there.
   */
  async pause(tenantId: string, id: string): Promise<TrainingJobView> {
    const job = await this.get(tenantId, id);
    if (job.status === "paused") return job;
    if (job.status !== "queued" && job.status !== "running") throw new ConflictError(`training job ${id} is ${job.status}; only a queued or running job can be paused`);
    const queued = await this.db.trainingJob.updateMany({ where: { id, tenantId, status: "queued" }, data: { status: "paused", waitingReason: null } });
    if (queued.count) {
      // Best effort: a worker that still receives it finds it paused and leaves it.
      await withTimeout(this.queue.remove(id), ENQUEUE_TIMEOUT_MS, "remove timed out").catch(() => 0);
      await this.publisher.publishWithin(id, { type: "status", data: { status: "paused", reason: "paused on request while queued" } }, ENQUEUE_TIMEOUT_MS);
    } else {
      await this.db.trainingJob.updateMany({ where: { id, tenantId, status: "running" }, data: { pauseRequested: true } });
    }
    return this.get(tenantId, id);
  }

  /** A paused job is queued again; it resumes from its checkpoint (inside an epoch when it paused in one). */
  async resume(tenantId: string, id: string): Promise<TrainingJobView> {
    const job = await this.get(tenantId, id);
    if (job.status === "running" && job.pauseRequested) {
      // Not paused yet: withdraw the request.
      await this.db.trainingJob.updateMany({ where: { id, tenantId, status: "running" }, data: { pauseRequested: false } });
      return this.get(tenantId, id);
    }
    if (job.status !== "paused") throw new ConflictError(`training job ${id} is ${job.status}; only a paused job can be resumed`);
    const resumed = await this.db.trainingJob.updateMany({ where: { id, tenantId, status: "paused" }, data: { status: "queued", pauseRequested: false } });
    if (resumed.count) {
      try {
        await this.enqueue(id, tenantId, (job.hyperparameters as { priority?: number }).priority);
      } catch (err) {
        await this.db.trainingJob.updateMany({ where: { id, status: "queued" }, data: { status: "paused" } });
        throw new UnavailableError(`the job queue is unavailable (${(err as Error).message}); try again later`);
      }
    }
    return this.get(tenantId, id);
  }

  /**
   * Trains a finished job's model further: a new job, with the same data and hyperparameters, that
   * starts from the finished job's last checkpoint (weights and optimizer state) and its history
   * (metrics, diagnostics), and trains `epochs` more. Its version is a new one.
   */
  async continue(tenantId: string, id: string, body: ContinueTrainingJob): Promise<TrainingJobView> {
    const job = await this.get(tenantId, id);
    if (!ENDED.has(job.status)) throw new ConflictError(`training job ${id} is ${job.status}; only a finished job (succeeded, failed or cancelled) can be continued`);
    const last = await this.db.checkpoint.findFirst({ where: { jobId: id }, orderBy: { epoch: "desc" }, select: { id: true, epoch: true, partial: true } });
    if (!last) throw new ConflictError(`training job ${id} has no checkpoint to continue from (it finished no epoch)`);
    const done = last.partial ? last.epoch - 1 : last.epoch;
    const { earlyStopping: _dropped, ...kept } = job.hyperparameters as Hyperparameters;
    const hyperparameters = { ...kept, epochs: done + (last.partial ? 1 : 0) + body.epochs, ...(body.earlyStopping ? { earlyStopping: body.earlyStopping } : {}) } as Hyperparameters;
    if (hyperparameters.epochs > 100_000) throw ValidationError.at("epochs", `the job would train ${hyperparameters.epochs} epochs in all; at most 100000`);
    const source = await this.db.trainingJob.findUniqueOrThrow({ where: { id }, select: { modelId: true, datasetId: true, warnings: true } });
    const newId = randomUUID();
    const row = await this.db.$transaction(async (tx) => {
      if (!(await DatasetRepository.lockForUse(tx, tenantId, source.datasetId))) throw new ConflictError(`the dataset ${source.datasetId} the job trained on has been deleted`);
      await tx.trainingJob.create({
        data: { id: newId, tenantId, modelId: source.modelId, datasetId: source.datasetId, hyperparameters, epochs: hyperparameters.epochs, epoch: done, claimEpoch: done, continuedFromId: id, warnings: source.warnings ?? [] },
      });
      // Copied inside Postgres: the history the schedule and the curves replay, and the checkpoint to start from.
      await tx.$executeRaw`INSERT INTO "MetricPoint" ("jobId", "epoch", "name", "value") SELECT ${newId}::uuid, "epoch", "name", "value" FROM "MetricPoint" WHERE "jobId" = ${id}::uuid AND "epoch" <= ${done}`;
      await tx.$executeRaw`INSERT INTO "EpochDiagnostic" ("jobId", "epoch", "data") SELECT ${newId}::uuid, "epoch", "data" FROM "EpochDiagnostic" WHERE "jobId" = ${id}::uuid AND "epoch" <= ${done}`;
      await tx.$executeRaw`INSERT INTO "Checkpoint" ("id", "jobId", "epoch", "topology", "weightSpecs", "weights", "partial") SELECT ${randomUUID()}::uuid, ${newId}::uuid, "epoch", "topology", "weightSpecs", "weights", "partial" FROM "Checkpoint" WHERE "id" = ${last.id}::uuid`;
      return tx.trainingJob.findUniqueOrThrow({ where: { id: newId }, include: jobInclude });
    }, { timeout: 60_000, maxWait: 10_000 });
    try {
      if (this.redis.status !== "ready") throw new Error(`Redis connection is ${this.redis.status}`);
      await this.publisher.publishWithin(newId, { type: "status", data: { status: "queued" } }, ENQUEUE_TIMEOUT_MS);
      await this.enqueue(newId, tenantId, hyperparameters.priority);
    } catch (err) {
      await this.db.trainingJob.delete({ where: { id: newId } }).catch(() => {});
      await this.redis.del(eventStreamKey(this.queuePrefix, newId)).catch(() => 0);
      throw new UnavailableError(`the job queue is unavailable (${(err as Error).message}); try again later`);
    }
    return toView(row);
  }

  /** Enqueues a job that may have run before (resume, continue), answering now rather than waiting for a Redis that is away. */
  private async enqueue(id: string, tenantId: string, priority: number | undefined): Promise<void> {
    if (this.redis.status !== "ready") throw new Error(`Redis connection is ${this.redis.status}`);
    await withTimeout(enqueueTraining(this.queue, id, tenantId, priority), ENQUEUE_TIMEOUT_MS, "enqueue timed out");
  }
}

/** Frozen layers are layers of the spec, by the names the engine gives them. */
function checkFrozen(spec: ModelSpec, freeze: string[] | undefined): void {
  if (!freeze?.length) return;
  const names = planOf(spec, "spec").nodes.map((n) => n.name);
  freeze.forEach((name, i) => {
    if (!names.includes(name)) throw ValidationError.at(`freeze[${i}]`, `'${name}' is not a layer of the model (its layers: ${names.slice(0, 50).join(", ")})`);
  });
}

/** Truncated BPTT needs a recurrent model on sequences of a known length, longer than the window (tbptt-rule.ts). */
function checkTbptt(tbptt: CreateTrainingJob["tbptt"], spec: ModelSpec): void {
  const problem = tbptt && tbpttProblem(spec, tbptt.window);
  if (problem) throw ValidationError.at(problem.path, problem.message);
}

/** Class weights name classes of the dataset's first set of labels, which must be classes. */
function checkClassWeights(weights: CreateTrainingJob["classWeights"], labels: { name: string; task: string; classes: string[] }): void {
  if (weights === undefined) return;
  if (labels.task !== "classification") throw ValidationError.at("classWeights", `the dataset's labels '${labels.name}' are regression values, which have no classes to weight`);
  if (weights === "balanced") return;
  for (const name of Object.keys(weights)) {
    if (!labels.classes.includes(name)) throw ValidationError.at(`classWeights.${name}`, `is not a class of the dataset (${labels.classes.join(", ")})`);
  }
}

/** A picture of a job, and whether it can change any more (the job has finished). */
export interface JobPicture {
  mediaType: string;
  body: string | Buffer;
  settled: boolean;
}

/** Draws series of a job: while it runs, the x axis spans its planned epochs; empty, the picture says why. */
async function drawJob(job: TrainingJobView, format: CurveFormat, input: Omit<CurvesInput, "plannedEpochs" | "empty">): Promise<JobPicture> {
  const active = job.status === "queued" || job.status === "running";
  const picture = learningCurvesSvg({
    ...input,
    plannedEpochs: active ? job.progress.epochs : undefined,
    empty: active ? "no epochs yet" : `no epochs: ${job.status} before the first`,
  });
  return { mediaType: CURVE_MEDIA_TYPES[format], body: format === "svg" ? picture.svg : await svgToPng(picture), settled: !active };
}
