// Prisma 7 talks to Postgres through the pg driver adapter: no native query engine to download.
// The adapter runs on a pg pool made here, which the dataset store also uses for the one thing
// Prisma does badly: bytea values of megabytes (shards of dataset rows). Measured with 8 MiB
// values, Prisma's raw and typed queries kept about 22 MB of heap per value written (450 MB after
// twenty) and took 1.6 times as long; the pg driver sends a Buffer as it is and keeps nothing.
import { PrismaPg } from "@prisma/adapter-pg";
import pg from "pg";
import { PrismaClient } from "./generated/client.ts";

export type Db = PrismaClient;
export { Prisma } from "./generated/client.ts";

const pools = new WeakMap<PrismaClient, pg.Pool>();

export function createPrisma(databaseUrl: string): PrismaClient {
  const pool = new pg.Pool({ connectionString: databaseUrl });
  // Disconnecting the client ends the pool.
  const db = new PrismaClient({ adapter: new PrismaPg(pool, { disposeExternalPool: true }) });
  pools.set(db, pool);
  return db;
}

/** The pg pool a client made by createPrisma runs on: for bulk bytes only; everything else goes through Prisma. */
export function poolOf(db: PrismaClient): pg.Pool {
  const pool = pools.get(db);
  if (!pool) throw new Error("poolOf: this Prisma client was not made by createPrisma");
  return pool;
}
