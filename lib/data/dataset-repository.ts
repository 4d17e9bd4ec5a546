// Datasets in Postgres: the description in columns, the rows in shards of packed float32 bytes.
// The one place that reads or writes the dataset tables. A dataset is written as `uploading`,
// shard by shard, and shows only once it is `ready`: an upload that fails halfway leaves nothing
// visible (and is removed). A reader takes it shard by shard.
import { createHash, randomUUID } from "node:crypto";
import type { Db, Prisma } from "../db/prisma.ts";
import { ConflictError, NotFoundError } from "../errors.ts";
import type { DatasetInput, DatasetOutput, DatasetView, Task } from "./dataset-schema.ts";
import type { PreprocessingField } from "./preprocessing/preprocessing-schema.ts";
import { size, toFloats, type DatasetTensors, type ParsedDataset } from "./packing.ts";

/** Bytes of values per shard: large enough that a shard is one cheap round trip, small enough to bound a reader's extra memory. */
const SHARD_BYTES = 8 * 1024 * 1024;

const viewSelect = {
  id: true, name: true, task: true, rowCount: true, inputShape: true, inputs: true, classes: true, featureNames: true, targetSize: true, targetShape: true,
  outputs: true, warnings: true, contentHash: true, bytes: true, preprocessing: true, createdAt: true,
} as const;

type DatasetRow = {
  id: string; name: string; task: Task; rowCount: number; inputShape: number[]; inputs: unknown; classes: string[]; featureNames: string[];
  targetSize: number; targetShape: number[]; outputs: unknown; warnings: string[]; contentHash: string | null; bytes: bigint; preprocessing: unknown; createdAt: Date;
};

function toView(d: DatasetRow): DatasetView {
  return {
    id: d.id, name: d.name, task: d.task, rows: d.rowCount, inputShape: d.inputShape, inputs: d.inputs as DatasetInput[], classes: d.classes,
    featureNames: d.featureNames, targetSize: d.targetSize, targetShape: d.targetShape, outputs: d.outputs as DatasetOutput[], warnings: d.warnings,
    contentHash: d.contentHash, bytes: Number(d.bytes), preprocessing: (d.preprocessing as PreprocessingField | null) ?? null, createdAt: d.createdAt.toISOString(),
  };
}

/** The outputs with, for classification, how many labels each class has (the class balance). */
function withClassCounts(parsed: ParsedDataset): DatasetOutput[] {
  let offset = 0;
  return parsed.outputs.map((o) => {
    const n = parsed.rows * size(o.shape);
    const block = parsed.targets.subarray(offset, offset + n);
    offset += n;
    if (o.task !== "classification") return o;
    const counts = new Array<number>(o.classes.length).fill(0);
    for (const id of block) if (id >= 0 && id < counts.length) counts[id]++;
    return { ...o, counts };
  });
}

/** Where a page of the newest-first listing ended: its last dataset. */
export interface ListPosition {
  createdAt: Date;
  id: string;
}

/** A dataset's rows and parts without values, and where its shards' rows are. */
export interface StoredDataset {
  id: string;
  name: string;
  rows: number;
  featureNames: string[];
  inputs: DatasetInput[];
  outputs: DatasetOutput[];
  shards: ShardRange[];
}

export interface ShardRange {
  index: number;
  rowStart: number;
  rowCount: number;
}

/** The ids of the training jobs that still need a dataset (queued or running); asked of the training area, which owns jobs. */
export type ActiveJobsOf = (tenantId: string, datasetId: string) => Promise<string[]>;

export class DatasetRepository {
  constructor(
    private readonly db: Db,
    /** Bytes of values per shard (tests make it small to get many shards from little data). */
    private readonly shardBytes = SHARD_BYTES,
  ) {}

