// The hand-written WebAssembly kernels (lib/**/*.wat) reach the code as generated TypeScript
// modules (scripts/build-wasm.mjs): assembled again here, they must be byte for byte what is
// committed, so that a change to a .wat cannot ship without its build.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
// @ts-expect-error: a plain .mjs script, without types
import { assembleAll } from "../../scripts/build-wasm.mjs";

test("every generated wasm module is its .wat assembled (npm run build:wasm)", async () => {
  const built = (await assembleAll()) as { file: string; ts: string }[];
  assert.ok(built.length >= 1, "no .wat found under lib/");
  for (const { file, ts } of built) assert.equal(readFileSync(file, "utf8"), ts, `${file} is stale: npm run build:wasm`);
});
