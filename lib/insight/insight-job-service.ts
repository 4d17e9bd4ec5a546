// Insight jobs, API side: a request over a dataset's rows is checked completely (the version, the
// dataset fits its input, the split exists, the layer, the labels, the cost) before the job is
// recorded and enqueued; then its status, result and picture, and cancel.
import { randomUUID } from "node:crypto";
import { DatasetRepository } from "../data/dataset-repository.ts";
import type { Db } from "../db/prisma.ts";
import { ConflictError, NotFoundError, UnavailableError, ValidationError, withTimeout } from "../errors.ts";
import { TSNE_LIMITS } from "../engine/probes/tsne.ts";
import { ModelVersionRepository } from "../registry/model-version-repository.ts";
import { matchInputs, matchOutputs } from "../training/dataset-matching.ts";
import type { Hyperparameters } from "../training/training-job-schema.ts";
import type { AdversarialRequest } from "./insight-schema.ts";
import { attackCurvePng, classIndex, outputOf } from "./insight-service.ts";
import {
  type AdversarialJobResult, type InsightJobView, type InsightKind, MAX_JOB_GRADIENTS, MAX_TOP_VALUES, type SplitChoice, type TopActivationsRequest,
  type TopActivationsResult, type TsneRequest, type TsneResult,
} from "./insight-job-schema.ts";
import { gridPng, scatterPng } from "./pictures.ts";

/** Puts a recorded job on the queue (the wiring's BullMQ producer); throws when the queue is unreachable. */
export type EnqueueInsight = (jobId: string, tenantId: string) => Promise<void>;

const ENQUEUE_TIMEOUT_MS = 3000;
const include = { version: { select: { version: true, model: { select: { name: true } } } } } as const;

type Row = NonNullable<Awaited<ReturnType<Db["insightJob"]["findFirst"]>>> & { version: { version: number; model: { name: string } } };

export type InsightJobRequest =
  | { kind: "adversarial"; body: AdversarialRequest }
  | { kind: "top-activations"; body: TopActivationsRequest }
  | { kind: "tsne"; body: TsneRequest };

export class InsightJobService {
  private readonly versions: ModelVersionRepository;
  private readonly datasets: DatasetRepository;

  constructor(private readonly db: Db, private readonly enqueue: EnqueueInsight) {
    this.versions = new ModelVersionRepository(db);
    this.datasets = new DatasetRepository(db);
  }

