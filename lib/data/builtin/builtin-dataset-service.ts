// Built-in data, API side: the catalogue, and imports stored through the one dataset repository,
// so that training, preprocessing and prediction treat an import exactly like an upload.
import type { Db } from "../../db/prisma.ts";
import type { DatasetView } from "../dataset-schema.ts";
import { DatasetRepository } from "../dataset-repository.ts";
import type { BuiltinDatasetView, ImportBuiltin } from "./builtin-schema.ts";
import { buildBuiltin, BUILTINS, describeBuiltin } from "./index.ts";

export class BuiltinDatasetService {
  private readonly repository: DatasetRepository;

  constructor(db: Db) {
    this.repository = new DatasetRepository(db);
  }

  list(): BuiltinDatasetView[] {
    return Object.values(BUILTINS).map(describeBuiltin);
  }

  /** `body` is the new dataset's `name` (default: the built-in's) and the built-in's parameters. */
  async import(tenantId: string, builtin: string, body: ImportBuiltin): Promise<DatasetView & { created: boolean }> {
    const { name, ...params } = body;
    const parsed = await buildBuiltin(builtin, name ?? builtin, params);
    return this.repository.create(tenantId, parsed);
  }
}
