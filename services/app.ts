// Builds the Fastify app and never listens (services/server.ts does): tests use app.inject().
import Fastify, { type FastifyServerOptions } from "fastify";
import { serializerCompiler, validatorCompiler, type ZodTypeProvider } from "@fastify/type-provider-zod";
import type { ApiConfig } from "../lib/config/env.ts";
import { initBackend } from "../lib/engine/backend.ts";
import { authPlugin } from "./plugins/auth.ts";
import { bodyGuardPlugin } from "./plugins/body-guard.ts";
import { domainPlugin } from "./plugins/domain.ts";
import { errorHandlerPlugin, frameworkError } from "./plugins/error-handler.ts";
import { infrastructurePlugin } from "./plugins/infrastructure.ts";
import { metricsPlugin } from "./plugins/metrics.ts";
import { rateLimitPlugin } from "./plugins/rate-limit.ts";
import { swaggerPlugin } from "./plugins/swagger.ts";
import { healthRoutes } from "./routes/health.ts";
import { apiKeyRoutes } from "./routes/v1/api-keys.ts";
import { builtinDatasetRoutes } from "./routes/v1/builtin-datasets.ts";
import { datasetRoutes } from "./routes/v1/datasets.ts";
import { infoRoutes } from "./routes/v1/info.ts";
import { modelExportRoutes } from "./routes/v1/model-export.ts";
import { insightJobRoutes } from "./routes/v1/insight-jobs.ts";
import { insightRoutes } from "./routes/v1/insight.ts";
import { modelRoutes } from "./routes/v1/models.ts";
import { templateRoutes } from "./routes/v1/templates.ts";
import { studyRoutes } from "./routes/v1/studies.ts";
import { trainingJobRoutes } from "./routes/v1/training-jobs.ts";
import { inferenceRoutes } from "./routes/v2/inference.ts";
import { SERVICE_VERSION } from "./version.ts";

export async function buildApp(config: ApiConfig, opts: { logger?: FastifyServerOptions["logger"] } = {}) {
  const app = Fastify({
    logger: opts.logger ?? { level: config.LOG_LEVEL, redact: ["req.headers.authorization"] },
    bodyLimit: 1024 * 1024,
    // Predict bodies and dataset uploads are large JSON; the default 1 MiB is raised per route.
    routerOptions: { maxParamLength: 200 },
    frameworkErrors: frameworkError,
  }).withTypeProvider<ZodTypeProvider>();
  // The API builds models to validate specs and serves inference: it needs a backend too.
  await initBackend(config.TRAINYARD_BACKEND, (msg) => app.log.info(msg));
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);

  await app.register(errorHandlerPlugin);
  await app.register(bodyGuardPlugin);
  await app.register(swaggerPlugin, { version: SERVICE_VERSION });
  await app.register(infrastructurePlugin, { config });
  // Before auth, so that its onRequest starts the clock first; rate limits read the principal later (preParsing).
  await app.register(metricsPlugin);
  await app.register(domainPlugin);
  await app.register(authPlugin);
  // After auth: its onRequest hook knows the tenant, and runs before any body is read.
  await app.register(rateLimitPlugin);

  await app.register(healthRoutes);
  await app.register(infoRoutes);
  await app.register(apiKeyRoutes);
  await app.register(datasetRoutes);
  await app.register(builtinDatasetRoutes);
  await app.register(modelRoutes);
  await app.register(modelExportRoutes);
  await app.register(insightRoutes);
  await app.register(insightJobRoutes);
  await app.register(trainingJobRoutes);
  await app.register(studyRoutes);
  await app.register(templateRoutes);
  await app.register(inferenceRoutes, { prefix: "/v2" });
  return app;
}

export type App = Awaited<ReturnType<typeof buildApp>>;
