// A version in TensorFlow.js's standard format: model.json with its weight shards beside it (so a
// stock tf.loadLayersModel(url, {requestInit: {headers}}) loads it straight from here), the same
// as one zip, and such a zip imported as a new version; the same version as one ONNX file.
import type { FastifyPluginAsyncZod } from "@fastify/type-provider-zod";
import { z } from "zod";
import { modelNameSchema } from "../../../lib/registry/model-schema.ts";
import { OPSET } from "../../../lib/registry/export/onnx/export-onnx.ts";
import { problemSchema } from "../../plugins/error-handler.ts";
import { tenantOf } from "../../plugins/auth.ts";

const ZIP = "application/zip";
const ONNX = "application/octet-stream";
const versionParams = z.object({ name: modelNameSchema, version: z.coerce.number().int().positive() });
const binary = (description: string) => z.custom<Buffer>((v) => Buffer.isBuffer(v)).meta({ type: "string", format: "binary", description });
const modelJsonSchema = z
  .object({
    format: z.literal("layers-model"),
    generatedBy: z.string(),
    convertedBy: z.string(),
    modelTopology: z.record(z.string(), z.unknown()),
    weightsManifest: z.array(z.object({ paths: z.array(z.string()), weights: z.array(z.record(z.string(), z.unknown())) })),
    userDefinedMetadata: z.record(z.string(), z.unknown()).optional(),
  })
  .meta({ id: "TfjsModelJson", description: "TensorFlow.js layers-model format; weightsManifest paths are relative to this file's URL." });

export const modelExportRoutes: FastifyPluginAsyncZod = async (app) => {
  const exporter = app.services.exports;
  const security = [{ bearerAuth: [] }];

  app.get("/v1/models/:name/versions/:version/export/model.json", {
    config: { auth: "tenant" },
    schema: {
      operationId: "exportModelJson", tags: ["models"], security,
      summary: "A version in the standard TensorFlow.js format (model.json; its weight files beside it): raw inputs in, preprocessing inside the graph; 409 naming a custom layer that cannot travel",
      params: versionParams,
      response: { 200: modelJsonSchema, 401: problemSchema, 404: problemSchema, 409: problemSchema },
    },
  }, async (request) => exporter.modelJson(tenantOf(request), request.params.name, request.params.version) as unknown as z.infer<typeof modelJsonSchema>);

  app.get("/v1/models/:name/versions/:version/export/:file", {
    config: { auth: "tenant" },
    schema: {
      operationId: "exportModelWeights", tags: ["models"], security,
      summary: "A weight shard of an exported version (group1-shard1of1.bin, …), as model.json names it",
      params: versionParams.extend({ file: z.string().regex(/^group1-shard[1-9][0-9]*of[1-9][0-9]*\.bin$/, "must be a shard named in model.json, e.g. group1-shard1of1.bin") }),
      response: { 200: { content: { "application/octet-stream": { schema: binary("Little-endian float32 weights, in the manifest's order.") } } }, 400: problemSchema, 401: problemSchema, 404: problemSchema, 409: problemSchema },
    },
  }, async (request, reply) => {
    const data = await exporter.shard(tenantOf(request), request.params.name, request.params.version, request.params.file);
    return reply.type("application/octet-stream").send(Buffer.from(data.buffer, data.byteOffset, data.byteLength));
  });

  app.get("/v1/models/:name/versions/:version/export.zip", {
    config: { auth: "tenant" },
    schema: {
      operationId: "exportModelZip", tags: ["models"], security,
      summary: "The exported version as one zip: model.json, its weight shards and signature.json",
      params: versionParams,
      response: { 200: { content: { [ZIP]: { schema: binary("A zip of model.json, group1-shard*.bin and signature.json.") } } }, 401: problemSchema, 404: problemSchema, 409: problemSchema },
    },
  }, async (request, reply) => {
    const { name, version } = request.params;
    const zip = await exporter.zip(tenantOf(request), name, version);
    return reply.type(ZIP).header("content-disposition", `attachment; filename="${name}-v${version}.zip"`).send(zip);
  });

  app.get("/v1/models/:name/versions/:version/export.onnx", {
    config: { auth: "tenant" },
    schema: {
      operationId: "exportModelOnnx", tags: ["models"], security,
      summary: `A version as one ONNX model (opset ${OPSET}): raw inputs in, channels last like :predict, preprocessing inside the graph; 409 naming a layer that has no ONNX form yet`,
      params: versionParams,
      response: { 200: { content: { [ONNX]: { schema: binary("An ONNX ModelProto (protobuf).") } } }, 401: problemSchema, 404: problemSchema, 409: problemSchema },
    },
  }, async (request, reply) => {
    const { name, version } = request.params;
    const bytes = await exporter.onnx(tenantOf(request), name, version);
    return reply.type(ONNX).header("content-disposition", `attachment; filename="${name}-v${version}.onnx"`).send(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
  });

  app.addContentTypeParser(ZIP, { parseAs: "buffer", bodyLimit: app.config.TRAINYARD_MAX_UPLOAD_BYTES }, (_req, body, done) => done(null, body));

  // A custom method on the versions collection, as :predict is on a model.
  app.post("/v1/models/:name(^[A-Za-z0-9][A-Za-z0-9_.-]{0,99})/versions::import", {
    config: { auth: "tenant" },
    bodyLimit: app.config.TRAINYARD_MAX_UPLOAD_BYTES,
    schema: {
      operationId: "importModelVersion", tags: ["models"], security,
      summary: "Import a TensorFlow.js layers model trained elsewhere (a zip of model.json, its shards and optionally signature.json) as a new version, after its inputs and outputs are checked against the model's spec",
      params: z.object({ name: modelNameSchema }),
      body: { content: { [ZIP]: { schema: binary("A zip: model.json (layers-model), the weight files it names, optionally signature.json.") } } },
      response: { 201: z.object({ version: z.number().int() }).meta({ id: "ImportedVersion" }), 400: problemSchema, 401: problemSchema, 404: problemSchema, 409: problemSchema, 413: problemSchema, 415: problemSchema },
    },
  }, async (request, reply) => {
    const version = await exporter.importZip(tenantOf(request), request.params.name, request.body as Buffer, app.config.TRAINYARD_MAX_UPLOAD_BYTES);
    return reply.status(201).header("location", `/v1/models/${request.params.name}/versions/${version}`).send({ version });
  });
};
