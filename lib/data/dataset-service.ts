// Datasets, API side: an upload (JSON or CSV) is parsed and checked completely before one row is
// written, then stored packed so that a worker loads it without parsing anything.
import type { Db } from "../db/prisma.ts";
import type { CreateDatasetJson, DatasetView, UploadQuery } from "./dataset-schema.ts";
import { DatasetRepository } from "./dataset-repository.ts";
import { formatFor } from "./formats/index.ts";
import { parseJsonDataset } from "./formats/json.ts";
import { MULTIPART, parseMultipartDataset, type IncomingPart } from "./formats/multipart.ts";
import { DEFAULT_UPLOAD_LIMITS, type UploadLimits } from "./formats/upload-limits.ts";

export class DatasetService {
  private readonly repository: DatasetRepository;

  constructor(db: Db, private readonly limits: UploadLimits = DEFAULT_UPLOAD_LIMITS) {
    this.repository = new DatasetRepository(db);
  }

  /**
   * A JSON body (application/json), a raw body in one of UPLOAD_FORMATS with its query, or the
   * parts of a multipart body. `created` is false when the same data under the same name was
   * already stored (that dataset is answered).
   */
  async upload(tenantId: string, mediaType: string | undefined, body: CreateDatasetJson | string | Buffer | AsyncIterable<IncomingPart>, query: UploadQuery): Promise<DatasetView & { created: boolean }> {
    const format = formatFor(mediaType);
    const parsed =
      mediaType === MULTIPART ? await parseMultipartDataset(body as AsyncIterable<IncomingPart>, query, this.limits)
      : format ? await format.parse(body as string | Buffer, query, this.limits)
      : parseJsonDataset(body as CreateDatasetJson);
    return this.repository.create(tenantId, parsed);
  }

  /** Removes uploads that never finished (see DatasetRepository.sweepAbandoned); an hour is longer than any upload takes. */
  sweepAbandoned(olderThanMs = 3_600_000): Promise<number> {
    return this.repository.sweepAbandoned(olderThanMs);
  }

  list(tenantId: string): Promise<DatasetView[]> {
    return this.repository.list(tenantId);
  }

  get(tenantId: string, id: string): Promise<DatasetView> {
    return this.repository.get(tenantId, id);
  }
}
