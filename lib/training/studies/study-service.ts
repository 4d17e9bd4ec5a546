// Hyperparameter studies, API side: expand the search space into trials, check every trial as
// POST /v1/models and POST /v1/training-jobs would check it, then record the study, one model per
// changed spec and one training job per trial, and enqueue them as one BullMQ flow: the trials are
// children on the training queue (run by any worker), the parent on `studies` finishes the study.
import { randomInt, randomUUID } from "node:crypto";
import type { FlowProducer } from "bullmq";
import type { Redis } from "ioredis";
import { DatasetRepository } from "../../data/dataset-repository.ts";
import type { Db } from "../../db/prisma.ts";
import { DomainError, formatPath, NotFoundError, UnavailableError, ValidationError, withTimeout, type FieldProblem } from "../../errors.ts";
import { modelSpecSchema, type ModelSpec } from "../../model-spec/model-spec-schema.ts";
import { QUEUES } from "../../queue/queues.ts";
import type { ModelService } from "../../registry/model-service.ts";
import { eventStreamKey, JobEventPublisher } from "../job-events.ts";
import { createTrainingJobSchema, hyperparametersSchema, type Hyperparameters } from "../training-job-schema.ts";
import { TrainingJobService } from "../training-job-service.ts";
import { expandSpace, getAt, gridSize, parsePath, pathProblem, setAt, type FieldPath } from "./search-space.ts";
import { finishStudy, studyInclude, toStudySummary, toStudyView } from "./study-results.ts";
import { MAX_TRIALS, type CreateStudy, type StudyRequest, type StudySummaryView, type StudyView } from "./study-schema.ts";

const ENQUEUE_TIMEOUT_MS = 5000;

interface PlannedTrial {
  n: number;
  jobId: string;
  params: Record<string, unknown>;
  /** Set when the trial's spec differs from the base model's: the trial gets a model of its own. */
  own?: { name: string; spec: ModelSpec };
  hyperparameters: Hyperparameters;
}

export class StudyService {
  private readonly publisher: JobEventPublisher;

  constructor(
    private readonly db: Db,
    private readonly trainingJobs: TrainingJobService,
    private readonly models: ModelService,
    private readonly flows: FlowProducer,
    private readonly redis: Redis,
    private readonly queuePrefix: string,
  ) {
    this.publisher = new JobEventPublisher(redis, queuePrefix);
  }

