import { Readable } from "node:stream";
import type { FastifyPluginAsyncZod } from "@fastify/type-provider-zod";
import { z } from "zod";
import { CURVE_MEDIA_TYPES, type CurveFormat } from "../../../lib/training/learning-curves.ts";
import { continueTrainingJobSchema, createTrainingJobSchema, diagnosticSeriesSchema, metricSeriesSchema, trainingJobSchema } from "../../../lib/training/training-job-schema.ts";
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

  app.get("/v1/training-jobs/:id/events", {
    config: { auth: "tenant" },
    schema: {
      operationId: "streamTrainingJobEvents", tags: ["training"], security,
      summary: "The job's events as Server-Sent Events, from the start or after Last-Event-ID; the stream ends after the final status",
      description: "Events: `status` (queued, running, cancel requested, then succeeded, failed or cancelled with `error`/`stoppedEarly`), `progress` (at most once a second while training), `epoch` (each stored epoch's metrics), `warning`; after the final `status`, an `end` event, and the server closes the stream. Every stored event has an `id:`; reconnecting with a `Last-Event-ID` header (or `?lastEventId=`) replays what came after it, through any API replica. A `: ping` comment keeps a quiet stream open. 204 when the job has ended and the given id is at or past its end.",
      params, querystring: z.object({ lastEventId: z.string().max(64).optional().describe("For clients that cannot set the Last-Event-ID header; the header wins.") }),
      response: {
        200: { content: { "text/event-stream": { schema: eventStreamSchema } } },
        204: z.null().describe("The job has ended and the client has seen its final event: nothing more will come."),
        401: problemSchema, 404: problemSchema, 503: problemSchema,
      },
    },
  }, async (request, reply) => {
    const header = request.headers["last-event-id"];
    const stream = await jobs.events(tenantOf(request), request.params.id, (typeof header === "string" ? header : undefined) ?? request.query.lastEventId);
    if (!stream) return reply.status(204).send(null);
    // no-transform and X-Accel-Buffering: proxies must pass each event on as it comes.
    reply.type("text/event-stream; charset=utf-8").header("cache-control", "no-store, no-transform").header("x-accel-buffering", "no");
    return reply.send(stream);
  });
  // Open streams would hold the server's close; they end first and their clients reconnect elsewhere.
  app.addHook("preClose", async () => jobs.closeEventStreams());

  app.get("/v1/training-jobs/:id/metrics", {
    config: { auth: "tenant" },
    schema: {
      operationId: "getTrainingJobMetrics", tags: ["training"], security, summary: "Every epoch's metrics",
      params, response: { 200: metricSeriesSchema, 401: problemSchema, 404: problemSchema },
    },
  }, async (request) => jobs.metrics(tenantOf(request), request.params.id));

  app.get("/v1/training-jobs/:id/diagnostics", {
    config: { auth: "tenant" },
    schema: {
      operationId: "getTrainingJobDiagnostics", tags: ["training"], security,
      summary: "Every epoch's diagnostics: per-layer gradient norms and update ratios, dead ReLU and saturated shares, validation confusion matrices; and the warnings raised",
      params, response: { 200: diagnosticSeriesSchema, 401: problemSchema, 404: problemSchema },
    },
  }, async (request) => jobs.diagnostics(tenantOf(request), request.params.id));

  // Pictures of a job, each as SVG and PNG: the learning curves, and the gradient norms per layer.
  const pictures = [
    {
      name: "curves", operationId: "Curves", render: jobs.curves.bind(jobs),
      summary: (f: string) => `Learning curves as ${f}: loss and every metric per epoch, training and validation (a picture saying "no epochs yet" before the first)`,
    },
    {
      name: "diagnostics", operationId: "Diagnostics", render: jobs.diagnosticsPicture.bind(jobs),
      summary: (f: string) => `Each layer's gradient norm (log10) over the epochs as ${f}: vanishing gradients show as early layers far below late ones`,
    },
  ] as const;
  for (const picture of pictures) {
    for (const format of Object.keys(CURVE_MEDIA_TYPES) as CurveFormat[]) {
      const mediaType = CURVE_MEDIA_TYPES[format];
      app.get(`/v1/training-jobs/:id/${picture.name}.${format}`, {
        config: { auth: "tenant" },
        schema: {
          operationId: `getTrainingJob${picture.operationId}${format.toUpperCase()}`, tags: ["training"], security,
          summary: picture.summary(format.toUpperCase()),
          params,
          response: {
            200: { content: { [mediaType]: { schema: curvesSchema[format] } } },
            401: problemSchema, 404: problemSchema,
          },
        },
      }, async (request, reply) => {
        const drawn = await picture.render(tenantOf(request), request.params.id, format);
        // Fixed once the job has finished; while it runs, every look should see the latest epoch.
        reply.type(drawn.mediaType).header("cache-control", drawn.settled ? "private, max-age=3600" : "no-store");
        reply.header("content-disposition", `inline; filename="training-job-${request.params.id}-${picture.name}.${format}"`);
        // An SVG opened on its own is a document: it may run nothing and load nothing.
        if (format === "svg") reply.header("content-security-policy", "default-src 'none'");
        return reply.send(drawn.body);
      });
    }
  }

  app.post("/v1/training-jobs/:id/cancel", {
    config: { auth: "tenant" },
    schema: {
      operationId: "cancelTrainingJob", tags: ["training"], security, summary: "Cancel a job; a running job stops before its next batch",
      params, response: { 202: trainingJobSchema, 401: problemSchema, 404: problemSchema, 503: problemSchema },
    },
  }, async (request, reply) => reply.status(202).send(await jobs.cancel(tenantOf(request), request.params.id)));

  // `::` is the router's escape for a literal colon: /v1/training-jobs/<id>:pause.
  const actionPath = (action: string) => `/v1/training-jobs/:id(^[0-9a-fA-F-]{1,64})::${action}`;
  app.post(actionPath("pause"), {
    config: { auth: "tenant" },
    schema: {
      operationId: "pauseTrainingJob", tags: ["training"], security,
      summary: "Pause a job: a queued one at once, a running one at its next batch boundary, with a checkpoint there",
      params, response: { 202: trainingJobSchema, 401: problemSchema, 404: problemSchema, 409: problemSchema },
    },
  }, async (request, reply) => reply.status(202).send(await jobs.pause(tenantOf(request), request.params.id)));

  app.post(actionPath("resume"), {
    config: { auth: "tenant" },
    schema: {
      operationId: "resumeTrainingJob", tags: ["training"], security,
      summary: "Resume a paused job from its checkpoint (or withdraw a pause not yet taken)",
      params, response: { 202: trainingJobSchema, 401: problemSchema, 404: problemSchema, 409: problemSchema, 503: problemSchema },
    },
  }, async (request, reply) => reply.status(202).send(await jobs.resume(tenantOf(request), request.params.id)));

  app.post(actionPath("continue"), {
    config: { auth: "tenant" },
    schema: {
      operationId: "continueTrainingJob", tags: ["training"], security,
      summary: "Train a finished job's model for more epochs from its last checkpoint, as a new job (a new version when it succeeds)",
      params, body: continueTrainingJobSchema,
      response: { 202: trainingJobSchema, 400: problemSchema, 401: problemSchema, 404: problemSchema, 409: problemSchema, 503: problemSchema },
    },
  }, async (request, reply) => {
    const job = await jobs.continue(tenantOf(request), request.params.id, request.body);
    return reply.status(202).header("location", `/v1/training-jobs/${job.id}`).send(job);
  });
};

const eventStreamSchema = z.custom<Readable>((v) => v instanceof Readable).meta({ type: "string", description: "Server-Sent Events: `id: <stream id>`, `event: status|progress|epoch|warning|end`, `data: <JSON>` (TrainingStatusEvent, TrainingProgress, TrainingEpochEvent, TrainingWarningEvent; `end` has `{status}`)." });

const curvesSchema: Record<CurveFormat, z.ZodType> = {
  svg: z.string().meta({ description: "An SVG document, 880 pixels wide: one panel per metric family." }),
  png: z.custom<Buffer>((v) => Buffer.isBuffer(v)).meta({ type: "string", format: "binary", description: "The same picture as a PNG of the SVG's size." }),
};
