// The OpenAPI document, generated from the routes' zod schemas.
import { randomBytes } from "node:crypto";
import { apiConfigSchema, parseConfig } from "../lib/config/env.ts";
import { buildApp } from "./app.ts";

export async function generateOpenApi(): Promise<string> {
  // The document does not depend on configuration; a throwaway key satisfies the schema.
  const config = parseConfig(apiConfigSchema, { ...process.env, TRAINYARD_ADMIN_KEY: randomBytes(32).toString("hex"), LOG_LEVEL: "silent" });
  const app = await buildApp(config);
  try {
    await app.ready();
    return `${JSON.stringify(app.swagger(), null, 2)}\n`;
  } finally {
    await app.close();
  }
}
