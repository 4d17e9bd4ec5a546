// Insight jobs (started by the insight endpoints on a version that work over a dataset's rows):
// status and progress, the result, its picture, cancel.
import type { FastifyPluginAsyncZod } from "@fastify/type-provider-zod";
import { z } from "zod";
import { insightJobSchema } from "../../../lib/insight/insight-job-schema.ts";
import { problemSchema } from "../../plugins/error-handler.ts";
import { tenantOf } from "../../plugins/auth.ts";

const params = z.object({ id: z.uuid() });
const png = z.custom<Buffer>((v) => Buffer.isBuffer(v)).meta({ type: "string", format: "binary", description: "A PNG." });

export const insightJobRoutes: FastifyPluginAsyncZod = async (app) => {
  const jobs = app.services.insightJobs;
  const security = [{ bearerAuth: [] }];
  const tags = ["insight"];

  app.get("/v1/insight-jobs", {
    config: { auth: "tenant" },
    schema: { operationId: "listInsightJobs", tags, security, summary: "The 100 most recent insight jobs", response: { 200: z.object({ insightJobs: z.array(insightJobSchema) }), 401: problemSchema } },
  }, async (request) => ({ insightJobs: await jobs.list(tenantOf(request), 100) }));

  app.get("/v1/insight-jobs/:id", {
    config: { auth: "tenant" },
    schema: { operationId: "getInsightJob", tags, security, summary: "An insight job's status and progress, and its result once succeeded", params, response: { 200: insightJobSchema, 400: problemSchema, 401: problemSchema, 404: problemSchema } },
  }, async (request) => jobs.get(tenantOf(request), request.params.id));

  app.get("/v1/insight-jobs/:id.png", {
    config: { auth: "tenant" },
    schema: {
      operationId: "drawInsightJob", tags, security,
      summary: "An insight job's result as a PNG: accuracy and attack success against ε; the top-activating rows as a mosaic (images); the t-SNE map coloured by class. 409 until it has succeeded",
      params, response: { 200: { content: { "image/png": { schema: png } } }, 400: problemSchema, 401: problemSchema, 404: problemSchema, 409: problemSchema },
    },
  }, async (request, reply) => reply.type("image/png").header("content-disposition", `inline; filename="insight-${request.params.id}.png"`).send(await jobs.picture(tenantOf(request), request.params.id)));

  app.post("/v1/insight-jobs/:id/cancel", {
    config: { auth: "tenant" },
    schema: {
      operationId: "cancelInsightJob", tags, security, summary: "Cancel an insight job: a queued one at once, a running one at its next chunk of rows or t-SNE progress report (a second or two)",
      params, response: { 202: insightJobSchema, 400: problemSchema, 401: problemSchema, 404: problemSchema, 409: problemSchema },
    },
  }, async (request, reply) => reply.status(202).send(await jobs.cancel(tenantOf(request), request.params.id)));
};
