// What the protocol modules hand to PredictService and get back from it, and the shared steps:
// raw inputs → checked, packed and preprocessed tensors; output tensors → nested values; top-k.
// Pure: no tfjs, no database.
import { flattenInto, type Nested } from "../../data/nested.ts";
import { applyPreprocessing, encodeTabularInstance, fittedShape } from "../../data/preprocessing/preprocessor.ts";
import { ValidationError } from "../../errors.ts";
import type { Signature } from "../../registry/signature.ts";

/** A batch-first tensor: `shape[0]` is the batch. */
export interface Tensor {
  data: Float32Array;
  shape: number[];
}

/**
 * One input of a request as the client sent it, before preprocessing: one raw value per
 * instance (nested arrays, or a table row as an array or an object of columns), or a flat
 * row-major buffer already checked against the input's raw shape.
 */
export type RawInput = { kind: "rows"; rows: unknown[]; path: (i: number) => string } | { kind: "flat"; data: Float32Array; path: string };

/** A request's inputs in the signature's order, and its batch size. */
export interface RawInputs {
  batch: number;
  inputs: RawInput[];
}

type SignatureInput = Signature["inputs"][number];

/** How an input is described in an error: its name and what one instance of it is. */
export function describeInput(input: SignatureInput): string {
  const fitted = input.preprocessing;
  if (fitted?.kind === "tabular") return `input '${input.name}' takes [${fitted.columns.length}] values per instance (${fitted.columns.map((c) => c.name).join(", ")})`;
  return `input '${input.name}' takes shape [${input.shape.join(", ")}] per instance`;
}

/** Re-throws a validation error with the input's name and expected shape added to each problem. */
function naming<T>(input: SignatureInput, fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if (!(err instanceof ValidationError)) throw err;
    throw new ValidationError(err.problems.map((p) => ({ path: p.path, message: `${p.message}; ${describeInput(input)}` })));
  }
}

/**
 * Checks every instance against its input and packs it, one buffer per input, then applies the
 * input's fitted preprocessing (the training split's statistics) so that clients send raw values.
 * The result is what the network takes, in the model's input order, batch axis first.
 */
export function packInputs(inputs: Signature["inputs"], raw: RawInputs): Tensor[] {
  const n = raw.batch;
  return inputs.map((input, k) => {
    const r = raw.inputs[k];
    const fitted = input.preprocessing;
    const width = input.shape.reduce((a, b) => a * b, 1);
    let block: Float32Array;
    if (fitted?.kind === "tabular") {
      block = new Float32Array(n * fitted.columns.length);
      naming(input, () => {
        for (let i = 0; i < n; i++) {
          const value = r.kind === "rows" ? r.rows[i] : Array.from(r.data.subarray(i * width, (i + 1) * width));
          block.set(encodeTabularInstance(fitted.columns, value, r.kind === "rows" ? r.path(i) : `${r.path}[${i}]`), i * fitted.columns.length);
        }
      });
    } else if (r.kind === "rows") {
      block = new Float32Array(n * width);
      naming(input, () => r.rows.forEach((value, i) => flattenInto(value, input.shape, r.path(i), block, i * width)));
    } else {
      block = r.data;
    }
    return fitted
      ? { data: applyPreprocessing(fitted, block, n, "instances"), shape: [n, ...fittedShape(fitted, input.shape)] }
      : { data: block, shape: [n, ...input.shape] };
  });
}

/** A row-major buffer as nested arrays of `shape` (a scalar for shape []). */
export function nest(data: ArrayLike<number>, shape: readonly number[], offset = 0): Nested {
  if (!shape.length) return data[offset];
  const [d, ...rest] = shape;
  const step = rest.reduce((a, b) => a * b, 1);
  const out: Nested[] = new Array(d);
  for (let i = 0; i < d; i++) out[i] = nest(data, rest, offset + i * step);
  return out;
}

/** Instance `i` of a batch-first tensor, nested. */
export function instanceOf(t: Tensor, i: number): Nested {
  const rest = t.shape.slice(1);
  return nest(t.data, rest, i * rest.reduce((a, b) => a * b, 1));
}

export interface TopClass {
  label: string;
  probability: number;
}

/**
 * The k most probable classes of each instance, for every classification output whose instances
 * are one probability vector (shape [batch, classes], or [batch, 1] for two classes). One output: per instance a list; several:
 * an object of those lists by output name. A model without such an output is a 400.
 */
export function topK(outputs: Signature["outputs"], tensors: Tensor[], k: number, path = "topK"): TopClass[][] | Record<string, TopClass[][]> {
  const picked: [string, TopClass[][]][] = [];
  outputs.forEach((o, j) => {
    const t = tensors[j];
    if (!t || o.task !== "classification" || t.shape.length !== 2) return;
    const width = t.shape[1];
    // One sigmoid unit for two classes (binary cross-entropy): it is the second class's probability.
    const binary = width === 1 && o.classes.length === 2;
    if (width !== o.classes.length && !binary) return;
    const rows: TopClass[][] = [];
    for (let i = 0; i < t.shape[0]; i++) {
      const p = binary ? Float32Array.of(1 - t.data[i], t.data[i]) : t.data.subarray(i * width, (i + 1) * width);
      const order = Array.from(p.keys()).sort((a, b) => p[b] - p[a] || a - b);
      rows.push(order.slice(0, k).map((c) => ({ label: o.classes[c], probability: p[c] })));
    }
    picked.push([o.name, rows]);
  });
  if (!picked.length) throw ValidationError.at(path, "top-k needs a classification output with one probability per class (shape [classes]); this model has none");
  return outputs.length === 1 ? picked[0][1] : Object.fromEntries(picked);
}
