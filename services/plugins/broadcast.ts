// One message to every API replica, over Redis pub/sub on a channel under the queue prefix: a
// registry change (each replica drops its cached version lookups for that model) or a revoked API
// key (each forgets it). Best effort: a message lost while Redis is away is covered by the TTL of
// what it invalidates.
import type { FastifyBaseLogger } from "fastify";
import type { Redis } from "ioredis";

export interface Broadcast {
  publish(...parts: string[]): Promise<void>;
  subscribe(handler: (...parts: string[]) => void): void;
  close(): void;
}

/** `what` names the messages in the log, e.g. "registry changes". */
export function redisBroadcast(redis: Redis, channel: string, log: FastifyBaseLogger, what: string): Broadcast {
  // A subscribed connection can run nothing else; it queues while connecting and resubscribes after a reconnect.
  const sub = redis.duplicate({ enableOfflineQueue: true, maxRetriesPerRequest: null });
  sub.on("error", (err) => log.warn({ err: err.message }, "redis subscriber problem"));
  return {
    async publish(...parts) {
      await redis.publish(channel, JSON.stringify(parts)).catch((err: Error) => log.warn({ err: err.message }, `announcing ${what} to the other replicas failed; they see it when their cached copy expires`));
    },
    subscribe(handler) {
      sub.on("message", (ch, message) => {
        if (ch !== channel) return;
        try {
          const parts = JSON.parse(message) as unknown;
          if (!Array.isArray(parts) || !parts.every((p) => typeof p === "string")) throw new Error("not a list of strings");
          handler(...parts);
        } catch {
          log.warn({ message }, `ignoring a malformed message about ${what}`);
        }
      });
      sub.subscribe(channel).catch((err: Error) => log.warn({ err: err.message }, `subscribing to ${what} failed`));
    },
    close() {
      sub.disconnect();
    },
  };
}
