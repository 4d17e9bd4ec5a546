// Datasets, API side: an upload is checked completely before one row is written, then stored
// packed so that a worker loads it without parsing anything. Formats that stream (CSV, TSV, NDJSON,
// image zips) are spooled to a file and read from it twice, so a file far larger than the API's
// memory is stored without being held: checked in the first read, stored shard by shard in the
// second (invisible until complete). Others (JSON, .npz, .npy, text) are read whole. Stored datasets
// are listed a page at a time, previewed a few rows at a time, downloaded as the .npz they would be
// uploaded as, and deleted once no training job needs them.
import { Readable } from "node:stream";
import type { Db } from "../db/prisma.ts";
import { ValidationError } from "../errors.ts";
import type { CreateDatasetJson, DatasetPage, DatasetRows, DatasetRowsQuery, DatasetView, ListDatasetsQuery, UploadQuery } from "./dataset-schema.ts";
import { DatasetRepository, type ActiveJobsOf, type ListPosition } from "./dataset-repository.ts";
import { formatFor } from "./formats/index.ts";
import { parseJsonDataset } from "./formats/json.ts";
import { MULTIPART, parseMultipartDataset, type IncomingPart } from "./formats/multipart.ts";
import { spool, sweepSpooled } from "./formats/upload-spool.ts";
import type { LayoutAtEnd, RowSink } from "./packing.ts";
import { datasetArrays, planNpz } from "./formats/npz-writer.ts";
import { DEFAULT_UPLOAD_LIMITS, type UploadLimits } from "./formats/upload-limits.ts";
import { preprocessingFieldSchema, preprocessingSpecSchema, type PreprocessingField } from "./preprocessing/preprocessing-schema.ts";
import { readableRows } from "./readable-rows.ts";

/** A download: its file name, its exact length, and its bytes as they are read. */
export interface DatasetDownload {
  filename: string;
  bytes: number;
  body: Readable;
}

/** `?preprocessing=` of a raw upload: JSON of a preprocessing spec (or one per input name). */
function declaredPreprocessing(raw: string | undefined): PreprocessingField | undefined {
  if (raw === undefined) return undefined;
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch {
    throw ValidationError.at("querystring.preprocessing", 'is not JSON; send e.g. {"numeric":"minmax"}');
  }
  // One spec for every input (its keys are the spec's), or one per input name: judged by the keys,
  // so that a problem is reported inside the spec rather than as "matches neither".
  const specKeys = Object.keys(preprocessingSpecSchema.shape);
  const isSpec = typeof value === "object" && value !== null && Object.keys(value).every((k) => specKeys.includes(k));
  const parsed = (isSpec ? preprocessingSpecSchema : preprocessingFieldSchema).safeParse(value);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw ValidationError.at(["querystring.preprocessing", ...issue.path.map(String)].join("."), issue.message);
  }
  return parsed.data;
}

export class DatasetService {
  private readonly repository: DatasetRepository;

  /** `activeJobsOf` answers which training jobs still need a dataset: the training area owns jobs, and this area does not import it. */
  constructor(db: Db, private readonly activeJobsOf: ActiveJobsOf, private readonly limits: UploadLimits = DEFAULT_UPLOAD_LIMITS) {
    this.repository = new DatasetRepository(db);
  }

  /**
   * A JSON body (application/json), a raw body in one of UPLOAD_FORMATS with its query (a stream
   * for formats that stream, else read whole), or the parts of a multipart body. `created` is false
   * when the same data under the same name was already stored (that dataset is answered).
   */
  async upload(tenantId: string, mediaType: string | undefined, body: CreateDatasetJson | string | Buffer | Readable | AsyncIterable<IncomingPart>, query: UploadQuery): Promise<DatasetView & { created: boolean }> {
    const format = formatFor(mediaType);
    // The declared preprocessing is the dataset's, whatever its format: taken out before the format reads the query.
    const { preprocessing: declared, ...formatQuery } = query;
    if (mediaType === MULTIPART) {
      const preprocessing = declaredPreprocessing(declared);
      const upload = await parseMultipartDataset(body as AsyncIterable<IncomingPart>, formatQuery, this.limits);
      if (upload.kind === "parsed") return this.repository.create(tenantId, preprocessing ? { ...upload.dataset, preprocessing } : upload.dataset);
      try {
        return await this.store(tenantId, preprocessing, (sink) => upload.format.stream!.read(upload.file.file, upload.settings, this.limits, sink));
      } finally {
        await upload.file.remove();
      }
    }
    if (format?.stream && body instanceof Readable) {
      // What needs no body is checked before the body is received.
      format.stream.precheck(formatQuery);
      const preprocessing = declaredPreprocessing(declared);
      const file = await spool(body, this.limits.maxFileBytes, `${format.name.toUpperCase()} body`, this.limits.spoolDir);
      try {
        return await this.store(tenantId, preprocessing, (sink) => format.stream!.read(file.file, formatQuery, this.limits, sink));
      } finally {
        await file.remove();
      }
    }
    const parsed = format ? await format.parse(body as string | Buffer, formatQuery, this.limits) : parseJsonDataset(body as CreateDatasetJson);
    const preprocessing = format ? declaredPreprocessing(declared) : (body as CreateDatasetJson).preprocessing;
    return this.repository.create(tenantId, preprocessing ? { ...parsed, preprocessing } : parsed);
  }

