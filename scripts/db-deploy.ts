// `npm run db:deploy`: create the database if it is missing, then apply pending migrations.
import "dotenv/config";
import { ensureDatabase, migrateDeploy } from "../lib/db/migrate.ts";

const url = process.env.DATABASE_URL ?? "postgresql://postgres@127.0.0.1:5432/trainyard";
if (await ensureDatabase(url)) console.log(`created database ${new URL(url).pathname.slice(1)}`);
const applied = await migrateDeploy(url);
console.log(applied.length ? `applied ${applied.length} migration(s): ${applied.join(", ")}` : "database schema is up to date");
