// Datasets: parse and check an upload completely before one row is written, then store features
// and targets as packed float32 so a worker loads them without parsing anything.
import { randomUUID } from "node:crypto";
import type { Db } from "../db/prisma.ts";
import type { TrainData } from "../engine/trainer.ts";
import { NotFoundError, ValidationError } from "../errors.ts";
import { parseCsv } from "./csv.ts";
// Plain `features`, `labels` and CSV uploads feed the one input and train the one output of a
// sequential spec, under the same names.
import { DEFAULT_INPUT, DEFAULT_OUTPUT } from "../spec/model-spec.ts";
import { flattenInto, flattenLabelsInto, indexPath, shapeOf } from "./nested.ts";
import type { CreateDatasetJson, DatasetView } from "./dataset-schema.ts";

type Task = "classification" | "regression";

/** One named input of a dataset and the shape of one of its rows. */
export interface DatasetInput {
  name: string;
  shape: number[];
}


/** One set of labels of a dataset: the model output it trains, its task and classes, the shape of one row's labels. */
export interface DatasetOutput {
  name: string;
  task: Task;
  classes: string[];
  shape: number[];
}


interface ParsedDataset {
  name: string;
  inputs: DatasetInput[];
  outputs: DatasetOutput[];
  featureNames: string[];
  /** Input after input, each rows × prod(shape) values. */
  features: Float32Array<ArrayBuffer>;
  /** Output after output, each rows × prod(shape) values. */
  targets: Float32Array<ArrayBuffer>;
  rows: number;
}

/** The numeric data of a dataset, as the training engine wants it. */
export interface DatasetTensors {
  rows: number;
  inputs: DatasetInput[];
  outputs: DatasetOutput[];
  /** Input after input, as stored. */
  x: Float32Array;
  /** Output after output, as stored. */
  y: Float32Array;
}

/** Most dimensions of a row (as of a model input's shape in a spec). */
const MAX_RANK = 8;
const size = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);
const toBytes = (a: Float32Array<ArrayBuffer>) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
const toFloats = (b: Uint8Array) => {
  // Prisma hands back a view that may not be 4-byte aligned: copy into a fresh buffer.
  const copy = new Uint8Array(b.byteLength);
  copy.set(b);
  return new Float32Array(copy.buffer);
};

function encodeTargets(labels: (string | number)[], task: Task, where: (i: number) => string, path = "labels"): { targets: Float32Array<ArrayBuffer>; classes: string[] } {
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
  if (classes.length < 2) throw ValidationError.at(path, `classification needs at least 2 classes, found ${classes.length}`);
  const index = new Map(classes.map((c, i) => [c, i]));
  return { targets: Float32Array.from(names, (n) => index.get(n)!), classes };
}

/** `one` or `several`, exactly one of the two: the 400 says which is missing or extra. */
function eitherOf(body: object, one: string, several: string, what: string): void {
  const has = (k: string) => (body as Record<string, unknown>)[k] !== undefined;
  if (has(one) && has(several)) throw ValidationError.at(several, `give either \`${one}\` (${what}) or \`${several}\`, not both`);
  if (!has(one) && !has(several)) throw ValidationError.at(one, `is required: give \`${one}\` (${what}) or \`${several}\``);
}

export function parseJsonDataset(body: CreateDatasetJson): ParsedDataset {
  const { inputs, features, rows, named } = parseInputs(body);
  const { outputs, targets } = parseOutputs(body, rows, named ? "the inputs have" : "features has");
  // Names only mean something for flat rows of one input; images and sequences have none.
  const width = size(inputs[0].shape);
  const featureNames = body.featureNames ?? (!named && inputs[0].shape.length === 1 ? Array.from({ length: width }, (_, j) => `x${j}`) : []);
  if (body.featureNames && featureNames.length !== width) throw ValidationError.at("featureNames", `has ${featureNames.length} names, rows have ${width} numbers`);
  return { name: body.name, inputs, outputs, featureNames, features, targets, rows };
}

/** Plain `features` (one input) or named `inputs`, packed input after input. */
function parseInputs(body: CreateDatasetJson) {
  eitherOf(body, "features", "inputs", "one input");
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
    if (shape.length > MAX_RANK) throw ValidationError.at(`${where}[0]`, `has ${shape.length} dimensions; a row has at most ${MAX_RANK}, as a model input does`);
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
  return { inputs, features, rows, named };
}

