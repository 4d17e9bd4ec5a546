// multipart/form-data uploads, the way to send files as they are (`curl -F`):
//   features, labels   two .npy files: the features and one label per row (np.save);
//   file               one file in any raw-body format (a CSV, an .npz, …), told by the part's
//                      extension when its content type is generic (application/octet-stream,
//                      text/plain), else by its content type;
// and the settings of a raw-body upload (name, task, label, …) as fields or in the query.
// Each file is read into memory counting its bytes, so the upload limit holds for all the files
// together while they arrive (413 past it), except a `file` in a format that streams (CSV, TSV,
// NDJSON, an image zip): that one is spooled to a file within the dataset file limit, and read
// from there as a raw body of its format is. The parts come from the route's multipart reader;
// this module sees only their shape, not fastify.
import type { Readable } from "node:stream";
import { z } from "zod";
import { ValidationError } from "../../errors.ts";
import { uploadQuerySchema, type UploadQuery } from "../dataset-schema.ts";
import type { ParsedDataset } from "../packing.ts";
import { UPLOAD_FORMATS, formatFor, type UploadFormat } from "./index.ts";
import { isNpy } from "./npy.ts";
import { datasetFromArrays } from "./npz.ts";
import { UploadTooLargeError, type UploadLimits } from "./upload-limits.ts";
import { spool, type SpooledFile } from "./upload-spool.ts";

export const MULTIPART = "multipart/form-data";

/** One part as a multipart reader (@fastify/multipart) yields it. */
export interface IncomingPart {
  type: "file" | "field";
  fieldname: string;
  filename?: string;
  mimetype?: string;
  /** File parts: the bytes as they arrive; `truncated` once the reader's per-file limit cut them. */
  file?: Readable & { truncated?: boolean };
  /** Field parts: the text. */
  value?: unknown;
  valueTruncated?: boolean;
}

const FILE_PARTS = {
  file: "One file in any raw-body format (CSV, .npz, …), told by its file extension when sent as application/octet-stream or text/plain, else by its Content-Type.",
  features: "A NumPy .npy file (np.save) of the features, one row per entry of its first axis. Goes with `labels`.",
  labels: "A NumPy .npy file of the labels, one per row: [rows], [rows, k] or [rows, H, W]. Goes with `features`.",
} as const;
type FilePart = keyof typeof FILE_PARTS;
const SETTINGS = Object.keys(uploadQuerySchema.shape) as (keyof UploadQuery)[];

/**
 * What the multipart reader is told (with `fileSize`, the upload limit): parts beyond these are
 * refused while the body arrives. A body holds at most the three file parts and a field per setting.
 */
export const MULTIPART_LIMITS = { files: Object.keys(FILE_PARTS).length, fields: SETTINGS.length, parts: Object.keys(FILE_PARTS).length + SETTINGS.length, fieldSize: 64 * 1024, headerPairs: 100 };

/** The multipart body as OpenAPI shows it; the parts themselves are read by the route, not validated as a body. */
export const multipartBodySchema = z.custom<unknown>(() => true).meta({
  type: "object",
  description: "Files as they are: `features` and `labels` (.npy), or one `file` in any raw-body format; the settings as fields or in the query.",
  properties: {
    ...Object.fromEntries(Object.entries(FILE_PARTS).map(([name, description]) => [name, { type: "string", format: "binary", description }])),
    ...(z.toJSONSchema(uploadQuerySchema, { io: "input" }).properties ?? {}),
  },
});

const partPath = (name: string) => `multipart part '${name}'`;
const fieldPath = (name: string) => `multipart field '${name}'`;
const NUL = "\u0000";
const NUL_MESSAGE = "contains a NUL character (\\u0000), which no text may hold";

interface ReadFile {
  filename?: string;
  mediaType?: string;
  /** Read into memory, or (a format that streams) spooled to a file. */
  bytes?: Buffer;
  spooled?: { file: SpooledFile; format: UploadFormat };
}

/** A multipart upload: parsed in memory, or a file of a format that streams, to be read from where it was spooled (the caller removes it). */
export type MultipartUpload =
  | { kind: "parsed"; dataset: ParsedDataset }
  | { kind: "file"; format: UploadFormat; file: SpooledFile; settings: UploadQuery };