  async create(tenantId: string, body: CreateStudy): Promise<StudyView> {
    const seed = body.seed ?? randomInt(2 ** 31);
    const request: StudyRequest = { ...body, seed };
    const baseJob = hyperparametersSchema.parse(body.job ?? {});
    if (baseJob.seed === undefined) baseJob.seed = seed;
    // The base model and dataset, and the base job as POST /v1/training-jobs checks it.
    const base = await this.trainingJobs.check(tenantId, parseJob(baseJob, body.model, body.dataset, (p) => (p === "model" || p === "dataset" ? p : `job.${p}`))).catch((err) => {
      throw requalify(err, (p) => (p === "model" || p === "dataset" || p.startsWith("spec") ? p : `job.${p}`));
    });
    const paths = this.checkPaths(body.space, base.model.spec, baseJob);
    const count = trialCount(body);
    const points = expandSpace(body.space, body.strategy, count, seed);
    const studyId = randomUUID();
    const tag = `--s${studyId.replace(/-/g, "").slice(0, 8)}`;

    // Every trial is checked before anything is written: a bad one is a 400 naming it.
    const specChecks = new Map<string, { spec: ModelSpec; outputShapes: (number | null)[][] }>();
    const baseSpecKey = JSON.stringify(base.model.spec);
    const trials: PlannedTrial[] = [];
    for (const [i, params] of points.entries()) {
      const n = i + 1;
      let spec: unknown = base.model.spec;
      let job: Record<string, unknown> = baseJob;
      for (const [path, value] of Object.entries(params)) {
        const at = paths.get(path)!;
        if (at.root === "spec") spec = setAt(spec, at.parts, value);
        else job = setAt(job, at.parts, value);
      }
      const where = (p: string) => `trial ${n}, ${p}`;
      const said = ` (trial ${n}: ${describeParams(params)})`;
      const specKey = JSON.stringify(spec);
      let checked = specKey === baseSpecKey ? { spec: base.model.spec, outputShapes: base.model.outputShapes } : specChecks.get(specKey);
      if (!checked) {
        checked = await this.checkSpec(spec, paths, where, said);
        specChecks.set(specKey, checked);
      }
      const parsed = parseJob(job, body.model, body.dataset, (p) => where(`job.${p}`), said);
      for (const [path, at] of paths) {
        if (at.root === "job" && getAt(parsed, at.parts) === undefined) throw ValidationError.at(`space.${path}`, "is not a field of a training job");
      }
      const { model: _m, dataset: _d, ...rest } = parsed;
      if (request.objective.metric.startsWith("val_") && rest.validationSplit === 0) {
        throw ValidationError.at(where("job.validationSplit"), `is 0, and the objective '${request.objective.metric}' is measured on validation rows${said}`);
      }
      let hyperparameters: Hyperparameters;
      try {
        hyperparameters = TrainingJobService.fit(checked.spec, checked.outputShapes, base.dataset, rest);
      } catch (err) {
        throw requalify(err, (p) => where(p === "model" || p === "dataset" || p.startsWith("spec") ? p : `job.${p}`), said);
      }
      const own = specKey === baseSpecKey ? undefined : { name: `${body.model.slice(0, 100 - tag.length - `-t${n}`.length)}${tag}-t${n}`, spec: checked.spec };
      trials.push({ n, jobId: randomUUID(), params, hyperparameters, ...(own ? { own } : {}) });
    }
    if (request.asha) {
      const longest = Math.max(...trials.map((t) => t.hyperparameters.epochs));
      if (request.asha.minEpochs >= longest) throw ValidationError.at("asha.minEpochs", `must be below the trials' epochs (at most ${longest}), or no trial is ever compared`);
    }

    // Models first (through the registry, as POST /v1/models stores them), then the study and its
    // jobs in one transaction, then the flow; a failure after the first write removes them all.
    const created: string[] = [];
    let studyWritten = false;
    let enqueueing = false;
    try {
      for (const t of trials) {
        if (!t.own) continue;
        await this.models.create(tenantId, t.own);
        created.push(t.own.name);
      }
      await this.db.$transaction(async (tx) => {
        if (!(await DatasetRepository.lockForUse(tx, tenantId, body.dataset))) throw ValidationError.at("dataset", `no dataset with id '${body.dataset}'`);
        const ids = new Map((await tx.model.findMany({ where: { tenantId, name: { in: created } }, select: { id: true, name: true } })).map((m) => [m.name, m.id]));
        await tx.study.create({ data: { id: studyId, tenantId, request: request as object } });
        await tx.trainingJob.createMany({
          data: trials.map((t) => ({
            id: t.jobId, tenantId, modelId: t.own ? ids.get(t.own.name)! : base.model.id, datasetId: body.dataset,
            hyperparameters: t.hyperparameters as object, epochs: t.hyperparameters.epochs, studyId, trial: t.n, trialParams: t.params as object,
          })),
        });
      });
      studyWritten = true;
      enqueueing = true;
      // BullMQ waits for a connection that may never come; a producer must answer now instead.
      if (this.redis.status !== "ready") throw new UnavailableError(`the job queue is unavailable (Redis connection is ${this.redis.status}); try again later`);
      // Before the enqueue: a worker may take a trial at once, and its `running` must come after.
      await Promise.all(trials.map((t) => this.publisher.publishWithin(t.jobId, { type: "status", data: { status: "queued" } }, ENQUEUE_TIMEOUT_MS)));
      await withTimeout(this.flows.add({
        name: QUEUES.studies.job, queueName: QUEUES.studies.name, data: { studyId, tenantId }, opts: QUEUES.studies.options(studyId),
        children: trials.map((t) => ({
          name: QUEUES.training.job, queueName: QUEUES.training.name, data: { jobId: t.jobId, tenantId },
          // A trial that fails for good must not fail or wedge the study: the parent runs once every trial has ended.
          opts: { ...QUEUES.training.options(t.jobId, t.hyperparameters.priority), failParentOnFailure: false, ignoreDependencyOnFailure: true },
        })),
      }), ENQUEUE_TIMEOUT_MS, "enqueue timed out");
    } catch (err) {
      // Nothing will ever run these trials: remove what was written rather than leave them queued forever.
      if (studyWritten) await this.db.study.delete({ where: { id: studyId } }).catch(() => {});
      if (created.length) await this.db.model.deleteMany({ where: { tenantId, name: { in: created } } }).catch(() => {});
      if (studyWritten) await Promise.all(trials.map((t) => this.redis.del(eventStreamKey(this.queuePrefix, t.jobId)).catch(() => 0)));
      if (!enqueueing || err instanceof DomainError) throw err;
      throw new UnavailableError(`the job queue is unavailable (${(err as Error).message}); try again later`);
    }
    return this.get(tenantId, studyId);
  }

  async get(tenantId: string, id: string): Promise<StudyView> {
    let row = await this.db.study.findFirst({ where: { id, tenantId }, include: studyInclude });
    if (!row) throw new NotFoundError("study", id);
    // Postgres decides: once every trial has ended the study has, even if its parent job was lost.
    if (row.status === "running" && (await finishStudy(this.db, id))) row = (await this.db.study.findFirst({ where: { id, tenantId }, include: studyInclude }))!;
    return toStudyView(row);
  }

  async list(tenantId: string): Promise<StudySummaryView[]> {
    const rows = await this.db.study.findMany({ where: { tenantId }, include: studyInclude, orderBy: { createdAt: "desc" }, take: 100 });
    return rows.map(toStudySummary);
  }

