// The packed form of a dataset: every input's rows one block after another as float32, every
// output's labels likewise. Uploads are parsed into it, Postgres stores it as bytes, and a worker
// unpacks it into what the training loop takes without parsing anything.
import { ValidationError } from "../errors.ts";
import type { DatasetInput, DatasetOutput } from "./dataset-schema.ts";
import type { PreprocessingField } from "./preprocessing/preprocessing-schema.ts";

/** An upload, parsed and checked completely, ready to store. */
export interface ParsedDataset {
  name: string;
  inputs: DatasetInput[];
  outputs: DatasetOutput[];
  featureNames: string[];
  /** Input after input, each rows × prod(shape) values. */
  features: Float32Array<ArrayBuffer>;
  /** Output after output, each rows × prod(shape) values. */
  targets: Float32Array<ArrayBuffer>;
  rows: number;
  /** Things worth knowing that are not errors, e.g. numeric labels that look like class ids. */
  warnings?: string[];
  /** Preprocessing declared with the upload, the default of jobs on this dataset. */
  preprocessing?: PreprocessingField;
}

/** Everything a dataset is but its values: what a format knows before (or once) it has read the rows. */
export interface DatasetLayout {
  name: string;
  inputs: DatasetInput[];
  outputs: DatasetOutput[];
  featureNames: string[];
  warnings?: string[];
}

/**
 * Where a format that reads an upload a part at a time puts its rows, in order, so that no process
 * holds a whole large dataset: the repository's writer stores them shard by shard, collectRows keeps
 * them in memory (small uploads, tests). Rows come packed as a shard holds them: `features` input
 * after input for just these rows (each `rows × prod(shape)`), `targets` output after output.
 */
export interface RowSink {
  /** Once, before the first rows. */
  begin(layout: DatasetLayout): Promise<void>;
  append(rows: number, features: Float32Array, targets: Float32Array): Promise<void>;
}

/**
 * What a format that streams returns once every row is appended: parts of the layout known only at
 * the end (a segmentation set's classes are the mask values present; warnings), replacing those given to begin.
 */
export type LayoutAtEnd = Partial<Pick<DatasetLayout, "outputs" | "warnings">>;

/** A streaming read (`read` appends to the sink it is given) gathered into one ParsedDataset in memory. */
export async function collectRows(read: (sink: RowSink) => Promise<LayoutAtEnd>): Promise<ParsedDataset> {
  let layout: DatasetLayout | undefined;
  const features: Float32Array[] = [];
  const targets: Float32Array[] = [];
  let rows = 0;
  const atEnd = await read({
    async begin(l) {
      layout = l;
    },
    async append(n, f, t) {
      features.push(f.slice());
      targets.push(t.slice());
      rows += n;
    },
  });
  if (!layout) throw new Error("a streaming read ended without describing its dataset (begin was never called)");
  const final = { ...layout, ...atEnd };
  return { ...final, features: repack(features, final.inputs, rows), targets: repack(targets, final.outputs, rows), rows };
}

/** Chunks of rows packed part after part (each chunk for its own rows) as one block packed part after part for all rows. */
function repack(chunks: Float32Array[], parts: { shape: number[] }[], rows: number): Float32Array<ArrayBuffer> {
  const widths = parts.map((p) => size(p.shape));
  const rowWidth = widths.reduce((a, b) => a + b, 0);
  const out = new Float32Array(rows * rowWidth);
  let start = 0;
  for (const chunk of chunks) {
    const count = chunk.length / rowWidth;
    let from = 0;
    let partStart = 0;
    for (const w of widths) {
      out.set(chunk.subarray(from, from + count * w), partStart + start * w);
      from += count * w;
      partStart += rows * w;
    }
    start += count;
  }
  return out;
}

/** The numeric data of a stored dataset. */
export interface DatasetTensors {
  rows: number;
  /** Names of a tabular first input's columns (datasets stored before column metadata). */
  featureNames: string[];
  inputs: DatasetInput[];
  outputs: DatasetOutput[];
  /** Input after input, as stored. */
  x: Float32Array;
  /** Output after output, as stored. */
  y: Float32Array;
}

export const size = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);
export const toBytes = (a: Float32Array<ArrayBuffer>) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
export const toFloats = (b: Uint8Array) => {
  // Prisma hands back a view that may not be 4-byte aligned: copy into a fresh buffer.
  const copy = new Uint8Array(b.byteLength);
  copy.set(b);
  return new Float32Array(copy.buffer);
};

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

/** The rows of one input, unpacked: `rows × prod(shape)` values. */
export interface RowBlock {
  data: Float32Array;
  shape: number[];
}

/** A dataset's inputs and sets of labels as separate blocks, in a chosen order (the form the training loop takes). */
export interface UnpackedDataset {
  rows: number;
  inputs: RowBlock[];
  targets: (DatasetOutput & RowBlock)[];
}

/**
 * Unpacks a dataset's inputs and sets of labels in the order given (a model's input and output
 * names, as matched by lib/training/dataset-matching; omitted, the dataset's own order).
 */
export function unpack(d: DatasetTensors, inputOrder = d.inputs.map((i) => i.name), outputOrder = d.outputs.map((o) => o.name)): UnpackedDataset {
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
