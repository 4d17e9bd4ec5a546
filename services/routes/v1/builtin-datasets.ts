// Built-in data: the catalogue of real data sets and generators, and their import as ordinary
// datasets (training, preprocessing and prediction then treat them like an upload).
import type { FastifyPluginAsyncZod } from "@fastify/type-provider-zod";
import { z } from "zod";
import { BuiltinDatasetService } from "../../../lib/data/builtin/builtin-dataset-service.ts";
import { builtinDatasetSchema, importBuiltinSchema } from "../../../lib/data/builtin/builtin-schema.ts";
import { datasetSchema } from "../../../lib/data/dataset-schema.ts";
import { problemSchema } from "../../plugins/error-handler.ts";
import { tenantOf } from "../../plugins/auth.ts";

export const builtinDatasetRoutes: FastifyPluginAsyncZod = async (app) => {
  const builtins = new BuiltinDatasetService(app.db);
  const security = [{ bearerAuth: [] }];

  app.get("/v1/datasets/builtin", {
    config: { auth: "tenant" },
    schema: {
      operationId: "listBuiltinDatasets", tags: ["datasets"], security,
      summary: "Built-in data: real data sets (Iris, MNIST) and seeded generators (xor, spirals, blobs, sine, segmentation), with source, licence, shapes and parameters",
      response: { 200: z.object({ datasets: z.array(builtinDatasetSchema) }), 401: problemSchema },
    },
  }, async () => ({ datasets: builtins.list() }));

  app.post("/v1/datasets/builtin/:name", {
    config: { auth: "tenant", rateLimit: "uploads" },
    schema: {
      operationId: "importBuiltinDataset", tags: ["datasets"], security,
      summary: "Import a built-in data set, or generate one, as an ordinary dataset: {\"name\", ...parameters}",
      params: z.object({ name: z.string().describe("A name from GET /v1/datasets/builtin.") }),
      body: importBuiltinSchema,
      response: { 201: datasetSchema, 200: datasetSchema.describe("Imported before with the same name and parameters: that dataset."), 400: problemSchema, 401: problemSchema, 404: problemSchema },
    },
  }, async (request, reply) => {
    const { created, ...dataset } = await builtins.import(tenantOf(request), request.params.name, request.body);
    return reply.status(created ? 201 : 200).header("location", `/v1/datasets/${dataset.id}`).send(dataset);
  });
};
