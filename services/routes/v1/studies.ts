import type { FastifyPluginAsyncZod } from "@fastify/type-provider-zod";
import { z } from "zod";
import { studyRequestSchema, studySchema, studySummarySchema } from "../../../lib/training/studies/study-schema.ts";
import { problemSchema } from "../../plugins/error-handler.ts";
import { tenantOf } from "../../plugins/auth.ts";

export const studyRoutes: FastifyPluginAsyncZod = async (app) => {
  const studies = app.services.studies;
  const security = [{ bearerAuth: [] }];
  const params = z.object({ id: z.uuid() });

  app.post("/v1/studies", {
    config: { auth: "tenant" },
    schema: {
      operationId: "createStudy", tags: ["training"], security, summary: "Start a hyperparameter study: grid or random search over spec and job fields, optionally with successive halving (ASHA)",
      description: "Every trial is checked as POST /v1/models and POST /v1/training-jobs check theirs before anything is stored; a bad one is a 400 naming the trial and the path. Trials whose spec differs get a model of their own (`<model>--s<study>-t<n>`). The trials are training jobs, run by all workers in parallel.",
      body: studyRequestSchema, response: { 202: studySchema, 400: problemSchema, 401: problemSchema, 503: problemSchema },
    },
  }, async (request, reply) => {
    const study = await studies.create(tenantOf(request), request.body);
    return reply.status(202).header("location", `/v1/studies/${study.id}`).send(study);
  });

  app.get("/v1/studies", {
    config: { auth: "tenant" },
    schema: { operationId: "listStudies", tags: ["training"], security, summary: "The 100 most recent studies", response: { 200: z.object({ studies: z.array(studySummarySchema) }), 401: problemSchema } },
  }, async (request) => ({ studies: await studies.list(tenantOf(request)) }));

  app.get("/v1/studies/:id", {
    config: { auth: "tenant" },
    schema: {
      operationId: "getStudy", tags: ["training"], security, summary: "A study: status, trials by status, the best trial and its model version, and the table of trials sorted by the objective",
      params, response: { 200: studySchema, 401: problemSchema, 404: problemSchema },
    },
  }, async (request) => studies.get(tenantOf(request), request.params.id));

  app.post("/v1/studies/:id/cancel", {
    config: { auth: "tenant" },
    schema: {
      operationId: "cancelStudy", tags: ["training"], security, summary: "Cancel a study: every queued trial at once, every running one before its next batch",
      params, response: { 202: studySchema, 401: problemSchema, 404: problemSchema, 503: problemSchema },
    },
  }, async (request, reply) => reply.status(202).send(await studies.cancel(tenantOf(request), request.params.id)));
};
