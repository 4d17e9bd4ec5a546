// The zoo: ready specs of well-known networks, as functions of the input shape and the number of
// classes. `GET /v1/templates/{name}?inputShape=28,28,1&classes=10&depth=20` is renderTemplate.
import { formatPath, NotFoundError, ValidationError, type FieldProblem } from "../../errors.ts";
import type { ModelSpec } from "../model-spec-schema.ts";
import { alexnet } from "./alexnet.ts";
import { charModel } from "./char-model.ts";
import { densenet } from "./densenet.ts";
import { efficientnet } from "./efficientnet.ts";
import { inception } from "./inception.ts";
import { lenet5 } from "./lenet.ts";
import { mlp } from "./mlp.ts";
import { perceptron } from "./perceptron.ts";
import { gru, lstm, simpleRnn } from "./recurrent.ts";
import { resnet } from "./resnet.ts";
import { segnet } from "./segnet.ts";
import { siamese } from "./siamese.ts";
import { squeezenet } from "./squeezenet.ts";
import type { TemplateDef } from "./template-def.ts";
import { transformer } from "./transformer.ts";
import { unet } from "./unet.ts";
import { vgg } from "./vgg.ts";

export type { TemplateDef, TemplateOptions } from "./template-def.ts";

const ALL: TemplateDef[] = [
  perceptron, mlp, lenet5, alexnet, vgg, inception, resnet, densenet, squeezenet, efficientnet,
  unet, segnet, siamese, simpleRnn, lstm, gru, charModel, transformer,
];

export const TEMPLATES: Record<string, TemplateDef> = Object.fromEntries(ALL.map((t) => [t.name, t]));

export interface TemplateQuery {
  /** [28, 28, 1], or the query string's "28,28,1". */
  inputShape?: number[] | string;
  classes?: number | string;
  /** The template's own params, e.g. `depth` for resnet; numbers and flags may still be strings. */
  [param: string]: unknown;
}

const MAX_RANK = 8;

/**
 * The spec of template `name` for the given input shape, class count and params (defaults for
 * what is missing). Every problem with the query is reported at once, at `querystring.<key>`.
 */
export function renderTemplate(name: string, query: TemplateQuery): ModelSpec {
  const def = Object.hasOwn(TEMPLATES, name) ? TEMPLATES[name] : undefined;
  if (!def) throw new NotFoundError("template", name);
  const { inputShape, classes, ...rest } = query;
  const problems: FieldProblem[] = [];
  const shape = inputShape === undefined ? def.defaultInputShape : parseShape(inputShape, problems);
  const classCount = classes === undefined ? def.defaultClasses : parseClasses(classes, problems);
  const params = parseParams(def, rest, problems);
  if (problems.length > 0) throw new ValidationError(problems);
  return def.build({ inputShape: shape, classes: classCount, params });
}

/** Takes [28, 28, 1] or, straight from a query string, "28,28,1". */
function parseShape(value: unknown, problems: FieldProblem[]): number[] {
  const dims = typeof value === "string" ? value.split(",").map((s) => (s.trim() === "" ? NaN : Number(s))) : value;
  if (!Array.isArray(dims) || dims.length === 0 || dims.length > MAX_RANK || !dims.every((d) => Number.isInteger(d) && d > 0)) {
    problems.push({ path: "querystring.inputShape", message: `expected 1 to ${MAX_RANK} positive integers without the batch axis, e.g. 28,28,1` });
    return [];
  }
  return dims as number[];
}

function parseClasses(value: unknown, problems: FieldProblem[]): number {
  const n = typeof value === "string" && value.trim() !== "" ? Number(value) : value;
  if (typeof n !== "number" || !Number.isInteger(n) || n < 1 || n > 100_000) {
    problems.push({ path: "querystring.classes", message: "expected an integer from 1 to 100000" });
    return 0;
  }
  return n;
}

function parseParams(def: TemplateDef, given: Record<string, unknown>, problems: FieldProblem[]): Record<string, unknown> {
  const known = def.params ? Object.keys(def.params.shape) : [];
  const supplied: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(given)) {
    if (value === undefined) continue;
    // A misspelt knob would otherwise be dropped silently and the default used instead.
    if (!known.includes(key)) {
      problems.push({ path: `querystring.${key}`, message: `unknown parameter; ${def.name} takes inputShape, classes${known.map((k) => `, ${k}`).join("")}` });
    } else supplied[key] = value;
  }
  if (!def.params) return {};
  const parsed = def.params.safeParse(supplied);
  if (parsed.success) return parsed.data;
  for (const issue of parsed.error.issues) problems.push({ path: formatPath(["querystring", ...issue.path]), message: issue.message });
  return {};
}
