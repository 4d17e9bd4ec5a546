// Training jobs, API side: check that model and dataset fit together, record the job, enqueue it.
// Postgres holds the job's truth; the BullMQ job is only the delivery of its id to a worker.
import { randomInt, randomUUID } from "node:crypto";
import type { Queue } from "bullmq";
import type { Redis } from "ioredis";
import { DatasetRepository } from "../data/dataset-repository.ts";
import type { Db } from "../db/prisma.ts";
import { NotFoundError, UnavailableError, ValidationError } from "../errors.ts";
import { checkAugmentation } from "../model-spec/augmentation-schema.ts";
import { modelSpecSchema } from "../model-spec/model-spec-schema.ts";
import { CANCEL_TTL_SECONDS, cancelKey, QUEUES, type TrainJobPayload } from "../queue/queues.ts";
import { strataOutput, stratifyProblem } from "./data-split.ts";
import { matchModelToDataset } from "./dataset-matching.ts";
import { CURVE_MEDIA_TYPES, learningCurvesSvg, svgToPng, type CurveFormat } from "./learning-curves.ts";
import type { CreateTrainingJob, Hyperparameters, TrainingJobView } from "./training-job-schema.ts";

const ENQUEUE_TIMEOUT_MS = 5000;

function withTimeout<T>(promise: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([promise, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(message)), ms)))]).finally(() => clearTimeout(timer));
}

type JobRow = {
  id: string; status: TrainingJobView["status"]; datasetId: string; hyperparameters: unknown; epoch: number; epochs: number;
  metrics: unknown; stoppedEarly: string | null; error: string | null; cancelRequested: boolean; attempts: number; lastInterruption: string | null; createdAt: Date; startedAt: Date | null; finishedAt: Date | null;
  model: { name: string }; version: { version: number } | null;
};

const jobInclude = { model: { select: { name: true } }, version: { select: { version: true } } } as const;

function toView(row: JobRow): TrainingJobView {
  return {
    id: row.id, status: row.status, model: row.model.name, dataset: row.datasetId,
    hyperparameters: row.hyperparameters as TrainingJobView["hyperparameters"],
    progress: { epoch: row.epoch, epochs: row.epochs },
    metrics: (row.metrics as Record<string, number> | null) ?? null,
    stoppedEarly: row.stoppedEarly, error: row.error, cancelRequested: row.cancelRequested, attempts: row.attempts, lastInterruption: row.lastInterruption, modelVersion: row.version?.version ?? null,
    createdAt: row.createdAt.toISOString(), startedAt: row.startedAt?.toISOString() ?? null, finishedAt: row.finishedAt?.toISOString() ?? null,
  };
}

export class TrainingJobService {
  constructor(
    private readonly db: Db,
    private readonly queue: Queue<TrainJobPayload>,
    private readonly redis: Redis,
    private readonly queuePrefix: string,
  ) {}

