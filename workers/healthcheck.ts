// Container health check for a worker: healthy while some worker process on this host has
// refreshed its heartbeat in Redis within the last 30 seconds.
import { hostname } from "node:os";
import { Redis } from "ioredis";
import { loadConfigOrExit, workerConfigSchema } from "../lib/config/env.ts";
import { heartbeatKey } from "../lib/queue/training-queue.ts";

const config = loadConfigOrExit(workerConfigSchema);
const redis = new Redis(config.REDIS_URL, { maxRetriesPerRequest: 1, connectTimeout: 3000, lazyConnect: true });
try {
  await redis.connect();
  const keys = await redis.keys(heartbeatKey(config.TRAINYARD_QUEUE_PREFIX, `${hostname()}:*`));
  process.exitCode = keys.length > 0 ? 0 : 1;
} catch {
  process.exitCode = 1;
} finally {
  redis.disconnect();
}
