// API entrypoint: parse config, build the app, listen, and shut down in order on SIGINT/SIGTERM.
import "dotenv/config";
import { apiConfigSchema, loadConfigOrExit } from "../lib/config/env.ts";
import { currentBackend } from "../lib/engine/backend.ts";
import { buildApp } from "./app.ts";

const config = loadConfigOrExit(apiConfigSchema);
const app = await buildApp(config);
await app.listen({ host: config.HOST, port: config.PORT });
const shown = config.HOST === "0.0.0.0" ? "localhost" : config.HOST;
app.log.info(`Trainyard API on http://${shown}:${config.PORT} (docs: http://${shown}:${config.PORT}/docs), compute backend: ${currentBackend()?.name}`);

let closing = false;
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.on(signal, async () => {
    if (closing) return;
    closing = true;
    app.log.info(`${signal}: closing`);
    // close() stops accepting connections, lets in-flight requests finish, then runs onClose hooks (queue, Redis, Prisma).
    await app.close();
    process.exit(0);
  });
}
