// Models: a named spec per tenant, built once before it is stored so a spec that cannot become a
// network is refused at the door rather than failing in a worker. Their trained versions are
// model-version-repository's.
import { randomUUID } from "node:crypto";
import { Prisma, type Db } from "../db/prisma.ts";
import { ConflictError, NotFoundError, ValidationError } from "../errors.ts";
import { buildModel, type ModelSummary } from "../engine/build/build-model.ts";
import { limitProblems, preflight, type SpecLimits } from "../engine/build/preflight.ts";
import { modelInputs, modelOutputNames, modelSpecSchema, type ModelSpec } from "../model-spec/model-spec-schema.ts";
import { checkTraining } from "../model-spec/objectives.ts";
import type { CreateModel, ModelView } from "./model-schema.ts";
import { ModelVersionRepository } from "./model-version-repository.ts";

export type ModelLimits = SpecLimits;

export interface SpecReport {
  paramCount: number;
  inputShapes: (number | null)[][];
  outputShapes: (number | null)[][];
  summary: ModelSummary;
}

type ModelRow = { name: string; spec: unknown; outputShape: number[]; outputs: unknown; paramCount: number; batching: unknown; createdAt: Date; versions: { version: number }[] };

// Postgres int[] holds no nulls: a free output dimension is stored as -1.
const toStored = (s: (number | null)[]) => s.map((d) => d ?? -1);
const fromStored = (s: number[]) => s.map((d) => (d < 0 ? null : d));

function toView(row: ModelRow): ModelView {
  const spec = modelSpecSchema.parse(row.spec);
  const inputs = modelInputs(spec);
  return {
    name: row.name, spec, paramCount: row.paramCount, inputShape: inputs[0].shape, inputs, outputShape: fromStored(row.outputShape),
    outputs: row.outputs as ModelView["outputs"], batching: (row.batching as ModelView["batching"]) ?? null,
    latestVersion: row.versions[0]?.version ?? null, createdAt: row.createdAt.toISOString(),
  };
}

const withLatest = { versions: { select: { version: true }, orderBy: { version: "desc" }, take: 1 } } as const;

/**
 * Checks a spec completely — shapes and limits from the preflight, which allocates nothing, then
 * training rules, then a build with zeroed weights for what only tfjs finds — and frees the
 * weights at once. Returns what a person needs to judge it: shapes, parameters, FLOPs, memory.
 */
export function inspectSpec(spec: ModelSpec, limits: ModelLimits): SpecReport {
  const pre = preflight(spec, "spec", limits.maxLayers);
  const problems = [...checkTraining(spec, pre.outputShapes), ...limitProblems(pre, limits)];
  if (problems.length) throw new ValidationError(problems);
  const { model, paramCount, inputShapes, outputShapes, summary } = buildModel(spec, "spec", { preflight: pre, zeroWeights: true });
  model.dispose();
  return { paramCount, inputShapes, outputShapes, summary };
}

/**
 * Runs inspectSpec somewhere other than the caller's event loop (serving's InferenceRuntime, on a
 * thread of its own): building a big spec takes a second of CPU.
 */
export interface SpecValidator {
  validateSpec(spec: ModelSpec, limits: ModelLimits): Promise<SpecReport>;
}

// Below these, building a spec on the event loop costs milliseconds (measured: a 784-700-700-10 MLP, 1.05M
// parameters, builds in about 13 ms with zeroed weights); above, it goes to the build thread.
const IN_LOOP_MAX_PARAMS = 1_000_000;
const IN_LOOP_MAX_FLOPS = 50_000_000;

export class ModelService {
  private readonly versionRepository: ModelVersionRepository;

  /** Without a validator, specs are built on the caller's thread (workers, scripts, tests). */
  constructor(private readonly db: Db, private readonly limits: ModelLimits, private readonly validator?: SpecValidator) {
    this.versionRepository = new ModelVersionRepository(db);
  }

  /**
   * Checks a spec fully; with a validator, a big one off the caller's event loop. The preflight
   * (shapes, parameters, FLOPs: no weights allocated) decides: a small network builds in a few
   * milliseconds, less than the hop to a thread, and an API that only ever sees small specs never
   * starts the build thread.
   */
  async validate(spec: ModelSpec): Promise<SpecReport> {
    if (!this.validator) return inspectSpec(spec, this.limits);
    const { summary } = preflight(spec, "spec", this.limits.maxLayers);
    if (summary.totalParams <= IN_LOOP_MAX_PARAMS && summary.flopsPerSample <= IN_LOOP_MAX_FLOPS) return inspectSpec(spec, this.limits);
    return this.validator.validateSpec(spec, this.limits);
  }

  /** The same check on the caller's thread, blocking it while the spec builds: for callers that cannot wait. */
  validateSync(spec: ModelSpec): SpecReport {
    return inspectSpec(spec, this.limits);
  }

  async create(tenantId: string, body: CreateModel): Promise<ModelView> {
    const { paramCount, outputShapes } = await this.validate(body.spec);
    const outputs = modelOutputNames(body.spec).map((name, k) => ({ name, shape: outputShapes[k] }));
    try {
      const row = await this.db.model.create({
        data: { id: randomUUID(), tenantId, name: body.name, spec: body.spec as object, paramCount, outputShape: toStored(outputShapes[0]), outputs },
        include: withLatest,
      });
      return toView(row);
    } catch (err) {
      if (err instanceof Prisma.PrismaClientKnownRequestError && err.code === "P2002") {
        throw new ConflictError(`a model named '${body.name}' already exists`);
      }
      throw err;
    }
  }

  async list(tenantId: string): Promise<ModelView[]> {
    const rows = await this.db.model.findMany({ where: { tenantId }, include: withLatest, orderBy: { createdAt: "desc" }, take: 1000 });
    return rows.map(toView);
  }

  async get(tenantId: string, name: string): Promise<ModelView> {
    const row = await this.db.model.findUnique({ where: { tenantId_name: { tenantId, name } }, include: withLatest });
    if (!row) throw new NotFoundError("model", name);
    return toView(row);
  }
}
