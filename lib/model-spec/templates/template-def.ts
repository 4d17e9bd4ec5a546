// What a template is, and the pieces every family shares: query-string parameter parsing, the
// input-shape checks and the classifier head. A template refuses a shape it cannot take at
// `querystring.inputShape`, naming what would work, so the client never meets a tfjs shape error
// deep inside a layer it did not write.
import { z } from "zod";
import { ValidationError } from "../../errors.ts";
import { formatShape, layerSpecSchema, modelSpecSchema, nodeSpecSchema, type ModelSpec } from "../model-spec-schema.ts";

/** Specs as written (defaults still to fill); `finish` parses them into ModelSpec. */
export type SpecInput = z.input<typeof modelSpecSchema>;
export type NodeInput = z.input<typeof nodeSpecSchema>;
export type LayerInput = z.input<typeof layerSpecSchema>;

export interface TemplateOptions<P = Record<string, unknown>> {
  inputShape: number[];
  classes: number;
  params: P;
}

export interface TemplateDef<P extends z.ZodObject = z.ZodObject> {
  name: string;
  title: string;
  description: string;
  /** What inputShape means, e.g. "[height, width, channels]". */
  inputShapeMeaning: string;
  defaultInputShape: number[];
  defaultClasses: number;
  /** Extra knobs, read from the remaining query-string keys. */
  params?: P;
  build(opts: TemplateOptions<z.output<P>>): ModelSpec;
}

/** Keeps each family's build() typed by its own params while the registry holds them all alike. */
export const defineTemplate = <P extends z.ZodObject>(def: TemplateDef<P>): TemplateDef => def;

/** Fills in the schema's defaults; a template that writes an invalid spec is a bug and throws as one. */
export const finish = (spec: SpecInput): ModelSpec => modelSpecSchema.parse(spec);

// --- parameters. Query strings carry everything as text, so each parser also takes the string form.
const fromString = (v: unknown) => (typeof v === "string" && v.trim() !== "" ? Number(v) : v);

export const intParam = (min: number, max: number) =>
  z.preprocess(fromString, z.number({ error: `expected an integer from ${min} to ${max}` }).int(`expected an integer from ${min} to ${max}`).min(min, `must be >= ${min}`).max(max, `must be <= ${max}`));

export const numberParam = (min: number, max: number) =>
  z.preprocess(fromString, z.number({ error: `expected a number from ${min} to ${max}` }).min(min, `must be >= ${min}`).max(max, `must be <= ${max}`));

export const flagParam = () =>
  z.preprocess((v) => (v === "true" ? true : v === "false" ? false : v), z.boolean({ error: "expected true or false" }));

// --- input shapes
const SHAPE_PATH = "querystring.inputShape";
export const shapeError = (message: string): ValidationError => ValidationError.at(SHAPE_PATH, message);

/** An image [height, width, channels]; `minSide` is what the template's downsampling needs. */
export function imageShape(shape: number[], minSide: number, why: string): { height: number; width: number; channels: number } {
  if (shape.length !== 3) throw shapeError(`expected [height, width, channels], e.g. 32,32,3; got ${formatShape(shape)}`);
  const [height, width, channels] = shape;
  if (Math.min(height, width) < minSide) throw shapeError(`${height}×${width} is too small: ${why} needs at least ${minSide}×${minSide}`);
  return { height, width, channels };
}

/** A sequence: [time] of int32 token ids or [time, features] of floats. */
export function sequenceShape(shape: number[]): { time: number; features?: number } {
  if (shape.length === 2) return { time: shape[0], features: shape[1] };
  if (shape.length === 1) return { time: shape[0] };
  throw shapeError(`expected [time] (int32 token ids) or [time, features]; got ${formatShape(shape)}`);
}

// --- heads
/** The classifier output: softmax over `classes`, or one sigmoid unit for a binary problem given as classes = 1. */
export const classifierHead = (classes: number): LayerInput =>
  classes === 1 ? { type: "dense", units: 1, activation: "sigmoid" } : { type: "dense", units: classes, activation: "softmax" };

/** AlexNet's and VGG's head: two dropout-regularized 4096-unit layers (scaled by `width`), then the classifier. */
export const fullyConnectedHead = (width: number, classes: number): LayerInput[] => {
  const units = scaled(4096, width, 16);
  return [
    { type: "flatten" },
    { type: "dense", units, activation: "relu" },
    { type: "dropout", rate: 0.5 },
    { type: "dense", units, activation: "relu" },
    { type: "dropout", rate: 0.5 },
    classifierHead(classes),
  ];
};

/** The activation that turns `classes` per-position scores into probabilities. */
export const outputActivation = (classes: number) => (classes === 1 ? ("sigmoid" as const) : ("softmax" as const));

/** Scales a channel count by a width multiplier, never below `min`. */
export const scaled = (channels: number, width: number, min = 4) => Math.max(min, Math.round(channels * width));