  async create(tenantId: string, name: string, version: number, req: InsightJobRequest): Promise<InsightJobView> {
    const v = await this.versions.resolve(tenantId, name, { kind: "version", version });
    const datasetId = req.body.dataset;
    if (!datasetId) throw ValidationError.at("dataset", "is required");
    const [input, ...more] = v.signature.inputs;
    if (more.length) throw ValidationError.at("dataset", `model '${name}' has ${v.signature.inputs.length} inputs; insight jobs take models with one input`);
    const row = await this.db.modelVersion.findUniqueOrThrow({ where: { id: v.id }, select: { topology: true, job: { select: { datasetId: true, hyperparameters: true } } } });
    const shapes = await this.datasets.findShapes(tenantId, datasetId);
    if (!shapes) throw ValidationError.at("dataset", `no dataset with id '${datasetId}'`);
    try {
      matchInputs([{ name: input.name, shape: input.shape }], shapes.inputs);
    } catch (err) {
      throw ValidationError.at("dataset", `does not fit version ${version}: ${(err as Error).message.replace(/^[^:]*: /, "")}`);
    }

    // Which rows, and how many at most.
    const trainedOn = row.job?.datasetId === datasetId ? (row.job.hyperparameters as Hyperparameters) : undefined;
    const split: SplitChoice = req.body.split ?? (trainedOn ? "validation" : "all");
    let available = shapes.rows;
    if (split !== "all") {
      if (!trainedOn) throw ValidationError.at("split", `'${split}' names rows of the training job that made version ${version}, which ${row.job ? "trained on another dataset" : "was imported (no training job)"}: use 'all'`);
      const share = split === "validation" ? trainedOn.validationSplit : split === "test" ? (trainedOn.testSplit ?? 0) : 1 - trainedOn.validationSplit - (trainedOn.testSplit ?? 0);
      if (!(share > 0)) throw ValidationError.at("split", `the training job that made version ${version} held out no ${split} rows: use another split or 'all'`);
      // About the split's size (stratification rounds per class); limits below are checked against it.
      available = Math.max(1, Math.round(share * shapes.rows));
    }
    const rows = Math.min(req.body.rows ?? available, available);

    if (req.kind === "adversarial") {
      const b = req.body;
      const out = outputOf(v.signature, b.output);
      const labels = this.labelsFor(out.name, shapes.outputs);
      if (!labels) throw ValidationError.at("dataset", `has no labels for output '${out.name}' to attack against`);
      const unknown = labels.classes.filter((c) => !out.classes.includes(c));
      if (unknown.length) throw ValidationError.at("dataset", `has classes version ${version} does not know: ${unknown.slice(0, 10).map((c) => JSON.stringify(c)).join(", ")}`);
      if (b.targetClass !== undefined) classIndex(out.classes, b.targetClass, "targetClass");
      if (input.preprocessing?.kind === "tabular" && input.preprocessing.columns.some((c) => c.type === "categorical")) {
        throw ValidationError.at("dataset", `input '${input.name}' has categorical columns; a gradient with respect to a category does not exist`);
      }
      const gradients = rows * [b.epsilon].flat().length * (b.method === "pgd" ? b.steps : 1);
      if (gradients > MAX_JOB_GRADIENTS) throw ValidationError.at("rows", `rows × ε values × steps is up to ${gradients}; at most ${MAX_JOB_GRADIENTS} per job: fewer rows (rows), ε values or steps`);
    } else {
      // The input itself counts: t-SNE of the raw rows is the baseline a layer's map is compared with.
      const names = [...new Set([input.name, ...layerNamesOf(row.topology)])];
      if (!names.includes(req.body.layer)) throw ValidationError.at("layer", `no layer '${req.body.layer}'; the layers are ${names.slice(0, 50).join(", ")}${names.length > 50 ? ", …" : ""}`);
      if (req.kind === "top-activations") {
        const values = req.body.k * input.shape.reduce((a, b) => a * b, 1);
        if (values > MAX_TOP_VALUES) throw ValidationError.at("k", `k rows of ${input.shape.join("×")} values are ${values}; at most ${MAX_TOP_VALUES} fit a result: a smaller k`);
      } else {
        const b = req.body;
        if (b.output !== undefined && !this.labelsFor(b.output, shapes.outputs)) throw ValidationError.at("output", `the dataset has no labels named '${b.output}'; it has ${shapes.outputs.map((o) => o.name).join(", ") || "none"}`);
        const n = Math.min(b.rows, available);
        if (n < 10) throw ValidationError.at("dataset", `has ${available} rows; t-SNE needs at least 10`);
        if (b.perplexity >= n / 3) throw ValidationError.at("perplexity", `must be below a third of the rows (${n} rows: below ${(n / 3).toFixed(1)})`);
        if (n > TSNE_LIMITS.maxRows) throw ValidationError.at("rows", `at most ${TSNE_LIMITS.maxRows}`);
      }
    }

    const id = randomUUID();
    const request = { ...req.body, split } as object;
    await this.db.$transaction(async (tx) => {
      // Held until the job row exists: a concurrent delete either sees this job (409) or came first (400).
      if (!(await DatasetRepository.lockForUse(tx, tenantId, datasetId))) throw ValidationError.at("dataset", `no dataset with id '${datasetId}'`);
      await tx.insightJob.create({ data: { id, tenantId, versionId: v.id, kind: req.kind, datasetId, request } });
    });
    try {
      await withTimeout(this.enqueue(id, tenantId), ENQUEUE_TIMEOUT_MS, "enqueue timed out");
    } catch (err) {
      // Nothing would ever run it: remove the row rather than leave a job queued forever.
      await this.db.insightJob.delete({ where: { id } }).catch(() => {});
      throw new UnavailableError(`the job queue is unavailable (${(err as Error).message}); try again later`);
    }
    return this.get(tenantId, id);
  }

  async get(tenantId: string, id: string): Promise<InsightJobView> {
    return toView(await this.row(tenantId, id));
  }

  async list(tenantId: string, limit: number): Promise<InsightJobView[]> {
    const rows = await this.db.insightJob.findMany({ where: { tenantId }, include, orderBy: { createdAt: "desc" }, take: limit });
    return rows.map((r) => toView(r as Row));
  }

  /** A queued job ends at once; a running one stops at its next chunk of rows. */
  async cancel(tenantId: string, id: string): Promise<InsightJobView> {
    const job = await this.row(tenantId, id);
    if (job.status !== "queued" && job.status !== "running") throw new ConflictError(`insight job '${id}' has already ${job.status}`);
    await this.db.insightJob.updateMany({ where: { id, status: { in: ["queued", "running"] } }, data: { cancelRequested: true } });
    await this.db.insightJob.updateMany({ where: { id, status: "queued" }, data: { status: "cancelled", finishedAt: new Date() } });
    return this.get(tenantId, id);
  }

  /** Queued or running insight jobs over a dataset (which may not be deleted meanwhile). */
  async activeJobsUsing(tenantId: string, datasetId: string): Promise<string[]> {
    const rows = await this.db.insightJob.findMany({ where: { tenantId, datasetId, status: { in: ["queued", "running"] } }, select: { id: true }, orderBy: { createdAt: "asc" } });
    return rows.map((r) => r.id);
  }