  /** Stores what a streaming read hands over, shard by shard; anything that fails removes what was written. */
  private async store(tenantId: string, preprocessing: PreprocessingField | undefined, read: (sink: RowSink) => Promise<LayoutAtEnd>): Promise<DatasetView & { created: boolean }> {
    const writer = this.repository.writer(tenantId, preprocessing);
    try {
      return await writer.finish(await read(writer));
    } catch (err) {
      await writer.abort();
      throw err;
    }
  }

  /**
   * Removes uploads that never finished (see DatasetRepository.sweepAbandoned) and the files of
   * uploads whose API process died while reading them; an hour is longer than any upload takes
   * between two writes. Returns how many datasets.
   */
  async sweepAbandoned(olderThanMs = 3_600_000): Promise<number> {
    await sweepSpooled(olderThanMs, this.limits.spoolDir);
    return this.repository.sweepAbandoned(olderThanMs);
  }

  /** The tenant's datasets, newest first (at most 1000; the API lists them a page at a time). */
  list(tenantId: string): Promise<DatasetView[]> {
    return this.repository.list(tenantId);
  }

  /** A page of the tenant's datasets, newest first; `nextCursor` continues after its last one. */
  async page(tenantId: string, query: ListDatasetsQuery): Promise<DatasetPage> {
    const after = query.cursor === undefined ? undefined : decodeCursor(query.cursor);
    const { datasets, more } = await this.repository.page(tenantId, query.limit, after);
    const last = datasets.at(-1);
    return { datasets, nextCursor: more && last ? encodeCursor({ createdAt: new Date(last.createdAt), id: last.id }) : null };
  }

  get(tenantId: string, id: string): Promise<DatasetView> {
    return this.repository.get(tenantId, id);
  }

  /** Rows [offset, offset + limit) as a person reads them, read from only the shards that hold them. */
  async rows(tenantId: string, id: string, query: DatasetRowsQuery): Promise<DatasetRows> {
    const stored = await this.repository.stored(tenantId, id);
    const count = Math.max(0, Math.min(query.limit, stored.rows - query.offset));
    const packed = count > 0 ? await this.repository.readRows(stored, query.offset, count) : { features: new Float32Array(0), targets: new Float32Array(0) };
    return { rows: stored.rows, offset: query.offset, items: readableRows(stored, query.offset, count, packed) };
  }

  /**
   * The dataset as a NumPy .npz, streamed shard by shard (see formats/npz-writer.ts for what it
   * holds): uploading it again with Content-Type application/x-npz stores the same data.
   */
  async download(tenantId: string, id: string): Promise<DatasetDownload> {
    const stored = await this.repository.stored(tenantId, id);
    const plan = planNpz(datasetArrays(stored, (column, k) => this.repository.partChunks(stored, column, k)));
    return { filename: `${stored.name}.npz`, bytes: plan.bytes, body: Readable.from(plan.stream(), { objectMode: false }) };
  }

  /** Deletes a dataset and its rows; a 409 while a queued or running training job uses it. */
  delete(tenantId: string, id: string): Promise<void> {
    return this.repository.delete(tenantId, id, this.activeJobsOf);
  }
}

// The cursor is opaque to clients: base64url of the last dataset's creation time and id.
const CURSOR_PROBLEM = "is not a cursor of this listing: pass `nextCursor` of the previous page as it was given";
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

function encodeCursor(p: ListPosition): string {
  return Buffer.from(JSON.stringify([p.createdAt.toISOString(), p.id])).toString("base64url");
}

function decodeCursor(cursor: string): ListPosition {
  if (!/^[A-Za-z0-9_-]+$/.test(cursor)) throw ValidationError.at("querystring.cursor", CURSOR_PROBLEM);
  let decoded: unknown;
  try {
    decoded = JSON.parse(Buffer.from(cursor, "base64url").toString("utf8"));
  } catch {
    throw ValidationError.at("querystring.cursor", CURSOR_PROBLEM);
  }
  if (!Array.isArray(decoded) || decoded.length !== 2) throw ValidationError.at("querystring.cursor", CURSOR_PROBLEM);
  const [time, id] = decoded as unknown[];
  const createdAt = typeof time === "string" ? new Date(time) : undefined;
  if (!createdAt || Number.isNaN(createdAt.getTime()) || createdAt.toISOString() !== time || typeof id !== "string" || !UUID.test(id)) {
    throw ValidationError.at("querystring.cursor", CURSOR_PROBLEM);
  }
  return { createdAt, id };
}
