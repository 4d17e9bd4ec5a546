import type { FastifyPluginAsyncZod } from "@fastify/type-provider-zod";
import { z } from "zod";
import { modelSpecSchema } from "../../../lib/model-spec/model-spec-schema.ts";
import { renderTemplate, TEMPLATES } from "../../../lib/model-spec/templates/index.ts";
import { problemSchema } from "../../plugins/error-handler.ts";

const templateInfoSchema = z
  .object({
    name: z.string(),
    title: z.string(),
    description: z.string(),
    inputShapeMeaning: z.string(),
    defaultInputShape: z.array(z.number().int()),
    defaultClasses: z.number().int(),
    params: z.array(z.string()).describe("Extra query parameters this template takes."),
  })
  .meta({ id: "TemplateInfo" });

export const templateRoutes: FastifyPluginAsyncZod = async (app) => {
  // Templates hold no tenant data: anyone may read the zoo.
  app.get("/v1/templates", {
    config: { auth: "public" },
    schema: { operationId: "listTemplates", tags: ["templates"], summary: "The zoo: ready specs of well-known networks", response: { 200: z.object({ templates: z.array(templateInfoSchema) }) } },
  }, async () => ({
    templates: Object.values(TEMPLATES).map((t) => ({
      name: t.name, title: t.title, description: t.description, inputShapeMeaning: t.inputShapeMeaning,
      defaultInputShape: t.defaultInputShape, defaultClasses: t.defaultClasses, params: t.params ? Object.keys(t.params.shape) : [],
    })),
  }));

  app.get("/v1/templates/:name", {
    config: { auth: "public" },
    schema: {
      operationId: "getTemplate", tags: ["templates"],
      summary: "A template's spec for an input shape and class count; POST it to /v1/models as is",
      params: z.object({ name: z.string() }),
      querystring: z
        .object({
          inputShape: z.string().optional().describe("Comma-separated, without the batch axis, e.g. 28,28,1."),
          classes: z.string().optional().describe("Number of classes (1 for a binary sigmoid output)."),
        })
        .catchall(z.string())
        .describe("Template parameters (e.g. depth for resnet) are further query keys."),
      response: { 200: z.object({ name: z.string(), spec: modelSpecSchema }).meta({ id: "RenderedTemplate" }), 400: problemSchema, 404: problemSchema },
    },
  }, async (request) => ({ name: request.params.name, spec: renderTemplate(request.params.name, request.query) }));
};
