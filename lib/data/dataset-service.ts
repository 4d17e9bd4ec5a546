// Datasets, API side: an upload (JSON or CSV) is parsed and checked completely before one row is
// written, then stored packed so that a worker loads it without parsing anything.
import type { Db } from "../db/prisma.ts";
import type { CreateDatasetJson, DatasetView, UploadQuery } from "./dataset-schema.ts";
import { DatasetRepository } from "./dataset-repository.ts";
import { formatFor } from "./formats/index.ts";
import { parseJsonDataset } from "./formats/json.ts";

export class DatasetService {
  private readonly repository: DatasetRepository;

  constructor(db: Db) {
    this.repository = new DatasetRepository(db);
  }

  /** A JSON body (application/json), or a raw body in one of UPLOAD_FORMATS with its query. */
  async upload(tenantId: string, mediaType: string | undefined, body: CreateDatasetJson | string | Buffer, query: UploadQuery): Promise<DatasetView> {
    const format = formatFor(mediaType);
    const parsed = format ? await format.parse(body as string | Buffer, query) : parseJsonDataset(body as CreateDatasetJson);
    return this.repository.create(tenantId, parsed);
  }

  list(tenantId: string): Promise<DatasetView[]> {
    return this.repository.list(tenantId);
  }

  get(tenantId: string, id: string): Promise<DatasetView> {
    return this.repository.get(tenantId, id);
  }
}
