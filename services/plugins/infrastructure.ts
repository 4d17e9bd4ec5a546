// Infrastructure tier: Postgres (Prisma), Redis and the job queues. Each is created once per
// app, decorated onto the instance, and released in onClose.
import fp from "fastify-plugin";
import { FlowProducer, type Queue } from "bullmq";
import { Redis } from "ioredis";
import type { ApiConfig } from "../../lib/config/env.ts";
import { createPrisma, type Db } from "../../lib/db/prisma.ts";
import { createInsightQueue, createTrainingQueue, type InsightJobPayload, type TrainJobPayload } from "../../lib/queue/queues.ts";

declare module "fastify" {
  interface FastifyInstance {
    config: ApiConfig;
    db: Db;
    redis: Redis;
    trainingQueue: Queue<TrainJobPayload>;
    insightQueue: Queue<InsightJobPayload>;
    /** Enqueues a study's trials and its parent job as one atomic flow. */
    flowProducer: FlowProducer;
  }
}

const REDIS_CONNECT_GRACE_MS = 3000;

export const infrastructurePlugin = fp<{ config: ApiConfig }>(
  async (app, { config }) => {
    app.decorate("config", config);
    const db = createPrisma(config.DATABASE_URL);
    app.decorate("db", db);
    // A producer must fail fast when Redis is down (answering 503), not queue commands in memory.
    const redis = new Redis(config.REDIS_URL, { enableOfflineQueue: false, maxRetriesPerRequest: 1, connectTimeout: 5000 });
    redis.on("error", (err) => app.log.warn({ err: err.message }, "redis connection problem"));
    app.decorate("redis", redis);
    // Give Redis a moment to connect so the first requests don't see a cold connection as an
    // outage; if it is really down, start anyway (readyz says so, producers answer 503).
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, REDIS_CONNECT_GRACE_MS);
      redis.once("ready", () => {
        clearTimeout(timer);
        resolve();
      });
    });
    const queue = createTrainingQueue(redis, config.TRAINYARD_QUEUE_PREFIX);
    queue.on("error", (err) => app.log.warn({ err: err.message }, "training queue problem"));
    app.decorate("trainingQueue", queue);
    const insightQueue = createInsightQueue(redis, config.TRAINYARD_QUEUE_PREFIX);
    insightQueue.on("error", (err) => app.log.warn({ err: err.message }, "insight queue problem"));
    app.decorate("insightQueue", insightQueue);
    const flows = new FlowProducer({ connection: redis, prefix: config.TRAINYARD_QUEUE_PREFIX });
    flows.on("error", (err) => app.log.warn({ err: err.message }, "flow producer problem"));
    app.decorate("flowProducer", flows);
    app.addHook("onClose", async () => {
      await queue.close().catch(() => {});
      await insightQueue.close().catch(() => {});
      await flows.close().catch(() => {});
      redis.disconnect();
      await db.$disconnect();
    });
  },
  { name: "infrastructure" },
);
