// Plain text as training data for character models (the zoo's char_model): the text's characters
// become a vocabulary, and the text is cut into sequences of `sequenceLength` character ids, each
// step labelled with the character that follows it, which is what the model predicts at every step.
import { ValidationError } from "../../errors.ts";
import { DEFAULT_INPUT, DEFAULT_OUTPUT } from "../../model-spec/model-spec-schema.ts";
import type { UploadQuery } from "../dataset-schema.ts";
import type { ParsedDataset } from "../packing.ts";

export const MAX_SEQUENCE_LENGTH = 1024;
/** Distinct characters: the model's softmax has one unit per character. */
export const MAX_VOCABULARY = 1000;
/** 8 bytes stored per character (its id as input and as label): 32 MB. */
export const MAX_TEXT_CHARACTERS = 4_000_000;
/** Class 0, the id of no character, for padding a shorter prompt; the characters are 1, 2, … in code point order. */
export const PADDING_CLASS = "";

/** Query keys of other formats, which would silently do nothing here. */
const NOT_FOR_TEXT = ["label", "categorical", "missing", "imageSize", "channels"] as const;

function sequenceLengthOf(query: UploadQuery): number {
  const where = "querystring.sequenceLength";
  if (query.sequenceLength === undefined) throw ValidationError.at(where, `is required for a text upload: characters per sequence, 1 to ${MAX_SEQUENCE_LENGTH} (e.g. ?sequenceLength=32)`);
  const n = /^\d+$/.test(query.sequenceLength.trim()) ? Number(query.sequenceLength) : NaN;
  if (!Number.isInteger(n) || n < 1 || n > MAX_SEQUENCE_LENGTH) throw ValidationError.at(where, `expected an integer from 1 to ${MAX_SEQUENCE_LENGTH}, got '${query.sequenceLength}'`);
  return n;
}

/**
 * A text upload as a dataset: rows [N] of character ids (kind sequence; ids as float32, as every
 * input is stored), labels [N] (the id of the character after each one; classification, classes
 * = the vocabulary). Sequences do not overlap: every character but the first is a label once.
 * Line ends are read as "\n" whatever the file uses, so CRLF text does not double its vocabulary.
 */
export function parseCharTextDataset(text: string, query: UploadQuery): ParsedDataset {
  if (!query.name) throw ValidationError.at("querystring.name", "is required for a text upload (?name=...)");
  for (const key of NOT_FOR_TEXT) if (query[key] !== undefined) throw ValidationError.at(`querystring.${key}`, "does not apply to a text upload");
  if (query.task !== undefined && query.task !== "classification") throw ValidationError.at("querystring.task", "a text upload is classification (of the next character)");
  const length = sequenceLengthOf(query);
  const warnings: string[] = [];

  const normalized = text.replace(/\r\n?/g, "\n");
  if (normalized.length !== text.length) warnings.push("CRLF and CR line ends were read as \\n");
  if (normalized.length > 2 * MAX_TEXT_CHARACTERS) throw ValidationError.at("text", `is longer than ${MAX_TEXT_CHARACTERS} characters`);
  // Code points, not UTF-16 units: an emoji is one character, not two halves of one.
  const points = new Int32Array(normalized.length);
  let n = 0;
  for (let i = 0; i < normalized.length; n++) {
    const cp = normalized.codePointAt(i)!;
    points[n] = cp;
    i += cp > 0xffff ? 2 : 1;
  }
  if (n === 0) throw ValidationError.at("text", "is empty; a text upload needs at least sequenceLength + 1 characters");
  if (n > MAX_TEXT_CHARACTERS) throw ValidationError.at("text", `has ${n} characters; at most ${MAX_TEXT_CHARACTERS} are taken`);
  if (n < length + 1) throw ValidationError.at("text", `has ${n} character${n === 1 ? "" : "s"}; ?sequenceLength=${length} needs at least ${length + 1} (a sequence and the character after it)`);

  const vocabulary = [...new Set(points.subarray(0, n))].sort((a, b) => a - b);
  if (vocabulary.length > MAX_VOCABULARY) throw ValidationError.at("text", `has ${vocabulary.length} distinct characters; at most ${MAX_VOCABULARY} are allowed (the model has one output per character)`);
  const idOf = new Map(vocabulary.map((cp, i) => [cp, i + 1]));

  const rows = Math.floor((n - 1) / length);
  const unused = n - 1 - rows * length;
  if (unused > 0) warnings.push(`the last ${unused} character${unused === 1 ? " is" : "s are"} in no sequence (the text is cut into sequences of ${length})`);
  const features = new Float32Array(rows * length);
  const targets = new Float32Array(rows * length);
  for (let i = 0; i < rows * length; i++) {
    features[i] = idOf.get(points[i])!;
    targets[i] = idOf.get(points[i + 1])!;
  }
  return {
    name: query.name,
    inputs: [{ name: DEFAULT_INPUT, shape: [length], kind: "sequence" }],
    outputs: [{ name: DEFAULT_OUTPUT, task: "classification", classes: [PADDING_CLASS, ...vocabulary.map((cp) => String.fromCodePoint(cp))], shape: [length] }],
    featureNames: [],
    features,
    targets,
    rows,
    warnings,
  };
}

/** Where the first `needle` is, as an editor shows it: `text line 3, column 7` (both 1-based, columns in characters). */
export function whereInText(text: string, needle: string): string | undefined {
  const at = text.indexOf(needle);
  if (at < 0) return undefined;
  const before = text.slice(0, at);
  const lineStart = Math.max(before.lastIndexOf("\n"), before.lastIndexOf("\r")) + 1;
  const line = (before.match(/\r\n?|\n/g)?.length ?? 0) + 1;
  return `text line ${line}, column ${[...before.slice(lineStart)].length + 1}`;
}
