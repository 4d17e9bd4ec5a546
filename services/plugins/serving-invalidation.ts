// Tells every API replica that a model's aliases or versions changed, over Redis pub/sub on a
// channel under the queue prefix, so that each drops its cached version lookups for that model.
// Best effort: a message lost while Redis is away is covered by the lookups' TTL.
import type { FastifyBaseLogger } from "fastify";
import type { Redis } from "ioredis";
import type { InvalidationBus } from "../../lib/serving/version-resolver.ts";

export function redisInvalidationBus(redis: Redis, prefix: string, log: FastifyBaseLogger): InvalidationBus & { close(): void } {
  const channel = `${prefix}:serving:versions-changed`;
  // A subscribed connection can run nothing else; it queues while connecting and resubscribes after a reconnect.
  const sub = redis.duplicate({ enableOfflineQueue: true, maxRetriesPerRequest: null });
  sub.on("error", (err) => log.warn({ err: err.message }, "redis subscriber problem"));
  return {
    async publish(tenantId, modelName) {
      await redis.publish(channel, JSON.stringify([tenantId, modelName])).catch((err: Error) => log.warn({ err: err.message }, "announcing a registry change to the other replicas failed; they see it within the lookup TTL"));
    },
    subscribe(handler) {
      sub.on("message", (ch, message) => {
        if (ch !== channel) return;
        try {
          const [tenantId, modelName] = JSON.parse(message) as [string, string];
          handler(tenantId, modelName);
        } catch {
          log.warn({ message }, "ignoring a malformed registry change message");
        }
      });
      sub.subscribe(channel).catch((err: Error) => log.warn({ err: err.message }, "subscribing to registry changes failed"));
    },
    close() {
      sub.disconnect();
    },
  };
}
