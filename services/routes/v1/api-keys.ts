import type { FastifyPluginAsyncZod } from "@fastify/type-provider-zod";
import { z } from "zod";
import { problemSchema } from "../../plugins/error-handler.ts";

const apiKeySchema = z
  .object({ id: z.uuid(), tenant: z.string(), name: z.string(), prefix: z.string(), createdAt: z.iso.datetime(), revokedAt: z.iso.datetime().nullable() })
  .meta({ id: "ApiKey" });
const tenantName = z.string().regex(/^[a-z0-9][a-z0-9_-]{0,62}$/, "must be 1-63 lowercase letters, digits, '_' or '-'");

export const apiKeyRoutes: FastifyPluginAsyncZod = async (app) => {
  const keys = app.services.apiKeys;
  const security = [{ bearerAuth: [] }];

  app.post("/v1/api-keys", {
    config: { auth: "admin" },
    schema: {
      operationId: "createApiKey", tags: ["api-keys"], security,
      summary: "Create a tenant API key (admin key only). The key is shown once, in this response.",
      body: z.object({ tenant: tenantName, name: z.string().min(1).max(100).default("default") }).meta({ id: "CreateApiKey" }),
      response: { 201: apiKeySchema.extend({ key: z.string().describe("The secret key: store it now, it cannot be read again.") }), 400: problemSchema, 401: problemSchema, 403: problemSchema },
    },
  }, async (request, reply) => reply.status(201).send(await keys.create(request.body.tenant, request.body.name)));

  app.get("/v1/api-keys", {
    config: { auth: "admin" },
    schema: {
      operationId: "listApiKeys", tags: ["api-keys"], security, summary: "List API keys (admin key only); secrets are never shown",
      querystring: z.object({ tenant: tenantName.optional() }),
      response: { 200: z.object({ apiKeys: z.array(apiKeySchema) }), 401: problemSchema, 403: problemSchema },
    },
  }, async (request) => ({ apiKeys: await keys.list(request.query.tenant) }));

  app.delete("/v1/api-keys/:id", {
    config: { auth: "admin" },
    schema: {
      operationId: "revokeApiKey", tags: ["api-keys"], security, summary: "Revoke an API key (admin key only)",
      params: z.object({ id: z.uuid() }),
      response: { 200: apiKeySchema, 401: problemSchema, 403: problemSchema, 404: problemSchema },
    },
  }, async (request) => keys.revoke(request.params.id));
};