  /** Cancels every trial that has not ended (as POST /v1/training-jobs/{id}/cancel does) and marks the study cancelled. */
  async cancel(tenantId: string, id: string): Promise<StudyView> {
    const study = await this.db.study.findFirst({ where: { id, tenantId }, select: { id: true } });
    if (!study) throw new NotFoundError("study", id);
    await this.db.study.updateMany({ where: { id, status: "running" }, data: { status: "cancelled", finishedAt: new Date() } });
    const active = await this.db.trainingJob.findMany({ where: { studyId: id, status: { notIn: ["succeeded", "failed", "cancelled"] } }, select: { id: true }, orderBy: { trial: "asc" } });
    for (const t of active) await this.trainingJobs.cancel(tenantId, t.id);
    return this.get(tenantId, id);
  }

  /** Every path of the space, parsed and settable in the base spec or job; else a 400 at `space.<path>`. */
  private checkPaths(space: CreateStudy["space"], spec: ModelSpec, job: Record<string, unknown>): Map<string, FieldPath> {
    const out = new Map<string, FieldPath>();
    for (const path of Object.keys(space)) {
      const at = parsePath(path);
      if (!at) throw ValidationError.at(`space.${path}`, "is not a path: expected spec.<field> or job.<field>, with [i] for list items (spec.layers[0].units, job.optimizer.learningRate)");
      const problem = pathProblem(at.root === "spec" ? spec : job, at.parts);
      if (problem) throw ValidationError.at(`space.${path}`, `is not in the ${at.root === "spec" ? "model's spec" : "training job"}: ${problem}`);
      out.set(path, at);
    }
    return out;
  }

  /** A trial's spec, checked as POST /v1/models checks one (schema, preflight, limits, build). */
  private async checkSpec(spec: unknown, paths: Map<string, FieldPath>, where: (p: string) => string, said: string): Promise<{ spec: ModelSpec; outputShapes: (number | null)[][] }> {
    const parsed = modelSpecSchema.safeParse(spec);
    if (!parsed.success) {
      for (const issue of parsed.error.issues) {
        // A key the spec language does not have: the path is wrong, not the trial.
        if (issue.code !== "unrecognized_keys") continue;
        for (const [path, at] of paths) {
          const parent = formatPath(["spec", ...at.parts.slice(0, -1)]);
          if (at.root === "spec" && formatPath(["spec", ...issue.path]) === parent && issue.keys.includes(String(at.parts[at.parts.length - 1]))) {
            throw ValidationError.at(`space.${path}`, "is not a field of the model's spec");
          }
        }
      }
      throw new ValidationError(parsed.error.issues.map((i) => ({ path: where(formatPath(["spec", ...i.path])), message: `${i.message}${said}` })));
    }
    try {
      // Built off the event loop when the model service has the inference runtime's builder.
      return { spec: parsed.data, outputShapes: (await this.models.validate(parsed.data)).outputShapes };
    } catch (err) {
      throw requalify(err, where, said);
    }
  }
}

/** A trial's (or the base) job, parsed exactly as POST /v1/training-jobs parses its body; problems at `where(path)`. */
function parseJob(job: Record<string, unknown>, model: string, dataset: string, where: (p: string) => string, said = "") {
  const parsed = createTrainingJobSchema.safeParse({ ...job, model, dataset });
  if (!parsed.success) throw new ValidationError(parsed.error.issues.map((i) => ({ path: where(formatPath(i.path)), message: `${i.message}${said}` })));
  return parsed.data;
}

function requalify(err: unknown, where: (p: string) => string, said = ""): unknown {
  if (!(err instanceof ValidationError)) return err;
  return new ValidationError(err.problems.map((p: FieldProblem) => ({ path: where(p.path), message: `${p.message}${said}` })));
}

function describeParams(params: Record<string, unknown>): string {
  return Object.entries(params).map(([k, v]) => `${k} = ${JSON.stringify(v)}`).join(", ");
}

/** How many trials a request asks for; a 400 when that is not a number the study can run. */
function trialCount(body: CreateStudy): number {
  if (body.strategy === "random") {
    if (body.trials === undefined) throw ValidationError.at("trials", "is required with strategy 'random'");
    return body.trials;
  }
  const size = gridSize(body.space);
  if (!Number.isFinite(size)) return size; // expandSpace names the range that a grid cannot take
  if (body.trials !== undefined && body.trials > size) throw ValidationError.at("trials", `is more than the grid's ${size} points`);
  const n = body.trials ?? size;
  if (n > MAX_TRIALS) throw ValidationError.at(body.trials === undefined ? "space" : "trials", `the grid has ${size} points, and a study runs at most ${MAX_TRIALS} trials; give trials (at most ${MAX_TRIALS}) to run that many of its points`);
  return n;
}
