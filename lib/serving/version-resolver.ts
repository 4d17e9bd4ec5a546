// The version lookup cache: which version (id, number, signature) a (tenant, model, target)
// means, so that the prediction hot path makes no database round trip.
//
// Invalidation: a change made through this replica (alias moved or deleted, default alias
// changed, version deleted) calls `invalidate` before its response is sent, so the next request
// on this replica sees it; the change is also published to the other replicas (the bus, Redis
// pub/sub in services/), which invalidate on receipt. Versions registered by training workers are
// not announced (the worker does not publish), and a published message can be lost while Redis is
// away: every entry also expires `ttlMs` after its lookup started, which bounds how stale a
// replica can be.
//
// A lookup that started before an invalidation never stores its answer: invalidating drops the
// model's bucket, and a lookup writes only into the bucket it started with.
import type { ResolvedVersion, VersionTarget } from "../registry/model-version-repository.ts";

export type Lookup = (tenantId: string, modelName: string, target: VersionTarget) => Promise<ResolvedVersion>;

interface Entry {
  value: Promise<ResolvedVersion>;
  expiresAt: number;
}

const targetKey = (t: VersionTarget) => (t.kind === "default" ? "d" : t.kind === "version" ? `v${t.version}` : `a${t.alias}`);

export class VersionResolver {
  /** Per model (tenant \0 name): its targets' entries. Map order is insertion order, oldest first. */
  private readonly buckets = new Map<string, Map<string, Entry>>();

  constructor(
    private readonly lookup: Lookup,
    private readonly ttlMs: number,
    private readonly maxModels = 10_000,
    private readonly now: () => number = Date.now,
  ) {}

  resolve(tenantId: string, modelName: string, target: VersionTarget): Promise<ResolvedVersion> {
    const key = `${tenantId}\0${modelName}`;
    let bucket = this.buckets.get(key);
    const tk = targetKey(target);
    const hit = bucket?.get(tk);
    const t = this.now();
    if (hit && hit.expiresAt > t) return hit.value;
    if (!bucket) {
      bucket = new Map();
      this.buckets.set(key, bucket);
      if (this.buckets.size > this.maxModels) this.buckets.delete(this.buckets.keys().next().value!);
    }
    const value = this.lookup(tenantId, modelName, target);
    const entry = { value, expiresAt: t + this.ttlMs };
    bucket.set(tk, entry);
    // Failures (unknown model, no version yet, database down) are not cached.
    const owner = bucket;
    value.catch(() => {
      if (owner.get(tk) === entry) owner.delete(tk);
    });
    return value;
  }

  /** Forgets everything cached about a model; lookups in flight will not store their answers. */
  invalidate(tenantId: string, modelName: string): void {
    this.buckets.delete(`${tenantId}\0${modelName}`);
  }

  clear(): void {
    this.buckets.clear();
  }
}
