// The import rules of docs/architecture.md, enforced: each folder of lib/ may import only the
// folders below it, the spec language knows nothing of tfjs, the engine nothing of the database,
// route files no Prisma, and nothing in lib/ imports the processes built on it.
import assert from "node:assert/strict";
import { readdirSync, readFileSync, statSync } from "node:fs";
import path from "node:path";
import { describe, it } from "node:test";

const root = path.resolve(import.meta.dirname, "../..");

/** What each area may import of the project (besides itself), and which packages it must not. */
const RULES: Record<string, { may: string[]; mayNot?: string[]; packagesDenied: RegExp[] }> = {
  "lib/errors.ts": { may: [], packagesDenied: [/./] },
  "lib/random": { may: [], packagesDenied: [/./] },
  "lib/config": { may: [], packagesDenied: [/^@tensorflow\//, /^@prisma\//, /^bullmq$/, /^ioredis$/, /^fastify/] },
  "lib/db": { may: [], packagesDenied: [/^@tensorflow\//, /^bullmq$/, /^ioredis$/, /^fastify/] },
  "lib/model-spec": { may: ["lib/errors.ts"], packagesDenied: [/^@tensorflow\//, /^@prisma\//, /^bullmq$/, /^ioredis$/, /^fastify/, /^pg$/] },
  "lib/engine": { may: ["lib/errors.ts", "lib/random", "lib/model-spec"], packagesDenied: [/^@prisma\//, /^bullmq$/, /^ioredis$/, /^fastify/, /^pg$/] },
  "lib/queue": { may: [], packagesDenied: [/^@tensorflow\//, /^@prisma\//, /^fastify/] },
  "lib/auth": { may: ["lib/errors.ts", "lib/db"], packagesDenied: [/^@tensorflow\//, /^bullmq$/, /^fastify/] },
  "lib/data": { may: ["lib/errors.ts", "lib/random", "lib/model-spec", "lib/db"], packagesDenied: [/^@tensorflow\//, /^bullmq$/, /^ioredis$/, /^fastify/] },
  "lib/registry": { may: ["lib/errors.ts", "lib/random", "lib/model-spec", "lib/engine", "lib/data", "lib/db"], packagesDenied: [/^bullmq$/, /^ioredis$/, /^fastify/] },
  "lib/observability": { may: ["lib/db"], packagesDenied: [/^@tensorflow\//, /^fastify/] },
  "lib/serving": { may: ["lib/errors.ts", "lib/model-spec", "lib/engine", "lib/data", "lib/registry", "lib/db"], packagesDenied: [/^bullmq$/, /^ioredis$/, /^fastify/] },
  "lib/insight": { may: ["lib/errors.ts", "lib/random", "lib/model-spec", "lib/engine", "lib/data", "lib/registry", "lib/serving", "lib/training", "lib/db"], packagesDenied: [/^bullmq$/, /^ioredis$/, /^fastify/] },
  "lib/training": {
    may: ["lib/errors.ts", "lib/random", "lib/model-spec", "lib/engine", "lib/data", "lib/registry", "lib/queue", "lib/db"],
    packagesDenied: [/^fastify/],
  },
  "services/routes": { may: ["lib", "services/plugins", "services/version.ts"], mayNot: ["lib/db"], packagesDenied: [/^@prisma\//, /^pg$/, /^bullmq$/, /^ioredis$/, /^@tensorflow\//] },
  services: { may: ["lib", "services"], packagesDenied: [] },
  workers: { may: ["lib", "workers"], packagesDenied: [/^fastify/] },
};

function files(dir: string): string[] {
  const out: string[] = [];
  const walk = (p: string) => {
    if (p.includes(`${path.sep}generated`)) return;
    if (statSync(p).isDirectory()) for (const f of readdirSync(p)) walk(path.join(p, f));
    else if (p.endsWith(".ts")) out.push(p);
  };
  walk(path.join(root, dir));
  return out;
}

/** Every module a file imports (static, side-effect and dynamic with a literal). */
export function importsOf(source: string): string[] {
  const found: string[] = [];
  const re = /(?:^|[\s;])(?:import|export)\s+(?:type\s+)?(?:[\w*{}\s,$]+?\s+from\s+)?["']([^"']+)["']|import\(\s*["']([^"']+)["']\s*\)/gm;
  for (let m; (m = re.exec(source)); ) found.push(m[1] ?? m[2]);
  return found;
}

/** The most specific rule for a repo-relative file. */
function ruleFor(rel: string): [string, (typeof RULES)[string]] | undefined {
  const key = Object.keys(RULES)
    .filter((k) => rel === k || rel.startsWith(`${k}/`))
    .sort((a, b) => b.length - a.length)[0];
  return key ? [key, RULES[key]] : undefined;
}

/** The problems with one file's imports, as `file: imports target (why)`. */
function violations(rel: string, source: string): string[] {
  const rule = ruleFor(rel);
  if (!rule) return [];
  const [area, { may, mayNot = [], packagesDenied }] = rule;
  const under = (target: string, dir: string) => target === dir || target.startsWith(`${dir}/`);
  const problems: string[] = [];
  for (const spec of importsOf(source)) {
    if (spec.startsWith(".")) {
      const target = path.relative(root, path.resolve(path.dirname(path.join(root, rel)), spec));
      const allowed = (under(target, area) || may.some((m) => under(target, m))) && !mayNot.some((m) => under(target, m));
      if (!allowed) problems.push(`${rel}: imports ${target} (${area} may import ${may.join(", ") || "nothing else of the project"})`);
    } else if (!spec.startsWith("node:") && packagesDenied.some((d) => d.test(spec))) {
      problems.push(`${rel}: imports the package ${spec}, which ${area} must not`);
    }
  }
  return problems;
}

describe("architecture: import rules", () => {
  it("every file in lib/, services/ and workers/ imports only what its layer may", () => {
    const all = ["lib", "services", "workers"].flatMap(files);
    assert.ok(all.length > 50, `found only ${all.length} files`);
    const problems = all.flatMap((f) => {
      const rel = path.relative(root, f);
      return violations(rel, readFileSync(f, "utf8"));
    });
    assert.deepEqual(problems, []);
  });

  it("the check catches what it should: tfjs in the spec language, Prisma in the engine or a route, lib importing a process", () => {
    assert.deepEqual(importsOf(`import * as tf from "@tensorflow/tfjs";\nimport type { Db } from "../db/prisma.ts";\nimport "./layers/index.ts";\nconst m = await import("./x.ts");`), [
      "@tensorflow/tfjs",
      "../db/prisma.ts",
      "./layers/index.ts",
      "./x.ts",
    ]);
    assert.equal(violations("lib/model-spec/graph-plan.ts", `import * as tf from "@tensorflow/tfjs";`).length, 1);
    assert.equal(violations("lib/engine/train/trainer.ts", `import type { Db } from "../../db/prisma.ts";`).length, 1);
    assert.equal(violations("lib/engine/build/build-model.ts", `import { x } from "../../data/packing.ts";`).length, 1);
    assert.equal(violations("services/routes/v1/models.ts", `import { Prisma } from "../../../lib/db/prisma.ts";`).length, 1);
    assert.equal(violations("lib/training/job-runner.ts", `import { x } from "../../workers/training-worker.ts";`).length, 1);
    assert.equal(violations("lib/data/packing.ts", `import { train } from "../engine/train/trainer.ts";`).length, 1);
    // and lets through what it should
    assert.deepEqual(violations("lib/engine/build/build-model.ts", `import { planOf } from "../../model-spec/graph-plan.ts";\nimport * as tf from "@tensorflow/tfjs";`), []);
  });
});
