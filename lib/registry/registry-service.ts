// The registry's API side: version metadata and deletion, aliases and a model's default alias.
// Every change calls `changed(tenant, model)` once it is committed, so that serving's version
// lookup cache (lib/serving/version-resolver.ts) forgets the model on this replica at once and
// tells the other replicas.
import { Prisma, type Db } from "../db/prisma.ts";
import type { StoredModel } from "../engine/model-io.ts";
import { ConflictError, NotFoundError, ValidationError } from "../errors.ts";
import type { Batching, ModelAliasesView, ModelAliasView, ModelVersionView } from "./model-schema.ts";
import { chooseRuntime, type ServingFacts } from "./export/onnx/onnx-check.ts";
import { ModelVersionRepository, type StoredVersionView } from "./model-version-repository.ts";
import type { Signature } from "./signature.ts";

export type RegistryChanged = (tenantId: string, modelName: string) => void | Promise<void>;

export class RegistryService {
  private readonly versions: ModelVersionRepository;

  constructor(private readonly db: Db, private readonly changed: RegistryChanged = () => {}, private readonly serving: ServingFacts = { mode: "tfjs", ortInstalled: false }) {
    this.versions = new ModelVersionRepository(db);
  }

  async list(tenantId: string, name: string): Promise<ModelVersionView[]> {
    return (await this.versions.list(tenantId, name)).map((v) => this.view(name, v));
  }

  async describe(tenantId: string, name: string, version: number): Promise<ModelVersionView> {
    return this.view(name, await this.versions.describe(tenantId, name, version));
  }

  private view(name: string, v: StoredVersionView): ModelVersionView {
    const status = v.onnx.status === "unchecked" ? undefined : v.onnx.status;
    const base = `/v1/models/${encodeURIComponent(name)}/versions/${v.version}`;
    return {
      ...v,
      runtime: chooseRuntime(this.serving.mode, status, this.serving.ortInstalled).runtime,
      exports: { tfjs: `${base}/export/model.json`, zip: `${base}/export.zip`, onnx: `${base}/export.onnx` },
    };
  }

  /** The version numbers of a model, newest first (TF Serving's model status lists them). */
  versionNumbers(tenantId: string, name: string): Promise<number[]> {
    return this.versions.numbers(tenantId, name);
  }

  async aliases(tenantId: string, name: string): Promise<ModelAliasesView> {
    const model = await this.modelOf(tenantId, name);
    const rows = await this.db.modelAlias.findMany({ where: { modelId: model.id }, select: { name: true, updatedAt: true, version: { select: { version: true } } }, orderBy: { name: "asc" } });
    return { defaultAlias: model.defaultAlias, aliases: rows.map((r) => ({ name: r.name, version: r.version.version, updatedAt: r.updatedAt.toISOString() })) };
  }

  /**
   * Points an alias at a version, creating it if need be, in one statement: a reader sees the old
   * row or the new one, never neither. 404 when the version does not exist.
   */
  async moveAlias(tenantId: string, name: string, alias: string, version: number): Promise<ModelAliasView> {
    const model = await this.modelOf(tenantId, name);
    const rows = await this.db.$queryRaw<{ updatedAt: Date }[]>`
      INSERT INTO "ModelAlias" ("modelId", "name", "versionId", "updatedAt")
      SELECT v."modelId", ${alias}, v."id", now() FROM "ModelVersion" v WHERE v."modelId" = ${model.id}::uuid AND v."version" = ${version}
      ON CONFLICT ("modelId", "name") DO UPDATE SET "versionId" = EXCLUDED."versionId", "updatedAt" = EXCLUDED."updatedAt"
      RETURNING "updatedAt"`;
    if (!rows.length) throw new NotFoundError("model version", `${name}/${version}`);
    await this.changed(tenantId, name);
    return { name: alias, version, updatedAt: rows[0].updatedAt.toISOString() };
  }

  /** Removes an alias; refused (409) while it is the model's default alias. */
  async deleteAlias(tenantId: string, name: string, alias: string): Promise<void> {
    await this.db.$transaction(async (tx) => {
      // The model row's lock orders this against a concurrent change of the default alias.
      const [model] = await tx.$queryRaw<{ id: string; defaultAlias: string | null }[]>`
        SELECT "id", "defaultAlias" FROM "Model" WHERE "tenantId" = ${tenantId}::uuid AND "name" = ${name} FOR UPDATE`;
      if (!model) throw new NotFoundError("model", name);
      if (model.defaultAlias === alias) throw new ConflictError(`alias '${alias}' is the default of model '${name}'; set another default (PUT /v1/models/${name}/default-alias) first`);
      const { count } = await tx.modelAlias.deleteMany({ where: { modelId: model.id, name: alias } });
      if (!count) throw new NotFoundError("model alias", `${name}/${alias}`);
    });
    await this.changed(tenantId, name);
  }

