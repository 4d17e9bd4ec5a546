#!/usr/bin/env node
// `npm test`: unit, integration and end-to-end tests with node's test runner, against the real
// Postgres and Redis. Prepares the migrated template database once, then runs the files.
import { spawnSync } from "node:child_process";
import { readdirSync, statSync } from "node:fs";
import path from "node:path";

const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), "..");
const args = process.argv.slice(2);
const dirs = args.length ? args : ["test/unit", "test/integration", "test/e2e"];
const files = [];
const walk = (p) => {
  if (statSync(p).isDirectory()) for (const f of readdirSync(p).sort()) walk(path.join(p, f));
  else if (p.endsWith(".test.ts")) files.push(p);
};
for (const d of dirs) walk(path.resolve(root, d));
if (!files.length) {
  console.error(`no test files under ${dirs.join(", ")}`);
  process.exit(1);
}

const gen = spawnSync(process.execPath, [path.join(root, "scripts/prisma.mjs"), "generate"], { cwd: root, stdio: ["ignore", "ignore", "inherit"] });
if (gen.status !== 0) process.exit(gen.status ?? 1);
const prep = spawnSync(process.execPath, ["--import", "tsx", path.join(root, "scripts/prepare-test-db.ts")], { cwd: root, stdio: "inherit" });
if (prep.status !== 0) process.exit(prep.status ?? 1);

// Two test files at a time: the machine has two cores and training tests are CPU-bound.
const run = spawnSync(process.execPath, ["--import", "tsx", "--test", "--test-concurrency=2", "--test-reporter=spec", ...files], {
  cwd: root,
  stdio: "inherit",
  env: { ...process.env, TRAINYARD_TEST_TEMPLATE_READY: "1" },
});
process.exit(run.status ?? 1);
