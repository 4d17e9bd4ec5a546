// Datasets in Postgres: the description in columns, the rows in shards of packed float32 bytes.
// The one place that reads or writes the dataset tables. A dataset is written as `uploading`,
// shard by shard, and shows only once it is `ready`: an upload that fails halfway leaves nothing
// visible (and is removed). A reader takes it shard by shard.
import { createHash, randomUUID } from "node:crypto";
import type { Db } from "../db/prisma.ts";
import { NotFoundError } from "../errors.ts";
import type { DatasetInput, DatasetOutput, DatasetView, Task } from "./dataset-schema.ts";
import { size, toFloats, type DatasetTensors, type ParsedDataset } from "./packing.ts";

/** Bytes of values per shard: large enough that a shard is one cheap round trip, small enough to bound a reader's extra memory. */
const SHARD_BYTES = 8 * 1024 * 1024;

const viewSelect = {
  id: true, name: true, task: true, rowCount: true, inputShape: true, inputs: true, classes: true, featureNames: true, targetSize: true, targetShape: true,
  outputs: true, warnings: true, contentHash: true, bytes: true, createdAt: true,
} as const;

type DatasetRow = {
  id: string; name: string; task: Task; rowCount: number; inputShape: number[]; inputs: unknown; classes: string[]; featureNames: string[];
  targetSize: number; targetShape: number[]; outputs: unknown; warnings: string[]; contentHash: string | null; bytes: bigint; createdAt: Date;
};

function toView(d: DatasetRow): DatasetView {
  return {
    id: d.id, name: d.name, task: d.task, rows: d.rowCount, inputShape: d.inputShape, inputs: d.inputs as DatasetInput[], classes: d.classes,
    featureNames: d.featureNames, targetSize: d.targetSize, targetShape: d.targetShape, outputs: d.outputs as DatasetOutput[], warnings: d.warnings,
    contentHash: d.contentHash, bytes: Number(d.bytes), createdAt: d.createdAt.toISOString(),
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
        warnings: parsed.warnings ?? [], status: "uploading", contentHash, bytes: BigInt(parsed.features.byteLength + parsed.targets.byteLength),
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

  async get(tenantId: string, id: string): Promise<DatasetView> {
    const row = await this.db.dataset.findFirst({ where: { id, tenantId, status: "ready" }, select: viewSelect });
    if (!row) throw new NotFoundError("dataset", id);
    return toView(row);
  }

  /** What a job needs to check a dataset against a model before queueing: no rows. */
  async findShapes(tenantId: string, id: string): Promise<{ inputs: DatasetInput[]; outputs: DatasetOutput[]; rows: number } | null> {
    const row = await this.db.dataset.findFirst({ where: { id, tenantId, status: "ready" }, select: { inputs: true, outputs: true, rowCount: true } });
    return row && { inputs: row.inputs as unknown as DatasetInput[], outputs: row.outputs as unknown as DatasetOutput[], rows: row.rowCount };
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
  h.update(JSON.stringify({ inputs: parsed.inputs, outputs: parsed.outputs, featureNames: parsed.featureNames, rows: parsed.rows }));
  h.update(new Uint8Array(parsed.features.buffer, parsed.features.byteOffset, parsed.features.byteLength));
  h.update(new Uint8Array(parsed.targets.buffer, parsed.targets.byteOffset, parsed.targets.byteLength));
  return h.digest("hex");
}
