// Domain errors. Services throw these; services/plugins/error-handler.ts maps them to HTTP once.

export interface FieldProblem {
  /** Where the problem is, e.g. `spec.layers[1].rate` or `CSV row 17`. */
  path: string;
  message: string;
}

export class DomainError extends Error {
  constructor(message: string, readonly status: number, readonly title: string) {
    super(message);
    this.name = new.target.name;
  }
}

/** A request that is well-formed JSON but wrong: every problem names where it is. */
export class ValidationError extends DomainError {
  constructor(readonly problems: FieldProblem[]) {
    super(problems.map((p) => `${p.path}: ${p.message}`).join("; "), 400, "Invalid request");
  }
  static at(path: string, message: string): ValidationError {
    return new ValidationError([{ path, message }]);
  }
}

export class NotFoundError extends DomainError {
  constructor(what: string, id: string) {
    super(`${what} '${id}' was not found`, 404, "Not found");
  }
}

export class ConflictError extends DomainError {
  constructor(message: string) {
    super(message, 409, "Conflict");
  }
}

export class UnauthorizedError extends DomainError {
  constructor(message = "a valid 'Authorization: Bearer <key>' header is required") {
    super(message, 401, "Unauthorized");
  }
}

export class ForbiddenError extends DomainError {
  constructor(message: string) {
    super(message, 403, "Forbidden");
  }
}

/** A dependency (Postgres, Redis) does not answer; the client may retry later. */
export class UnavailableError extends DomainError {
  constructor(message: string) {
    super(message, 503, "Service unavailable");
  }
}

/** This replica has more work waiting than it takes on; the client should retry after `retryAfterSeconds` (sent as Retry-After). */
export class OverloadedError extends UnavailableError {
  constructor(message: string, readonly retryAfterSeconds = 1) {
    super(message);
  }
}

/** Formats a zod-style path (['spec', 'layers', 1, 'rate']) as `spec.layers[1].rate`. */
export function formatPath(path: readonly PropertyKey[]): string {
  let out = "";
  for (const part of path) {
    if (typeof part === "number") out += `[${part}]`;
    else out += out ? `.${String(part)}` : String(part);
  }
  return out;
}

const UNREACHABLE = /ECONNREFUSED|ECONNRESET|EPIPE|ETIMEDOUT|ENOTFOUND|EHOSTUNREACH|Connection terminated|Can't reach database|Stream isn't writeable|Connection is closed|connect ETIMEDOUT|terminating connection due to administrator command|the database system is (starting up|shutting down|in recovery mode)/i;

/**
 * True when an error says a backing service (Postgres, Redis) did not answer, rather than that the
 * request or the job is wrong: the API answers 503, a worker waits and tries again.
 */
export function isDependencyDown(err: unknown): boolean {
  for (let e: unknown = err, depth = 0; e && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    const { code, message, name } = e as { code?: string; message?: string; name?: string };
    if (name === "PrismaClientInitializationError" || code === "P1001" || code === "P1017" || code === "57P01" || code === "57P03") return true;
    // No pooled connection within the transaction's wait: the database is saturated, not the request wrong.
    if (code === "P2028" && message && /Unable to start a transaction/i.test(message)) return true;
    if ((code && UNREACHABLE.test(code)) || (message && UNREACHABLE.test(message))) return true;
  }
  return false;
}

/** `promise`, or a rejection with `message` once `ms` have passed: a producer answers now rather than wait on a dependency that may never come back. */
export function withTimeout<T>(promise: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([promise, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(message)), ms)))]).finally(() => clearTimeout(timer));
}