export async function parseMultipartDataset(parts: AsyncIterable<IncomingPart>, query: UploadQuery, limits: UploadLimits): Promise<MultipartUpload> {
  const { files, fields } = await readParts(parts, limits);
  const spooled = files.file?.spooled;
  try {
    const settings = settingsOf(fields, query);
    if (files.file && (files.features || files.labels)) throw ValidationError.at(partPath("file"), "comes with 'features' or 'labels': send one 'file', or 'features' and 'labels'");
    if (!files.file && !files.features && !files.labels) throw ValidationError.at("body", "holds no file: send a part 'file' (a CSV, an .npz, …), or parts 'features' and 'labels' (.npy files)");
    if (!settings.name) throw ValidationError.at("name", "is required: send a field 'name' or ?name=");
    if (spooled) {
      spooled.format.stream!.precheck(settings);
      return { kind: "file", format: spooled.format, file: spooled.file, settings };
    }
    return { kind: "parsed", dataset: await parseArrays(files, settings, limits) };
  } catch (err) {
    await spooled?.file.remove();
    throw err;
  }
}

async function parseArrays(files: Partial<Record<FilePart, ReadFile>>, settings: UploadQuery, limits: UploadLimits): Promise<ParsedDataset> {
  if (files.file) return parseFilePart(files.file, settings, limits);
  if (!files.labels) throw ValidationError.at(partPath("labels"), "is required with 'features': a .npy of one label per row");
  if (!files.features) throw ValidationError.at(partPath("features"), "is required with 'labels': a .npy of one row of features per label");
  const arrays = (["features", "labels"] as const).map((name) => ({ name, where: partPath(name), npy: files[name]!.bytes! }));
  return datasetFromArrays(arrays, { name: settings.name!, task: settings.task }, "multipart");
}

/** Every part, each file read into memory within the upload limit (all files together). */
async function readParts(parts: AsyncIterable<IncomingPart>, limits: UploadLimits) {
  const files: Partial<Record<FilePart, ReadFile>> = {};
  const fields: Record<string, string> = {};
  let total = 0;
  try {
    for await (const part of parts) {
      const name = part.fieldname;
      if (part.type === "field") {
        if (name in FILE_PARTS) throw ValidationError.at(fieldPath(name), `must be a file part (curl -F '${name}=@data.${name === "file" ? "csv" : "npy"}')`);
        if (!SETTINGS.includes(name as keyof UploadQuery)) throw ValidationError.at(fieldPath(name), `is not a setting of an upload (${SETTINGS.join(", ")})`);
        if (name in fields) throw ValidationError.at(fieldPath(name), "is given twice");
        if (part.valueTruncated) throw ValidationError.at(fieldPath(name), `is longer than ${MULTIPART_LIMITS.fieldSize} bytes`);
        if (typeof part.value !== "string") throw ValidationError.at(fieldPath(name), "must be text");
        if (part.value.includes(NUL)) throw ValidationError.at(fieldPath(name), NUL_MESSAGE);
        fields[name] = part.value;
        continue;
      }
      const stream = part.file!;
      if (!(name in FILE_PARTS)) {
        stream.destroy();
        throw ValidationError.at(partPath(name), SETTINGS.includes(name as keyof UploadQuery) ? "must be a field, not a file" : "is not a part of a dataset upload: send 'file', or 'features' and 'labels'; settings (name, task, …) as fields");
      }
      if (files[name as FilePart]) {
        stream.destroy();
        throw ValidationError.at(partPath(name), "is given twice");
      }
      const described = { filename: part.filename, mediaType: part.mimetype?.split(";")[0].trim().toLowerCase() };
      const streamed = name === "file" ? formatOfFile(described) : undefined;
      if (streamed?.stream) {
        const file = await spool(stream, limits.maxFileBytes, partPath(name), limits.spoolDir);
        // The reader cut the part at its own limit (the dataset file limit, set by the route).
        if (stream.truncated) {
          await file.remove();
          throw new UploadTooLargeError(`${partPath(name)}: is larger than the dataset file limit of ${limits.maxFileBytes} bytes`);
        }
        files.file = { ...described, spooled: { file, format: streamed } };
        continue;
      }
      const chunks: Buffer[] = [];
      for await (const chunk of stream as AsyncIterable<Buffer>) {
        total += chunk.length;
        if (total > limits.maxBytes) {
          stream.destroy();
          throw new UploadTooLargeError(`${partPath(name)}: the files of this upload hold more than the upload limit of ${limits.maxBytes} bytes`);
        }
        chunks.push(chunk);
      }
      if (stream.truncated) throw new UploadTooLargeError(`${partPath(name)}: is larger than the upload limit of ${limits.maxBytes} bytes`);
      files[name as FilePart] = { ...described, bytes: Buffer.concat(chunks) };
    }
  } catch (err) {
    await files.file?.spooled?.file.remove();
    throw readerProblem(err);
  }
  return { files, fields };
}