  /**
   * Stores a parsed upload: the row first (invisible while `uploading`), then its shards, then
   * `ready`. The same data under the same name is recognised by its content hash and not stored
   * twice: `created` says which happened.
   */
  async create(tenantId: string, parsed: ParsedDataset): Promise<DatasetView & { created: boolean }> {
    const outputs = withClassCounts(parsed);
    const contentHash = hashOf(parsed);
    const same = await this.db.dataset.findFirst({ where: { tenantId, name: parsed.name, contentHash, status: "ready" }, select: viewSelect });
    if (same) return { ...toView(same), created: false };
    const first = outputs[0];
    const id = randomUUID();
    await this.db.dataset.create({
      data: {
        id, tenantId, name: parsed.name, rowCount: parsed.rows, featureNames: parsed.featureNames,
        inputShape: parsed.inputs[0].shape, inputs: parsed.inputs as object[],
        // The first set of labels is also described in columns of its own (what most datasets have).
        task: first.task, classes: first.classes, targetSize: size(first.shape), targetShape: first.shape, outputs: outputs as object[],
        warnings: parsed.warnings ?? [], ...(parsed.preprocessing ? { preprocessing: parsed.preprocessing as object } : {}), status: "uploading", contentHash, bytes: BigInt(parsed.features.byteLength + parsed.targets.byteLength),
      },
    });
    try {
      for (const shard of shardsOf(parsed, this.shardBytes)) await this.db.datasetShard.create({ data: { datasetId: id, ...shard } });
      const row = await this.db.dataset.update({ where: { id }, data: { status: "ready" }, select: viewSelect });
      return { ...toView(row), created: true };
    } catch (err) {
      await this.db.dataset.delete({ where: { id } }).catch(() => {});
      throw err;
    }
  }

  async list(tenantId: string): Promise<DatasetView[]> {
    const rows = await this.db.dataset.findMany({ where: { tenantId, status: "ready" }, select: viewSelect, orderBy: { createdAt: "desc" }, take: 1000 });
    return rows.map(toView);
  }

  /**
   * A page of the newest-first listing, after `after` (the last dataset of the previous page).
   * Ordered by (createdAt, id), so a page continues exactly where the last one ended however many
   * datasets were added since: those are newer and come before it.
   */
  async page(tenantId: string, limit: number, after?: ListPosition): Promise<{ datasets: DatasetView[]; more: boolean }> {
    const rows = await this.db.dataset.findMany({
      where: {
        tenantId, status: "ready",
        ...(after ? { OR: [{ createdAt: { lt: after.createdAt } }, { createdAt: after.createdAt, id: { lt: after.id } }] } : {}),
      },
      select: viewSelect,
      orderBy: [{ createdAt: "desc" }, { id: "desc" }],
      take: limit + 1,
    });
    return { datasets: rows.slice(0, limit).map(toView), more: rows.length > limit };
  }

  async get(tenantId: string, id: string): Promise<DatasetView> {
    const row = await this.db.dataset.findFirst({ where: { id, tenantId, status: "ready" }, select: viewSelect });
    if (!row) throw new NotFoundError("dataset", id);
    return toView(row);
  }

  /** What a job needs to check a dataset against a model before queueing: no rows. */
  async findShapes(tenantId: string, id: string): Promise<{ inputs: DatasetInput[]; outputs: DatasetOutput[]; rows: number; preprocessing?: PreprocessingField } | null> {
    const row = await this.db.dataset.findFirst({ where: { id, tenantId, status: "ready" }, select: { inputs: true, outputs: true, rowCount: true, preprocessing: true } });
    return row && {
      inputs: row.inputs as unknown as DatasetInput[], outputs: row.outputs as unknown as DatasetOutput[], rows: row.rowCount,
      ...(row.preprocessing ? { preprocessing: row.preprocessing as PreprocessingField } : {}),
    };
  }

  /** A ready dataset's layout and its shards' row ranges: what reading some of its rows, or all of them part by part, starts from. */
  async stored(tenantId: string, id: string): Promise<StoredDataset> {
    const row = await this.db.dataset.findFirst({
      where: { id, tenantId, status: "ready" },
      select: { id: true, name: true, rowCount: true, featureNames: true, inputs: true, outputs: true, shards: { select: { index: true, rowStart: true, rowCount: true }, orderBy: { index: "asc" } } },
    });
    if (!row) throw new NotFoundError("dataset", id);
    return {
      id: row.id, name: row.name, rows: row.rowCount, featureNames: row.featureNames,
      inputs: row.inputs as unknown as DatasetInput[], outputs: row.outputs as unknown as DatasetOutput[], shards: row.shards,
    };
  }

  /**
   * Rows [start, start + count) of every part, packed as a shard is (`features` input after input,
   * `targets` output after output, each count × prod(shape)), read from only the shards that hold
   * them, and of those only the bytes of these rows.
   */
  async readRows(d: StoredDataset, start: number, count: number): Promise<{ features: Float32Array; targets: Float32Array }> {
    const end = Math.min(start + count, d.rows);
    const held = d.shards.filter((s) => s.rowStart < end && s.rowStart + s.rowCount > start);
    const read = async (column: "features" | "targets", parts: { shape: number[] }[]) => {
      const widths = parts.map((p) => size(p.shape));
      const out = new Float32Array(Math.max(0, end - start) * widths.reduce((a, b) => a + b, 0));
      let at = 0;
      for (let k = 0; k < parts.length; k++) {
        for (const shard of held) {
          const from = Math.max(start, shard.rowStart);
          const to = Math.min(end, shard.rowStart + shard.rowCount);
          const values = toFloats(await this.partBytes(d.id, shard, column, widths, k, from, to));
          out.set(values, at);
          at += values.length;
        }
      }
      return out;
    };
    return { features: await read("features", d.inputs), targets: await read("targets", d.outputs) };
  }