/** Plain `labels` (one output) or named `outputs`, encoded and packed output after output. */
function parseOutputs(body: CreateDatasetJson, rows: number, rowsWhere: string) {
  eitherOf(body, "labels", "outputs", "one output");
  const named = body.outputs !== undefined;
  if (!named && typeof body.task === "object") throw ValidationError.at("task", "is one task for plain `labels`; a task per name goes with `outputs`");
  for (const name of typeof body.task === "object" ? Object.keys(body.task) : []) {
    if (!body.outputs![name]) throw ValidationError.at(`task.${name}`, `is not one of the outputs (${Object.keys(body.outputs!).join(", ")})`);
  }
  const labelSets = named ? Object.entries(body.outputs!) : [[DEFAULT_OUTPUT, body.labels!] as const];
  if (labelSets.length === 0) throw ValidationError.at("outputs", "must name at least one output");
  const parsed = labelSets.map(([name, labels]) => {
    const path = named ? `outputs.${name}` : "labels";
    if (labels.length !== rows) throw ValidationError.at(path, `has ${labels.length} entries, ${rowsWhere} ${rows} rows`);
    return parseLabels(labels, path, name, typeof body.task === "object" ? body.task[name] : body.task);
  });
  const targets = new Float32Array(parsed.reduce((a, o) => a + o.targets.length, 0));
  let at = 0;
  for (const o of parsed) {
    targets.set(o.targets, at);
    at += o.targets.length;
  }
  return { outputs: parsed.map((o) => o.output), targets };
}

/**
 * One set of labels, one per row: class names or ids, values, or nested arrays of them (masks,
 * vectors), whose shape the first row sets. The task, unless given, follows from the labels.
 */
function parseLabels(labels: CreateDatasetJson["labels"] & {}, path: string, name: string, givenTask?: Task): { output: DatasetOutput; targets: Float32Array<ArrayBuffer> } {
  const nested = Array.isArray(labels[0]);
  const shape = nested ? shapeOf(labels[0]) : [1];
  if (shape.some((d) => d === 0)) throw ValidationError.at(`${path}[0]`, "is empty");
  if (shape.length > MAX_RANK) throw ValidationError.at(`${path}[0]`, `has ${shape.length} dimensions; a label has at most ${MAX_RANK}`);
  const flat: (string | number)[] = [];
  labels.forEach((l, i) => {
    if (nested) flattenLabelsInto(l, shape, `${path}[${i}]`, flat);
    else if (Array.isArray(l)) throw ValidationError.at(`${path}[${i}]`, `is an array, ${path}[0] is not: every row's label has the same shape`);
    else flat.push(l);
  });
  const perRow = size(shape);
  const where = (k: number) => `${path}[${Math.floor(k / perRow)}]${nested ? indexPath(k % perRow, shape) : ""}`;
  const task: Task = givenTask ?? (flat.some((l) => typeof l === "string") ? "classification" : "regression");
  const { targets, classes } = encodeTargets(flat, task, where, path);
  return { output: { name, task, classes, shape }, targets };
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
    name: opts.name, inputs: [{ name: DEFAULT_INPUT, shape: [width] }], outputs: [{ name: DEFAULT_OUTPUT, task, classes, shape: [1] }], featureNames, features, targets,
    rows: table.rows.length,
  };
}

/** Splits rows stored one block after another (input after input, output after output) into named blocks. */
function blocksOf<T extends { name: string; shape: number[] }>(rows: number, parts: T[], data: Float32Array): Map<string, T & { data: Float32Array }> {
  const blocks = new Map<string, T & { data: Float32Array }>();
  let offset = 0;
  for (const part of parts) {
    const n = rows * size(part.shape);
    blocks.set(part.name, { ...part, data: data.subarray(offset, offset + n) });
    offset += n;
  }
  return blocks;
}

/**
 * A dataset as the training engine takes it: its inputs and its sets of labels in the order
 * given (a model's input and output names, as matched by matchInputs and matchOutputs; omitted,
 * the dataset's own order).
 */
