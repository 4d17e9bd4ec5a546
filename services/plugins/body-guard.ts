// What every request must be before a route sees it, checked once here for all routes:
// - a body the route can read: a content type its schema declares (415 names those it accepts),
//   an encoding we can undo (gzip, deflate; 415 otherwise), and a body at all where one is due;
// - no JSON nested absurdly deep. Zod's recursive schemas (nested arrays of numbers for images
//   and masks) recurse once per level, so a body nested thousands of levels deep would overflow
//   the stack and surface as a 500. No real body needs more than MAX_BODY_DEPTH levels: a spec
//   nests about 6, a dataset row of rank 8 about 11;
// - no NUL character and no unpaired UTF-16 surrogate (JSON's "\ud800") in any text: body
//   strings and keys at any depth, CSV cells, querystring, params. Postgres cannot store a NUL in
//   text (error 22021) nor a lone surrogate in jsonb, so either would surface as a 500; UTF-8 has
//   no lone surrogates at all, so a text column would silently store U+FFFD instead.
import { Readable, PassThrough } from "node:stream";
import { createGunzip, createInflate } from "node:zlib";
import fp from "fastify-plugin";
import type { FastifyRequest } from "fastify";
import { formatFor } from "../../lib/data/formats/index.ts";
import { DomainError, ValidationError, type FieldProblem } from "../../lib/errors.ts";

export const MAX_BODY_DEPTH = 64;

const NUL = "\u0000";
const NUL_MESSAGE = "contains a NUL character (\\u0000), which no text may hold";
const SURROGATE_MESSAGE = "contains an unpaired UTF-16 surrogate (such as \\ud800), which is not Unicode text";

/** Why a string cannot be stored as text, or undefined. (isWellFormed is ES2024: Node 20 has it, the ES2022 typings do not.) */
function textProblem(s: string): string | undefined {
  if (s.includes(NUL)) return NUL_MESSAGE;
  if (!(s as string & { isWellFormed(): boolean }).isWellFormed()) return SURROGATE_MESSAGE;
  return undefined;
}

class UnsupportedMediaTypeError extends DomainError {
  constructor(message: string) {
    super(message, 415, "Unsupported media type");
  }
}

const DECODERS: Record<string, () => NodeJS.ReadWriteStream> = { gzip: createGunzip, "x-gzip": createGunzip, deflate: createInflate };

/** A key as a path segment; a NUL or a lone surrogate shows as its JSON escape so that the path stays printable. */
const keySegment = (key: string) => (textProblem(key) ? JSON.stringify(key).slice(1, -1) : key);

/**
 * The first problem in a parsed JSON value: a container nested deeper than `maxDepth`, or a string
 * or key that cannot be stored as text. Iterative, so it cannot overflow itself. `prefix` starts
 * the path (e.g. `querystring`).
 */
export function findProblem(value: unknown, maxDepth: number, prefix = ""): FieldProblem | undefined {
  if (typeof value === "string") {
    const message = textProblem(value);
    return message ? { path: prefix || "body", message } : undefined;
  }
  if (typeof value !== "object" || value === null) return undefined;
  // Depth-first along the current path only: `stack` holds the containers from the root down,
  // `keys` each object's keys and `at` the position within each. No path string is built unless a
  // problem is found, because a dataset body can hold millions of small arrays (one per pixel).
  const stack: object[] = [value];
  const keys: (string[] | undefined)[] = [Array.isArray(value) ? undefined : Object.keys(value)];
  const at: number[] = [-1];
  // The path to the item at `at[top]` of the innermost container.
  const path = () => {
    let out = prefix;
    for (let d = 0; d < stack.length; d++) {
      const names = keys[d];
      out += names === undefined ? `[${at[d]}]` : `${out ? "." : ""}${keySegment(names[at[d]])}`;
    }
    return out;
  };
  while (stack.length) {
    const top = stack.length - 1;
    const node = stack[top];
    const names = keys[top];
    const count = names ? names.length : (node as unknown[]).length;
    let next: object | undefined;
    for (let i = at[top] + 1; i < count; i++) {
      at[top] = i;
      const keyProblem = names && textProblem(names[i]);
      if (keyProblem) return { path: path(), message: `this key ${keyProblem}` };
      const item = names ? (node as Record<string, unknown>)[names[i]] : (node as unknown[])[i];
      if (typeof item === "object" && item !== null) {
        next = item;
        break;
      }
      const message = typeof item === "string" ? textProblem(item) : undefined;
      if (message) return { path: path(), message };
    }
    if (!next) {
      stack.pop();
      keys.pop();
      at.pop();
      continue;
    }
    if (stack.length >= maxDepth) return { path: path(), message: `is nested more than ${maxDepth} levels deep` };
    stack.push(next);
    keys.push(Array.isArray(next) ? undefined : Object.keys(next));
    at.push(-1);
  }
  return undefined;
}

