// JSON uploads: plain `features` and `labels` (one input, one output) or named `inputs` and
// `outputs` (graph specs), rows of numbers or nested arrays for images, sequences and masks.
// Checked completely, with the exact place of every problem, before anything is stored.
import { ValidationError } from "../../errors.ts";
// Plain `features` and `labels` feed the one input and train the one output of a sequential
// spec, under the same names.
import { DEFAULT_INPUT, DEFAULT_OUTPUT } from "../../model-spec/model-spec-schema.ts";
import type { CreateDatasetJson, DatasetInput, DatasetOutput, Task } from "../dataset-schema.ts";
import { encodeTargets } from "../labels.ts";
import { flattenInto, flattenLabelsInto, indexPath, shapeOf } from "../nested.ts";
import { size, type ParsedDataset } from "../packing.ts";

/** Most dimensions of a row (as of a model input's shape in a spec). */
const MAX_RANK = 8;

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
