// Datasets: parse and check an upload completely before one row is written, then store features
// and targets as packed float32 so a worker loads them without parsing anything.
import { randomUUID } from "node:crypto";
import type { Db } from "../db/prisma.ts";
import type { TrainData } from "../engine/trainer.ts";
import { NotFoundError, ValidationError } from "../errors.ts";
import { parseCsv } from "./csv.ts";
import { flattenInto, shapeOf } from "./nested.ts";
import type { CreateDatasetJson, DatasetView } from "./dataset-schema.ts";

type Task = "classification" | "regression";

interface ParsedDataset {
  name: string;
  task: Task;
  inputShape: number[];
  featureNames: string[];
  classes: string[];
  features: Float32Array<ArrayBuffer>;
  targets: Float32Array<ArrayBuffer>;
  rows: number;
}

/** The numeric data of a dataset, as the training engine wants it. */
export interface DatasetTensors {
  task: Task;
  rows: number;
  inputShape: number[];
  classes: string[];
  targetSize: number;
  x: Float32Array;
  y: Float32Array;
}

const toBytes = (a: Float32Array<ArrayBuffer>) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
const toFloats = (b: Uint8Array) => {
  // Prisma hands back a view that may not be 4-byte aligned: copy into a fresh buffer.
  const copy = new Uint8Array(b.byteLength);
  copy.set(b);
  return new Float32Array(copy.buffer);
};

function encodeTargets(labels: (string | number)[], task: Task, where: (i: number) => string): { targets: Float32Array<ArrayBuffer>; classes: string[] } {
  if (task === "regression") {
    const targets = new Float32Array(labels.length);
    labels.forEach((l, i) => {
      const v = typeof l === "number" ? l : Number(l);
      if (typeof l === "string" && l.trim() === "") throw ValidationError.at(where(i), "label is empty");
      if (!Number.isFinite(v)) throw ValidationError.at(where(i), `label '${l}' is not a number (regression needs numeric labels)`);
      targets[i] = v;
    });
    return { targets, classes: [] };
  }
  const names = labels.map((l, i) => {
    const s = String(l).trim();
    if (!s) throw ValidationError.at(where(i), "label is empty");
    return s;
  });
  const distinct = [...new Set(names)];
  const numeric = distinct.every((s) => Number.isFinite(Number(s)));
  // Sorted so that the same data always gives the same class ids, whatever the row order.
  const classes = numeric ? distinct.sort((a, b) => Number(a) - Number(b)) : distinct.sort();
  if (classes.length < 2) throw ValidationError.at("labels", `classification needs at least 2 classes, found ${classes.length}`);
  const index = new Map(classes.map((c, i) => [c, i]));
  return { targets: Float32Array.from(names, (n) => index.get(n)!), classes };
}

export function parseJsonDataset(body: CreateDatasetJson): ParsedDataset {
  const rows = body.features.length;
  if (body.labels.length !== rows) throw ValidationError.at("labels", `has ${body.labels.length} entries, features has ${rows} rows`);
  // The first row sets the shape; every other row must match it exactly.
  const rowShape = shapeOf(body.features[0]);
  if (rowShape.some((d) => d === 0)) throw ValidationError.at("features[0]", "is empty");
  const width = rowShape.reduce((a, b) => a * b, 1);
  const features = new Float32Array(rows * width);
  body.features.forEach((row, i) => flattenInto(row, rowShape, `features[${i}]`, features, i * width));
  let inputShape = rowShape;
  if (body.inputShape) {
    const size = body.inputShape.reduce((a, b) => a * b, 1);
    if (size !== width) throw ValidationError.at("inputShape", `[${body.inputShape.join(", ")}] holds ${size} values, a row has ${width}`);
    inputShape = body.inputShape;
  }
  const task: Task = body.task ?? (body.labels.some((l) => typeof l === "string") ? "classification" : "regression");
  // Names only mean something for flat rows of features; images and sequences have none.
  const featureNames = body.featureNames ?? (inputShape.length === 1 ? Array.from({ length: width }, (_, j) => `x${j}`) : []);
  if (body.featureNames && featureNames.length !== width) throw ValidationError.at("featureNames", `has ${featureNames.length} names, rows have ${width} numbers`);
  const { targets, classes } = encodeTargets(body.labels, task, (i) => `labels[${i}]`);
  return { name: body.name, task, inputShape, featureNames, classes, features, targets, rows };
}

