import type { FastifyPluginAsyncZod } from "@fastify/type-provider-zod";
import { z } from "zod";
import { currentBackend } from "../../../lib/engine/backend.ts";
import { SERVICE_VERSION } from "../../version.ts";
import { ACTIVATIONS, LAYER_TYPES } from "../../../lib/model-spec/model-spec-schema.ts";

const infoSchema = z
  .object({
    service: z.literal("trainyard"),
    version: z.string(),
    backend: z.object({ name: z.string(), tfjsVersion: z.string() }).describe("Compute backend this API process serves inference on."),
    serving: z
      .object({
        runtime: z.enum(["auto", "onnx", "tfjs"]).describe("TRAINYARD_SERVING_RUNTIME."),
        onnxRuntimeVersion: z.string().nullable().describe("onnxruntime-node's version; null when it is not installed (every version is then served by TensorFlow.js)."),
        inferenceThreads: z.number().int(),
        onnxThreads: z.number().int().describe("ONNX Runtime's intra-op threads per inference thread."),
      })
      .describe("What runs forward passes on this replica."),
    layers: z.array(z.string()),
    activations: z.array(z.string()),
    limits: z.object({ maxUploadBytes: z.number(), maxParams: z.number(), maxPredictInstances: z.number() }),
  })
  .meta({ id: "Info" });

export const infoRoutes: FastifyPluginAsyncZod = async (app) => {
  app.get("/v1/info", {
    config: { auth: "public" },
    schema: { operationId: "getInfo", tags: ["info"], summary: "Service version, compute backend and limits", response: { 200: infoSchema } },
  }, async () => {
    const backend = currentBackend();
    return {
      service: "trainyard" as const,
      version: SERVICE_VERSION,
      backend: { name: backend?.name ?? "uninitialized", tfjsVersion: backend?.tfjsVersion ?? "" },
      serving: app.services.runtime.serving(),
      layers: [...LAYER_TYPES],
      activations: [...ACTIVATIONS],
      limits: {
        maxUploadBytes: app.config.TRAINYARD_MAX_UPLOAD_BYTES,
        maxParams: app.config.TRAINYARD_MAX_PARAMS,
        maxPredictInstances: app.config.TRAINYARD_MAX_PREDICT_INSTANCES,
      },
    };
  });
};
