import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { generateOpenApi } from "../../services/openapi.ts";

test("openapi/openapi.json matches what the code generates (run `npm run openapi` after changing a route)", async () => {
  const committed = readFileSync(new URL("../../openapi/openapi.json", import.meta.url), "utf8");
  const generated = await generateOpenApi();
  assert.equal(committed, generated);
});

test("the OpenAPI document shows the spec language as a union discriminated by type", async () => {
  const doc = JSON.parse(await generateOpenApi());
  const layer = doc.components.schemas.LayerSpec;
  assert.ok(Array.isArray(layer.oneOf) && layer.oneOf.length >= 4, JSON.stringify(layer));
  assert.equal(layer.discriminator.propertyName, "type");
  assert.equal(layer.discriminator.mapping.conv2d, "#/components/schemas/Conv2dLayer");
  assert.equal(Object.keys(layer.discriminator.mapping).length, layer.oneOf.length, "every option is mapped");
  assert.equal(doc.components.schemas.NodeSpec.discriminator.mapping.shared, "#/components/schemas/SharedNode");
  const dense = doc.components.schemas.DenseLayer;
  assert.deepEqual(dense.properties.type, { type: "string", const: "dense" });
  assert.ok(doc.paths["/v1/models/{name}:predict"], "TF Serving style predict path");
  for (const [path, ops] of Object.entries(doc.paths as Record<string, Record<string, { operationId?: string; tags?: string[] }>>)) {
    for (const [method, op] of Object.entries(ops)) {
      assert.ok(op.operationId, `${method} ${path} has an operationId`);
      assert.ok(op.tags?.length, `${method} ${path} has tags`);
    }
  }
});
