// Datasets in Postgres: the description in columns, the rows in shards of packed float32 bytes.
// The one place that reads or writes the dataset tables. A dataset is written as `uploading`,
// shard by shard as its rows arrive (DatasetWriter), and shows only once it is `ready`: an upload
// that fails halfway leaves nothing visible (and is removed). A reader takes it shard by shard.
import { createHash, randomUUID, type Hash } from "node:crypto";
import { poolOf, type Db, type Prisma } from "../db/prisma.ts";
import { ConflictError, NotFoundError } from "../errors.ts";
import type { DatasetInput, DatasetOutput, DatasetView, Task } from "./dataset-schema.ts";
import type { PreprocessingField } from "./preprocessing/preprocessing-schema.ts";
import { size, toFloats, type DatasetLayout, type DatasetTensors, type LayoutAtEnd, type ParsedDataset, type RowSink } from "./packing.ts";

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
   * A writer for one upload's rows, which it stores shard by shard as they arrive. The same data
   * under the same name is recognised by its content hash when the writer finishes, and not kept
   * twice: `created` says which happened.
   */
  writer(tenantId: string, preprocessing?: PreprocessingField): DatasetWriter {
    return new DatasetWriter(this.db, tenantId, this.shardBytes, preprocessing);
  }

  /** Stores an upload parsed in memory, through the same writer. */
  async create(tenantId: string, parsed: ParsedDataset): Promise<DatasetView & { created: boolean }> {
    const writer = this.writer(tenantId, parsed.preprocessing);
    try {
      await writer.begin(parsed);
      // Packed whole, the rows are one chunk of every row.
      await writer.append(parsed.rows, parsed.features, parsed.targets);
      return await writer.finish();
    } catch (err) {
      await writer.abort();
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
    // Through the pg pool, as shards are written (see lib/db/prisma.ts).
    const { rows } = await poolOf(this.db).query<{ bytes: Buffer }>(
      `SELECT substring("${column === "features" ? "features" : "targets"}" FROM $1::int FOR $2::int) AS bytes FROM "DatasetShard" WHERE "datasetId" = $3::uuid AND "index" = $4::int`,
      [offset + 1, length, datasetId, shard.index],
    );
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
      const { rows: found } = await poolOf(this.db).query<{ rowStart: number; rowCount: number; features: Buffer; targets: Buffer }>(
        `SELECT "rowStart", "rowCount", "features", "targets" FROM "DatasetShard" WHERE "datasetId" = $1::uuid AND "index" = $2::int`,
        [id, index],
      );
      const shard = found[0];
      if (!shard) break;
      scatter(toFloats(shard.features), inputs, shard.rowStart, shard.rowCount, rows, x);
      scatter(toFloats(shard.targets), outputs, shard.rowStart, shard.rowCount, rows, y);
    }
    return { rows, featureNames: row.featureNames, inputs, outputs, x, y };
  }
}

/** A shard's rows (parts one after another, each `count × width`) put back at their place in the whole packed block. */
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

/**
 * Stores one upload's rows as they arrive, a shard at a time: the dataset's row first, invisible
 * while `uploading`, then each shard once it is full, then `ready`. What it holds at once is one
 * shard, whatever the upload's size. The caller calls `abort` when anything fails, which removes
 * what was written (and sweepAbandoned does, should the process die first).
 *
 * The content hash is sha256 of the layout and of one sha256 per part (input or set of labels) over
 * all its rows in order: independent of how the rows were chunked, so the same data hashes the same
 * whichever format brought it.
 */
export class DatasetWriter implements RowSink {
  private id: string | undefined;
  private layout: DatasetLayout | undefined;
  private inWidths: number[] = [];
  private outWidths: number[] = [];
  private perShard = 1;
  /** The shard being filled, one buffer per part. */
  private parts: Float32Array[] = [];
  private filled = 0;
  private shardIndex = 0;
  /** Rows appended, and of those, rows in stored shards. */
  private rows = 0;
  private stored = 0;
  private readonly hashes: Hash[] = [];
  /** Per output, how many labels have each class id (classification outputs only). */
  private counts: (number[] | undefined)[] = [];

  constructor(private readonly db: Db, private readonly tenantId: string, private readonly shardBytes: number, private readonly preprocessing?: PreprocessingField) {}

  async begin(layout: DatasetLayout): Promise<void> {
    if (this.layout) throw new Error("DatasetWriter.begin called twice");
    this.layout = layout;
    this.inWidths = layout.inputs.map((i) => size(i.shape));
    this.outWidths = layout.outputs.map((o) => size(o.shape));
    const rowBytes = 4 * [...this.inWidths, ...this.outWidths].reduce((a, b) => a + b, 0);
    this.perShard = Math.max(1, Math.floor(this.shardBytes / rowBytes));
    this.parts = [...this.inWidths, ...this.outWidths].map((w) => new Float32Array(this.perShard * w));
    this.hashes.push(...this.parts.map(() => createHash("sha256")));
    this.counts = layout.outputs.map((o) => (o.task === "classification" ? [] : undefined));
    const first = layout.outputs[0];
    const id = randomUUID();
    await this.db.dataset.create({
      data: {
        id, tenantId: this.tenantId, name: layout.name, rowCount: 0, featureNames: layout.featureNames,
        inputShape: layout.inputs[0].shape, inputs: layout.inputs as object[],
        // The first set of labels is also described in columns of its own (what most datasets have).
        task: first.task, classes: first.classes, targetSize: size(first.shape), targetShape: first.shape, outputs: layout.outputs as object[],
        warnings: layout.warnings ?? [], ...(this.preprocessing ? { preprocessing: this.preprocessing as object } : {}), status: "uploading",
      },
    });
    this.id = id;
  }