export function parseCsvDataset(text: string, opts: { name?: string; label?: string; task?: Task }): ParsedDataset {
  if (!opts.name) throw ValidationError.at("querystring.name", "is required for a CSV upload (?name=...)");
  const table = parseCsv(text);
  const labelColumn = opts.label ?? table.header[table.header.length - 1];
  const labelIndex = table.header.indexOf(labelColumn);
  if (labelIndex < 0) throw ValidationError.at("querystring.label", `column '${labelColumn}' is not in the CSV header (${table.header.join(", ")})`);
  if (table.header.length < 2) throw ValidationError.at("CSV header", "needs at least one feature column besides the label");
  const featureNames = table.header.filter((_, j) => j !== labelIndex);
  const width = featureNames.length;
  const features = new Float32Array(table.rows.length * width);
  const labels: string[] = [];
  table.rows.forEach((fields, i) => {
    let k = 0;
    fields.forEach((raw, j) => {
      if (j === labelIndex) return labels.push(raw);
      const v = raw.trim() === "" ? NaN : Number(raw);
      if (!Number.isFinite(v)) {
        throw ValidationError.at(`CSV row ${table.rowNumbers[i]}`, `column '${table.header[j]}': '${raw}' is not a number`);
      }
      features[i * width + k++] = v;
    });
  });
  const numericLabels = labels.every((l) => l.trim() !== "" && Number.isFinite(Number(l)));
  const task: Task = opts.task ?? (numericLabels ? "regression" : "classification");
  const { targets, classes } = encodeTargets(labels, task, (i) => `CSV row ${table.rowNumbers[i]}, column '${labelColumn}'`);
  return { name: opts.name, task, inputShape: [width], featureNames, classes, features, targets, rows: table.rows.length };
}

/** A dataset as the training engine takes it: one input, class ids or values as targets. */
export function toTrainData(d: DatasetTensors): TrainData {
  return {
    task: d.task, rows: d.rows, classes: d.classes,
    inputs: [{ data: d.x, shape: d.inputShape }],
    target: { data: d.y, shape: [d.targetSize] },
  };
}

const viewSelect = {
  id: true, name: true, task: true, rowCount: true, inputShape: true, classes: true, featureNames: true, targetSize: true, createdAt: true,
} as const;

function toView(d: { id: string; name: string; task: Task; rowCount: number; inputShape: number[]; classes: string[]; featureNames: string[]; targetSize: number; createdAt: Date }): DatasetView {
  return {
    id: d.id, name: d.name, task: d.task, rows: d.rowCount, inputShape: d.inputShape, classes: d.classes,
    featureNames: d.featureNames, targetSize: d.targetSize, createdAt: d.createdAt.toISOString(),
  };
}

export class DatasetService {
  constructor(private readonly db: Db) {}

  async create(tenantId: string, parsed: ParsedDataset): Promise<DatasetView> {
    const row = await this.db.dataset.create({
      data: {
        id: randomUUID(), tenantId, name: parsed.name, task: parsed.task, rowCount: parsed.rows, inputShape: parsed.inputShape,
        classes: parsed.classes, featureNames: parsed.featureNames, targetSize: 1,
        features: toBytes(parsed.features), targets: toBytes(parsed.targets),
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

  async loadTensors(tenantId: string, id: string): Promise<DatasetTensors> {
    const row = await this.db.dataset.findFirst({ where: { id, tenantId } });
    if (!row) throw new NotFoundError("dataset", id);
    return {
      task: row.task, rows: row.rowCount, inputShape: row.inputShape, classes: row.classes, targetSize: row.targetSize,
      x: toFloats(row.features), y: toFloats(row.targets),
    };
  }
}