/** The reader's own errors as a client should read them: its limits are 413, a body that is not multipart a 400. */
function readerProblem(err: unknown): unknown {
  if (err instanceof ValidationError || err instanceof UploadTooLargeError) return err;
  const { code, statusCode, message } = err as { code?: string; statusCode?: number; message?: string };
  const limits: Record<string, string> = {
    FST_FILES_LIMIT: `holds more than ${MULTIPART_LIMITS.files} files: send 'file', or 'features' and 'labels'`,
    FST_FIELDS_LIMIT: `holds more than ${MULTIPART_LIMITS.fields} fields, one per setting`,
    FST_PARTS_LIMIT: `holds more than ${MULTIPART_LIMITS.parts} parts`,
    FST_REQ_FILE_TOO_LARGE: "holds a file larger than the upload limit",
  };
  if (code && limits[code]) return new UploadTooLargeError(`multipart body ${limits[code]}`);
  if (statusCode && statusCode >= 400 && statusCode < 500) return err;
  return ValidationError.at("body", `is not valid multipart/form-data (${message ?? "unreadable"})`);
}

/** The query and the fields together, checked as a query is; a setting given both ways is refused. */
function settingsOf(fields: Record<string, string>, query: UploadQuery): UploadQuery {
  for (const name of Object.keys(fields)) {
    if (query[name as keyof UploadQuery] !== undefined) throw ValidationError.at(fieldPath(name), "is also given in the query; give it once");
  }
  const result = uploadQuerySchema.safeParse({ ...query, ...fields });
  if (result.success) return result.data;
  throw new ValidationError(
    result.error.issues.map((issue) => {
      const key = String(issue.path[0]);
      return { path: key in fields ? fieldPath(key) : `querystring.${key}`, message: issue.message };
    }),
  );
}

const GENERIC_TYPES = ["application/octet-stream", "text/plain"];

const extensionOf = (file: { filename?: string }) => /\.[^./\\]+$/.exec(file.filename ?? "")?.[0].toLowerCase();

/** The format a `file` part is in: the one its extension names when its type is generic, else the one its type names. */
function formatOfFile(file: { filename?: string; mediaType?: string }): UploadFormat | undefined {
  const extension = extensionOf(file);
  const byExtension = extension ? UPLOAD_FORMATS.find((f) => f.extensions?.includes(extension)) : undefined;
  // What clients send when they do not know a file's type (curl: application/octet-stream; a part
  // without a type is text/plain by RFC 7578) says less than a known extension.
  const generic = !file.mediaType || GENERIC_TYPES.includes(file.mediaType);
  return (generic && byExtension) || formatFor(file.mediaType) || byExtension;
}

/** A `file` part read into memory, parsed as a raw body of its format is. */
async function parseFilePart(file: ReadFile, settings: UploadQuery, limits: UploadLimits): Promise<ParsedDataset> {
  const bytes = file.bytes!;
  if (extensionOf(file) === ".npy" || file.mediaType === "application/x-npy" || isNpy(bytes)) {
    throw ValidationError.at(partPath("file"), "is a .npy file, which holds one array: send it as part 'features' with a part 'labels', or both in an .npz (np.savez(f, x=..., y=...))");
  }
  const format = formatOfFile(file);
  if (!format) {
    const known = UPLOAD_FORMATS.map((f) => `${f.mediaTypes[0]}${f.extensions?.length ? ` (${f.extensions.join(", ")})` : ""}`).join(", ");
    throw ValidationError.at(
      partPath("file"),
      `is sent as '${file.mediaType ?? "no type"}'${file.filename ? ` and named '${file.filename}'` : ""}, which names no upload format; send one of ${known}, or set the part's type (curl -F 'file=@data;type=text/csv')`,
    );
  }
  if (format.body === "binary") return format.parse(bytes, settings, limits);
  const text = bytes.toString("utf8");
  // As the body guard does for a text body: a NUL cannot be stored, and is reported at its place.
  if (text.includes(NUL)) throw ValidationError.at(format.locate?.(text, NUL) ?? partPath("file"), NUL_MESSAGE);
  return format.parse(text, settings, limits);
}