  async create(tenantId: string, body: CreateTrainingJob): Promise<TrainingJobView> {
    const { model: modelName, dataset: datasetId, ...rest } = body;
    const model = await this.db.model.findUnique({ where: { tenantId_name: { tenantId, name: modelName } } });
    if (!model) throw ValidationError.at("model", `no model named '${modelName}'`);
    const dataset = await new DatasetRepository(this.db).findShapes(tenantId, datasetId);
    if (!dataset) throw ValidationError.at("dataset", `no dataset with id '${datasetId}'`);

    const spec = modelSpecSchema.parse(model.spec);
    const outputShapes = (model.outputs as { shape: (number | null)[] }[]).map((o) => o.shape);
    // The job's own preprocessing, else the one declared with the dataset; recorded with the job.
    const preprocessing = rest.preprocessing ?? dataset.preprocessing;
    matchModelToDataset(spec, outputShapes, dataset, preprocessing);
    checkAugmentation(rest.augmentation, dataset.inputs);
    const trainRows = dataset.rows - Math.floor(dataset.rows * rest.validationSplit) - Math.floor(dataset.rows * rest.testSplit);
    if (trainRows < 1) throw ValidationError.at("validationSplit", `leaves no training rows out of ${dataset.rows}`);
    const strata = strataOutput(dataset.outputs, rest.stratify);
    const counts = strata === undefined ? undefined : dataset.outputs[strata].counts;
    const tooSmall = counts && stratifyProblem(counts, dataset.outputs[strata!].classes, rest);
    if (tooSmall) throw ValidationError.at("dataset", tooSmall);

    const hyperparameters: Hyperparameters = { ...rest, ...(preprocessing ? { preprocessing } : {}), seed: rest.seed ?? randomInt(2 ** 31) } as Hyperparameters;
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
      await withTimeout(this.queue.add(QUEUES.training.job, { jobId: id, tenantId }, QUEUES.training.options(id)), ENQUEUE_TIMEOUT_MS, "enqueue timed out");
    } catch (err) {
      // Nothing will ever run this job: remove the row rather than leave a job queued forever.
      await this.db.trainingJob.delete({ where: { id } }).catch(() => {});
      throw new UnavailableError(`the job queue is unavailable (${(err as Error).message}); try again later`);
    }
    return toView(row);
  }

  async get(tenantId: string, id: string): Promise<TrainingJobView> {
    const row = await this.db.trainingJob.findFirst({ where: { id, tenantId }, include: jobInclude });
    if (!row) throw new NotFoundError("training job", id);
    return toView(row);
  }

  async list(tenantId: string): Promise<TrainingJobView[]> {
    const rows = await this.db.trainingJob.findMany({ where: { tenantId }, include: jobInclude, orderBy: { createdAt: "desc" }, take: 100 });
    return rows.map(toView);
  }

  /** The jobs that still need a dataset (queued or running), oldest first: while there are any, the dataset may not be deleted. */
  async activeJobsUsing(tenantId: string, datasetId: string): Promise<string[]> {
    const rows = await this.db.trainingJob.findMany({ where: { tenantId, datasetId, status: { in: ["queued", "running"] } }, select: { id: true }, orderBy: { createdAt: "asc" } });
    return rows.map((r) => r.id);
  }

  async metrics(tenantId: string, id: string) {
    await this.get(tenantId, id);
    const points = await this.db.metricPoint.findMany({ where: { jobId: id }, orderBy: [{ epoch: "asc" }, { name: "asc" }] });
    const byEpoch = new Map<number, Record<string, number>>();
    for (const p of points) byEpoch.set(p.epoch, { ...byEpoch.get(p.epoch), [p.name]: p.value });
    return { jobId: id, epochs: [...byEpoch].map(([epoch, metrics]) => ({ epoch, metrics })) };
  }

  /**
   * The learning curves as a picture. A job without epochs yet is still a picture (saying so), not
   * an error: a dashboard that shows it from the moment the job is queued never shows a broken image.
   * `settled` tells the caller the picture will not change any more.
   */
  async curves(tenantId: string, id: string, format: CurveFormat): Promise<{ mediaType: string; body: string | Buffer; settled: boolean }> {
    const job = await this.get(tenantId, id);
    const { epochs } = await this.metrics(tenantId, id);
    const active = job.status === "queued" || job.status === "running";
    const picture = learningCurvesSvg({
      title: `${job.model} — training job ${job.id}`,
      subtitle: `${job.status} · epoch ${job.progress.epoch} of ${job.progress.epochs}`,
      epochs,
      // The test scores are taken once, after the last epoch, and stored with the job, not per epoch.
      final: job.metrics ?? undefined,
      plannedEpochs: active ? job.progress.epochs : undefined,
      empty: active ? "no epochs yet" : `no epochs: ${job.status} before the first`,
    });
    return { mediaType: CURVE_MEDIA_TYPES[format], body: format === "svg" ? picture.svg : await svgToPng(picture), settled: !active };
  }

  /**
   * A queued job is cancelled at once; a running one is asked to stop, and its worker stops it
   * before the next batch. Cancelling a finished job changes nothing.
   */
  async cancel(tenantId: string, id: string): Promise<TrainingJobView> {
    await this.get(tenantId, id);
    const now = new Date();
    const queued = await this.db.trainingJob.updateMany({ where: { id, tenantId, status: "queued" }, data: { status: "cancelled", finishedAt: now, cancelRequested: true } });
    if (queued.count) {
      // Best effort: a worker that still receives it sees the status and skips it.
      await withTimeout(this.queue.remove(id), ENQUEUE_TIMEOUT_MS, "remove timed out").catch(() => 0);
    } else {
      const running = await this.db.trainingJob.updateMany({ where: { id, tenantId, status: "running" }, data: { cancelRequested: true } });
      if (running.count) {
        try {
          await this.redis.set(cancelKey(this.queuePrefix, id), "1", "EX", CANCEL_TTL_SECONDS);
        } catch (err) {
          throw new UnavailableError(`could not signal the worker (${(err as Error).message}); try again`);
        }
      }
    }
    return this.get(tenantId, id);
  }
}
