// Prometheus metrics: every request is timed from onRequest to onResponse and counted by route
// pattern, method, status and (on inference routes) model; `GET /metrics` renders the registry
// of lib/observability/metrics.ts in Prometheus's text format.
//
// Who may read /metrics. Prometheus scrapes with a static bearer token at most, never a tenant's
// key, and the numbers are operational (counts, latencies, model names), not any tenant's data.
// Deny by default still holds, as for every other route: a request needs
// `Authorization: Bearer <TRAINYARD_METRICS_TOKEN>` (a token that opens /metrics and nothing
// else, so a Prometheus config that leaks gives away no power) or the admin key.
// TRAINYARD_METRICS_PUBLIC=true opens it for deployments where only the scraper can reach the
// port. The route is left out of the OpenAPI document: it is for operators, not API clients.
import { createHash, timingSafeEqual } from "node:crypto";
import fp from "fastify-plugin";
import { UnauthorizedError } from "../../lib/errors.ts";
import { routeLabel, ServiceMetrics } from "../../lib/observability/metrics.ts";

declare module "fastify" {
  interface FastifyInstance {
    metrics: ServiceMetrics;
  }
  interface FastifyRequest {
    metricsStart: bigint;
  }
}

const digest = (s: string) => createHash("sha256").update(s).digest();
const sameSecret = (a: string, b: Buffer) => timingSafeEqual(digest(a), b);

export const metricsPlugin = fp(
  async (app) => {
    const metrics = new ServiceMetrics({ queue: app.trainingQueue, db: app.db });
    app.decorate("metrics", metrics);
    app.decorateRequest("metricsStart", 0n);

    // Route patterns as labels, converted once per pattern (their number is fixed by the routes).
    const labels = new Map<string, string>();
    const labelOf = (url: string | undefined) => {
      if (!url) return "unmatched";
      let l = labels.get(url);
      if (l === undefined) labels.set(url, (l = routeLabel(url)));
      return l;
    };

    app.addHook("onRequest", async (request) => {
      request.metricsStart = process.hrtime.bigint();
    });
    app.addHook("onResponse", async (request, reply) => {
      if (!request.metricsStart) return;
      const seconds = Number(process.hrtime.bigint() - request.metricsStart) / 1e9;
      const route = request.is404 ? "unmatched" : labelOf(request.routeOptions.url);
      // Inference routes carry the rate-limit flag "predict"; their model is a path parameter.
      let model = "";
      if (request.routeOptions.config?.rateLimit === "predict") {
        const params = request.params as Record<string, string | undefined> | undefined;
        model = metrics.modelLabel(params?.name ?? params?.model_name, reply.statusCode < 400);
      }
      metrics.observeRequest({ route, method: request.method, status: reply.statusCode, model }, seconds);
    });

    const admin = digest(app.config.TRAINYARD_ADMIN_KEY);
    const token = app.config.TRAINYARD_METRICS_TOKEN ? digest(app.config.TRAINYARD_METRICS_TOKEN) : undefined;
    app.get("/metrics", {
      // The token check is this route's own (above); the auth plugin lets it through.
      config: { auth: "public" },
      schema: { hide: true },
    }, async (request, reply) => {
      if (!app.config.TRAINYARD_METRICS_PUBLIC) {
        const match = /^Bearer\s+(\S+)\s*$/i.exec(request.headers.authorization ?? "");
        const ok = match && (sameSecret(match[1], admin) || (token && sameSecret(match[1], token)));
        if (!ok) throw new UnauthorizedError("/metrics needs 'Authorization: Bearer <TRAINYARD_METRICS_TOKEN>' (or the admin key)");
      }
      const text = await metrics.render();
      return reply.header("cache-control", "no-store").type(metrics.contentType).send(text);
    });
  },
  { name: "metrics", dependencies: ["infrastructure"] },
);
