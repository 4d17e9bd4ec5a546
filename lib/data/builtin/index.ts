// The built-in data sets: real ones the project ships or installs, and seeded generators. Each
// import is parsed into the same ParsedDataset an upload is, and stored as an ordinary dataset.
import { z } from "zod";
import { formatPath, NotFoundError, ValidationError, type FieldProblem } from "../../errors.ts";
import { size, type ParsedDataset } from "../packing.ts";
import { blobs } from "./blobs.ts";
import { paramSchema, type BuiltinDef } from "./builtin-def.ts";
import type { BuiltinDatasetView } from "./builtin-schema.ts";
import { iris } from "./iris.ts";
import { mnist } from "./mnist.ts";
import { segmentation } from "./segmentation.ts";
import { sine } from "./sine.ts";
import { spirals } from "./spirals.ts";
import { xor } from "./xor.ts";

export type { BuiltinDef } from "./builtin-def.ts";

const ALL: BuiltinDef[] = [iris, mnist, xor, spirals, blobs, sine, segmentation];

export const BUILTINS: Readonly<Record<string, BuiltinDef>> = Object.fromEntries(ALL.map((b) => [b.name, b]));

/** Most values (inputs and labels) one import may make: 40 MB as float32; all of MNIST is 7.85 million. */
export const MAX_BUILTIN_VALUES = 10_000_000;

export function builtinFor(name: string): BuiltinDef {
  const def = Object.hasOwn(BUILTINS, name) ? BUILTINS[name] : undefined;
  if (!def) throw new NotFoundError("built-in dataset", name);
  return def;
}

const defaultsOf = (def: BuiltinDef) => Object.fromEntries(Object.entries(def.params).map(([k, p]) => [k, p.default]));

export function describeBuiltin(def: BuiltinDef): BuiltinDatasetView {
  const shape = def.shape(defaultsOf(def));
  return {
    name: def.name, title: def.title, description: def.description, type: def.type, source: def.source, licence: def.licence, task: def.task, kind: def.kind,
    rows: shape.rows, inputShape: shape.inputShape, targetShape: shape.targetShape, classes: shape.classes,
    parameters: Object.entries(def.params).map(([name, p]) => ({ name, type: p.type, minimum: p.min, maximum: p.max, default: p.default, description: p.description })),
  };
}

/** The parameters of an import, defaults filled in; every problem at once, each at its key. */
export function resolveParams(def: BuiltinDef, given: Record<string, unknown>): Record<string, number> {
  const known = Object.keys(def.params);
  const problems: FieldProblem[] = [];
  for (const key of Object.keys(given)) {
    // A misspelt parameter would otherwise be dropped silently and its default used instead.
    if (!known.includes(key)) {
      problems.push({ path: key, message: known.length ? `is not a parameter of '${def.name}' (it takes name, ${known.join(", ")})` : `is not a parameter: '${def.name}' takes only name` });
    }
  }
  const schema = z.object(Object.fromEntries(Object.entries(def.params).map(([k, p]) => [k, paramSchema(p)])));
  const parsed = schema.safeParse(Object.fromEntries(known.filter((k) => given[k] !== undefined).map((k) => [k, given[k]])));
  if (!parsed.success) for (const issue of parsed.error.issues) problems.push({ path: formatPath(issue.path), message: issue.message });
  if (problems.length) throw new ValidationError(problems);
  return parsed.data as Record<string, number>;
}

/** The dataset `name` that built-in `builtin` makes with `given` parameters, checked and bounded before it is made. */
export async function buildBuiltin(builtin: string, name: string, given: Record<string, unknown>): Promise<ParsedDataset> {
  const def = builtinFor(builtin);
  const params = resolveParams(def, given);
  const shape = def.shape(params);
  const perRow = size(shape.inputShape) + size(shape.targetShape);
  if (shape.rows * perRow > MAX_BUILTIN_VALUES) {
    const total = shape.rows * perRow;
    throw ValidationError.at("rows", `${shape.rows} rows of ${perRow} values (inputs and labels) make ${total.toLocaleString("en")}; an import makes at most ${MAX_BUILTIN_VALUES.toLocaleString("en")}: ask for fewer or smaller rows`);
  }
  return def.build(name, params);
}
