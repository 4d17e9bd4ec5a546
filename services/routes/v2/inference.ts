// The Open Inference Protocol (KServe V2) REST endpoints under /v2. Its errors are
// `{"error": "..."}` as the protocol defines them, not problem+json: this plugin's own error and
// not-found handlers answer for its routes; the global ones keep answering everything else.
import type { FastifyError } from "fastify";
import type { FastifyPluginAsyncZod } from "@fastify/type-provider-zod";
import { hasZodFastifySchemaValidationErrors } from "@fastify/type-provider-zod";
import { z } from "zod";
import { DomainError, isDependencyDown, ValidationError } from "../../../lib/errors.ts";
import { modelNameSchema } from "../../../lib/registry/model-schema.ts";
import type { VersionTarget } from "../../../lib/registry/model-version-repository.ts";
import { inferErrorSchema, inferRequestSchema, inferResponseSchema, modelMetadataSchema, modelReadySchema, serverMetadataSchema } from "../../../lib/serving/predict-schema.ts";
import { setRetryAfter } from "../../plugins/error-handler.ts";
import { tenantOf } from "../../plugins/auth.ts";
import { SERVICE_VERSION } from "../../version.ts";

/** Registered with prefix /v2. */
export const inferenceRoutes: FastifyPluginAsyncZod = async (app) => {
  const { predict } = app.services;
  const security = [{ bearerAuth: [] }];
  const tags = ["open inference protocol"];

  app.setErrorHandler((err: FastifyError, request, reply) => {
    const send = (status: number, error: string) => reply.status(status).type("application/json").send({ error });
    if (hasZodFastifySchemaValidationErrors(err)) {
      const where = err.validationContext === "body" ? "" : `${err.validationContext}`;
      return send(400, err.validation.map((v) => `${(where + v.instancePath.replaceAll("/", ".")).replace(/^\./, "") || "body"}: ${v.message ?? "is invalid"}`).join("; "));
    }
    setRetryAfter(err, reply);
    if (err instanceof ValidationError || err instanceof DomainError) return send(err.status, err.message);
    if (isDependencyDown(err)) {
      request.log.warn({ err }, "dependency unavailable");
      return send(503, "a backing service (database or queue) is not answering; try again later");
    }
    if (err.statusCode && err.statusCode >= 400 && err.statusCode < 500) return send(err.statusCode, err.message);
    request.log.error({ err }, "unhandled error");
    return send(500, "the server failed to handle this request; it has been logged");
  });
  app.setNotFoundHandler((request, reply) => reply.status(404).send({ error: `no route ${request.method} ${request.url.split("?")[0]}` }));

  const errors = { 400: inferErrorSchema, 401: inferErrorSchema, 404: inferErrorSchema };
  // A version is a number, or an alias (a target for it, as TF Serving's /labels/).
  const versionSchema = z.string().regex(/^(\d+|[A-Za-z][A-Za-z0-9_.-]{0,62})$/, "a version number or an alias").describe("A version number, or an alias such as production.");
  const name = z.object({ name: modelNameSchema });
  const nameVersion = z.object({ name: modelNameSchema, version: versionSchema });
  const targetOf = (p: { version?: string }): VersionTarget =>
    p.version === undefined ? { kind: "default" } : /^\d+$/.test(p.version) ? { kind: "version", version: Number(p.version) } : { kind: "alias", alias: p.version };

  app.get("", {
    config: { auth: "public" },
    schema: { operationId: "inferServerMetadata", tags, summary: "Server metadata", response: { 200: serverMetadataSchema } },
  }, async () => ({ name: "trainyard", version: SERVICE_VERSION, extensions: [] }));

  app.get("/health/live", {
    config: { auth: "public" },
    schema: { operationId: "inferServerLive", tags, summary: "The server is live", response: { 200: z.object({ live: z.boolean() }) } },
  }, async () => ({ live: true }));

  const within = (ms: number, check: () => Promise<unknown>) =>
    Promise.race([check().then(() => true, () => false), new Promise<boolean>((r) => setTimeout(() => r(false), ms).unref())]);
  app.get("/health/ready", {
    config: { auth: "public" },
    schema: { operationId: "inferServerReady", tags, summary: "Postgres and Redis answer (503 when not)", response: { 200: z.object({ ready: z.boolean() }), 503: z.object({ ready: z.boolean() }) } },
  }, async (_request, reply) => {
    const [postgres, redis] = await Promise.all([within(2000, () => app.db.$queryRaw`SELECT 1`), within(2000, () => app.redis.ping())]);
    return reply.status(postgres && redis ? 200 : 503).send({ ready: postgres && redis });
  });

  for (const [url, params, suffix] of [["/models/:name", name, ""], ["/models/:name/versions/:version", nameVersion, "Version"]] as const) {
    app.get(url, {
      config: { auth: "tenant" },
      schema: {
        operationId: `inferModel${suffix}Metadata`, tags, security, summary: `Model metadata: inputs and outputs of ${suffix ? "a version (or an alias's)" : "the version served by default"}, and every version`,
        params, response: { 200: modelMetadataSchema, ...errors, 409: inferErrorSchema },
      },
    }, async (request, reply) => {
      const { version, body } = await predict.inferMetadata(tenantOf(request), request.params.name, targetOf(request.params as { version?: string }));
      return reply.header("x-trainyard-model-version", String(version)).send(body);
    });

    app.get(`${url}/ready`, {
      config: { auth: "tenant" },
      schema: {
        operationId: `inferModel${suffix}Ready`, tags, security, summary: "The model (version) can answer: it has a version the target means",
        params, response: { 200: modelReadySchema, ...errors },
      },
    }, async (request) => ({ name: request.params.name, ready: await predict.inferReady(tenantOf(request), request.params.name, targetOf(request.params as { version?: string })) }));

    app.post(`${url}/infer`, {
      config: { auth: "tenant", rateLimit: "predict" },
      bodyLimit: app.config.TRAINYARD_MAX_UPLOAD_BYTES,
      schema: {
        operationId: `infer${suffix}`, tags, security,
        summary: `Inference with ${suffix ? "a version, or the version an alias points at" : "the version served by default"}: typed tensors in and out; model_version says which version answered, the x-trainyard-runtime header which runtime (onnx or tfjs)`,
        params,
        querystring: z.object({ topK: z.coerce.number().int().min(1).max(1000).optional().describe("Also answer the k most probable classes of each classification output (top_k).") }),
        body: inferRequestSchema,
        response: { 200: inferResponseSchema, ...errors, 409: inferErrorSchema },
      },
    }, async (request, reply) => {
      const { version, runtime, body } = await predict.infer(tenantOf(request), request.params.name, targetOf(request.params as { version?: string }), request.body, request.query.topK);
      return reply.header("x-trainyard-model-version", String(version)).header("x-trainyard-runtime", runtime).send(body);
    });
  }
};
