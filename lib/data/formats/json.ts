// JSON uploads: plain `features` and `labels` (one input, one output) or named `inputs` and
// `outputs` (graph specs), rows of numbers or nested arrays for images, sequences and masks; a
// table as `rows` or `columns` (formats/tabular.ts); `sequences` of different lengths, padded.
// Checked completely, with the exact place of every problem, before anything is stored.
import { formatPath, ValidationError } from "../../errors.ts";
// Plain `features` and `labels` feed the one input and train the one output of a sequential
// spec, under the same names.
import { DEFAULT_INPUT, DEFAULT_OUTPUT } from "../../model-spec/model-spec-schema.ts";
import type { CreateDatasetJson, DatasetInput, DatasetOutput, Task } from "../dataset-schema.ts";
import { classLikeIntegers, encodeTargets } from "../labels.ts";
import { flattenInto, flattenLabelsInto, indexPath, shapeOf } from "../nested.ts";
import { size, type ParsedDataset } from "../packing.ts";
import { tabularDataset, type Cell, type TabularPlaces } from "./tabular.ts";

/** Most dimensions of a row (as of a model input's shape in a spec). */
const MAX_RANK = 8;

/** `one` or `several`, exactly one of the two: the 400 says which is missing or extra. */
function eitherOf(body: object, one: string, several: string, what: string): void {
  const has = (k: string) => (body as Record<string, unknown>)[k] !== undefined;
  if (has(one) && has(several)) throw ValidationError.at(several, `give either \`${one}\` (${what}) or \`${several}\`, not both`);
  if (!has(one) && !has(several)) throw ValidationError.at(one, `is required: give \`${one}\` (${what}) or \`${several}\``);
}

/** The ways a JSON body gives its rows, exactly one of them per body, and what each is. */
const INPUT_FORMS = { features: "one input", inputs: "several inputs", rows: "a table by rows", columns: "a table by columns", sequences: "sequences of different lengths" } as const;
type InputForm = keyof typeof INPUT_FORMS;

/** Options that mean something with some forms only; given with another, they are a 400 rather than ignored. */
const FORM_OPTIONS: Record<string, { forms: InputForm[]; what: string }> = {
  inputShape: { forms: ["features"], what: "reshapes plain `features`" },
  featureNames: { forms: ["features"], what: "names the columns of plain `features`" },
  label: { forms: ["rows", "columns"], what: "names the label column of `rows` or `columns`" },
  categorical: { forms: ["rows", "columns"], what: "names categorical columns of `rows` or `columns`" },
  missing: { forms: ["rows", "columns"], what: "says what missing values of `rows` or `columns` are" },
  sequenceLength: { forms: ["sequences"], what: "pads or truncates `sequences`" },
  padding: { forms: ["sequences"], what: "pads `sequences`" },
  truncating: { forms: ["sequences"], what: "truncates `sequences`" },
};

/** The one form the body gives its rows in: a 400 says which is missing or which two were given. */
function inputForm(body: CreateDatasetJson): InputForm {
  const given = (Object.keys(INPUT_FORMS) as InputForm[]).filter((k) => body[k] !== undefined);
  if (given.length === 0) {
    throw ValidationError.at("features", "is required: give `features` (one input) or `inputs` (several inputs), or a table as `rows` or `columns`, or `sequences`");
  }
  if (given.length > 1) throw ValidationError.at(given[1], `give either \`${given[0]}\` (${INPUT_FORMS[given[0]]}) or \`${given[1]}\`, not both`);
  const form = given[0];
  for (const [option, { forms, what }] of Object.entries(FORM_OPTIONS)) {
    if ((body as Record<string, unknown>)[option] !== undefined && !forms.includes(form)) {
      // Named inputs keep their own words (they have no columns; each input is nested to its shape).
      if (form === "inputs" && option === "inputShape") throw ValidationError.at(option, "reshapes plain `features`; nest each of the named `inputs` to its shape instead");
      if (form === "inputs" && option === "featureNames") throw ValidationError.at(option, "names the columns of plain `features`; named `inputs` have none");
      throw ValidationError.at(option, `${what}; this body gives \`${form}\``);
    }
  }
  return form;
}

