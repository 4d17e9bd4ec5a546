// Model insight on a trained version: adversarial examples, saliency and occlusion maps, a layer's
// activations, a convolution's filters. Each answers JSON, and the same request at `….png` answers
// its picture. They run on an inference thread, never this event loop. Work over a dataset's rows
// (an attack given a dataset, top-activating rows, t-SNE) answers 202 with an insight job
// (insight-jobs.ts) that a worker runs.
import type { FastifyPluginAsyncZod } from "@fastify/type-provider-zod";
import type { FastifyReply } from "fastify";
import { z } from "zod";
import {
  activationsRequestSchema, activationsResponseSchema, adversarialRequestSchema, adversarialResponseSchema, filtersQuerySchema, filtersResponseSchema,
  occlusionRequestSchema, occlusionResponseSchema, saliencyRequestSchema, saliencyResponseSchema,
} from "../../../lib/insight/insight-schema.ts";
import { type InsightJobView, insightJobSchema, topActivationsRequestSchema, tsneRequestSchema } from "../../../lib/insight/insight-job-schema.ts";
import type { InsightJobRequest } from "../../../lib/insight/insight-job-service.ts";
import type { AdversarialRequest } from "../../../lib/insight/insight-schema.ts";
import { ValidationError } from "../../../lib/errors.ts";
import { modelNameSchema } from "../../../lib/registry/model-schema.ts";
import { problemSchema } from "../../plugins/error-handler.ts";
import { tenantOf } from "../../plugins/auth.ts";

const params = z.object({ name: modelNameSchema, version: z.coerce.number().int().positive() });
const png = z.custom<Buffer>((v) => Buffer.isBuffer(v)).meta({ type: "string", format: "binary", description: "A PNG." });
const errors = { 400: problemSchema, 401: problemSchema, 404: problemSchema, 409: problemSchema, 503: problemSchema };

const accepted = (reply: FastifyReply, job: InsightJobView) => reply.status(202).header("location", job.links.self).send(job);

