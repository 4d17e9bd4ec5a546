// Models: a named spec per tenant, built once before it is stored so a spec that cannot become a
// network is refused at the door rather than failing in a worker.
import { randomUUID } from "node:crypto";
import { Prisma, type Db } from "../db/prisma.ts";
import { ConflictError, NotFoundError, ValidationError } from "../errors.ts";
import { buildModel } from "../spec/build-model.ts";
import { modelSpecSchema, type ModelSpec } from "../spec/model-spec.ts";
import type { CreateModel, ModelView } from "./model-schema.ts";

export interface ModelLimits {
  maxParams: number;
}

type ModelRow = { name: string; spec: unknown; paramCount: number; outputShape: number[]; createdAt: Date; versions: { version: number }[] };

function toView(row: ModelRow): ModelView {
  const spec = modelSpecSchema.parse(row.spec);
  return {
    name: row.name, spec, paramCount: row.paramCount, inputShape: spec.input.shape, outputShape: row.outputShape,
    latestVersion: row.versions[0]?.version ?? null, createdAt: row.createdAt.toISOString(),
  };
}

const withLatest = { versions: { select: { version: true }, orderBy: { version: "desc" }, take: 1 } } as const;

/** Builds the spec to check it; returns its facts and frees the weights at once. */
export function inspectSpec(spec: ModelSpec, limits: ModelLimits): { paramCount: number; outputShape: number[] } {
  const { model, paramCount, outputShape } = buildModel(spec);
  model.dispose();
  if (paramCount > limits.maxParams) {
    throw ValidationError.at("spec", `the model has ${paramCount} parameters, the limit is ${limits.maxParams}`);
  }
  return { paramCount, outputShape };
}

export class ModelService {
  constructor(private readonly db: Db, private readonly limits: ModelLimits) {}

  async create(tenantId: string, body: CreateModel): Promise<ModelView> {
    const { paramCount, outputShape } = inspectSpec(body.spec, this.limits);
    try {
      const row = await this.db.model.create({
        data: { id: randomUUID(), tenantId, name: body.name, spec: body.spec as object, paramCount, outputShape },
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
    return toView(await this.findRow(tenantId, name));
  }

  async findRow(tenantId: string, name: string) {
    const row = await this.db.model.findUnique({ where: { tenantId_name: { tenantId, name } }, include: withLatest });
    if (!row) throw new NotFoundError("model", name);
    return row;
  }
}
