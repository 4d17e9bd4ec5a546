import { Readable } from "node:stream";
import multipart from "@fastify/multipart";
import type { FastifyPluginAsyncZod } from "@fastify/type-provider-zod";
import { z } from "zod";
import { constants as bufferConstants } from "node:buffer";
import { UPLOAD_FORMATS } from "../../../lib/data/formats/index.ts";
import { UploadTooLargeError } from "../../../lib/data/formats/upload-limits.ts";
import { MULTIPART, MULTIPART_LIMITS, multipartBodySchema } from "../../../lib/data/formats/multipart.ts";
import {
  createDatasetJsonSchema, datasetPageSchema, datasetRowsQuerySchema, datasetRowsSchema, datasetSchema, listDatasetsQuerySchema, uploadQuerySchema, type CreateDatasetJson,
} from "../../../lib/data/dataset-schema.ts";
import { problemSchema } from "../../plugins/error-handler.ts";
import { tenantOf } from "../../plugins/auth.ts";

/** The longest text body that decodes into one string (UTF-8 never has more characters than bytes). */
const MAX_TEXT_BYTES = bufferConstants.MAX_STRING_LENGTH;

export const datasetRoutes: FastifyPluginAsyncZod = async (app) => {
  const datasets = app.services.datasets;
  const security = [{ bearerAuth: [] }];

  // Formats that stream (CSV, TSV, NDJSON, image zips) reach the handler as the request's stream,
  // unread: the dataset service spools it to disk within TRAINYARD_MAX_DATASET_BYTES and reads it
  // from there, so the API never holds the file. A declared length over that limit is refused
  // before a byte is read.
  // Other raw-body formats arrive as a string (text) or a Buffer (binary) within the body limit.
  // Text is decoded here rather than by fastify: V8 strings stop at about 512 Mi characters, and
  // fastify's own decoding would throw outside its error handling and end the process.
  const maxFileBytes = app.config.TRAINYARD_MAX_DATASET_BYTES;
  for (const format of UPLOAD_FORMATS) {
    if (format.stream) {
      app.addContentTypeParser([...format.mediaTypes], (request, payload, done) => {
        const declared = Number(request.headers["content-length"]);
        const encoded = request.headers["content-encoding"] !== undefined && request.headers["content-encoding"] !== "identity";
        // Compressed, the declared length is not the file's; the spool counts what it inflates to.
        if (!encoded && declared > maxFileBytes) {
          return done(new UploadTooLargeError(`${format.name.toUpperCase()} body: Content-Length ${declared} is more than the dataset file limit of ${maxFileBytes} bytes (TRAINYARD_MAX_DATASET_BYTES)`), undefined);
        }
        // The handler may refuse the request before it reads the body (a missing ?name=), and a
        // decompressing stream that then fails would have no listener and end the process: the
        // spool reads its errors when it reads the body; unread, they concern nobody.
        payload.on("error", () => {});
        done(null, payload);
      });
      continue;
    }
    app.addContentTypeParser([...format.mediaTypes], { parseAs: "buffer", bodyLimit: app.config.TRAINYARD_MAX_UPLOAD_BYTES }, (_req, body, done) => {
      if (format.body !== "text") return done(null, body);
      if ((body as Buffer).length > MAX_TEXT_BYTES) {
        return done(new UploadTooLargeError(`a ${format.name.toUpperCase()} body may hold at most ${MAX_TEXT_BYTES} bytes; send a larger dataset as an .npz or in parts`), undefined);
      }
      done(null, (body as Buffer).toString("utf8"));
    });
  }
  const rawBodies = Object.fromEntries(
    UPLOAD_FORMATS.flatMap((f) => {
      const schema = f.stream
        ? z.custom<Readable>((v) => v instanceof Readable).meta({ type: "string", format: f.body === "text" ? undefined : "binary", description: `${f.description}. Streamed: up to TRAINYARD_MAX_DATASET_BYTES` })
        : f.body === "text" ? z.string().describe(f.description) : z.custom<Buffer>((v) => Buffer.isBuffer(v)).meta({ type: "string", format: "binary", description: f.description });
      return f.mediaTypes.map((type) => [type, { schema }]);
    }),
  );

  // multipart/form-data (files as they are, `curl -F`): the handler hands the parts, unread, to the
  // dataset service, which reads each file within the upload limit. Nothing else is multipart here.
  // The reader's per-file cut is the larger limit (a streamed `file`); files read whole are held to the body limit by the service.
  await app.register(multipart, { limits: { ...MULTIPART_LIMITS, fileSize: Math.max(maxFileBytes, app.config.TRAINYARD_MAX_UPLOAD_BYTES) } });

  app.post("/v1/datasets", {
    config: { auth: "tenant", rateLimit: "uploads" },
    bodyLimit: app.config.TRAINYARD_MAX_UPLOAD_BYTES,
    schema: {
      operationId: "createDataset", tags: ["datasets"], security,
      summary: "Upload a dataset: JSON rows of numbers with labels, a raw body in an upload format (CSV, NumPy .npz, …; ?name=&label=<column>), or multipart/form-data files (.npy `features` and `labels`, or one `file`); gzip or deflate Content-Encoding accepted for non-multipart bodies",
      querystring: uploadQuerySchema,
      // One schema per content type, so a JSON problem is reported at its own path.
      body: {
        content: {
          "application/json": { schema: createDatasetJsonSchema },
          ...rawBodies,
          [MULTIPART]: { schema: multipartBodySchema },
        },
      },
      response: {
        201: datasetSchema,
        200: datasetSchema.describe("The same data under the same name was already stored: that dataset, not stored twice."),
        400: problemSchema, 401: problemSchema, 413: problemSchema, 415: problemSchema,
      },
    },
  }, async (request, reply) => {
    // The body was validated against the schema of its content type; the type provider cannot
    // express a per-content-type body, hence the cast.
    const mediaType = request.headers["content-type"]?.split(";")[0].trim().toLowerCase();
    const body = request.isMultipart() ? request.parts() : (request.body as CreateDatasetJson | string | Buffer | Readable);
    const dataset = await datasets.upload(tenantOf(request), mediaType, body, request.query);
    const { created, ...view } = dataset;
    return reply.status(created ? 201 : 200).header("location", `/v1/datasets/${view.id}`).send(view);
  });

  // Reading and removing stored datasets: the listing (a page at a time), the description, a
  // preview of rows, the download as .npz, and deletion.
  app.get("/v1/datasets", {
    config: { auth: "tenant" },
    schema: {
      operationId: "listDatasets", tags: ["datasets"], security, summary: "List datasets, newest first, a page at a time (?limit=&cursor=)",
      querystring: listDatasetsQuerySchema, response: { 200: datasetPageSchema, 400: problemSchema, 401: problemSchema },
    },
  }, async (request) => datasets.page(tenantOf(request), request.query));

  app.get("/v1/datasets/:id", {
    config: { auth: "tenant" },
    schema: {
      operationId: "getDataset", tags: ["datasets"], security, summary: "Get a dataset's description",
      params: datasetParams, response: { 200: datasetSchema, 400: problemSchema, 401: problemSchema, 404: problemSchema },
    },
  }, async (request) => datasets.get(tenantOf(request), request.params.id));

  app.get("/v1/datasets/:id/rows", {
    config: { auth: "tenant" },
    schema: {
      operationId: "getDatasetRows", tags: ["datasets"], security,
      summary: "Preview rows as a person reads them (?offset=&limit=, at most 100): table cells by column name with category names, class names for labels",
      params: datasetParams, querystring: datasetRowsQuerySchema, response: { 200: datasetRowsSchema, 400: problemSchema, 401: problemSchema, 404: problemSchema },
    },
  }, async (request) => datasets.rows(tenantOf(request), request.params.id, request.query));

  app.get("/v1/datasets/:id/download", {
    config: { auth: "tenant" },
    schema: {
      operationId: "downloadDataset", tags: ["datasets"], security,
      summary: "Download the stored rows as a NumPy .npz (x and y, or inputs.<name> and outputs.<name>), which uploads again as the same dataset",
      params: datasetParams,
      response: {
        200: { content: { [NPZ]: { schema: npzFileSchema } } },
        400: problemSchema, 401: problemSchema, 404: problemSchema,
      },
    },
  }, async (request, reply) => {
    const file = await datasets.download(tenantOf(request), request.params.id);
    return reply.type(NPZ).header("content-length", file.bytes).header("content-disposition", attachment(file.filename)).send(file.body);
  });

  app.delete("/v1/datasets/:id", {
    config: { auth: "tenant" },
    schema: {
      operationId: "deleteDataset", tags: ["datasets"], security,
      summary: "Delete a dataset and its rows (409 while a queued or running training job uses it; models trained on it stay)",
      params: datasetParams, response: { 204: z.null().describe("Deleted."), 400: problemSchema, 401: problemSchema, 404: problemSchema, 409: problemSchema },
    },
  }, async (request, reply) => {
    await datasets.delete(tenantOf(request), request.params.id);
    return reply.status(204).send(null);
  });
};

const datasetParams = z.object({ id: z.uuid() });
const NPZ = "application/x-npz";
const npzFileSchema = z.custom<Readable>((v) => v instanceof Readable).meta({ type: "string", format: "binary", description: "A NumPy .npz: one .npy array per input and per set of labels, [rows, ...shape]." });

/** Content-Disposition for a download: a plain ASCII name for every client, and the exact one (RFC 6266 filename*) for those that read it. */
function attachment(filename: string): string {
  const ascii = filename.replace(/[^\x20-\x7e]|["\\]/g, "_");
  return `attachment; filename="${ascii}"; filename*=UTF-8''${encodeURIComponent(filename).replace(/['()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`)}`;
}
