import type { FastifyPluginAsyncZod } from "@fastify/type-provider-zod";
import { z } from "zod";
import { CURVE_MEDIA_TYPES, type CurveFormat } from "../../../lib/training/learning-curves.ts";
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

  for (const format of Object.keys(CURVE_MEDIA_TYPES) as CurveFormat[]) {
    const mediaType = CURVE_MEDIA_TYPES[format];
    app.get(`/v1/training-jobs/:id/curves.${format}`, {
      config: { auth: "tenant" },
      schema: {
        operationId: `getTrainingJobCurves${format.toUpperCase()}`, tags: ["training"], security,
        summary: `Learning curves as ${format.toUpperCase()}: loss and every metric per epoch, training and validation (a picture saying "no epochs yet" before the first)`,
        params,
        response: {
          200: { content: { [mediaType]: { schema: curvesSchema[format] } } },
          401: problemSchema, 404: problemSchema,
        },
      },
    }, async (request, reply) => {
      const picture = await jobs.curves(tenantOf(request), request.params.id, format);
      // Fixed once the job has finished; while it runs, every look should see the latest epoch.
      reply.type(picture.mediaType).header("cache-control", picture.settled ? "private, max-age=3600" : "no-store");
      reply.header("content-disposition", `inline; filename="training-job-${request.params.id}-curves.${format}"`);
      // An SVG opened on its own is a document: it may run nothing and load nothing.
      if (format === "svg") reply.header("content-security-policy", "default-src 'none'");
      return reply.send(picture.body);
    });
  }

  app.post("/v1/training-jobs/:id/cancel", {
    config: { auth: "tenant" },
    schema: {
      operationId: "cancelTrainingJob", tags: ["training"], security, summary: "Cancel a job; a running job stops before its next batch",
      params, response: { 202: trainingJobSchema, 401: problemSchema, 404: problemSchema, 503: problemSchema },
    },
  }, async (request, reply) => reply.status(202).send(await jobs.cancel(tenantOf(request), request.params.id)));
};

const curvesSchema: Record<CurveFormat, z.ZodType> = {
  svg: z.string().meta({ description: "An SVG document, 880 pixels wide: one panel per metric family." }),
  png: z.custom<Buffer>((v) => Buffer.isBuffer(v)).meta({ type: "string", format: "binary", description: "The same picture as a PNG of the SVG's size." }),
};
