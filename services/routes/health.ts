import type { FastifyPluginAsyncZod } from "@fastify/type-provider-zod";
import { z } from "zod";

const readySchema = z.object({ status: z.enum(["ready", "unavailable"]), checks: z.object({ postgres: z.boolean(), redis: z.boolean() }) });

/** Resolves to false when the check fails or takes longer than `ms`. */
const within = (ms: number, check: () => Promise<unknown>) =>
  Promise.race([check().then(() => true, () => false), new Promise<boolean>((r) => setTimeout(() => r(false), ms).unref())]);

export const healthRoutes: FastifyPluginAsyncZod = async (app) => {
  app.get("/healthz", {
    config: { auth: "public" },
    schema: { operationId: "healthz", tags: ["health"], summary: "The process is alive", response: { 200: z.object({ status: z.literal("ok") }) } },
  }, async () => ({ status: "ok" as const }));

  app.get("/readyz", {
    config: { auth: "public" },
    schema: { operationId: "readyz", tags: ["health"], summary: "Postgres and Redis answer", response: { 200: readySchema, 503: readySchema } },
  }, async (_request, reply) => {
    const [postgres, redis] = await Promise.all([within(2000, () => app.db.$queryRaw`SELECT 1`), within(2000, () => app.redis.ping())]);
    const ok = postgres && redis;
    return reply.status(ok ? 200 : 503).send({ status: ok ? "ready" : "unavailable", checks: { postgres, redis } });
  });
};
