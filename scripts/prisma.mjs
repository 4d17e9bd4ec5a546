#!/usr/bin/env node
// Runs the Prisma CLI. Every CLI command first downloads Prisma's native schema engine; where that
// download was impossible (offline machine), point PRISMA_SCHEMA_ENGINE_BINARY at a file that
// exists so that generate/validate/format (which never run the engine) still work. Where the
// engine is installed this wrapper changes nothing.
import { spawnSync } from "node:child_process";
import { existsSync, readdirSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";

const require = createRequire(import.meta.url);
const prismaDir = path.dirname(require.resolve("prisma/package.json"));
const enginesDir = path.dirname(createRequire(path.join(prismaDir, "package.json")).resolve("@prisma/engines/package.json"));
const hasEngine = existsSync(enginesDir) && readdirSync(enginesDir).some((f) => f.startsWith("schema-engine-"));
const env = { ...process.env };
if (!env.PRISMA_SCHEMA_ENGINE_BINARY && !hasEngine) {
  env.PRISMA_SCHEMA_ENGINE_BINARY = fileURLToPath(new URL("./no-schema-engine.sh", import.meta.url));
}
const result = spawnSync(process.execPath, [path.join(prismaDir, "build", "index.js"), ...process.argv.slice(2)], { stdio: "inherit", env });
process.exit(result.status ?? 1);
