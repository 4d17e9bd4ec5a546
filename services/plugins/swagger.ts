// OpenAPI from the same zod schemas the routes validate with; UI at /docs, JSON at /docs/json.
// `npm run openapi` writes it to openapi/openapi.json, and a test fails when that file drifts.
import fp from "fastify-plugin";
import swagger from "@fastify/swagger";
import swaggerUi from "@fastify/swagger-ui";
import { jsonSchemaTransform, jsonSchemaTransformObject } from "@fastify/type-provider-zod";
import { z } from "zod";
import { publicRoutes } from "./auth.ts";

type JsonSchema = { oneOf?: { $ref?: string }[]; properties?: { type?: { const?: unknown } }; discriminator?: object };

/**
 * zod emits a discriminated union as a plain oneOf; adding OpenAPI's discriminator (by `type`,
 * with the mapping) lets generated clients pick the variant without trying each one.
 */
function addDiscriminators(schemas: Record<string, JsonSchema>): void {
  const tagOf = (ref?: string) => {
    const target = ref?.startsWith("#/components/schemas/") ? schemas[ref.slice("#/components/schemas/".length)] : undefined;
    const tag = target?.properties?.type?.const;
    return typeof tag === "string" ? tag : undefined;
  };
  for (const schema of Object.values(schemas)) {
    const tags = schema.oneOf?.map((o) => tagOf(o.$ref));
    // Only a union whose every option is a named schema with its own `type` constant.
    if (!tags?.length || tags.some((t) => t === undefined) || new Set(tags).size !== tags.length) continue;
    schema.discriminator = { propertyName: "type", mapping: Object.fromEntries(tags.map((t, i) => [t, schema.oneOf![i].$ref!])) };
  }
}

export const swaggerPlugin = fp(
  async (app, opts: { version: string }) => {
    await app.register(swagger, {
      openapi: {
        openapi: "3.1.0",
        info: {
          title: "Trainyard",
          version: opts.version,
          description: "Upload datasets, describe networks as JSON, train them on a queue of workers, and serve predictions.",
        },
        components: { securitySchemes: { bearerAuth: { type: "http", scheme: "bearer", description: "A tenant API key, or the admin key for /v1/api-keys" } } },
        tags: [
          { name: "datasets" }, { name: "models" }, { name: "training" }, { name: "templates" }, { name: "inference" }, { name: "api-keys" }, { name: "info" }, { name: "health" },
        ],
      },
      transform: (args) => {
        // The zod transform knows one schema per body and per response; a schema per content
        // type (a dataset upload: JSON, CSV, …; a download: an .npz file) is converted here, each
        // with zod's own JSON Schema output.
        type Content = { content?: Record<string, { schema: z.ZodType }> };
        const schema = args.schema as { body?: Content; response?: Record<string, Content> } | undefined;
        const body = schema?.body?.content ? schema.body : undefined;
        const byType = Object.entries(schema?.response ?? {}).filter(([, r]) => r.content);
        if (!body && !byType.length) return jsonSchemaTransform(args);
        const { body: plainBody, response, ...rest } = args.schema as Record<string, unknown> & { response?: Record<string, unknown> };
        const plainResponse = response && Object.fromEntries(Object.entries(response).filter(([code]) => !byType.some(([c]) => c === code)));
        const out = jsonSchemaTransform({ ...args, schema: { ...rest, ...(body ? {} : { body: plainBody }), ...(plainResponse ? { response: plainResponse } : {}) } });
        const convert = (content: Record<string, { schema: z.ZodType }>, io: "input" | "output") =>
          Object.fromEntries(
            Object.entries(content).map(([type, c]) => {
              const { $schema: _s, id: _id, $defs: _d, ...json } = z.toJSONSchema(c.schema, { io, unrepresentable: "any" }) as Record<string, unknown>;
              // Named schemas are already components (jsonSchemaTransformObject emits every one): point there.
              const withRefs = JSON.parse(JSON.stringify(json).replaceAll('"#/$defs/', '"#/components/schemas/'));
              return [type, { schema: withRefs }];
            }),
          );
        const transformed = out.schema as Record<string, unknown> & { response?: Record<string, unknown> };
        return {
          ...out,
          schema: {
            ...transformed,
            ...(body ? { body: { content: convert(body.content!, "input") } } : {}),
            ...(byType.length ? { response: { ...transformed.response, ...Object.fromEntries(byType.map(([code, r]) => [code, { content: convert(r.content!, "output") }])) } } : {}),
          },
        };
      },
      transformObject: (doc) => {
        const out = jsonSchemaTransformObject(doc) as { paths?: Record<string, unknown>; components?: { schemas?: Record<string, JsonSchema> } };
        if (out.components?.schemas) addDiscriminators(out.components.schemas);
        // swagger reads the escaped colon of `/v1/models/:name(...)::predict` as a second
        // parameter; restore TF Serving's `{name}:predict`.
        if (out.paths) out.paths = Object.fromEntries(Object.entries(out.paths).map(([k, v]) => [k.replace(/\}:\{(\w+)\}/, "}:$1"), v]));
        return out as ReturnType<typeof jsonSchemaTransformObject>;
      },
    });
    // The docs are public; their routes come from swagger-ui, so they are marked in a context of their own.
    await app.register(async (docs) => {
      publicRoutes(docs);
      await docs.register(swaggerUi, { routePrefix: "/docs", uiConfig: { docExpansion: "list" } });
    });
  },
  { name: "swagger" },
);
