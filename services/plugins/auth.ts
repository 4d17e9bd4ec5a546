// Bearer-key authentication, deny by default. Every route says who may call it with
// `config.auth`: "tenant" (a tenant key), "admin" (the bootstrap key) or "public". A route that
// says nothing is refused when it is registered, so the app does not start with it: a new route
// (say, under /v2/) can never be public by omission.
import fp from "fastify-plugin";
import type { FastifyInstance, FastifyRequest } from "fastify";
import type { Principal } from "../../lib/auth/api-key-service.ts";
import { ForbiddenError, UnauthorizedError } from "../../lib/errors.ts";

export type AuthLevel = "tenant" | "admin" | "public";

declare module "fastify" {
  interface FastifyRequest {
    principal?: Principal;
  }
  interface FastifyContextConfig {
    auth?: AuthLevel;
  }
}

/** The tenant a request acts for; only valid on routes with auth "tenant". */
export function tenantOf(request: FastifyRequest): string {
  const p = request.principal;
  if (p?.kind !== "tenant") throw new UnauthorizedError();
  return p.tenantId;
}

export const AUTH_LEVELS: readonly AuthLevel[] = ["tenant", "admin", "public"];

/** Marks every route registered in this plugin's context public (for plugins that register routes of their own, such as the docs). */
export function publicRoutes(app: FastifyInstance): void {
  app.addHook("onRoute", (route) => {
    route.config = { ...route.config, auth: route.config?.auth ?? "public" };
  });
}

export const authPlugin = fp(
  async (app) => {
    app.addHook("onRoute", (route) => {
      const auth = (route.config as { auth?: AuthLevel } | undefined)?.auth;
      if (!auth || !AUTH_LEVELS.includes(auth)) {
        throw new Error(`route ${route.method} ${route.url} states no auth level: set config.auth to one of ${AUTH_LEVELS.join(", ")}`);
      }
    });
    app.addHook("onRequest", async (request) => {
      // No route matched: answer 404, except that /v1/ asks for a key first (as every /v1/ route does).
      const level: AuthLevel | undefined = request.is404 ? (request.url.startsWith("/v1/") ? "tenant" : "public") : request.routeOptions.config?.auth;
      if (!level) throw new UnauthorizedError();
      if (level === "public") return;
      const header = request.headers.authorization;
      const match = header ? /^Bearer\s+(\S+)\s*$/i.exec(header) : null;
      if (!match) throw new UnauthorizedError();
      const principal = await app.services.apiKeys.authenticate(match[1]);
      if (!principal) throw new UnauthorizedError("the API key is not valid or has been revoked");
      if (level === "admin" && principal.kind !== "admin") throw new ForbiddenError("this route needs the admin key");
      if (level === "tenant" && principal.kind !== "tenant") {
        throw new ForbiddenError("the admin key only manages API keys; call this route with a tenant key (POST /v1/api-keys creates one)");
      }
      request.principal = principal;
    });
  },
  { name: "auth", dependencies: ["domain"] },
);
