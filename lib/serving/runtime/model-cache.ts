// The loaded models of one inference thread: an LRU bounded by bytes (and, for the old
// TRAINYARD_MODEL_CACHE_SIZE, by count), with single-flight loading. Generic over what it holds so
// that the policy is tested without tfjs; the thread gives it loaders that build and warm a model.

export interface Loaded<T> {
  value: T;
  /** What it holds in memory: weight tensors plus an estimate of the rest. */
  bytes: number;
}

export interface CacheLimits {
  maxBytes: number;
  maxEntries: number;
}

export interface CacheCounters {
  hits: number;
  misses: number;
  loads: number;
  loadFailures: number;
  evictions: number;
  bytes: number;
  entries: number;
}

interface Entry<T> {
  key: string;
  loading?: Promise<Loaded<T>>;
  loaded?: Loaded<T>;
  /** Callers between acquire and release: an entry in use is never disposed under them. */
  pins: number;
}

export class ModelCache<T> {
  // Map order is recency order: the first entry is the least recently used.
  private readonly entries = new Map<string, Entry<T>>();
  private readonly counters = { hits: 0, misses: 0, loads: 0, loadFailures: 0, evictions: 0 };
  private bytes = 0;

  constructor(
    private readonly limits: CacheLimits,
    private readonly load: (key: string) => Promise<Loaded<T>>,
    private readonly dispose: (value: T, key: string) => void,
    /** Told about every key evicted, so the pool can forget where it lived. */
    private readonly onEvict: (key: string) => void = () => {},
  ) {}

  /**
   * The value for a key, loaded once however many callers ask at the same time, and pinned until
   * the returned release is called.
   */
  async acquire(key: string): Promise<{ value: T; release: () => void }> {
    let entry = this.entries.get(key);
    if (entry) {
      this.entries.delete(key);
      this.entries.set(key, entry);
      if (entry.loaded) this.counters.hits++;
      else this.counters.misses++;
    } else {
      this.counters.misses++;
      entry = { key, pins: 0 };
      this.entries.set(key, entry);
      entry.loading = this.startLoad(entry);
    }
    entry.pins++;
    let loaded: Loaded<T>;
    try {
      loaded = entry.loaded ?? (await entry.loading!);
    } catch (err) {
      entry.pins--;
      throw err;
    }
    let released = false;
    const e = entry;
    return {
      value: loaded.value,
      release: () => {
        if (released) return;
        released = true;
        e.pins--;
        this.evictOverBudget();
      },
    };
  }

  private async startLoad(entry: Entry<T>): Promise<Loaded<T>> {
    try {
      const loaded = await this.load(entry.key);
      this.counters.loads++;
      entry.loaded = loaded;
      entry.loading = undefined;
      this.bytes += loaded.bytes;
      this.evictOverBudget();
      return loaded;
    } catch (err) {
      this.counters.loadFailures++;
      // A failed load is not cached: the next request tries again.
      if (this.entries.get(entry.key) === entry) this.entries.delete(entry.key);
      throw err;
    }
  }

  /**
   * Evicts least recently used, loaded, unpinned entries until the cache fits. A single model
   * larger than the whole budget still loads and serves; it is the first to go when another comes.
   */
  private evictOverBudget(): void {
    const over = () => this.bytes > this.limits.maxBytes || this.loadedCount() > this.limits.maxEntries;
    if (!over()) return;
    for (const entry of [...this.entries.values()]) {
      if (!over()) break;
      if (!entry.loaded || entry.pins > 0) continue;
      // Keep the newest entry if it is the only one loaded: evicting what was just loaded for a
      // waiting request would only load it again.
      if (this.loadedCount() === 1) break;
      this.remove(entry);
    }
  }

  private loadedCount(): number {
    let n = 0;
    for (const e of this.entries.values()) if (e.loaded) n++;
    return n;
  }

  private remove(entry: Entry<T>): void {
    this.entries.delete(entry.key);
    this.bytes -= entry.loaded!.bytes;
    this.counters.evictions++;
    this.dispose(entry.loaded!.value, entry.key);
    this.onEvict(entry.key);
  }

  has(key: string): boolean {
    return this.entries.get(key)?.loaded !== undefined;
  }

  stats(): CacheCounters {
    return { ...this.counters, bytes: this.bytes, entries: this.loadedCount() };
  }

  /** Disposes every loaded value (at shutdown); loads still running are disposed when they finish. */
  clear(): void {
    for (const entry of [...this.entries.values()]) {
      if (entry.loaded) {
        this.entries.delete(entry.key);
        this.bytes -= entry.loaded.bytes;
        this.dispose(entry.loaded.value, entry.key);
      } else {
        entry.loading?.then((l) => this.dispose(l.value, entry.key), () => {});
        this.entries.delete(entry.key);
      }
    }
  }
}
