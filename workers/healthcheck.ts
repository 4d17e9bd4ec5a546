// Container health check for a worker: healthy while some worker process on this host has
// refreshed its heartbeat in Redis within the last 30 seconds.
import { hostname } from "node:os";
import { Redis } from "ioredis";
import { loadConfigOrExit, workerConfigSchema } from "../lib/config/env.ts";
import { heartbeatKey } from "../lib/queue/queues.ts";

const config = loadConfigOrExit(workerConfigSchema);
const redis = new Redis(config.REDIS_URL, { maxRetriesPerRequest: 1, connectTimeout: 3000, lazyConnect: true });
try {
  await redis.connect();
  // One key per host (see training-worker.ts): EXISTS, never a scan of the keyspace.
  process.exitCode = (await redis.exists(heartbeatKey(config.TRAINYARD_QUEUE_PREFIX, hostname()))) === 1 ? 0 : 1;
} catch {
  process.exitCode = 1;
} finally {
  redis.disconnect();
}
