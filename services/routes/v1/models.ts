import type { FastifyPluginAsyncZod } from "@fastify/type-provider-zod";
import { z } from "zod";
import { createModelSchema, modelNameSchema, modelSchema, modelVersionSchema, validateModelResponseSchema } from "../../../lib/registry/model-schema.ts";
import { modelSpecSchema } from "../../../lib/model-spec/model-spec-schema.ts";
import { predictRequestSchema, predictResponseSchema } from "../../../lib/serving/predict-schema.ts";
import { problemSchema } from "../../plugins/error-handler.ts";
import { tenantOf } from "../../plugins/auth.ts";

export const modelRoutes: FastifyPluginAsyncZod = async (app) => {
  const { models, predict } = app.services;
  const security = [{ bearerAuth: [] }];

  app.post("/v1/models", {
    config: { auth: "tenant" },
    schema: {
      operationId: "createModel", tags: ["models"], security, summary: "Register a model spec; it is validated and built before it is stored",
      body: createModelSchema, response: { 201: modelSchema, 400: problemSchema, 401: problemSchema, 409: problemSchema },
    },
  }, async (request, reply) => {
    const model = await models.create(tenantOf(request), request.body);
    return reply.status(201).header("location", `/v1/models/${model.name}`).send(model);
  });

  // Google's custom-method style, as in :predict: check a spec without storing it.
  app.post("/v1/models::validate", {
    config: { auth: "tenant" },
    schema: {
      operationId: "validateModel", tags: ["models"], security,
      summary: "Check a spec fully without storing it: shapes, training rules and limits; answers a per-layer summary",
      body: z.object({ spec: modelSpecSchema }).meta({ id: "ValidateModel" }),
      response: { 200: validateModelResponseSchema, 400: problemSchema, 401: problemSchema },
    },
  }, async (request) => ({ valid: true as const, ...models.validate(request.body.spec) }));

  app.get("/v1/models", {
    config: { auth: "tenant" },
    schema: { operationId: "listModels", tags: ["models"], security, summary: "List models", response: { 200: z.object({ models: z.array(modelSchema) }), 401: problemSchema } },
  }, async (request) => ({ models: await models.list(tenantOf(request)) }));

  app.get("/v1/models/:name", {
    config: { auth: "tenant" },
    schema: {
      operationId: "getModel", tags: ["models"], security, summary: "Get a model",
      params: z.object({ name: modelNameSchema }), response: { 200: modelSchema, 401: problemSchema, 404: problemSchema },
    },
  }, async (request) => models.get(tenantOf(request), request.params.name));

  app.get("/v1/models/:name/versions", {
    config: { auth: "tenant" },
    schema: {
      operationId: "listModelVersions", tags: ["models"], security, summary: "A model's trained versions, newest first",
      params: z.object({ name: modelNameSchema }), response: { 200: z.object({ versions: z.array(modelVersionSchema) }), 401: problemSchema, 404: problemSchema },
    },
  }, async (request) => ({ versions: await models.versions(tenantOf(request), request.params.name) }));

  app.get("/v1/models/:name/versions/:version", {
    config: { auth: "tenant" },
    schema: {
      operationId: "getModelVersion", tags: ["models"], security,
      summary: "A trained version: its signature (with the preprocessing fitted on the training split) and metrics",
      params: z.object({ name: modelNameSchema, version: z.coerce.number().int().positive() }),
      response: { 200: modelVersionSchema, 401: problemSchema, 404: problemSchema },
    },
  }, async (request) => models.version(tenantOf(request), request.params.name, request.params.version));

  // TF Serving's `/v1/models/{name}:predict`. The regex ends the parameter before the colon, and
  // `::` is the router's escape for a literal one.
  app.post("/v1/models/:name(^[A-Za-z0-9][A-Za-z0-9_.-]{0,99})::predict", {
    config: { auth: "tenant" },
    // Batches of instances outgrow fastify's 1 MiB default quickly (1,000 MNIST rows are ~4 MB).
    bodyLimit: app.config.TRAINYARD_MAX_UPLOAD_BYTES,
    schema: {
      operationId: "predict", tags: ["inference"], security,
      summary: "Predict with the model's latest trained version (TensorFlow Serving row format)",
      params: z.object({ name: modelNameSchema }),
      body: predictRequestSchema,
      response: { 200: predictResponseSchema, 400: problemSchema, 401: problemSchema, 404: problemSchema, 409: problemSchema },
    },
  }, async (request, reply) => {
    const { predictions, version } = await predict.predict(tenantOf(request), request.params.name, request.body.instances);
    return reply.header("x-trainyard-model-version", String(version)).send({ predictions });
  });
};
