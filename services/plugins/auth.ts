// Bearer-key authentication. Routes say who may call them with `config.auth`: "tenant" (a tenant
// key; the default under /v1), "admin" (the bootstrap key) or "public".
import fp from "fastify-plugin";
import type { FastifyRequest } from "fastify";
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

export const authPlugin = fp(
  async (app) => {
    app.addHook("onRequest", async (request) => {
      const level: AuthLevel = request.routeOptions.config?.auth ?? (request.url.startsWith("/v1/") ? "tenant" : "public");
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
