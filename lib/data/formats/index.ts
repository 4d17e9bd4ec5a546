// Every format a dataset can be uploaded in as a raw body, by media type. The dataset route
// registers a body parser and a body schema for each, and the dataset service hands the body to
// the format's parser. JSON bodies (application/json) are parsed by fastify against
// createDatasetJsonSchema and go to formats/json.ts instead.
//
// Formats that can be read a part at a time (`stream`: CSV, TSV, NDJSON, image zips) are not held
// in memory: the body is spooled to a file as it arrives, up to TRAINYARD_MAX_DATASET_BYTES, and
// read from there into the store shard by shard. The others are read whole, up to
// TRAINYARD_MAX_UPLOAD_BYTES.
import { ValidationError } from "../../errors.ts";
import type { UploadQuery } from "../dataset-schema.ts";
import type { LayoutAtEnd, ParsedDataset, RowSink } from "../packing.ts";
import { parseCharTextDataset, whereInText } from "./char-text.ts";
import { CSV, parseCsvDataset, streamCsvDataset, TSV } from "./csv.ts";
import { parseNdjsonDataset, streamNdjsonDataset } from "./ndjson.ts";
import { parseImageZip, streamImageZip } from "./image-zip.ts";
import { parseNpzDataset } from "./npz.ts";
import { queryOptions } from "./tabular.ts";
import type { UploadLimits } from "./upload-limits.ts";

export interface UploadFormat {
  name: string;
  /** Media types (lowercase, without parameters) this format is sent as. */
  mediaTypes: readonly string[];
  /** File extensions (lowercase, with the dot) that name it, for a multipart `file` part sent as application/octet-stream. */
  extensions?: readonly string[];
  /** Read whole, text formats arrive as a UTF-8 string, binary ones (zip, npy) as a Buffer. */
  body: "text" | "binary";
  /** One line for the OpenAPI description of the body. */
  description: string;
  /** `limits`: containers (zips) apply the upload limit to what they unpack (default: DEFAULT_UPLOAD_LIMITS). */
  parse(body: string | Buffer, query: UploadQuery, limits?: UploadLimits): ParsedDataset | Promise<ParsedDataset>;
  /** Text formats read whole: where the first occurrence of `needle` is, as a person would find it (`text line 3, column 5`). */
  locate?(text: string, needle: string): string | undefined;
  /**
   * Formats read a part at a time from the file the body was spooled to, handing rows to `sink` as
   * they are read. `precheck` checks the query first, so that a request missing `?name=` is told so
   * before its body is received.
   */
  stream?: {
    precheck(query: UploadQuery): void;
    read(file: string, query: UploadQuery, limits: UploadLimits, sink: RowSink): Promise<LayoutAtEnd>;
  };
}

const tabularPrecheck = (what: string) => (query: UploadQuery) => void queryOptions(query, what);

export const UPLOAD_FORMATS: readonly UploadFormat[] = [
  {
    name: "csv",
    mediaTypes: ["text/csv", "application/csv"],
    extensions: [".csv"],
    body: "text",
    description: "CSV with a header row; ?name=, ?label=<column> (default: the last), ?categorical=<columns>, ?missing=impute, ?task=",
    parse: (body, query) => parseCsvDataset(body as string, query),
    stream: { precheck: tabularPrecheck("CSV"), read: (file, query, _limits, sink) => streamCsvDataset(file, query, sink, CSV) },
  },
  {
    name: "tsv",
    mediaTypes: ["text/tab-separated-values"],
    extensions: [".tsv", ".tab"],
    body: "text",
    description: "TSV (tab-separated) with a header row; the same query as CSV",
    parse: (body, query) => parseCsvDataset(body as string, query, TSV),
    stream: { precheck: tabularPrecheck("TSV"), read: (file, query, _limits, sink) => streamCsvDataset(file, query, sink, TSV) },
  },
  {
    name: "ndjson",
    mediaTypes: ["application/x-ndjson", "application/jsonl"],
    extensions: [".ndjson", ".jsonl"],
    body: "text",
    description: "NDJSON (JSON Lines): one object of column values per line; the same query as CSV, the label by default the last key",
    parse: (body, query) => parseNdjsonDataset(body as string, query),
    stream: { precheck: tabularPrecheck("NDJSON"), read: (file, query, _limits, sink) => streamNdjsonDataset(file, query, sink) },
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
    stream: {
      precheck: (query) => {
        if (!query.name) throw ValidationError.at("querystring.name", "is required for an image zip (?name=...)");
      },
      read: (file, query, limits, sink) => streamImageZip({ file }, query, limits, sink),
    },
  },
];

/** The format uploaded as `mediaType`, if any. */
export const formatFor = (mediaType: string | undefined): UploadFormat | undefined =>
  mediaType === undefined ? undefined : UPLOAD_FORMATS.find((f) => f.mediaTypes.includes(mediaType));