export function parseJsonDataset(body: CreateDatasetJson): ParsedDataset {
  const form = inputForm(body);
  if (form === "rows" || form === "columns") return parseTable(body, form);
  const { inputs, features, rows } = form === "sequences" ? parseSequences(body) : parseInputs(body, form === "inputs");
  const { outputs, targets, warnings } = parseOutputs(body, rows, form === "inputs" ? "the inputs have" : `${form} has`);
  // Names only mean something for flat rows of one input; images and sequences have none.
  const width = size(inputs[0].shape);
  const featureNames = body.featureNames ?? (form === "features" && inputs[0].shape.length === 1 ? Array.from({ length: width }, (_, j) => `x${j}`) : []);
  if (body.featureNames && featureNames.length !== width) throw ValidationError.at("featureNames", `has ${featureNames.length} names, rows have ${width} numbers`);
  return { name: body.name, inputs, outputs, featureNames, features, targets, rows, warnings };
}

/** How a message names an option of a JSON body, when it suggests one. */
const jsonHint = (name: string, value: string) => (name === "categorical" ? `"categorical": [${JSON.stringify(value)}]` : `"${name}": ${JSON.stringify(value)}`);

/** `rows` (objects of column values) or `columns` (arrays of values by column): one tabular input, the label column its labels. */
function parseTable(body: CreateDatasetJson, form: "rows" | "columns"): ParsedDataset {
  for (const key of ["labels", "outputs"] as const) {
    if (body[key] !== undefined) throw ValidationError.at(key, `the labels of \`${form}\` are one of its columns: name it with \`label\` (default: the last column)`);
  }
  if (typeof body.task === "object") throw ValidationError.at("task", `is one task for \`${form}\`; a task per name goes with \`outputs\``);
  const opts = { name: body.name, label: body.label, task: body.task, categorical: body.categorical, missing: body.missing };
  const common = { option: (name: string) => name, hint: jsonHint };
  if (form === "rows") {
    const objects = body.rows!;
    const header = Object.keys(objects[0]);
    if (header.length === 0) throw ValidationError.at("rows[0]", "is an empty object; the first row names the columns");
    if (header.some((k) => k.trim() === "")) throw ValidationError.at("rows[0]", "has an empty key; every column needs a name");
    const known = new Set(header);
    objects.forEach((row, i) => {
      const missing = header.find((k) => !Object.hasOwn(row, k));
      if (missing !== undefined) throw ValidationError.at(`rows[${i}]`, `has no '${missing}', which rows[0] has: every row has the same keys`);
      const keys = Object.keys(row);
      if (keys.length !== header.length) throw ValidationError.at(`rows[${i}]`, `has '${keys.find((k) => !known.has(k))}', which rows[0] does not: every row has the same keys`);
    });
    const places: TabularPlaces = {
      ...common, cell: (i, c) => formatPath(["rows", i, c]), column: (c) => `rows[*].${c}`, header: { path: "rows[0]", text: "the keys of rows[0]" },
    };
    return tabularDataset({ header, rows: objects.length, cell: (i, j) => objects[i][header[j]] as Cell }, opts, places);
  }
  const columns = body.columns!;
  const header = Object.keys(columns);
  if (header.length === 0) throw ValidationError.at("columns", "has no columns");
  if (header.some((k) => k.trim() === "")) throw ValidationError.at("columns", "has an empty key; every column needs a name");
  const rows = columns[header[0]].length;
  for (const c of header) {
    if (columns[c].length !== rows) throw ValidationError.at(`columns.${c}`, `has ${columns[c].length} values, columns.${header[0]} has ${rows}`);
  }
  const places: TabularPlaces = {
    ...common, cell: (i, c) => formatPath(["columns", c, i]), column: (c) => `columns.${c}`, header: { path: "columns", text: "`columns`" },
  };
  return tabularDataset({ header, rows, cell: (i, j) => columns[header[j]][i] as Cell }, opts, places);
}

