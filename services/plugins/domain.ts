// Domain tier: the services route handlers call. Built over the infrastructure plugin.
import fp from "fastify-plugin";
import { ApiKeyService } from "../../lib/auth/api-key-service.ts";
import { DatasetService } from "../../lib/data/dataset-service.ts";
import { ModelService } from "../../lib/registry/model-service.ts";
import { PredictService } from "../../lib/serving/predict-service.ts";
import { TrainingJobService } from "../../lib/training/training-job-service.ts";

declare module "fastify" {
  interface FastifyInstance {
    services: {
      apiKeys: ApiKeyService;
      datasets: DatasetService;
      models: ModelService;
      trainingJobs: TrainingJobService;
      predict: PredictService;
    };
  }
}

export const domainPlugin = fp(
  async (app) => {
    const { db, config } = app;
    const predict = new PredictService(db, config.TRAINYARD_MODEL_CACHE_SIZE, config.TRAINYARD_MAX_PREDICT_INSTANCES);
    app.decorate("services", {
      apiKeys: new ApiKeyService(db, config.TRAINYARD_ADMIN_KEY),
      datasets: new DatasetService(db, { maxBytes: config.TRAINYARD_MAX_UPLOAD_BYTES }),
      models: new ModelService(db, { maxParams: config.TRAINYARD_MAX_PARAMS, maxLayers: config.TRAINYARD_MAX_LAYERS, maxFlopsPerSample: config.TRAINYARD_MAX_FLOPS }),
      trainingJobs: new TrainingJobService(db, app.trainingQueue, app.redis, config.TRAINYARD_QUEUE_PREFIX),
      predict,
    });
    app.addHook("onClose", async () => predict.dispose());
  },
  { name: "domain", dependencies: ["infrastructure"] },
);
