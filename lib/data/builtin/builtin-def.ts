// What a built-in data set is: a real data set the project ships or installs (Iris, MNIST), or a
// seeded generator of a synthetic one. Every one is imported as an ordinary dataset.
import { z } from "zod";
import { DEFAULT_INPUT, DEFAULT_OUTPUT } from "../../model-spec/model-spec-schema.ts";
import type { DatasetColumn, InputKind, Task } from "../dataset-schema.ts";
import type { ParsedDataset } from "../packing.ts";

/** One numeric parameter of a built-in: its bounds and default. */
export interface ParamDef {
  type: "integer" | "number";
  min: number;
  max: number;
  default: number;
  description: string;
}

/** What an import makes, known before it is made: for the listing, and to refuse an oversized one early. */
export interface BuiltinShape {
  rows: number;
  inputShape: number[];
  /** [1] for a class per row, [H, W] for a mask, [time] for a character per step. */
  targetShape: number[];
  classes: string[];
}

export interface BuiltinDef<K extends string = string> {
  name: string;
  title: string;
  description: string;
  type: "dataset" | "generator";
  /** Where the data comes from (a paper, a repository, a package), or which construction a generator follows. */
  source: string;
  licence: string;
  task: Task;
  kind: InputKind;
  params: Record<K, ParamDef>;
  /** The shape of an import with these parameters; throws a ValidationError at the parameter when they do not fit together. */
  shape(params: Record<K, number>): BuiltinShape;
  build(name: string, params: Record<K, number>): ParsedDataset | Promise<ParsedDataset>;
}

/** Keeps each built-in's parameters typed by their names while the registry holds them all alike. */
export const defineBuiltin = <K extends string>(def: BuiltinDef<K>): BuiltinDef => def as unknown as BuiltinDef;

/** `rows` bounded by `max`, with its default. */
export const rowsParam = (min: number, max: number, dflt: number, what = "Rows to generate."): ParamDef => ({ type: "integer", min, max, default: dflt, description: what });
export const seedParam: ParamDef = { type: "integer", min: 0, max: 2 ** 32 - 1, default: 1, description: "Seed of the generator: the same parameters and seed give the same dataset, byte for byte." };

/** The zod schema of one parameter, with messages that name its bounds. */
export function paramSchema(p: ParamDef) {
  const range = `${p.type === "integer" ? "an integer" : "a number"} from ${p.min} to ${p.max}`;
  let n = z.number({ error: `expected ${range}` }).min(p.min, `must be >= ${p.min}`).max(p.max, `must be <= ${p.max}`);
  if (p.type === "integer") n = n.int(`expected ${range}`);
  return n.default(p.default).describe(p.description);
}

/** Tabular columns, all numeric. */
export const numericColumns = (names: string[]): DatasetColumn[] => names.map((name) => ({ name, kind: "numeric" }));

/** One input, one set of class ids: the form every built-in has. */
export function classificationDataset(d: {
  name: string;
  rows: number;
  inputShape: number[];
  kind: InputKind;
  featureNames?: string[];
  classes: string[];
  targetShape?: number[];
  features: Float32Array<ArrayBuffer>;
  targets: Float32Array<ArrayBuffer>;
}): ParsedDataset {
  const featureNames = d.featureNames ?? [];
  return {
    name: d.name,
    inputs: [{ name: DEFAULT_INPUT, shape: d.inputShape, kind: d.kind, ...(d.kind === "tabular" ? { columns: numericColumns(featureNames) } : {}) }],
    outputs: [{ name: DEFAULT_OUTPUT, task: "classification", classes: d.classes, shape: d.targetShape ?? [1] }],
    featureNames,
    features: d.features,
    targets: d.targets,
    rows: d.rows,
  };
}

/** "0", "1", … "k−1": classes that are ids. */
export const idClasses = (k: number) => Array.from({ length: k }, (_, i) => String(i));