  /** Every row of one part (input k, or output k), shard by shard, as the stored float32 bytes. */
  async *partChunks(d: StoredDataset, column: "features" | "targets", k: number): AsyncGenerator<Uint8Array> {
    const widths = (column === "features" ? d.inputs : d.outputs).map((p) => size(p.shape));
    for (const shard of d.shards) yield await this.partBytes(d.id, shard, column, widths, k, shard.rowStart, shard.rowStart + shard.rowCount);
  }

  /**
   * Rows [from, to) of part k of one shard: only those bytes leave the database. A shard lays its
   * parts one after another, each rowCount × width values.
   */
  private async partBytes(datasetId: string, shard: ShardRange, column: "features" | "targets", widths: number[], k: number, from: number, to: number): Promise<Uint8Array> {
    const before = widths.slice(0, k).reduce((a, b) => a + b, 0);
    const offset = 4 * (shard.rowCount * before + (from - shard.rowStart) * widths[k]);
    const length = 4 * (to - from) * widths[k];
    // The column is one of two names, never input: substring() reads the bytes of these rows only.
    const rows = column === "features"
      ? await this.db.$queryRaw<{ bytes: Uint8Array }[]>`SELECT substring("features" FROM ${offset + 1}::int FOR ${length}::int) AS bytes FROM "DatasetShard" WHERE "datasetId" = ${datasetId}::uuid AND "index" = ${shard.index}::int`
      : await this.db.$queryRaw<{ bytes: Uint8Array }[]>`SELECT substring("targets" FROM ${offset + 1}::int FOR ${length}::int) AS bytes FROM "DatasetShard" WHERE "datasetId" = ${datasetId}::uuid AND "index" = ${shard.index}::int`;
    // Gone: the dataset was deleted while it was being read.
    if (!rows.length) throw new NotFoundError("dataset", datasetId);
    const bytes = rows[0].bytes;
    if (bytes.byteLength !== length) throw new Error(`dataset ${datasetId} shard ${shard.index}: ${column} holds ${bytes.byteLength} bytes at ${offset}, its layout says ${length}`);
    return bytes;
  }

  /**
   * Deletes a ready dataset and, by cascade, its shards, unless a training job still needs it
   * (queued or running: a 409 naming them). Jobs and model versions trained on it stay: a job
   * keeps the dataset's id as history, a version holds its own weights and preprocessing.
   */
  async delete(tenantId: string, id: string, activeJobsOf: ActiveJobsOf): Promise<void> {
    // The row is locked for the check and the delete: a job being created takes a share lock on it
    // (lockForUse), so either that job is counted here or its creation finds no dataset.
    await this.db.$transaction(async (tx) => {
      const locked = await tx.$queryRaw<{ id: string }[]>`SELECT "id" FROM "Dataset" WHERE "id" = ${id}::uuid AND "tenantId" = ${tenantId}::uuid AND "status" = 'ready' FOR UPDATE`;
      if (!locked.length) throw new NotFoundError("dataset", id);
      const jobs = await activeJobsOf(tenantId, id);
      if (jobs.length) {
        throw new ConflictError(`dataset '${id}' is used by ${jobs.length === 1 ? "a queued or running training job" : `${jobs.length} queued or running training jobs`}: ${jobs.join(", ")}; cancel ${jobs.length === 1 ? "it" : "them"} or wait until ${jobs.length === 1 ? "it finishes" : "they finish"}`);
      }
      await tx.dataset.delete({ where: { id } });
    });
  }

  /**
   * Inside the caller's transaction: holds a ready dataset against deletion until the transaction
   * ends (a share lock, which delete's update lock waits for). False when there is no such dataset.
   */
  static async lockForUse(tx: Prisma.TransactionClient, tenantId: string, id: string): Promise<boolean> {
    const held = await tx.$queryRaw<{ id: string }[]>`SELECT "id" FROM "Dataset" WHERE "id" = ${id}::uuid AND "tenantId" = ${tenantId}::uuid AND "status" = 'ready' FOR SHARE`;
    return held.length > 0;
  }