/** The media types a route's body schema declares: per content type, or JSON. Undefined when it takes no body. */
function acceptedTypes(request: FastifyRequest): string[] | undefined {
  const body = (request.routeOptions.schema as { body?: { content?: Record<string, unknown> } } | undefined)?.body;
  if (!body) return undefined;
  return body.content ? Object.keys(body.content) : ["application/json"];
}

// A multipart body is read by its route from the raw request as the parts arrive (its files are
// checked by lib/data/formats/multipart.ts), so it is never decoded here nor parsed before validation.
const MULTIPART = "multipart/form-data";

const hasBody = (request: FastifyRequest) => request.headers["transfer-encoding"] !== undefined || Number(request.headers["content-length"]) > 0;
const mediaTypeOf = (request: FastifyRequest) => request.headers["content-type"]?.split(";")[0].trim().toLowerCase();

/** The body as the route's parser should read it: decompressed, counting what arrives for the Content-Length check. */
function decoded(request: FastifyRequest, payload: Readable): Readable {
  const encoding = request.headers["content-encoding"]?.trim().toLowerCase();
  if (!encoding || encoding === "identity") return payload;
  const decoder = DECODERS[encoding];
  if (!decoder) {
    throw new UnsupportedMediaTypeError(`Content-Encoding '${encoding}' is not accepted; send the body as is, or compressed with gzip or deflate`);
  }
  // Fastify applies the route's body limit to what this stream gives, so the limit holds for the
  // decompressed size: a few KiB cannot inflate into gigabytes.
  const out = new PassThrough() as PassThrough & { receivedEncodedLength: number };
  out.receivedEncodedLength = 0;
  const inflate = decoder();
  payload.on("data", (chunk: Buffer) => (out.receivedEncodedLength += chunk.length));
  payload.on("error", (err) => out.destroy(err));
  inflate.on("error", (err) => out.destroy(ValidationError.at("body", `is not valid ${encoding} data (${err.message})`)));
  // Fastify may answer without reading this stream at all (a Content-Length over the route's
  // limit is a 413 at once); the inflater still fails on the bytes already piped in, and an
  // 'error' with no listener would end the process (fuzz seed 1462111506). When fastify reads the
  // stream, its own listener gets the error as before.
  out.on("error", () => {});
  payload.pipe(inflate).pipe(out);
  return out;
}

export const bodyGuardPlugin = fp(
  async (app) => {
    app.addHook("preParsing", async (request, _reply, payload) => {
      const accepted = acceptedTypes(request);
      if (!accepted) return payload;
      const type = mediaTypeOf(request);
      // No type and no body: the preValidation hook says that the body is missing.
      if (type === undefined && !hasBody(request)) return payload;
      if (!type || !accepted.includes(type)) {
        throw new UnsupportedMediaTypeError(`${type ? `Content-Type '${type}'` : "a body without a Content-Type"} is not accepted here; send ${accepted.join(" or ")}`);
      }
      if (type === MULTIPART) {
        const encoding = request.headers["content-encoding"]?.trim().toLowerCase();
        if (encoding && encoding !== "identity") throw new UnsupportedMediaTypeError(`Content-Encoding '${encoding}' is not accepted for multipart/form-data; send the parts as they are (an .npz may itself be compressed)`);
        return payload;
      }
      return decoded(request, payload);
    });

    app.addHook("preValidation", async (request) => {
      const accepted = acceptedTypes(request);
      if (accepted && request.body === undefined && mediaTypeOf(request) !== MULTIPART) throw ValidationError.at("body", `is required: send ${accepted.join(" or ")}`);
      const { body } = request;
      let problem: FieldProblem | undefined;
      const format = formatFor(mediaTypeOf(request));
      if (typeof body === "string" && format) {
        // Name the place, as the format does (a CSV's row and column). Decoded from UTF-8 bytes, a
        // text body holds no lone surrogate.
        if (body.includes(NUL)) problem = { path: format.locate?.(body, NUL) ?? format.name.toUpperCase(), message: NUL_MESSAGE };
      } else if (Buffer.isBuffer(body) || body instanceof Readable) {
        // Binary formats (zip, npy) hold no text to check here; their parsers check names and
        // labels. A streamed body is read later, and its format's reader checks its text as it goes.
      } else {
        problem = findProblem(body, MAX_BODY_DEPTH);
      }
      problem ??= findProblem(request.query, MAX_BODY_DEPTH, "querystring") ?? findProblem(request.params, MAX_BODY_DEPTH, "params");
      if (problem) throw new ValidationError([problem]);
    });
  },
  { name: "body-guard" },
);
