import type { FastifyPluginAsyncZod } from "@fastify/type-provider-zod";
import { z } from "zod";
import { createTrainingJobSchema, metricSeriesSchema, trainingJobSchema } from "../../../lib/training/training-job-schema.ts";
import { problemSchema } from "../../plugins/error-handler.ts";
import { tenantOf } from "../../plugins/auth.ts";

export const trainingJobRoutes: FastifyPluginAsyncZod = async (app) => {
  const jobs = app.services.trainingJobs;
  const security = [{ bearerAuth: [] }];
  const params = z.object({ id: z.uuid() });

  app.post("/v1/training-jobs", {
    config: { auth: "tenant" },
    schema: {
      operationId: "createTrainingJob", tags: ["training"], security, summary: "Queue a training job",
      body: createTrainingJobSchema, response: { 202: trainingJobSchema, 400: problemSchema, 401: problemSchema, 503: problemSchema },
    },
  }, async (request, reply) => {
    const job = await jobs.create(tenantOf(request), request.body);
    return reply.status(202).header("location", `/v1/training-jobs/${job.id}`).send(job);
  });

  app.get("/v1/training-jobs", {
    config: { auth: "tenant" },
    schema: { operationId: "listTrainingJobs", tags: ["training"], security, summary: "The 100 most recent training jobs", response: { 200: z.object({ trainingJobs: z.array(trainingJobSchema) }), 401: problemSchema } },
  }, async (request) => ({ trainingJobs: await jobs.list(tenantOf(request)) }));

  app.get("/v1/training-jobs/:id", {
    config: { auth: "tenant" },
    schema: {
      operationId: "getTrainingJob", tags: ["training"], security, summary: "Status, progress and latest metrics of a job",
      params, response: { 200: trainingJobSchema, 401: problemSchema, 404: problemSchema },
    },
  }, async (request) => jobs.get(tenantOf(request), request.params.id));

  app.get("/v1/training-jobs/:id/metrics", {
    config: { auth: "tenant" },
    schema: {
      operationId: "getTrainingJobMetrics", tags: ["training"], security, summary: "Every epoch's metrics",
      params, response: { 200: metricSeriesSchema, 401: problemSchema, 404: problemSchema },
    },
  }, async (request) => jobs.metrics(tenantOf(request), request.params.id));

  app.post("/v1/training-jobs/:id/cancel", {
    config: { auth: "tenant" },
    schema: {
      operationId: "cancelTrainingJob", tags: ["training"], security, summary: "Cancel a job; a running job stops before its next batch",
      params, response: { 202: trainingJobSchema, 401: problemSchema, 404: problemSchema, 503: problemSchema },
    },
  }, async (request, reply) => reply.status(202).send(await jobs.cancel(tenantOf(request), request.params.id)));
};
