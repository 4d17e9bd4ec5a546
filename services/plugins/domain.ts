// Domain tier: the services route handlers call. Built over the infrastructure plugin.
import fp from "fastify-plugin";
import { ApiKeyService } from "../../lib/auth/api-key-service.ts";
import { DatasetService } from "../../lib/data/dataset-service.ts";
import { ModelService } from "../../lib/registry/model-service.ts";
import { PredictService } from "../../lib/serving/predict-service.ts";
import { StudyService } from "../../lib/training/studies/study-service.ts";
import { TrainingJobService } from "../../lib/training/training-job-service.ts";

declare module "fastify" {
  interface FastifyInstance {
    services: {
      apiKeys: ApiKeyService;
      datasets: DatasetService;
      models: ModelService;
      trainingJobs: TrainingJobService;
      studies: StudyService;
      predict: PredictService;
    };
  }
}

export const domainPlugin = fp(
  async (app) => {
    const { db, config } = app;
    const predict = new PredictService(db, config.TRAINYARD_MODEL_CACHE_SIZE, config.TRAINYARD_MAX_PREDICT_INSTANCES);
    const trainingJobs = new TrainingJobService(db, app.trainingQueue, app.redis, config.TRAINYARD_QUEUE_PREFIX);
    const models = new ModelService(db, { maxParams: config.TRAINYARD_MAX_PARAMS, maxLayers: config.TRAINYARD_MAX_LAYERS, maxFlopsPerSample: config.TRAINYARD_MAX_FLOPS });
    // A dataset is not deleted while a job needs it; the training area owns jobs and answers which.
    const datasets = new DatasetService(db, (tenantId, datasetId) => trainingJobs.activeJobsUsing(tenantId, datasetId), {
      maxBytes: config.TRAINYARD_MAX_UPLOAD_BYTES, maxFileBytes: config.TRAINYARD_MAX_DATASET_BYTES, spoolDir: config.TRAINYARD_UPLOAD_DIR,
    });
    app.decorate("services", {
      apiKeys: new ApiKeyService(db, config.TRAINYARD_ADMIN_KEY),
      datasets,
      models,
      trainingJobs,
      studies: new StudyService(db, trainingJobs, models, app.flowProducer, app.redis, config.TRAINYARD_QUEUE_PREFIX),
      predict,
    });
    // Uploads whose writer died halfway stay invisible; every replica clears old ones now and then.
    const sweep = () => void datasets.sweepAbandoned().catch((err: Error) => app.log.warn({ err: err.message }, "sweeping abandoned uploads"));
    const sweeper = setInterval(sweep, 10 * 60_000).unref();
    app.addHook("onReady", async () => sweep());
    app.addHook("onClose", async () => {
      clearInterval(sweeper);
      predict.dispose();
    });
  },
  { name: "domain", dependencies: ["infrastructure"] },
);
