// Refuses JSON bodies nested absurdly deep, before validation. Zod's recursive schemas (nested
// arrays of numbers for images and masks) recurse once per level, so a body nested thousands of
// levels deep would overflow the stack and surface as a 500. No real body needs more than
// MAX_BODY_DEPTH levels: a spec nests about 6, a dataset row of rank 8 about 11.
import fp from "fastify-plugin";
import { ValidationError } from "../../lib/errors.ts";

export const MAX_BODY_DEPTH = 64;

/** The path of the first value nested deeper than `max`, or undefined. Iterative, so it cannot overflow itself. */
export function tooDeep(value: unknown, max: number): string | undefined {
  // Depth-first along the current path only: `path` holds the containers from the root down and
  // `keys` the position within each. No path string is built unless the limit is hit, because a
  // dataset body can hold millions of small arrays (one per pixel).
  const path: object[] = [];
  const keys: (string | number)[] = [];
  const visit = (v: unknown): boolean => typeof v === "object" && v !== null;
  if (!visit(value)) return undefined;
  path.push(value as object);
  keys.push(-1);
  while (path.length) {
    const top = path.length - 1;
    const node = path[top];
    let next: unknown;
    let found = false;
    if (Array.isArray(node)) {
      for (let i = (keys[top] as number) + 1; i < node.length; i++) {
        if (visit(node[i])) {
          keys[top] = i;
          next = node[i];
          found = true;
          break;
        }
      }
    } else {
      // Objects are few (spec nodes, named inputs): list their keys once, on first visit.
      const entries = Object.keys(node);
      for (let i = (keys[top] as number) + 1; i < entries.length; i++) {
        const child = (node as Record<string, unknown>)[entries[i]];
        if (visit(child)) {
          keys[top] = i;
          next = child;
          found = true;
          break;
        }
      }
    }
    if (!found) {
      path.pop();
      keys.pop();
      continue;
    }
    if (path.length >= max) {
      return path.map((n, d) => (Array.isArray(n) ? `[${keys[d]}]` : `.${Object.keys(n)[keys[d] as number]}`)).join("").replace(/^\./, "");
    }
    path.push(next as object);
    keys.push(-1);
  }
  return undefined;
}

export const bodyDepthPlugin = fp(
  async (app) => {
    app.addHook("preValidation", async (request) => {
      const at = tooDeep(request.body, MAX_BODY_DEPTH);
      if (at) throw ValidationError.at(at, `is nested more than ${MAX_BODY_DEPTH} levels deep`);
    });
  },
  { name: "body-depth" },
);