  /**
   * Deletes uploads left `uploading` for longer than `olderThanMs`: their writer died, or could not
   * remove them because the database went away mid-write. Returns how many.
   */
  async sweepAbandoned(olderThanMs: number): Promise<number> {
    const { count } = await this.db.dataset.deleteMany({ where: { status: "uploading", createdAt: { lt: new Date(Date.now() - olderThanMs) } } });
    return count;
  }

  /** Every row, shard by shard, packed input after input (and output after output) as the worker trains on them. */
  async loadTensors(tenantId: string, id: string): Promise<DatasetTensors> {
    const row = await this.db.dataset.findFirst({ where: { id, tenantId, status: "ready" }, select: { rowCount: true, featureNames: true, inputs: true, outputs: true } });
    if (!row) throw new NotFoundError("dataset", id);
    const inputs = row.inputs as unknown as DatasetInput[];
    const outputs = row.outputs as unknown as DatasetOutput[];
    const rows = row.rowCount;
    const x = new Float32Array(rows * inputs.reduce((a, i) => a + size(i.shape), 0));
    const y = new Float32Array(rows * outputs.reduce((a, o) => a + size(o.shape), 0));
    // One shard in memory at a time besides the result.
    for (let index = 0; ; index++) {
      const shard = await this.db.datasetShard.findUnique({ where: { datasetId_index: { datasetId: id, index } } });
      if (!shard) break;
      scatter(toFloats(shard.features), inputs, shard.rowStart, shard.rowCount, rows, x);
      scatter(toFloats(shard.targets), outputs, shard.rowStart, shard.rowCount, rows, y);
    }
    return { rows, featureNames: row.featureNames, inputs, outputs, x, y };
  }
}

/** The shards of a parsed dataset: consecutive rows, each shard laid out part after part for its rows. */
function* shardsOf(parsed: ParsedDataset, shardBytes: number): Generator<{ index: number; rowStart: number; rowCount: number; features: Uint8Array<ArrayBuffer>; targets: Uint8Array<ArrayBuffer> }> {
  const inWidths = parsed.inputs.map((i) => size(i.shape));
  const outWidths = parsed.outputs.map((o) => size(o.shape));
  const rowBytes = 4 * (inWidths.reduce((a, b) => a + b, 0) + outWidths.reduce((a, b) => a + b, 0));
  const perShard = Math.max(1, Math.floor(shardBytes / rowBytes));
  for (let index = 0, start = 0; start < parsed.rows || index === 0; index++, start += perShard) {
    const count = Math.min(perShard, parsed.rows - start);
    yield { index, rowStart: start, rowCount: count, features: gather(parsed.features, inWidths, parsed.rows, start, count), targets: gather(parsed.targets, outWidths, parsed.rows, start, count) };
  }
}

/** Rows [start, start + count) of every part of a packed block (parts one after another, each `rows × width`), packed the same way. */
function gather(block: Float32Array, widths: number[], rows: number, start: number, count: number): Uint8Array<ArrayBuffer> {
  const out = new Float32Array(count * widths.reduce((a, b) => a + b, 0));
  let from = 0;
  let to = 0;
  for (const w of widths) {
    out.set(block.subarray(from + start * w, from + (start + count) * w), to);
    from += rows * w;
    to += count * w;
  }
  return new Uint8Array(out.buffer);
}

/** The inverse of gather: a shard's rows put back at their place in the whole packed block. */
function scatter(shard: Float32Array, parts: { shape: number[] }[], start: number, count: number, rows: number, out: Float32Array): void {
  let from = 0;
  let to = 0;
  for (const p of parts) {
    const w = size(p.shape);
    out.set(shard.subarray(from, from + count * w), to + start * w);
    from += count * w;
    to += rows * w;
  }
}

/** sha256 of a dataset's layout and values: what identifies the same data uploaded again. */
function hashOf(parsed: ParsedDataset): string {
  const h = createHash("sha256");
  h.update(JSON.stringify({ inputs: parsed.inputs, outputs: parsed.outputs, featureNames: parsed.featureNames, rows: parsed.rows, preprocessing: parsed.preprocessing ?? null }));
  h.update(new Uint8Array(parsed.features.buffer, parsed.features.byteOffset, parsed.features.byteLength));
  h.update(new Uint8Array(parsed.targets.buffer, parsed.targets.byteOffset, parsed.targets.byteLength));
  return h.digest("hex");
}
