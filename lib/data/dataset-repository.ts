// Datasets in Postgres: the description in columns, the packed float32 rows as bytes. The one
// place that reads or writes the dataset table.
import { randomUUID } from "node:crypto";
import type { Db } from "../db/prisma.ts";
import { NotFoundError } from "../errors.ts";
import type { DatasetInput, DatasetOutput, DatasetView, Task } from "./dataset-schema.ts";
import { size, toBytes, toFloats, type DatasetTensors, type ParsedDataset } from "./packing.ts";

const viewSelect = {
  id: true, name: true, task: true, rowCount: true, inputShape: true, inputs: true, classes: true, featureNames: true, targetSize: true, targetShape: true,
  outputs: true, warnings: true, createdAt: true,
} as const;

type DatasetRow = {
  id: string; name: string; task: Task; rowCount: number; inputShape: number[]; inputs: unknown; classes: string[]; featureNames: string[];
  targetSize: number; targetShape: number[]; outputs: unknown; warnings: string[]; createdAt: Date;
};

function toView(d: DatasetRow): DatasetView {
  return {
    id: d.id, name: d.name, task: d.task, rows: d.rowCount, inputShape: d.inputShape, inputs: d.inputs as DatasetInput[], classes: d.classes,
    featureNames: d.featureNames, targetSize: d.targetSize, targetShape: d.targetShape, outputs: d.outputs as DatasetOutput[], warnings: d.warnings, createdAt: d.createdAt.toISOString(),
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
  constructor(private readonly db: Db) {}

  async create(tenantId: string, parsed: ParsedDataset): Promise<DatasetView> {
    const outputs = withClassCounts(parsed);
    const first = outputs[0];
    const row = await this.db.dataset.create({
      data: {
        id: randomUUID(), tenantId, name: parsed.name, rowCount: parsed.rows, featureNames: parsed.featureNames,
        inputShape: parsed.inputs[0].shape, inputs: parsed.inputs as object[],
        // The first set of labels is also described in columns of its own (what most datasets have).
        task: first.task, classes: first.classes, targetSize: size(first.shape), targetShape: first.shape, outputs: outputs as object[],
        features: toBytes(parsed.features), targets: toBytes(parsed.targets), warnings: parsed.warnings ?? [],
      },
      select: viewSelect,
    });
    return toView(row);
  }

  async list(tenantId: string): Promise<DatasetView[]> {
    const rows = await this.db.dataset.findMany({ where: { tenantId }, select: viewSelect, orderBy: { createdAt: "desc" }, take: 1000 });
    return rows.map(toView);
  }

  async get(tenantId: string, id: string): Promise<DatasetView> {
    const row = await this.db.dataset.findFirst({ where: { id, tenantId }, select: viewSelect });
    if (!row) throw new NotFoundError("dataset", id);
    return toView(row);
  }

  /** What a job needs to check a dataset against a model before queueing: no rows. */
  async findShapes(tenantId: string, id: string): Promise<{ inputs: DatasetInput[]; outputs: DatasetOutput[]; rows: number } | null> {
    const row = await this.db.dataset.findFirst({ where: { id, tenantId }, select: { inputs: true, outputs: true, rowCount: true } });
    return row && { inputs: row.inputs as unknown as DatasetInput[], outputs: row.outputs as unknown as DatasetOutput[], rows: row.rowCount };
  }

  async loadTensors(tenantId: string, id: string): Promise<DatasetTensors> {
    const row = await this.db.dataset.findFirst({ where: { id, tenantId } });
    if (!row) throw new NotFoundError("dataset", id);
    return {
      rows: row.rowCount, featureNames: row.featureNames, inputs: row.inputs as unknown as DatasetInput[], outputs: row.outputs as unknown as DatasetOutput[],
      x: toFloats(row.features), y: toFloats(row.targets),
    };
  }
}
