// One error body everywhere: RFC 9457 problem+json, with `errors[]` naming where a request is bad.
// Domain errors map to their status; a dependency that does not answer maps to 503; anything
// else is a 500 whose body says nothing internal (the log has the details).
import fp from "fastify-plugin";
import type { FastifyError, FastifyReply, FastifyRequest } from "fastify";
import { hasZodFastifySchemaValidationErrors } from "@fastify/type-provider-zod";
import { z } from "zod";
import { DomainError, isDependencyDown, OverloadedError, ValidationError, type FieldProblem } from "../../lib/errors.ts";

export const problemSchema = z
  .object({
    type: z.string(),
    title: z.string(),
    status: z.number().int(),
    detail: z.string(),
    errors: z.array(z.object({ path: z.string(), message: z.string() })).optional(),
  })
  .meta({ id: "Problem", description: "RFC 9457 problem details." });

function send(reply: FastifyReply, status: number, title: string, detail: string, errors?: FieldProblem[]) {
  return reply
    .status(status)
    .type("application/problem+json")
    .send({ type: "about:blank", title, status, detail, ...(errors?.length ? { errors } : {}) });
}

/** `/spec/layers/1/rate` in the body → `spec.layers[1].rate`; query and path keep their context name. */
function pathOf(context: string | undefined, instancePath: string): string {
  const parts = instancePath.split("/").filter(Boolean).map((p) => p.replaceAll("~1", "/").replaceAll("~0", "~"));
  let out = context && context !== "body" ? context : "";
  for (const p of parts) out += /^\d+$/.test(p) ? `[${p}]` : out ? `.${p}` : p;
  return out || (context ?? "body");
}

/** An overloaded replica tells the client when to come back (both protocols' error bodies use this). */
export function setRetryAfter(err: unknown, reply: FastifyReply): void {
  if (err instanceof OverloadedError) reply.header("retry-after", String(err.retryAfterSeconds));
}

/**
 * Fastify answers a malformed URL or an over-long path parameter while routing, before any error
 * handler exists for the request; its `frameworkErrors` option sends those here, so that they too
 * are problem+json.
 */
export function frameworkError(err: FastifyError, _request: FastifyRequest, reply: FastifyReply) {
  return send(reply, err.statusCode ?? 400, err.code ?? "Bad request", err.message);
}

export const errorHandlerPlugin = fp(
  async (app) => {
    app.setErrorHandler((err: FastifyError, request, reply) => {
      if (hasZodFastifySchemaValidationErrors(err)) {
        const problems = err.validation.map((v) => ({ path: pathOf(err.validationContext, v.instancePath), message: v.message ?? "is invalid" }));
        return send(reply, 400, "Invalid request", problems.map((p) => `${p.path}: ${p.message}`).join("; "), problems);
      }
      if (err instanceof ValidationError) return send(reply, 400, err.title, err.message, err.problems);
      setRetryAfter(err, reply);
      if (err instanceof DomainError) return send(reply, err.status, err.title, err.message);
      if (isDependencyDown(err)) {
        request.log.warn({ err }, "dependency unavailable");
        return send(reply, 503, "Service unavailable", "a backing service (database or queue) is not answering; try again later");
      }
      // Fastify's own 4xx (bad JSON, unsupported media type, body too large) are safe to pass on.
      if (err.statusCode && err.statusCode >= 400 && err.statusCode < 500) return send(reply, err.statusCode, err.code ?? "Bad request", err.message);
      request.log.error({ err }, "unhandled error");
      return send(reply, 500, "Internal error", "the server failed to handle this request; it has been logged");
    });
    app.setNotFoundHandler((request, reply) => send(reply, 404, "Not found", `no route ${request.method} ${request.url.split("?")[0]}`));
  },
  { name: "error-handler" },
);
