// Per-tenant rate limits, applied by a route flag: `config: { rateLimit: "predict" }` on inference
// routes, `"uploads"` on dataset uploads and built-in imports. The check runs before the body is
// touched (onRequest, right after authentication, so registered after the auth plugin): a refused
// upload costs no bytes, and no decompression stream is left waiting, unread, while Redis answers
// (one that failed meanwhile had no listener for its error, and took the process down). Beyond the limit:
// 429 problem+json naming the limit, with `Retry-After` in whole seconds (rounded up). If Redis
// does not answer the request passes; lib/auth/rate-limit.ts says why.
import fp from "fastify-plugin";
import { RATE_LIMITS, RateLimiter, type RateLimitName } from "../../lib/auth/rate-limit.ts";
import { DomainError } from "../../lib/errors.ts";

declare module "fastify" {
  interface FastifyContextConfig {
    rateLimit?: RateLimitName;
  }
}

class TooManyRequestsError extends DomainError {
  constructor(message: string) {
    super(message, 429, "Too many requests");
  }
}

const FAIL_OPEN_LOG_EVERY_MS = 30_000;

export const rateLimitPlugin = fp(
  async (app) => {
    const c = app.config;
    const limiter = new RateLimiter(app.redis, c.TRAINYARD_QUEUE_PREFIX, {
      predict: { perSecond: c.TRAINYARD_RATE_LIMIT_PREDICT_PER_SECOND, burst: c.TRAINYARD_RATE_LIMIT_PREDICT_BURST },
      uploads: { perSecond: c.TRAINYARD_RATE_LIMIT_UPLOADS_PER_MINUTE / 60, burst: c.TRAINYARD_RATE_LIMIT_UPLOADS_BURST },
    });
    const describe: Record<RateLimitName, string> = {
      predict: `${c.TRAINYARD_RATE_LIMIT_PREDICT_PER_SECOND} requests per second, bursts of ${c.TRAINYARD_RATE_LIMIT_PREDICT_BURST}`,
      uploads: `${c.TRAINYARD_RATE_LIMIT_UPLOADS_PER_MINUTE} uploads per minute, bursts of ${c.TRAINYARD_RATE_LIMIT_UPLOADS_BURST}`,
    };

    app.addHook("onRoute", (route) => {
      const limit = route.config?.rateLimit;
      if (limit !== undefined && !RATE_LIMITS.includes(limit)) throw new Error(`route ${route.method} ${route.url}: config.rateLimit must be one of ${RATE_LIMITS.join(", ")}`);
    });

    let lastFailOpenLog = -Infinity;
    app.addHook("onRequest", async (request, reply) => {
      const limit = request.routeOptions.config?.rateLimit;
      const principal = request.principal;
      if (!limit || principal?.kind !== "tenant" || !limiter.enabled(limit)) return;
      const decision = await limiter.take(limit, principal.tenantId);
      if ("failedOpen" in decision) {
        app.metrics?.rateLimitFailOpen.inc({ limit });
        if (performance.now() - lastFailOpenLog > FAIL_OPEN_LOG_EVERY_MS) {
          lastFailOpenLog = performance.now();
          request.log.warn({ limit, reason: decision.reason }, "rate limiter unavailable: letting requests through unchecked");
        }
        return;
      }
      if (decision.allowed) return;
      app.metrics?.rateLimited.inc({ limit });
      // Headers set here survive the error handler, which sends the problem body.
      reply.header("retry-after", String(decision.retryAfterSeconds));
      throw new TooManyRequestsError(`the ${limit} rate limit of this tenant (${describe[limit]}) is used up; retry after ${decision.retryAfterSeconds} s`);
    });
  },
  { name: "rate-limit", dependencies: ["infrastructure", "auth"] },
);
