// Datasets, API side: an upload (JSON or CSV) is parsed and checked completely before one row is
// written, then stored packed so that a worker loads it without parsing anything.
import type { Db } from "../db/prisma.ts";
import type { CreateDatasetCsvQuery, CreateDatasetJson, DatasetView } from "./dataset-schema.ts";
import { DatasetRepository } from "./dataset-repository.ts";
import { parseCsvDataset } from "./formats/csv.ts";
import { parseJsonDataset } from "./formats/json.ts";

export class DatasetService {
  private readonly repository: DatasetRepository;

  constructor(db: Db) {
    this.repository = new DatasetRepository(db);
  }

  /** A JSON body, or the text of a CSV with its query (name, label column, task). */
  async upload(tenantId: string, body: CreateDatasetJson | string, query: CreateDatasetCsvQuery): Promise<DatasetView> {
    const parsed = typeof body === "string" ? parseCsvDataset(body, query) : parseJsonDataset(body);
    return this.repository.create(tenantId, parsed);
  }

  list(tenantId: string): Promise<DatasetView[]> {
    return this.repository.list(tenantId);
  }

  get(tenantId: string, id: string): Promise<DatasetView> {
    return this.repository.get(tenantId, id);
  }
}