/** The most values a padded `sequences` input may hold: 128 MiB of float32, as much as the largest upload of numbers gives. */
const MAX_SEQUENCE_VALUES = 2 ** 25;

/**
 * `sequences` of different lengths, one per row: token ids (`[3, 1, 4]`) or steps of features
 * (`[[0.1, 2], [0.3, 1]]`), padded with zeros or truncated to `sequenceLength` (default: the
 * longest). Zero is padding: an `embedding` with `maskZero` skips token id 0.
 */
function parseSequences(body: CreateDatasetJson) {
  const sequences = body.sequences!;
  const rows = sequences.length;
  const firstFull = sequences.findIndex((s) => s.length > 0);
  if (firstFull < 0) throw ValidationError.at("sequences", "every sequence is empty");
  // The first step of the first non-empty sequence says what a step is: a number, or an array of features.
  const firstStep = sequences[firstFull][0];
  const stepShape = Array.isArray(firstStep) ? [firstStep.length] : [];
  if (stepShape[0] === 0) throw ValidationError.at(`sequences[${firstFull}][0]`, "is empty");
  const perStep = size(stepShape);
  const length = body.sequenceLength ?? sequences.reduce((longest, s) => Math.max(longest, s.length), 0);
  if (rows * length * perStep > MAX_SEQUENCE_VALUES) {
    throw ValidationError.at(body.sequenceLength === undefined ? "sequences" : "sequenceLength", `${rows} rows of ${length} steps of ${perStep} values are ${rows * length * perStep} values once padded, more than the ${MAX_SEQUENCE_VALUES} a dataset input may hold`);
  }
  const pre = (o: "pre" | "post" | undefined) => o === "pre";
  const features = new Float32Array(rows * length * perStep);
  const step = new Float32Array(perStep);
  sequences.forEach((sequence, i) => {
    const kept = Math.min(sequence.length, length);
    // Which steps are kept (the first, or the last with truncating: pre) and where they go (the start, or the end with padding: pre).
    const from = pre(body.truncating) ? sequence.length - kept : 0;
    const to = pre(body.padding) ? length - kept : 0;
    sequence.forEach((value, t) => {
      // Every step is checked, kept or not: a bad value is a bad upload.
      if (stepShape.length === 0 && Array.isArray(value)) throw ValidationError.at(`sequences[${i}][${t}]`, `is an array, sequences[${firstFull}][0] is a number: every step is the same`);
      flattenInto(value, stepShape, `sequences[${i}][${t}]`, step);
      if (t >= from && t < from + kept) features.set(step, (i * length + to + t - from) * perStep);
    });
  });
  const inputs: DatasetInput[] = [{ name: DEFAULT_INPUT, shape: [length, ...stepShape], kind: "sequence" }];
  return { inputs, features, rows };
}

/** Plain `features` (one input) or named `inputs`, packed input after input. */
function parseInputs(body: CreateDatasetJson, named: boolean) {
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
  // Numbers that look like class ids were probably meant as classes: say how to make them so.
  const warnings: string[] = [];
  parsed.forEach(({ output, targets: t }, k) => {
    const classLike = output.task === "regression" && output.shape.length === 1 && output.shape[0] === 1 && !taskOf(body, output.name) ? classLikeIntegers(t) : undefined;
    if (classLike === undefined) return;
    const hint = named ? `"task": {"${output.name}": "classification"}` : `"task": "classification"`;
    warnings.push(`${named ? `outputs.${labelSets[k][0]}` : "labels"} hold ${classLike} distinct integers: if these are classes, upload with ${hint}`);
  });
  return { outputs: parsed.map((o) => o.output), targets, warnings };
}

/** The task the body gives for an output, if any. */
const taskOf = (body: CreateDatasetJson, name: string) => (typeof body.task === "object" ? body.task[name] : body.task);

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
