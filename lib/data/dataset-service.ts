// Datasets: parse and check an upload completely before one row is written, then store features
// and targets as packed float32 so a worker loads them without parsing anything.
import { randomUUID } from "node:crypto";
import type { Db } from "../db/prisma.ts";
import type { TrainData } from "../engine/trainer.ts";
import { NotFoundError, ValidationError } from "../errors.ts";
import { parseCsv } from "./csv.ts";
import { flattenInto, flattenLabelsInto, indexPath, shapeOf } from "./nested.ts";
import type { CreateDatasetJson, DatasetView } from "./dataset-schema.ts";

type Task = "classification" | "regression";

/** One named input of a dataset and the shape of one of its rows. */
export interface DatasetInput {
  name: string;
  shape: number[];
}

/** Name of the input of a dataset uploaded as plain `features` or CSV. */
export const DEFAULT_INPUT = "input";

interface ParsedDataset {
  name: string;
  task: Task;
  inputs: DatasetInput[];
  featureNames: string[];
  classes: string[];
  /** Input after input, each rows × prod(shape) values. */
  features: Float32Array<ArrayBuffer>;
  targets: Float32Array<ArrayBuffer>;
  targetShape: number[];
  rows: number;
}

/** The numeric data of a dataset, as the training engine wants it. */
export interface DatasetTensors {
  task: Task;
  rows: number;
  inputs: DatasetInput[];
  classes: string[];
  targetShape: number[];
  /** Input after input, as stored. */
  x: Float32Array;
  y: Float32Array;
}

const size = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);
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
  if ((body.features === undefined) === (body.inputs === undefined)) {
    throw ValidationError.at(body.features ? "inputs" : "features", "give either `features` (one input) or `inputs` (several named inputs), not both");
  }
  const named = body.inputs !== undefined;
  if (named && body.inputShape) throw ValidationError.at("inputShape", "reshapes plain `features`; nest each of the named `inputs` to its shape instead");
  if (named && body.featureNames) throw ValidationError.at("featureNames", "names the columns of plain `features`; named `inputs` have none");
  const entries = named ? Object.entries(body.inputs!) : [[DEFAULT_INPUT, body.features!] as const];
  if (entries.length === 0) throw ValidationError.at("inputs", "must name at least one input");
  const rows = entries[0][1].length;

  // The first row of each input sets its shape; every other row must match it exactly.
  const inputs: DatasetInput[] = [];
  const widths = entries.map(([name, rowsOf]) => {
    const where = named ? `inputs.${name}` : "features";
    if (rowsOf.length !== rows) throw ValidationError.at(where, `has ${rowsOf.length} rows, inputs.${entries[0][0]} has ${rows}`);
    const shape = shapeOf(rowsOf[0]);
    if (shape.some((d) => d === 0)) throw ValidationError.at(`${where}[0]`, "is empty");
    inputs.push({ name, shape });
    return size(shape);
  });
  const features = new Float32Array(rows * widths.reduce((a, b) => a + b, 0));
  let offset = 0;
  entries.forEach(([, rowsOf], k) => {
    const where = named ? `inputs.${inputs[k].name}` : "features";
    rowsOf.forEach((row, i) => flattenInto(row, inputs[k].shape, `${where}[${i}]`, features, offset + i * widths[k]));
    offset += rows * widths[k];
  });
  if (body.inputShape) {
    const want = size(body.inputShape);
    if (want !== widths[0]) throw ValidationError.at("inputShape", `[${body.inputShape.join(", ")}] holds ${want} values, a row has ${widths[0]}`);
    inputs[0].shape = body.inputShape;
  }

  if (body.labels.length !== rows) throw ValidationError.at("labels", `has ${body.labels.length} entries, ${named ? "the inputs have" : "features has"} ${rows} rows`);
  // Plain labels are one per row; nested ones (masks, vectors) take their shape from the first row.
  const nestedLabels = Array.isArray(body.labels[0]);
  const targetShape = nestedLabels ? shapeOf(body.labels[0]) : [1];
  if (targetShape.some((d) => d === 0)) throw ValidationError.at("labels[0]", "is empty");
  const flat: (string | number)[] = [];
  body.labels.forEach((l, i) => {
    if (nestedLabels) flattenLabelsInto(l, targetShape, `labels[${i}]`, flat);
    else if (Array.isArray(l)) throw ValidationError.at(`labels[${i}]`, "is an array, labels[0] is not: every row's label has the same shape");
    else flat.push(l);
  });
  const perRow = size(targetShape);
  const where = (k: number) => `labels[${Math.floor(k / perRow)}]${nestedLabels ? indexPath(k % perRow, targetShape) : ""}`;

  const task: Task = body.task ?? (flat.some((l) => typeof l === "string") ? "classification" : "regression");
  // Names only mean something for flat rows of one input; images and sequences have none.
  const width = widths[0];
  const featureNames = body.featureNames ?? (!named && inputs[0].shape.length === 1 ? Array.from({ length: width }, (_, j) => `x${j}`) : []);
  if (body.featureNames && featureNames.length !== width) throw ValidationError.at("featureNames", `has ${featureNames.length} names, rows have ${width} numbers`);
  const { targets, classes } = encodeTargets(flat, task, where);
  return { name: body.name, task, inputs, featureNames, classes, features, targets, targetShape, rows };
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
  return {
    name: opts.name, task, inputs: [{ name: DEFAULT_INPUT, shape: [width] }], featureNames, classes, features, targets, targetShape: [1], rows: table.rows.length,
  };
}