  async append(rows: number, features: Float32Array, targets: Float32Array): Promise<void> {
    if (!this.layout) throw new Error("DatasetWriter.append before begin");
    const widths = [...this.inWidths, ...this.outWidths];
    const expected = rows * widths.reduce((a, b) => a + b, 0);
    if (features.length + targets.length !== expected) throw new Error(`DatasetWriter.append: ${rows} rows are ${expected} values, got ${features.length + targets.length}`);
    // Where each part's rows start in the chunk: features part after part, then targets.
    const sources: { block: Float32Array; at: number }[] = [];
    let at = 0;
    for (const w of this.inWidths) {
      sources.push({ block: features, at });
      at += rows * w;
    }
    at = 0;
    for (const w of this.outWidths) {
      sources.push({ block: targets, at });
      at += rows * w;
    }
    sources.forEach(({ block, at: from }, k) => {
      const values = block.subarray(from, from + rows * widths[k]);
      this.hashes[k].update(new Uint8Array(values.buffer, values.byteOffset, values.byteLength));
      const counts = this.counts[k - this.inWidths.length];
      if (counts) for (const v of values) if (Number.isInteger(v) && v >= 0 && v < 65_536) counts[v] = (counts[v] ?? 0) + 1;
    });
    let done = 0;
    while (done < rows) {
      const take = Math.min(rows - done, this.perShard - this.filled);
      sources.forEach(({ block, at: from }, k) => {
        const w = widths[k];
        this.parts[k].set(block.subarray(from + done * w, from + (done + take) * w), this.filled * w);
      });
      this.filled += take;
      done += take;
      if (this.filled === this.perShard) await this.flush();
    }
    this.rows += rows;
  }

  /** Stores the rows not yet stored, marks the dataset ready (or, if the same data is stored already, removes this one), and describes it. */
  async finish(atEnd: LayoutAtEnd = {}): Promise<DatasetView & { created: boolean }> {
    if (!this.layout || !this.id) throw new Error("DatasetWriter.finish before begin");
    if (this.filled > 0 || this.shardIndex === 0) await this.flush();
    const layout = { ...this.layout, ...atEnd };
    const outputs = layout.outputs.map((o, k) => {
      const counts = this.counts[k];
      return o.task === "classification" && counts ? { ...o, counts: o.classes.map((_, c) => counts[c] ?? 0) } : o;
    });
    const h = createHash("sha256");
    h.update(JSON.stringify({ inputs: layout.inputs, outputs: layout.outputs, featureNames: layout.featureNames, rows: this.rows, preprocessing: this.preprocessing ?? null }));
    for (const part of this.hashes) h.update(part.digest());
    const contentHash = h.digest("hex");
    const same = await this.db.dataset.findFirst({ where: { tenantId: this.tenantId, name: layout.name, contentHash, status: "ready" }, select: viewSelect });
    if (same) {
      await this.abort();
      return { ...toView(same), created: false };
    }
    const first = outputs[0];
    const bytes = 4 * this.rows * [...this.inWidths, ...this.outWidths].reduce((a, b) => a + b, 0);
    const row = await this.db.dataset.update({
      where: { id: this.id },
      data: {
        status: "ready", rowCount: this.rows, contentHash, bytes: BigInt(bytes), outputs: outputs as object[], classes: first.classes, warnings: layout.warnings ?? [],
        // Written last, so that a dataset's time is when it became visible (the listing's order).
        createdAt: new Date(),
      },
      select: viewSelect,
    });
    return { ...toView(row), created: true };
  }

  /** Removes what was written (nothing if begin never ran). Never throws: it runs after a failure. */
  async abort(): Promise<void> {
    const id = this.id;
    this.id = undefined;
    if (id) await this.db.dataset.delete({ where: { id } }).catch(() => {});
  }

  private async flush(): Promise<void> {
    const widths = [...this.inWidths, ...this.outWidths];
    const count = this.filled;
    const pack = (from: number, to: number) => {
      const out = new Float32Array(count * widths.slice(from, to).reduce((a, b) => a + b, 0));
      let at = 0;
      for (let k = from; k < to; k++) {
        out.set(this.parts[k].subarray(0, count * widths[k]), at);
        at += count * widths[k];
      }
      return Buffer.from(out.buffer);
    };
    const features = pack(0, this.inWidths.length);
    const targets = pack(this.inWidths.length, widths.length);
    // Through the pg pool: Prisma keeps a copy of a large bytea value on the heap (lib/db/prisma.ts).
    await poolOf(this.db).query(
      `INSERT INTO "DatasetShard" ("datasetId", "index", "rowStart", "rowCount", "features", "targets") VALUES ($1::uuid, $2::int, $3::int, $4::int, $5, $6)`,
      [this.id, this.shardIndex, this.stored, count, features, targets],
    );
    this.shardIndex++;
    this.stored += count;
    this.filled = 0;
  }
}
