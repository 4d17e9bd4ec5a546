// Domain tier: the services route handlers call. Built over the infrastructure plugin.
import fp from "fastify-plugin";
import { ApiKeyService } from "../../lib/auth/api-key-service.ts";
import { DatasetService } from "../../lib/data/dataset-service.ts";
import { ModelService } from "../../lib/registry/model-service.ts";
import { ModelExportService } from "../../lib/registry/export/model-export-service.ts";
import { RegistryService } from "../../lib/registry/registry-service.ts";
import { InsightJobService } from "../../lib/insight/insight-job-service.ts";
import { InsightService } from "../../lib/insight/insight-service.ts";
import { enqueueInsight } from "../../lib/queue/queues.ts";
import { PredictService } from "../../lib/serving/predict-service.ts";
import { InferenceRuntime } from "../../lib/serving/runtime/inference-runtime.ts";
import { loadOrt, ortUnavailableReason } from "../../lib/engine/onnx-runtime.ts";
import { runtimeStatsFrom } from "../../lib/observability/metrics.ts";
import { StudyService } from "../../lib/training/studies/study-service.ts";
import { TrainingJobService } from "../../lib/training/training-job-service.ts";
import { SERVICE_VERSION } from "../version.ts";
import { redisBroadcast } from "./broadcast.ts";

declare module "fastify" {
  interface FastifyInstance {
    services: {
      apiKeys: ApiKeyService;
      datasets: DatasetService;
      models: ModelService;
      trainingJobs: TrainingJobService;
      studies: StudyService;
      predict: PredictService;
      registry: RegistryService;
      runtime: InferenceRuntime;
      exports: ModelExportService;
      insight: InsightService;
      insightJobs: InsightJobService;
    };
  }
}