/**
 * A dataset as the training engine takes it: its inputs in the order given (a model's input
 * names; omitted, the dataset's own order), class ids or values as targets.
 */
export function toTrainData(d: DatasetTensors, inputOrder: string[] = d.inputs.map((i) => i.name)): TrainData {
  const blocks = new Map<string, { data: Float32Array; shape: number[] }>();
  let offset = 0;
  for (const input of d.inputs) {
    const n = d.rows * size(input.shape);
    blocks.set(input.name, { data: d.x.subarray(offset, offset + n), shape: input.shape });
    offset += n;
  }
  return {
    task: d.task, rows: d.rows, classes: d.classes,
    inputs: inputOrder.map((name) => {
      const block = blocks.get(name);
      if (!block) throw ValidationError.at("dataset", `has no input named '${name}' (it has ${[...blocks.keys()].join(", ")})`);
      return block;
    }),
    target: { data: d.y, shape: d.targetShape },
  };
}

/**
 * Pairs a model's inputs with a dataset's: a one-input model takes a one-input dataset whatever
 * the names; otherwise by name. Returns the dataset input names in the model's order, or throws
 * a 400 that says which input is missing or does not fit.
 */
export function matchInputs(model: { name: string; shape: (number | null)[] }[], dataset: DatasetInput[]): string[] {
  const fmt = (s: (number | null)[]) => `[${s.map((d) => d ?? "null").join(", ")}]`;
  const byName = new Map(dataset.map((i) => [i.name, i]));
  return model.map((m) => {
    const d = model.length === 1 && dataset.length === 1 ? dataset[0] : byName.get(m.name);
    if (!d) {
      throw ValidationError.at("dataset", `has no input named '${m.name}' for the model's input of that name (the dataset's inputs: ${dataset.map((i) => i.name).join(", ")})`);
    }
    const fits = m.shape.length === d.shape.length && m.shape.every((dim, i) => dim === null || dim === d.shape[i]);
    if (!fits) {
      const which = model.length === 1 ? "input shape" : `input '${m.name}' shape`;
      throw ValidationError.at("model", `${which} ${fmt(m.shape)} does not match the dataset's rows ${fmt(d.shape)}`);
    }
    return d.name;
  });
}

const viewSelect = {
  id: true, name: true, task: true, rowCount: true, inputShape: true, inputs: true, classes: true, featureNames: true, targetSize: true, targetShape: true,
  createdAt: true,
} as const;

type DatasetRow = {
  id: string; name: string; task: Task; rowCount: number; inputShape: number[]; inputs: unknown; classes: string[]; featureNames: string[];
  targetSize: number; targetShape: number[]; createdAt: Date;
};

function toView(d: DatasetRow): DatasetView {
  return {
    id: d.id, name: d.name, task: d.task, rows: d.rowCount, inputShape: d.inputShape, inputs: d.inputs as DatasetInput[], classes: d.classes,
    featureNames: d.featureNames, targetSize: d.targetSize, targetShape: d.targetShape, createdAt: d.createdAt.toISOString(),
  };
}

export class DatasetService {
  constructor(private readonly db: Db) {}

  async create(tenantId: string, parsed: ParsedDataset): Promise<DatasetView> {
    const row = await this.db.dataset.create({
      data: {
        id: randomUUID(), tenantId, name: parsed.name, task: parsed.task, rowCount: parsed.rows,
        inputShape: parsed.inputs[0].shape, inputs: parsed.inputs as object[], classes: parsed.classes, featureNames: parsed.featureNames,
        targetSize: size(parsed.targetShape), targetShape: parsed.targetShape,
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
      task: row.task, rows: row.rowCount, inputs: row.inputs as unknown as DatasetInput[], classes: row.classes, targetShape: row.targetShape,
      x: toFloats(row.features), y: toFloats(row.targets),
    };
  }
}
