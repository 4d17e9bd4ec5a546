// Every format a dataset can be uploaded in as a raw body, by media type. The dataset route
// registers a body parser and a body schema for each, and the dataset service hands the body to
// the format's parser. JSON bodies (application/json) are parsed by fastify against
// createDatasetJsonSchema and go to formats/json.ts instead.
import type { UploadQuery } from "../dataset-schema.ts";
import type { ParsedDataset } from "../packing.ts";
import { parseCharTextDataset, whereInText } from "./char-text.ts";
import { parseCsvDataset, TSV, whereInCsv } from "./csv.ts";
import { parseNdjsonDataset, whereInNdjson } from "./ndjson.ts";
import { parseImageZip } from "./image-zip.ts";
import { parseNpzDataset } from "./npz.ts";
import type { UploadLimits } from "./upload-limits.ts";

export interface UploadFormat {
  name: string;
  /** Media types (lowercase, without parameters) this format is sent as. */
  mediaTypes: readonly string[];
  /** File extensions (lowercase, with the dot) that name it, for a multipart `file` part sent as application/octet-stream. */
  extensions?: readonly string[];
  /** Text formats arrive as a UTF-8 string, binary ones (zip, npy) as a Buffer. */
  body: "text" | "binary";
  /** One line for the OpenAPI description of the body. */
  description: string;
  /** `limits`: containers (zips) apply the upload limit to what they unpack (default: DEFAULT_UPLOAD_LIMITS). */
  parse(body: string | Buffer, query: UploadQuery, limits?: UploadLimits): ParsedDataset | Promise<ParsedDataset>;
  /** Text formats: where the first occurrence of `needle` is, as a person would find it (`CSV row 3, column 'x'`). */
  locate?(text: string, needle: string): string | undefined;
}

export const UPLOAD_FORMATS: readonly UploadFormat[] = [
  {
    name: "csv",
    mediaTypes: ["text/csv", "application/csv"],
    extensions: [".csv"],
    body: "text",
    description: "CSV with a header row; ?name=, ?label=<column> (default: the last), ?categorical=<columns>, ?missing=impute, ?task=",
    parse: (body, query) => parseCsvDataset(body as string, query),
    locate: whereInCsv,
  },
  {
    name: "tsv",
    mediaTypes: ["text/tab-separated-values"],
    extensions: [".tsv", ".tab"],
    body: "text",
    description: "TSV (tab-separated) with a header row; the same query as CSV",
    parse: (body, query) => parseCsvDataset(body as string, query, TSV),
    locate: (text, needle) => whereInCsv(text, needle, TSV),
  },
  {
    name: "ndjson",
    mediaTypes: ["application/x-ndjson", "application/jsonl"],
    extensions: [".ndjson", ".jsonl"],
    body: "text",
    description: "NDJSON (JSON Lines): one object of column values per line; the same query as CSV, the label by default the last key",
    parse: (body, query) => parseNdjsonDataset(body as string, query),
    locate: whereInNdjson,
  },
  {
    name: "text",
    mediaTypes: ["text/plain"],
    extensions: [".txt"],
    body: "text",
    description: "Plain UTF-8 text for character models; ?name=, ?sequenceLength=N (required): rows of N character ids, each step labelled with the character after it",
    parse: (body, query) => parseCharTextDataset(body as string, query),
    locate: whereInText,
  },
  {
    name: "npz",
    // No registered media type exists for NumPy files; application/zip is an image zip's.
    mediaTypes: ["application/x-npz"],
    extensions: [".npz"],
    body: "binary",
    description: "NumPy .npz (np.savez or np.savez_compressed) of arrays x (features) and y (labels), or inputs.<name> and outputs.<name>; ?name=, ?task=",
    parse: (body, query, limits) => parseNpzDataset(body as Buffer, query, limits),
  },
  {
    name: "image-zip",
    mediaTypes: ["application/zip", "application/x-zip-compressed"],
    extensions: [".zip"],
    body: "binary",
    description:
      "A zip of PNG/JPEG images: a folder per class (cat/001.png, dog/002.jpg), or images/x.png with masks/x.png (8-bit greyscale PNG, pixel value = class id); ?name=, ?imageSize=H,W (needed when sizes differ), ?channels=1|3 (default 3)",
    parse: (body, query, limits) => parseImageZip(body as Buffer, query, limits),
  },
];

/** The format uploaded as `mediaType`, if any. */
export const formatFor = (mediaType: string | undefined): UploadFormat | undefined =>
  mediaType === undefined ? undefined : UPLOAD_FORMATS.find((f) => f.mediaTypes.includes(mediaType));
