// Redis and Postgres servers of a test's own, on spare ports, that the test may kill and restart
// without touching the machine's shared ones (see shared/notes/FAULT-TESTS.md). Each is stopped
// when the test process exits, even if the runner skips `after` hooks.
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { chmodSync, existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import pg from "pg";
import { Redis } from "ioredis";
import { ensureDatabase, migrateDeploy } from "../../lib/db/migrate.ts";
import { freePort } from "./processes.ts";

const cleanups = new Set<() => void>();
process.on("exit", () => {
  for (const c of cleanups) {
    try {
      c();
    } catch {
      /* best effort at exit */
    }
  }
});

export interface OwnRedis {
  port: number;
  url: string;
  /** SIGKILL: the server dies with everything it held (it keeps nothing on disk). */
  kill(): Promise<void>;
  /** Starts it again on the same port, empty. */
  start(): Promise<void>;
  stop(): Promise<void>;
}

export async function startRedis(): Promise<OwnRedis> {
  const port = await freePort();
  let child: ChildProcess | undefined;
  const start = async () => {
    child = spawn("redis-server", ["--port", String(port), "--save", "", "--appendonly", "no", "--bind", "127.0.0.1", "--maxmemory-policy", "noeviction"], {
      detached: true,
      stdio: "ignore",
    });
    const pid = child.pid!;
    cleanups.add(killGroup(pid));
    for (let i = 0; i < 100; i++) {
      const probe = new Redis({ port, host: "127.0.0.1", lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
      probe.on("error", () => {});
      const ok = await probe.connect().then(() => probe.ping().then(() => true), () => false);
      probe.disconnect();
      if (ok) return;
      await sleep(50);
    }
    throw new Error(`redis-server on ${port} did not start`);
  };
  const kill = async () => {
    const c = child;
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    const exited = new Promise((r) => c.once("exit", r));
    killGroup(c.pid!)();
    await exited;
  };
  await start();
  return { port, url: `redis://127.0.0.1:${port}`, kill, start, stop: kill };
}

export interface OwnPostgres {
  port: number;
  /** A database of this server, migrated to the latest schema. */
  url: string;
  /** Immediate shutdown: connections are cut, nothing is waited for. */
  kill(): Promise<void>;
  start(): Promise<void>;
  stop(): Promise<void>;
}

const asPostgres = (cmd: string) => execFileSync("su", ["postgres", "-s", "/bin/sh", "-c", cmd], { stdio: "pipe" });

export async function startPostgres(): Promise<OwnPostgres> {
  const bin = path.join("/usr/lib/postgresql", readdirSync("/usr/lib/postgresql").sort().at(-1)!, "bin");
  const port = await freePort();
  const dir = mkdtempSync(path.join(tmpdir(), "trainyard-pg-"));
  chmodSync(dir, 0o777);
  const data = path.join(dir, "data");
  asPostgres(`${bin}/initdb -D ${data} -U postgres --auth=trust >/dev/null`);
  const ctl = (args: string) => asPostgres(`${bin}/pg_ctl -D ${data} ${args}`);
  const start = async () => {
    ctl(`-o "-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off" -l ${dir}/log -w start >/dev/null`);
  };
  const kill = async () => {
    if (existsSync(path.join(data, "postmaster.pid"))) ctl("-m immediate -w stop >/dev/null");
  };
  cleanups.add(() => {
    try {
      if (existsSync(path.join(data, "postmaster.pid"))) ctl("-m immediate -w stop >/dev/null");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
  await start();
  const url = `postgresql://postgres@127.0.0.1:${port}/trainyard`;
  await ensureDatabase(url);
  await migrateDeploy(url);
  return {
    port, url, kill, start,
    async stop() {
      await kill();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Waits until a Postgres URL answers (after a restart). */
export async function waitForPostgres(url: string, timeoutMs = 30_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const c = new pg.Client({ connectionString: url });
    try {
      await c.connect();
      await c.query("SELECT 1");
      return;
    } catch (err) {
      if (Date.now() > until) throw err;
      await sleep(100);
    } finally {
      await c.end().catch(() => {});
    }
  }
}

function killGroup(pid: number): () => void {
  return () => {
    try {
      process.kill(-pid, "SIGKILL");
    } catch {
      /* already gone */
    }
  };
}
