import "dotenv/config";
import { defineConfig } from "prisma/config";

export default defineConfig({
  schema: "prisma/schema.prisma",
  migrations: { path: "prisma/migrations" },
  // process.env, not env(): env() throws when DATABASE_URL is unset, and `prisma generate` must
  // work in a clean checkout with no database configured.
  datasource: { url: process.env.DATABASE_URL ?? "" },
});
