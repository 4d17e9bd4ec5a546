// The README is the front door: these checks keep its tables true to the code.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { apiConfigSchema, workerConfigSchema } from "../../lib/config/env.ts";
import { ACTIVATIONS, LAYER_TYPES, LOSSES } from "../../lib/model-spec/model-spec-schema.ts";
import { TEMPLATES } from "../../lib/model-spec/templates/index.ts";

const readme = readFileSync(new URL("../../README.md", import.meta.url), "utf8");
const section = (title: string) => {
  const start = readme.indexOf(title);
  assert.ok(start >= 0, `README has '${title}'`);
  const next = readme.indexOf("\n### ", start + title.length);
  const nextTop = readme.indexOf("\n## ", start + title.length);
  const end = Math.min(...[next, nextTop].filter((i) => i > 0), readme.length);
  return readme.slice(start, end);
};

test("every layer type, activation and loss is documented", () => {
  const specs = section("### Model specs");
  for (const type of LAYER_TYPES) assert.ok(specs.includes(`\`${type}\``), `layer ${type}`);
  for (const a of ACTIVATIONS) assert.ok(specs.includes(`\`${a}\``), `activation ${a}`);
  for (const l of LOSSES) assert.ok(specs.includes(`\`${l}\``), `loss ${l}`);
});

test("every template of the zoo is in its table", () => {
  const zoo = section("### The zoo");
  for (const name of Object.keys(TEMPLATES)) assert.ok(zoo.includes(`\`${name}\``), `template ${name}`);
});

test("every configuration variable is in the configuration table", () => {
  const config = section("## Configuration");
  for (const key of new Set([...Object.keys(apiConfigSchema.shape), ...Object.keys(workerConfigSchema.shape)])) {
    assert.ok(config.includes(`\`${key}\``), `config ${key}`);
  }
});

test("every route of the OpenAPI document is in the endpoints table", () => {
  const doc = JSON.parse(readFileSync(new URL("../../openapi/openapi.json", import.meta.url), "utf8"));
  const endpoints = section("### Endpoints");
  for (const path of Object.keys(doc.paths)) {
    assert.ok(endpoints.includes(`${path}\``) || endpoints.includes(`${path},`) || endpoints.includes(`${path}?`) || endpoints.includes(`${path} `), `route ${path}`);
  }
});
