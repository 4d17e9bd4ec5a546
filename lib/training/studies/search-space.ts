// A study's search space: paths into a model spec or a job's hyperparameters, and the trials drawn
// from it (a grid's product, or seeded random samples). Pure: no database, no tfjs.
import { ValidationError } from "../../errors.ts";
import { seededRandom } from "../../random/seeded-random.ts";

/** One step of a path: an object key or an array index. */
export type PathPart = string | number;

/** A parsed path: which document (`spec` or `job`) and the steps into it. */
export interface FieldPath {
  root: "spec" | "job";
  parts: PathPart[];
}

export type Dimension =
  | { values: unknown[] }
  | { min: number; max: number; scale?: "linear" | "log"; integer?: boolean };

const STEP = /^(?:\.([A-Za-z_][A-Za-z0-9_-]*)|\[(\d+)\])/;

/** `spec.layers[1].units` → {root: "spec", parts: ["layers", 1, "units"]}; null when it is not such a path. */
export function parsePath(path: string): FieldPath | null {
  const root = path.startsWith("spec") ? "spec" : path.startsWith("job") ? "job" : null;
  if (!root) return null;
  let rest = path.slice(root.length);
  const parts: PathPart[] = [];
  while (rest.length) {
    const m = STEP.exec(rest);
    if (!m) return null;
    parts.push(m[1] ?? Number(m[2]));
    rest = rest.slice(m[0].length);
  }
  return parts.length ? { root, parts } : null;
}

export function formatParts(parts: PathPart[]): string {
  return parts.map((p) => (typeof p === "number" ? `[${p}]` : `.${p}`)).join("");
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);

/** The value at `parts`, or undefined when any step is missing. */
export function getAt(doc: unknown, parts: PathPart[]): unknown {
  let at = doc;
  for (const p of parts) {
    if (typeof p === "number" ? !Array.isArray(at) || p >= at.length : !isObject(at) || !Object.hasOwn(at, p)) return undefined;
    at = (at as Record<string | number, unknown>)[p];
  }
  return at;
}

/**
 * Why `parts` cannot be set in `doc`, or null when it can: every step but the last must exist, an
 * array index must be inside the array, and the last key may be new only on an object (a field the
 * document left to its default; the document's schema then says whether it is a field at all).
 */
export function pathProblem(doc: unknown, parts: PathPart[]): string | null {
  let at = doc;
  for (let i = 0; i < parts.length; i++) {
    const p = parts[i];
    const last = i === parts.length - 1;
    if (typeof p === "number") {
      if (!Array.isArray(at)) return `${formatParts(parts.slice(0, i)) || "the document"} is not a list`;
      if (p >= at.length) return `index ${p} is out of range (${formatParts(parts.slice(0, i)).slice(1)} has ${at.length})`;
    } else {
      if (!isObject(at)) return `${formatParts(parts.slice(0, i)).slice(1) || "the document"} is not an object`;
      if (!last && !Object.hasOwn(at, p)) return `there is no '${p}' at ${formatParts(parts.slice(0, i)).slice(1) || "the top"}`;
    }
    at = (at as Record<string | number, unknown>)[p];
  }
  return null;
}

/** A copy of `doc` with `value` at `parts` (the path must be settable: see pathProblem). */
export function setAt<T>(doc: T, parts: PathPart[], value: unknown): T {
  const copy = structuredClone(doc);
  let at = copy as Record<string | number, unknown>;
  for (const p of parts.slice(0, -1)) at = at[p] as Record<string | number, unknown>;
  at[parts[parts.length - 1]] = structuredClone(value);
  return copy;
}

/** The number of points of a grid (every dimension must list values). */
export function gridSize(space: Record<string, Dimension>): number {
  return Object.values(space).reduce((n, d) => n * ("values" in d ? d.values.length : Infinity), 1);
}

/**
 * The trials of a study, each a value per path. grid: the product of the dimensions' values, the
 * last path varying fastest; with `trials` below the grid's size, that many of its points, chosen
 * with the seed and kept in grid order. random: `trials` samples, each dimension drawn on its own
 * (values uniformly; ranges uniformly, or log-uniformly with scale "log", rounded when integer).
 */
export function expandSpace(space: Record<string, Dimension>, strategy: "grid" | "random", trials: number, seed: number): Record<string, unknown>[] {
  const paths = Object.keys(space);
  const random = seededRandom(seed);
  if (strategy === "grid") {
    for (const p of paths) if (!("values" in space[p])) throw ValidationError.at(`space.${p}`, "a grid needs a list of values for every path; use strategy 'random' for ranges");
    const size = gridSize(space);
    let points: Record<string, unknown>[] = [{}];
    for (const p of paths) points = points.flatMap((point) => (space[p] as { values: unknown[] }).values.map((v) => ({ ...point, [p]: v })));
    if (trials >= size) return points;
    // A seeded partial shuffle picks which points, then grid order is restored.
    const order = points.map((_, i) => i);
    for (let i = 0; i < trials; i++) {
      const j = i + random.int(size - i);
      [order[i], order[j]] = [order[j], order[i]];
    }
    return order.slice(0, trials).sort((a, b) => a - b).map((i) => points[i]);
  }
  return Array.from({ length: trials }, () => Object.fromEntries(paths.map((p) => [p, sample(space[p], random)])));
}

function sample(d: Dimension, random: ReturnType<typeof seededRandom>): unknown {
  if ("values" in d) return d.values[random.int(d.values.length)];
  if (d.integer) {
    // Every integer in [min, max] is equally likely (log: by its share of the log range).
    const lo = Math.ceil(d.min);
    const hi = Math.floor(d.max);
    if (d.scale === "log") return Math.min(hi, Math.max(lo, Math.floor(Math.exp(random.between(Math.log(lo), Math.log(hi + 1))))));
    return lo + random.int(hi - lo + 1);
  }
  if (d.scale === "log") return Math.exp(random.between(Math.log(d.min), Math.log(d.max)));
  return random.between(d.min, d.max);
}
