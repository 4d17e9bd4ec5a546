// Every format a dataset can be uploaded in as a raw body, by media type. The dataset route
// registers a body parser and a body schema for each, and the dataset service hands the body to
// the format's parser. JSON bodies (application/json) are parsed by fastify against
// createDatasetJsonSchema and go to formats/json.ts instead.
import type { UploadQuery } from "../dataset-schema.ts";
import type { ParsedDataset } from "../packing.ts";
import { parseCsvDataset, whereInCsv } from "./csv.ts";

export interface UploadFormat {
  name: string;
  /** Media types (lowercase, without parameters) this format is sent as. */
  mediaTypes: readonly string[];
  /** Text formats arrive as a UTF-8 string, binary ones (zip, npy) as a Buffer. */
  body: "text" | "binary";
  /** One line for the OpenAPI description of the body. */
  description: string;
  parse(body: string | Buffer, query: UploadQuery): ParsedDataset | Promise<ParsedDataset>;
  /** Text formats: where the first occurrence of `needle` is, as a person would find it (`CSV row 3, column 'x'`). */
  locate?(text: string, needle: string): string | undefined;
}

export const UPLOAD_FORMATS: readonly UploadFormat[] = [
  {
    name: "csv",
    mediaTypes: ["text/csv", "application/csv"],
    body: "text",
    description: "CSV with a header row; ?name=, ?label=<column> (default: the last)",
    parse: (body, query) => parseCsvDataset(body as string, query),
    locate: whereInCsv,
  },
];

/** The format uploaded as `mediaType`, if any. */
export const formatFor = (mediaType: string | undefined): UploadFormat | undefined =>
  mediaType === undefined ? undefined : UPLOAD_FORMATS.find((f) => f.mediaTypes.includes(mediaType));
