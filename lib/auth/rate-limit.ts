// Per-tenant rate limits as token buckets in Redis, shared by every API replica: one Lua script
// refills a bucket by the time elapsed (Redis's own clock, so replicas' clocks do not matter) and
// takes a token, atomically. A bucket holds `burst` tokens and refills at `perSecond`.
//
// If Redis does not answer, the request passes (fail open): the limits share capacity fairly
// between tenants, they are not a security boundary, and predictions and uploads need nothing
// else of Redis, so an outage of Redis must not become an outage of serving. The check then costs
// no more than CHECK_TIMEOUT_MS (a closed connection fails at once: the client has no offline queue).
import type { Redis } from "ioredis";

export const RATE_LIMITS = ["predict", "uploads"] as const;
export type RateLimitName = (typeof RATE_LIMITS)[number];

export interface BucketConfig {
  /** Tokens added per second; 0 disables the limit. */
  perSecond: number;
  /** Most tokens the bucket holds: the burst a tenant may send at once after a quiet spell. */
  burst: number;
}

export type RateLimitDecision =
  | { allowed: true; remaining: number }
  | { allowed: false; retryAfterSeconds: number; remaining: number }
  /** Redis did not answer in time: let the request through. */
  | { allowed: true; failedOpen: true; reason: string };

/** The longest a request waits for the limiter before it passes unchecked. */
export const CHECK_TIMEOUT_MS = 50;

// KEYS[1] bucket; ARGV: perSecond, burst. Returns {allowed, retryAfterMs, tokensLeft (string)}.
// Floats go back as strings: Redis truncates Lua numbers to integers.
const TOKEN_BUCKET = `
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1])
local ts = tonumber(state[2])
if tokens == nil or ts == nil then
  tokens = burst
  ts = now
end
tokens = math.min(burst, tokens + math.max(0, now - ts) * rate / 1000)
local allowed = 0
local retry = 0
if tokens >= 1 then
  tokens = tokens - 1
  allowed = 1
else
  retry = math.ceil((1 - tokens) * 1000 / rate)
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst * 1000 / rate) + 1000)
return {allowed, retry, tostring(tokens)}
`;

type WithBucket = Redis & { trainyardTokenBucket(key: string, perSecond: number, burst: number): Promise<[number, number, string]> };

export class RateLimiter {
  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
    private readonly limits: Record<RateLimitName, BucketConfig>,
  ) {
    // defineCommand sends EVALSHA and falls back to EVAL once per connection.
    if (!(redis as unknown as Partial<WithBucket>).trainyardTokenBucket) redis.defineCommand("trainyardTokenBucket", { numberOfKeys: 1, lua: TOKEN_BUCKET });
  }

  config(limit: RateLimitName): BucketConfig {
    return this.limits[limit];
  }

  enabled(limit: RateLimitName): boolean {
    return this.limits[limit].perSecond > 0;
  }

  key(limit: RateLimitName, tenantId: string): string {
    return `${this.prefix}:ratelimit:${limit}:${tenantId}`;
  }

  /** Takes one token from the tenant's bucket for `limit`. */
  async take(limit: RateLimitName, tenantId: string): Promise<RateLimitDecision> {
    const { perSecond, burst } = this.limits[limit];
    if (perSecond <= 0) return { allowed: true, remaining: Infinity };
    if (this.redis.status !== "ready") return { allowed: true, failedOpen: true, reason: `redis is ${this.redis.status}` };
    let timer: NodeJS.Timeout | undefined;
    try {
      const answer = await Promise.race([
        (this.redis as unknown as WithBucket).trainyardTokenBucket(this.key(limit, tenantId), perSecond, Math.max(1, burst)),
        new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`no answer within ${CHECK_TIMEOUT_MS} ms`)), CHECK_TIMEOUT_MS))),
      ]);
      const [allowed, retryMs, tokens] = answer;
      const remaining = Math.floor(Number(tokens));
      if (allowed === 1) return { allowed: true, remaining };
      return { allowed: false, retryAfterSeconds: Math.max(1, Math.ceil(retryMs / 1000)), remaining };
    } catch (err) {
      return { allowed: true, failedOpen: true, reason: (err as Error).message };
    } finally {
      clearTimeout(timer);
    }
  }
}
