import type { FastifyPluginAsyncZod } from "@fastify/type-provider-zod";
import { z } from "zod";
import {
  aliasNameSchema, batchingSchema, createModelSchema, modelAliasesSchema, modelAliasSchema, modelNameSchema, modelSchema, modelVersionSchema, moveAliasSchema, setDefaultAliasSchema, validateModelResponseSchema,
} from "../../../lib/registry/model-schema.ts";
import type { VersionTarget } from "../../../lib/registry/model-version-repository.ts";
import { modelSpecSchema } from "../../../lib/model-spec/model-spec-schema.ts";
import { predictRequestSchema, predictResponseSchema, tfModelMetadataSchema, tfModelStatusSchema } from "../../../lib/serving/predict-schema.ts";
import { problemSchema } from "../../plugins/error-handler.ts";
import { tenantOf } from "../../plugins/auth.ts";

export const modelRoutes: FastifyPluginAsyncZod = async (app) => {
  const { models, predict, registry } = app.services;
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
  }, async (request) => ({ valid: true as const, ...(await models.validate(request.body.spec)) }));

  app.get("/v1/models", {
    config: { auth: "tenant" },
    schema: { operationId: "listModels", tags: ["models"], security, summary: "List models", response: { 200: z.object({ models: z.array(modelSchema) }), 401: problemSchema } },
  }, async (request) => ({ models: await models.list(tenantOf(request)) }));

  // GET /v1/models/{name} and GET /v1/models/{name}/versions/{v} mean two things: Trainyard's
  // model (or version) and TensorFlow Serving's model status. Both answer both: Trainyard's body
  // with TF Serving's `model_version_status` added, which TF Serving clients read and others ignore.
  const name = z.object({ name: modelNameSchema });
  const nameVersion = z.object({ name: modelNameSchema, version: z.coerce.number().int().positive() });
  const nameAlias = z.object({ name: modelNameSchema, alias: aliasNameSchema });
  const byVersion = (version: number): VersionTarget => ({ kind: "version", version });
  const byAlias = (alias: string): VersionTarget => ({ kind: "alias", alias });
  const errors = { 401: problemSchema, 404: problemSchema };

  app.get("/v1/models/:name", {
    config: { auth: "tenant" },
    schema: {
      operationId: "getModel", tags: ["models"], security, summary: "Get a model; also TensorFlow Serving's model status (model_version_status: every version)",
      params: name, response: { 200: modelSchema.extend(tfModelStatusSchema.shape).meta({ id: "ModelWithStatus" }), ...errors },
    },
  }, async (request) => {
    const tenant = tenantOf(request);
    const [model, status] = await Promise.all([models.get(tenant, request.params.name), predict.tfStatus(tenant, request.params.name)]);
    return { ...model, ...status };
  });

  app.get("/v1/models/:name/versions", {
    config: { auth: "tenant" },
    schema: {
      operationId: "listModelVersions", tags: ["models"], security, summary: "A model's versions, newest first, with their metadata",
      params: name, response: { 200: z.object({ versions: z.array(modelVersionSchema) }), ...errors },
    },
  }, async (request) => ({ versions: await registry.list(tenantOf(request), request.params.name) }));

  app.get("/v1/models/:name/versions/:version", {
    config: { auth: "tenant" },
    schema: {
      operationId: "getModelVersion", tags: ["models"], security,
      summary: "A version's metadata (job, dataset, signature with the fitted preprocessing, metrics, size, aliases); also TensorFlow Serving's status of that version",
      params: nameVersion, response: { 200: modelVersionSchema.extend(tfModelStatusSchema.shape).meta({ id: "ModelVersionWithStatus" }), ...errors },
    },
  }, async (request) => {
    const { name: model, version } = request.params;
    return { ...(await registry.describe(tenantOf(request), model, version)), ...(await predict.tfStatus(tenantOf(request), model, byVersion(version))) };
  });

  app.delete("/v1/models/:name/versions/:version", {
    config: { auth: "tenant" },
    schema: {
      operationId: "deleteModelVersion", tags: ["models"], security, summary: "Delete a version; 409 naming the aliases that point at it",
      params: nameVersion, response: { 204: z.null(), ...errors, 409: problemSchema },
    },
  }, async (request, reply) => {
    await registry.deleteVersion(tenantOf(request), request.params.name, request.params.version);
    return reply.status(204).send(null);
  });

  app.get("/v1/models/:name/labels/:alias", {
    config: { auth: "tenant" },
    schema: {
      operationId: "getModelLabelStatus", tags: ["inference"], security, summary: "TensorFlow Serving's model status of the version an alias points at",
      params: nameAlias, response: { 200: tfModelStatusSchema, ...errors },
    },
  }, async (request) => predict.tfStatus(tenantOf(request), request.params.name, byAlias(request.params.alias)));

  const metadata = (url: string, operationId: string, what: string, target: (p: Record<string, unknown>) => VersionTarget, params: z.ZodObject) =>
    app.get(url, {
      config: { auth: "tenant" },
      schema: {
        operationId, tags: ["inference"], security, summary: `TensorFlow Serving's model metadata (the serving_default signature) of ${what}`,
        params, response: { 200: tfModelMetadataSchema, ...errors, 409: problemSchema },
      },
    }, async (request) => predict.tfMetadata(tenantOf(request), (request.params as { name: string }).name, target(request.params as Record<string, unknown>)));
  metadata("/v1/models/:name/metadata", "getModelMetadata", "the version served by default", () => ({ kind: "default" }), name);
  metadata("/v1/models/:name/versions/:version/metadata", "getModelVersionMetadata", "a version", (p) => byVersion(p.version as number), nameVersion);
  metadata("/v1/models/:name/labels/:alias/metadata", "getModelLabelMetadata", "the version an alias points at", (p) => byAlias(p.alias as string), nameAlias);

  app.get("/v1/models/:name/aliases", {
    config: { auth: "tenant" },
    schema: { operationId: "listModelAliases", tags: ["models"], security, summary: "A model's aliases and its default alias", params: name, response: { 200: modelAliasesSchema, ...errors } },
  }, async (request) => registry.aliases(tenantOf(request), request.params.name));

  app.put("/v1/models/:name/aliases/:alias", {
    config: { auth: "tenant" },
    schema: {
      operationId: "moveModelAlias", tags: ["models"], security, summary: "Point an alias at a version (creating it); the move is atomic for predictions",
      params: nameAlias, body: moveAliasSchema, response: { 200: modelAliasSchema, 400: problemSchema, ...errors },
    },
  }, async (request) => registry.moveAlias(tenantOf(request), request.params.name, request.params.alias, request.body.version));

  app.delete("/v1/models/:name/aliases/:alias", {
    config: { auth: "tenant" },
    schema: {
      operationId: "deleteModelAlias", tags: ["models"], security, summary: "Delete an alias; 409 while it is the model's default alias",
      params: nameAlias, response: { 204: z.null(), ...errors, 409: problemSchema },
    },
  }, async (request, reply) => {
    await registry.deleteAlias(tenantOf(request), request.params.name, request.params.alias);
    return reply.status(204).send(null);
  });

  app.put("/v1/models/:name/default-alias", {
    config: { auth: "tenant" },
    schema: {
      operationId: "setModelDefaultAlias", tags: ["models"], security, summary: "Serve an alias by default instead of the latest version ({\"alias\": null} serves the latest again)",
      params: name, body: setDefaultAliasSchema, response: { 200: modelAliasesSchema, 400: problemSchema, ...errors },
    },
  }, async (request) => registry.setDefaultAlias(tenantOf(request), request.params.name, request.body.alias));

  app.put("/v1/models/:name/batching", {
    config: { auth: "tenant" },
    schema: {
      operationId: "setModelBatching", tags: ["models"], security,
      summary: "This model's dynamic batching: most rows in one forward pass, longest wait for company ({} or absent fields: the API's defaults)",
      params: name, body: batchingSchema, response: { 200: batchingSchema, 400: problemSchema, ...errors },
    },
  }, async (request) => (await registry.setBatching(tenantOf(request), request.params.name, request.body)) ?? {});

  // TF Serving's `/v1/models/{name}[/versions/{v}|/labels/{alias}]:predict`. The regex ends the
  // last parameter before the colon, and `::` is the router's escape for a literal one.
  const topK = z.object({ topK: z.coerce.number().int().min(1).max(1000).optional().describe("Also answer the k most probable classes of each classification output (top_k).") });
  const predictRoute = (url: string, operationId: string, what: string, target: (p: Record<string, unknown>) => VersionTarget, params: z.ZodObject) =>
    app.post(url, {
      config: { auth: "tenant", rateLimit: "predict" },
      // Batches of instances outgrow fastify's 1 MiB default quickly (1,000 MNIST rows are ~4 MB).
      bodyLimit: app.config.TRAINYARD_MAX_UPLOAD_BYTES,
      schema: {
        operationId, tags: ["inference"], security,
        summary: `Predict with ${what} (TensorFlow Serving's row or columnar format); the version is in the x-trainyard-model-version header, the runtime that answered (onnx or tfjs) in x-trainyard-runtime`,
        params, querystring: topK, body: predictRequestSchema,
        response: { 200: predictResponseSchema, 400: problemSchema, ...errors, 409: problemSchema },
      },
    }, async (request, reply) => {
      const p = request.params as { name: string };
      const { version, runtime, body } = await predict.tfPredict(tenantOf(request), p.name, target(request.params as Record<string, unknown>), request.body, request.query.topK);
      return reply.header("x-trainyard-model-version", String(version)).header("x-trainyard-runtime", runtime).send(body);
    });
  const NAME = "[A-Za-z0-9][A-Za-z0-9_.-]{0,99}";
  predictRoute(`/v1/models/:name(^${NAME})::predict`, "predict", "the version served by default (the default alias, else the latest)", () => ({ kind: "default" }), name);
  predictRoute("/v1/models/:name/versions/:version(^\\d+)::predict", "predictVersion", "a version", (p) => byVersion(p.version as number), nameVersion);
  predictRoute("/v1/models/:name/labels/:alias(^[A-Za-z][A-Za-z0-9_.-]{0,62})::predict", "predictLabel", "the version an alias points at", (p) => byAlias(p.alias as string), nameAlias);
};
