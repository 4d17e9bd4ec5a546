import type { FastifyPluginAsyncZod } from "@fastify/type-provider-zod";
import { z } from "zod";
import { CSV_MEDIA_TYPES } from "../../../lib/data/formats/csv.ts";
import { createDatasetCsvQuerySchema, createDatasetJsonSchema, datasetSchema, type CreateDatasetJson } from "../../../lib/data/dataset-schema.ts";
import { problemSchema } from "../../plugins/error-handler.ts";
import { tenantOf } from "../../plugins/auth.ts";

export const datasetRoutes: FastifyPluginAsyncZod = async (app) => {
  const datasets = app.services.datasets;
  const security = [{ bearerAuth: [] }];

  // CSV arrives as one string; it is parsed (and checked row by row) in the dataset service.
  app.addContentTypeParser([...CSV_MEDIA_TYPES], { parseAs: "string", bodyLimit: app.config.TRAINYARD_MAX_UPLOAD_BYTES }, (_req, body, done) => done(null, body));
  const csvSchema = z.string().describe("CSV with a header row; every column but the label must be numeric");

  app.post("/v1/datasets", {
    config: { auth: "tenant" },
    bodyLimit: app.config.TRAINYARD_MAX_UPLOAD_BYTES,
    schema: {
      operationId: "createDataset", tags: ["datasets"], security,
      summary: "Upload a dataset: JSON rows of numbers with labels, or a CSV (Content-Type: text/csv, ?name=&label=<column>); gzip or deflate Content-Encoding accepted",
      querystring: createDatasetCsvQuerySchema,
      // One schema per content type, so a JSON problem is reported at its own path.
      body: {
        content: {
          "application/json": { schema: createDatasetJsonSchema },
          ...Object.fromEntries(CSV_MEDIA_TYPES.map((type) => [type, { schema: csvSchema }])),
        },
      },
      response: { 201: datasetSchema, 400: problemSchema, 401: problemSchema, 413: problemSchema, 415: problemSchema },
    },
  }, async (request, reply) => {
    // The body was validated against the schema of its content type; the type provider cannot
    // express a per-content-type body, hence the cast.
    const dataset = await datasets.upload(tenantOf(request), request.body as CreateDatasetJson | string, request.query);
    return reply.status(201).header("location", `/v1/datasets/${dataset.id}`).send(dataset);
  });

  app.get("/v1/datasets", {
    config: { auth: "tenant" },
    schema: { operationId: "listDatasets", tags: ["datasets"], security, summary: "List datasets", response: { 200: z.object({ datasets: z.array(datasetSchema) }), 401: problemSchema } },
  }, async (request) => ({ datasets: await datasets.list(tenantOf(request)) }));

  app.get("/v1/datasets/:id", {
    config: { auth: "tenant" },
    schema: {
      operationId: "getDataset", tags: ["datasets"], security, summary: "Get a dataset's description",
      params: z.object({ id: z.uuid() }), response: { 200: datasetSchema, 401: problemSchema, 404: problemSchema },
    },
  }, async (request) => datasets.get(tenantOf(request), request.params.id));
};