  async picture(tenantId: string, id: string): Promise<Buffer> {
    const job = await this.row(tenantId, id);
    if (job.status !== "succeeded") throw new ConflictError(`insight job '${id}' is ${job.status}; its picture comes once it has succeeded`);
    const title = `${job.version.model.name} v${job.version.version}`;
    const kind = job.kind as InsightKind;
    if (kind === "adversarial") {
      const r = job.result as AdversarialJobResult;
      return attackCurvePng({
        title: `${title}: ${r.method.toUpperCase()}${r.targetClass === null ? "" : ` towards '${r.targetClass}'`}`,
        subtitle: `${r.rows} rows (${r.split}), accuracy ${r.accuracy.toFixed(3)} as they are; ε in the raw input's units${r.range ? `, kept in [${r.range[0]}, ${r.range[1]}]` : ""}`,
        results: r.results,
      });
    }
    if (kind === "tsne") {
      const r = job.result as TsneResult;
      const unlabelled = r.classes.length === 0 || r.points.some((p) => p.class === null);
      const classNames = unlabelled ? [...r.classes, "(no label)"] : r.classes;
      return scatterPng({
        title: `${title}: t-SNE of ${r.layer}`,
        subtitle: `${r.points.length} rows (${r.split}), ${r.dims} values each; perplexity ${r.perplexity}, ${r.iterations} iterations, KL ${r.klDivergence.toFixed(3)}`,
        x: r.points.map((p) => p.x), y: r.points.map((p) => p.y),
        classes: r.points.map((p) => p.class ?? classNames.length - 1), classNames,
      });
    }
    const r = job.result as TopActivationsResult;
    const first = r.top[0]?.instance;
    const shape = shapeOf(first);
    if (shape.length !== 3 || (shape[2] !== 1 && shape[2] !== 3)) {
      throw new ConflictError(`the rows are ${shape.join("×") || "scalars"}, not images (height × width × 1 or 3 channels): the result's numbers are all there is`);
    }
    const [height, width, channels] = shape as [number, number, 1 | 3];
    // Pixels to 0–1 over all the rows shown, so their brightness compares.
    const all = r.top.map((t) => Float32Array.from((t.instance as number[][][]).flat(2)));
    let lo = Infinity;
    let hi = -Infinity;
    for (const a of all) for (const x of a) [lo, hi] = [Math.min(lo, x), Math.max(hi, x)];
    const span = hi - lo || 1;
    const cells = all.map((a, i) => ({ label: `${r.top[i].label ?? `row ${r.top[i].row}`} ${r.top[i].activation.toPrecision(3)}`, data: a.map((x) => (x - lo) / span), width, height, channels }));
    return gridPng({
      title: `${title}: top rows for ${r.layer}[${r.unit}]`,
      subtitle: `${r.top.length} of ${r.rowsSearched} rows (${r.split}); each with its label and activation`,
      cells, columns: Math.min(r.top.length, 6), normalize: "shared", scaleLabel: "pixel, 0–1 over rows",
    });
  }

  private labelsFor(output: string, outputs: { name: string; task: string; classes: string[] }[]) {
    try {
      const [labels] = matchOutputs([output], outputs as never);
      return labels.task === "classification" ? labels : undefined;
    } catch {
      return undefined;
    }
  }

  private async row(tenantId: string, id: string): Promise<Row> {
    const job = await this.db.insightJob.findFirst({ where: { id, tenantId }, include });
    if (!job) throw new NotFoundError("insight job", id);
    return job as Row;
  }
}

function toView(r: Row): InsightJobView {
  const self = `/v1/insight-jobs/${r.id}`;
  return {
    id: r.id, kind: r.kind as InsightKind, model: r.version.model.name, version: r.version.version, dataset: r.datasetId,
    status: r.status as InsightJobView["status"], progress: r.progress, request: r.request as Record<string, unknown>,
    result: (r.result as InsightJobView["result"]) ?? null, error: r.error, cancelRequested: r.cancelRequested, attempts: r.attempts,
    createdAt: r.createdAt.toISOString(), startedAt: r.startedAt?.toISOString() ?? null, finishedAt: r.finishedAt?.toISOString() ?? null,
    links: { self, picture: `${self}.png` },
  };
}

/** The layer names of a stored topology (TensorFlow.js's Keras JSON: config.layers[].config.name). */
export function layerNamesOf(topology: unknown): string[] {
  const t = topology as { modelTopology?: { config?: { layers?: { name?: string; config?: { name?: string } }[] }; model_config?: { config?: { layers?: { name?: string; config?: { name?: string } }[] } } } };
  const layers = t.modelTopology?.config?.layers ?? t.modelTopology?.model_config?.config?.layers ?? [];
  return layers.map((l) => l.config?.name ?? l.name).filter((n): n is string => typeof n === "string");
}

function shapeOf(x: unknown): number[] {
  const shape: number[] = [];
  while (Array.isArray(x)) {
    shape.push(x.length);
    x = x[0];
  }
  return shape;
}