  /** Makes an existing alias the one served by default, or (null) the latest version again. */
  async setDefaultAlias(tenantId: string, name: string, alias: string | null): Promise<ModelAliasesView> {
    await this.db.$transaction(async (tx) => {
      const [model] = await tx.$queryRaw<{ id: string }[]>`SELECT "id" FROM "Model" WHERE "tenantId" = ${tenantId}::uuid AND "name" = ${name} FOR UPDATE`;
      if (!model) throw new NotFoundError("model", name);
      if (alias !== null && !(await tx.modelAlias.findUnique({ where: { modelId_name: { modelId: model.id, name: alias } }, select: { name: true } }))) {
        throw ValidationError.at("alias", `model '${name}' has no alias '${alias}'; create it with PUT /v1/models/${name}/aliases/${alias}`);
      }
      await tx.model.update({ where: { id: model.id }, data: { defaultAlias: alias } });
    });
    await this.changed(tenantId, name);
    return this.aliases(tenantId, name);
  }

  /** Sets (or, with null, clears) a model's own dynamic batching; predictions pick it up with their next lookup. */
  async setBatching(tenantId: string, name: string, batching: Batching | null): Promise<Batching | null> {
    if (batching && Object.keys(batching).length === 0) batching = null;
    const { count } = await this.db.model.updateMany({ where: { tenantId, name }, data: { batching: batching ?? Prisma.DbNull } });
    if (!count) throw new NotFoundError("model", name);
    await this.changed(tenantId, name);
    return batching;
  }

  /**
   * Deletes a version. Refused (409, naming them) while aliases point at it; the foreign key
   * refuses it too if an alias moves onto it meanwhile. Deleting the latest version of a model
   * served by its latest version makes the previous one the latest.
   */
  async deleteVersion(tenantId: string, name: string, version: number): Promise<void> {
    const model = await this.modelOf(tenantId, name);
    const row = await this.db.modelVersion.findUnique({ where: { modelId_version: { modelId: model.id, version } }, select: { id: true, aliases: { select: { name: true } } } });
    if (!row) throw new NotFoundError("model version", `${name}/${version}`);
    const refuse = (aliases: string[]) =>
      new ConflictError(`version ${version} of model '${name}' is what ${aliases.map((a) => `'${a}'`).join(", ")} point${aliases.length === 1 ? "s" : ""} at; move or delete ${aliases.length === 1 ? "that alias" : "those aliases"} first`);
    if (row.aliases.length) throw refuse(row.aliases.map((a) => a.name));
    try {
      await this.db.modelVersion.delete({ where: { id: row.id } });
    } catch (err) {
      if (err instanceof Prisma.PrismaClientKnownRequestError && (err.code === "P2003" || err.code === "P2014")) {
        const aliases = await this.db.modelAlias.findMany({ where: { versionId: row.id }, select: { name: true } });
        throw refuse(aliases.map((a) => a.name));
      }
      if (err instanceof Prisma.PrismaClientKnownRequestError && err.code === "P2025") throw new NotFoundError("model version", `${name}/${version}`);
      throw err;
    }
    await this.changed(tenantId, name);
  }

  /**
   * Registers a version trained elsewhere (no job), numbered after the model's latest; retried
   * when another version of the model lands at the same moment. Returns its number.
   */
  async registerImported(v: { tenantId: string; modelId: string; signature: Signature; model: StoredModel; metrics: Record<string, number> }): Promise<number> {
    for (let attempt = 1; ; attempt++) {
      try {
        const version = await this.db.$transaction((tx) => ModelVersionRepository.register(tx, { ...v, jobId: null }));
        const model = await this.db.model.findUniqueOrThrow({ where: { id: v.modelId }, select: { name: true } });
        await this.changed(v.tenantId, model.name);
        return version;
      } catch (err) {
        if (!(err instanceof Prisma.PrismaClientKnownRequestError && err.code === "P2002") || attempt >= 5) throw err;
      }
    }
  }

  private async modelOf(tenantId: string, name: string): Promise<{ id: string; defaultAlias: string | null }> {
    const model = await this.db.model.findUnique({ where: { tenantId_name: { tenantId, name } }, select: { id: true, defaultAlias: true } });
    if (!model) throw new NotFoundError("model", name);
    return model;
  }
}