export function toTrainData(d: DatasetTensors, inputOrder = d.inputs.map((i) => i.name), outputOrder = d.outputs.map((o) => o.name)): TrainData {
  const inputs = blocksOf(d.rows, d.inputs, d.x);
  const outputs = blocksOf(d.rows, d.outputs, d.y);
  const get = <T>(blocks: Map<string, T>, name: string, what: string) => {
    const block = blocks.get(name);
    if (!block) throw ValidationError.at("dataset", `has no ${what} named '${name}' (it has ${[...blocks.keys()].join(", ")})`);
    return block;
  };
  return {
    rows: d.rows,
    inputs: inputOrder.map((name) => {
      const { data, shape } = get(inputs, name, "input");
      return { data, shape };
    }),
    targets: outputOrder.map((name) => get(outputs, name, "output")),
  };
}

/**
 * Pairs each of a model's inputs or outputs (`names`) with the dataset's part of the same name;
 * a model with one takes a dataset with one whatever the names. `missing` words the 400.
 */
function pairByName<T extends { name: string }>(names: string[], parts: T[], missing: (name: string) => string): T[] {
  const byName = new Map(parts.map((p) => [p.name, p]));
  return names.map((name) => {
    const part = names.length === 1 && parts.length === 1 ? parts[0] : byName.get(name);
    if (!part) throw ValidationError.at("dataset", missing(name));
    return part;
  });
}

/**
 * Pairs a model's inputs with a dataset's and checks their shapes. Returns the dataset input
 * names in the model's order, or throws a 400 that says which input is missing or does not fit.
 */
export function matchInputs(model: { name: string; shape: (number | null)[] }[], dataset: DatasetInput[]): string[] {
  const fmt = (s: (number | null)[]) => `[${s.map((d) => d ?? "null").join(", ")}]`;
  const names = model.map((m) => m.name);
  const pairs = pairByName(names, dataset, (name) => `has no input named '${name}' for the model's input of that name (the dataset's inputs: ${dataset.map((i) => i.name).join(", ")})`);
  return pairs.map((d, k) => {
    const m = model[k];
    const fits = m.shape.length === d.shape.length && m.shape.every((dim, i) => dim === null || dim === d.shape[i]);
    if (!fits) {
      const which = model.length === 1 ? "input shape" : `input '${m.name}' shape`;
      throw ValidationError.at("model", `${which} ${fmt(m.shape)} does not match the dataset's rows ${fmt(d.shape)}`);
    }
    return d.name;
  });
}

/** Pairs a model's outputs with a dataset's sets of labels: the labels for each output, in the model's output order. */
export function matchOutputs(model: string[], dataset: DatasetOutput[]): DatasetOutput[] {
  const missing = (name: string) =>
    `has no labels for the model's output '${name}' (the model's outputs: ${model.join(", ")}; the dataset's: ${dataset.map((o) => o.name).join(", ")})`;
  return pairByName(model, dataset, missing);
}

const viewSelect = {
  id: true, name: true, task: true, rowCount: true, inputShape: true, inputs: true, classes: true, featureNames: true, targetSize: true, targetShape: true,
  outputs: true, createdAt: true,
} as const;

type DatasetRow = {
  id: string; name: string; task: Task; rowCount: number; inputShape: number[]; inputs: unknown; classes: string[]; featureNames: string[];
  targetSize: number; targetShape: number[]; outputs: unknown; createdAt: Date;
};

function toView(d: DatasetRow): DatasetView {
  return {
    id: d.id, name: d.name, task: d.task, rows: d.rowCount, inputShape: d.inputShape, inputs: d.inputs as DatasetInput[], classes: d.classes,
    featureNames: d.featureNames, targetSize: d.targetSize, targetShape: d.targetShape, outputs: d.outputs as DatasetOutput[], createdAt: d.createdAt.toISOString(),
  };
}

export class DatasetService {
  constructor(private readonly db: Db) {}

  async create(tenantId: string, parsed: ParsedDataset): Promise<DatasetView> {
    const first = parsed.outputs[0];
    const row = await this.db.dataset.create({
      data: {
        id: randomUUID(), tenantId, name: parsed.name, rowCount: parsed.rows, featureNames: parsed.featureNames,
        inputShape: parsed.inputs[0].shape, inputs: parsed.inputs as object[],
        // The first set of labels is also described in columns of its own (what most datasets have).
        task: first.task, classes: first.classes, targetSize: size(first.shape), targetShape: first.shape, outputs: parsed.outputs as object[],
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
      rows: row.rowCount, inputs: row.inputs as unknown as DatasetInput[], outputs: row.outputs as unknown as DatasetOutput[],
      x: toFloats(row.features), y: toFloats(row.targets),
    };
  }
}