export const insightRoutes: FastifyPluginAsyncZod = async (app) => {
  const insight = app.services.insight;
  const jobs = app.services.insightJobs;
  const security = [{ bearerAuth: [] }];
  const tags = ["insight"];

  const probes = [
    { path: "adversarial", op: "Adversarial", body: adversarialRequestSchema, response: adversarialResponseSchema, run: insight.adversarial.bind(insight),
      summary: "Adversarial examples by FGSM or PGD, untargeted or towards a class, for one or more ε: accuracy and the attack's success per ε, and each instance's adversarial input and predictions before and after", picture: "accuracy and attack success against ε" },
    { path: "saliency", op: "Saliency", body: saliencyRequestSchema, response: saliencyResponseSchema, run: insight.saliency.bind(insight),
      summary: "Saliency maps: how strongly each input cell moves the class's score (|gradient|)", picture: "the map over the image (a grid for several instances)" },
    { path: "occlusion", op: "Occlusion", body: occlusionRequestSchema, response: occlusionResponseSchema, run: insight.occlusion.bind(insight),
      summary: "Occlusion maps: how much the class's probability drops while a grey patch hides each place", picture: "the map over the image (a grid for several instances)" },
    { path: "activations", op: "Activations", body: activationsRequestSchema, response: activationsResponseSchema, run: insight.activations.bind(insight),
      summary: "A layer's output for given instances", picture: "the first instance's feature maps, one cell per channel" },
  ] as const;

  for (const p of probes) {
    const options = (picture: boolean) => ({
      config: { auth: "tenant" as const, rateLimit: "predict" as const },
      bodyLimit: app.config.TRAINYARD_MAX_UPLOAD_BYTES,
      schema: {
        operationId: `${picture ? "draw" : "run"}${p.op}`, tags, security,
        summary: picture ? `${p.summary}, as a PNG: ${p.picture}` : p.summary,
        params, body: p.body,
        response: { 200: picture ? { content: { "image/png": { schema: png } } } : p.response, ...errors },
      },
    });
    const base = options(false);
    // An attack on a dataset's rows is a job: 202 and where to follow it.
    const response = p.path === "adversarial" ? { ...base.schema.response, 202: insightJobSchema } : base.schema.response;
    app.post(`/v1/models/:name/versions/:version/${p.path}`, { ...base, schema: { ...base.schema, response } }, async (request, reply) => {
      const { name, version } = request.params;
      const body = request.body as { dataset?: string };
      if (p.path === "adversarial" && body.dataset !== undefined) return accepted(reply, await jobs.create(tenantOf(request), name, version, { kind: "adversarial", body: request.body as AdversarialRequest }));
      return (await p.run(tenantOf(request), name, version, request.body as never)).body;
    });
    app.post(`/v1/models/:name/versions/:version/${p.path}.png`, options(true), async (request, reply) => {
      const { name, version } = request.params;
      if ((request.body as { dataset?: string }).dataset !== undefined) throw ValidationError.at("dataset", "an attack on a dataset is a job: POST without .png, then GET /v1/insight-jobs/{id}.png");
      const drawn = await (await p.run(tenantOf(request), name, version, request.body as never)).picture();
      return reply.type("image/png").header("content-disposition", `inline; filename="${name}-v${version}-${p.path}.png"`).send(drawn);
    });
  }

  const jobKinds = [
    { path: "top-activations", op: "findTopActivations", kind: "top-activations" as const, body: topActivationsRequestSchema, summary: "Start a job that finds a dataset's rows that excite a unit (or a channel, on average over positions) most: the rows, and a mosaic of them as a PNG for images" },
    { path: "tsne", op: "startTsne", kind: "tsne" as const, body: tsneRequestSchema, summary: "Start a job that maps a layer's representation of a dataset's rows to 2-D by t-SNE (Barnes–Hut, seeded): coordinates, and a scatter coloured by class as a PNG" },
  ];
  for (const j of jobKinds) {
    app.post(`/v1/models/:name/versions/:version/${j.path}`, {
      config: { auth: "tenant" as const },
      schema: { operationId: j.op, tags, security, summary: j.summary, params, body: j.body, response: { 202: insightJobSchema, ...errors } },
    }, async (request, reply) => {
      const { name, version } = request.params;
      return accepted(reply, await jobs.create(tenantOf(request), name, version, { kind: j.kind, body: request.body } as InsightJobRequest));
    });
  }

  app.get("/v1/training-jobs/:id/pruning.png", {
    config: { auth: "tenant" },
    schema: {
      operationId: "drawPruningCurve", tags, security,
      summary: "A pruning job's curve: the starting version's validation accuracy (or loss) against sparsity, pruned by optimal brain damage and by magnitude, before fine-tuning; 404 until the job has pruned",
      params: z.object({ id: z.uuid() }),
      response: { 200: { content: { "image/png": { schema: png } } }, 400: problemSchema, 401: problemSchema, 404: problemSchema },
    },
  }, async (request, reply) => reply.type("image/png").send(await insight.pruningPicture(tenantOf(request), request.params.id)));

  for (const picture of [false, true]) {
    app.get(`/v1/models/:name/versions/:version/filters${picture ? ".png" : ""}`, {
      config: { auth: "tenant" },
      schema: {
        operationId: picture ? "drawFilters" : "getFilters", tags, security,
        summary: picture ? "A convolution's filters as a PNG grid (colour for a layer over three channels, else signed weights)" : "A convolution's kernel",
        params, querystring: filtersQuerySchema,
        response: { 200: picture ? { content: { "image/png": { schema: png } } } : filtersResponseSchema, ...errors },
      },
    }, async (request, reply) => {
      const { name, version } = request.params;
      const r = await insight.filters(tenantOf(request), name, version, request.query.layer);
      if (!picture) return r.body;
      return reply.type("image/png").header("content-disposition", `inline; filename="${name}-v${version}-filters.png"`).send(await r.picture());
    });
  }
};