export const domainPlugin = fp(
  async (app) => {
    const { db, config } = app;
    // Forward passes and big spec builds run on worker threads, never on this event loop; the
    // threads start with the first prediction or big validation (most test apps never need them).
    // ONNX Runtime is optional: without it every version is served by TensorFlow.js, unless the
    // configuration insists on ONNX Runtime, which is then a start-up error rather than 409s later.
    const ortInstalled = (await loadOrt()) !== null;
    if (config.TRAINYARD_SERVING_RUNTIME === "onnx" && !ortInstalled) {
      throw new Error(`TRAINYARD_SERVING_RUNTIME is onnx, but onnxruntime-node does not load: ${ortUnavailableReason()}`);
    }
    const serving = { mode: config.TRAINYARD_SERVING_RUNTIME, ortInstalled };
    const runtime = new InferenceRuntime({
      databaseUrl: config.DATABASE_URL, backend: config.TRAINYARD_BACKEND, threads: config.TRAINYARD_INFERENCE_THREADS,
      servingRuntime: config.TRAINYARD_SERVING_RUNTIME, onnxThreads: config.TRAINYARD_ONNX_THREADS,
      cacheBytes: config.TRAINYARD_MODEL_CACHE_BYTES, cacheEntries: config.TRAINYARD_MODEL_CACHE_SIZE,
      maxBatchSize: config.TRAINYARD_BATCH_MAX_SIZE, maxDelayMs: config.TRAINYARD_BATCH_MAX_DELAY_MS,
      maxQueueRows: config.TRAINYARD_INFERENCE_QUEUE_MAX_ROWS,
      lazyStart: true, log: (msg) => app.log.warn(msg),
    });
    // /metrics reads the runtime's counters (cache, batches, queue) at scrape time.
    app.metrics.setRuntimeStatsSource(() => runtimeStatsFrom(runtime.stats()));
    const predict = new PredictService(db, {
      maxInstances: config.TRAINYARD_MAX_PREDICT_INSTANCES, lookupTtlMs: config.TRAINYARD_VERSION_LOOKUP_TTL_MS,
      run: (versionId, inputs, batching) => runtime.run(versionId, inputs, batching),
      serving,
    });
    // A registry change drops this replica's cached lookups before the response, then tells the others.
    const versionBus = redisBroadcast(app.redis, `${config.TRAINYARD_QUEUE_PREFIX}:serving:versions-changed`, app.log, "registry changes");
    versionBus.subscribe((tenantId, model) => predict.resolver.invalidate(tenantId, model));
    // A key revoked on any replica is forgotten by every replica's cache of verified keys.
    const revocations = redisBroadcast(app.redis, `${config.TRAINYARD_QUEUE_PREFIX}:auth:revoked`, app.log, "revoked API keys");
    const apiKeys = new ApiKeyService(db, config.TRAINYARD_ADMIN_KEY, { cacheMs: config.TRAINYARD_AUTH_CACHE_MS, onRevoke: (keyId) => void revocations.publish(keyId) });
    revocations.subscribe((keyId) => apiKeys.forget(keyId));
    const registry = new RegistryService(db, (tenantId, model) => {
      predict.resolver.invalidate(tenantId, model);
      void versionBus.publish(tenantId, model);
    }, serving);
    const trainingJobs = new TrainingJobService(db, app.trainingQueue, app.redis, config.TRAINYARD_QUEUE_PREFIX);
    const models = new ModelService(db, { maxParams: config.TRAINYARD_MAX_PARAMS, maxLayers: config.TRAINYARD_MAX_LAYERS, maxFlopsPerSample: config.TRAINYARD_MAX_FLOPS }, runtime);
    // A producer answers 503 at once when Redis is down, rather than queue the job in memory.
    const insightJobs = new InsightJobService(db, async (id, tenantId) => {
      if (app.redis.status !== "ready") throw new Error(`Redis connection is ${app.redis.status}`);
      await enqueueInsight(app.insightQueue, id, tenantId);
    });
    // A dataset is not deleted while a job needs it; the training and insight areas own jobs and answer which.
    const activeJobsUsing = async (tenantId: string, datasetId: string) => [...(await trainingJobs.activeJobsUsing(tenantId, datasetId)), ...(await insightJobs.activeJobsUsing(tenantId, datasetId))];
    const datasets = new DatasetService(db, activeJobsUsing, {
      maxBytes: config.TRAINYARD_MAX_UPLOAD_BYTES, maxFileBytes: config.TRAINYARD_MAX_DATASET_BYTES, spoolDir: config.TRAINYARD_UPLOAD_DIR,
    });
    app.decorate("services", {
      apiKeys,
      datasets,
      models,
      trainingJobs,
      studies: new StudyService(db, trainingJobs, models, app.flowProducer, app.redis, config.TRAINYARD_QUEUE_PREFIX),
      predict,
      registry,
      runtime,
      // Imported versions (trained elsewhere) are registered like trained ones, and invalidate lookups.
      exports: new ModelExportService(db, `Trainyard ${SERVICE_VERSION}`, 4, (v) => registry.registerImported(v)),
      // Probes run on the inference threads, beside the versions they load.
      insight: new InsightService(db, (versionId, probe) => runtime.probe(versionId, probe), (tenantId, id) => trainingJobs.get(tenantId, id)),
      // Insight over a dataset's rows: jobs for the workers.
      insightJobs,
    });
    // Uploads whose writer died halfway stay invisible; every replica clears old ones now and then.
    const sweep = () => void datasets.sweepAbandoned().catch((err: Error) => app.log.warn({ err: err.message }, "sweeping abandoned uploads"));
    const sweeper = setInterval(sweep, 10 * 60_000).unref();
    app.addHook("onReady", async () => sweep());
    app.addHook("onClose", async () => {
      clearInterval(sweeper);
      predict.dispose();
      versionBus.close();
      revocations.close();
      await runtime.close();
    });
  },
  { name: "domain", dependencies: ["infrastructure"] },
);
