// Static checks of the Docker deployment: no Docker engine runs where the tests run, so this is
// what stands between a typo in docker-compose.yml or a Dockerfile and a user's failed `up`.
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { parse } from "yaml";
import { apiConfigSchema, parseConfig, workerConfigSchema } from "../../lib/config/env.ts";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const COMPOSE_PATH = path.join(ROOT, "docker-compose.yml");
const RAW = readFileSync(COMPOSE_PATH, "utf8");
// Compose resolves YAML merge keys (`<<: *anchor`), so the test must too.
const compose = parse(RAW, { merge: true }) as ComposeFile;

/** What the user's .env would hold. */
const TEST_ENV: Record<string, string> = {
  TRAINYARD_ADMIN_KEY: "test-admin-key-0123456789abcdef0123456789",
  POSTGRES_PASSWORD: "testpassword123",
};

const APP_SERVICES = ["api", "worker", "worker-gpu"] as const;
const LONG_RUNNING = ["postgres", "redis", ...APP_SERVICES] as const;
const SECRET_NAME = /(KEY|PASSWORD|SECRET|TOKEN)/i;

type Healthcheck = { test?: string | string[]; disable?: boolean };
type Service = {
  image?: string;
  build?: string | { context?: string; dockerfile?: string };
  command?: string | string[];
  environment?: Record<string, string | number | boolean | null> | string[];
  depends_on?: string[] | Record<string, { condition?: string }>;
  healthcheck?: Healthcheck;
  profiles?: string[];
  volumes?: (string | { source?: string })[];
  restart?: string;
  deploy?: { resources?: { reservations?: { devices?: { driver?: string; count?: string | number; capabilities?: string[] }[] } } };
};
type ComposeFile = { services: Record<string, Service>; volumes?: Record<string, unknown> };

class InterpolationError extends Error {}

/**
 * Substitutes `$VAR`, `${VAR}`, `${VAR:-default}`, `${VAR-default}`, `${VAR:?error}`, `${VAR?error}`,
 * `${VAR:+alt}`, `${VAR+alt}` and `$$` the way docker compose does (nested in defaults too).
 * An unset variable with no default becomes "" (compose warns and does the same).
 */
export function interpolate(text: string, env: Record<string, string | undefined>): string {
  let out = "";
  let i = 0;
  while (i < text.length) {
    const c = text[i];
    if (c !== "$") {
      out += c;
      i++;
      continue;
    }
    const next = text[i + 1];
    if (next === "$") {
      out += "$";
      i += 2;
      continue;
    }
    if (next !== "{") {
      const m = /^[A-Za-z_][A-Za-z0-9_]*/.exec(text.slice(i + 1));
      if (!m) {
        out += "$";
        i++;
        continue;
      }
      out += env[m[0]] ?? "";
      i += 1 + m[0].length;
      continue;
    }
    // Find the matching brace, so that `${A:-${B}}` nests.
    let depth = 1;
    let j = i + 2;
    for (; j < text.length && depth > 0; j++) {
      if (text[j] === "{") depth++;
      else if (text[j] === "}") depth--;
    }
    if (depth !== 0) throw new InterpolationError(`unterminated \${ in ${JSON.stringify(text)}`);
    const body = text.slice(i + 2, j - 1);
    const m = /^([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?+])([\s\S]*))?$/.exec(body);
    if (!m) throw new InterpolationError(`invalid interpolation \${${body}}`);
    const [, name, op, arg = ""] = m;
    const value = env[name];
    const unset = value === undefined;
    const missing = op?.startsWith(":") ? unset || value === "" : unset;
    switch (op) {
      case undefined:
        out += value ?? "";
        break;
      case ":-":
      case "-":
        out += missing ? interpolate(arg, env) : value;
        break;
      case ":?":
      case "?":
        if (missing) throw new InterpolationError(`${name}: ${interpolate(arg, env) || "required"}`);
        out += value;
        break;
      case ":+":
      case "+":
        out += missing ? "" : interpolate(arg, env);
        break;
    }
    i = j;
  }
  return out;
}

/** A service's environment as the container would see it. */
function serviceEnv(name: string, env: Record<string, string | undefined> = TEST_ENV): Record<string, string> {
  const raw = compose.services[name]?.environment ?? {};
  const result: Record<string, string> = {};
  if (Array.isArray(raw)) {
    for (const entry of raw) {
      const eq = entry.indexOf("=");
      // A bare NAME passes the variable through from the caller's environment.
      if (eq < 0) {
        if (env[entry] !== undefined) result[entry] = env[entry];
      } else {
        result[entry.slice(0, eq)] = interpolate(entry.slice(eq + 1), env);
      }
    }
  } else {
    for (const [key, value] of Object.entries(raw)) {
      if (value === null) {
        if (env[key] !== undefined) result[key] = env[key];
      } else {
        result[key] = interpolate(String(value), env);
      }
    }
  }
  return result;
}

function rawEnv(name: string): [string, string][] {
  const raw = compose.services[name]?.environment ?? {};
  if (Array.isArray(raw)) return raw.map((e) => [e.split("=")[0], e.includes("=") ? e.slice(e.indexOf("=") + 1) : ""]);
  return Object.entries(raw).map(([k, v]) => [k, v === null ? "" : String(v)]);
}

function dependsOn(name: string): Record<string, string | undefined> {
  const deps = compose.services[name]?.depends_on ?? {};
  if (Array.isArray(deps)) return Object.fromEntries(deps.map((d) => [d, "service_started"]));
  return Object.fromEntries(Object.entries(deps).map(([k, v]) => [k, v?.condition ?? "service_started"]));
}

function argv(cmd: string | string[] | undefined): string {
  return Array.isArray(cmd) ? cmd.join(" ") : (cmd ?? "");
}

function dockerfileOf(name: string): string | undefined {
  const build = compose.services[name]?.build;
  if (build === undefined) return undefined;
  const context = path.resolve(ROOT, typeof build === "string" ? build : (build.context ?? "."));
  return path.resolve(context, typeof build === "string" ? "Dockerfile" : (build.dockerfile ?? "Dockerfile"));
}

/** Final-stage instructions of a Dockerfile, with `\` continuations joined. */
function finalStage(file: string): string[] {
  const lines = readFileSync(file, "utf8")
    .replace(/\\\r?\n/g, " ")
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith("#"));
  const lastFrom = lines.map((l) => /^FROM\s/i.test(l)).lastIndexOf(true);
  return lines.slice(lastFrom);
}

/** Parses an exec-form (`["a", "b"]`) instruction argument; shell form is returned as one string. */
function execForm(arg: string): string[] {
  const trimmed = arg.trim();
  return trimmed.startsWith("[") ? (JSON.parse(trimmed) as string[]) : [trimmed];
}

const DOCKERFILES = [...new Set(Object.keys(compose.services).map(dockerfileOf).filter((f): f is string => !!f))];

describe("docker-compose.yml", () => {
  it("defines the database, queue, migration, API and both workers", () => {
    for (const name of ["postgres", "redis", "migrate", ...APP_SERVICES]) {
      assert.ok(compose.services[name], `service ${name} is missing`);
    }
  });

  it("gives every long-running service a healthcheck, and none to the one-shot migrate", () => {
    for (const name of LONG_RUNNING) {
      const hc = compose.services[name].healthcheck;
      assert.ok(hc && !hc.disable, `${name}: no healthcheck`);
      assert.ok(argv(hc.test).length > 0, `${name}: healthcheck has no test`);
      assert.notEqual(argv(hc.test), "NONE", `${name}: healthcheck disabled`);
    }
    const api = argv(compose.services.api.healthcheck?.test);
    assert.match(api, /\/readyz/, "api healthcheck must probe /readyz (Postgres and Redis reachable)");
    assert.doesNotMatch(api, /\bcurl\b|\bwget\b/, "slim images have neither curl nor wget");
    for (const name of ["worker", "worker-gpu"]) {
      assert.match(argv(compose.services[name].healthcheck?.test), /workers\/healthcheck\.ts/, `${name}: worker healthcheck`);
    }
    assert.match(argv(compose.services.postgres.healthcheck?.test), /pg_isready/);
    assert.match(argv(compose.services.redis.healthcheck?.test), /redis-cli\b.*\bping/);
    assert.equal(compose.services.migrate.healthcheck?.disable, true, "migrate inherits the API image's HEALTHCHECK unless disabled");
  });

  it("runs Postgres 15 and Redis 7 on named volumes", () => {
    assert.match(compose.services.postgres.image ?? "", /^postgres:15(\b|$)/);
    assert.match(compose.services.redis.image ?? "", /^redis:7(\b|$)/);
    for (const [name, target] of [["postgres", "/var/lib/postgresql/data"], ["redis", "/data"]] as const) {
      const mount = (compose.services[name].volumes ?? []).map(String).find((v) => v.split(":")[1] === target);
      assert.ok(mount, `${name}: nothing mounted on ${target}`);
      const source = mount.split(":")[0];
      assert.ok(compose.volumes && source in compose.volumes, `${name}: ${source} is not a named volume`);
    }
  });

  it("runs Redis with AOF persistence and noeviction, as BullMQ needs", () => {
    const cmd = argv(compose.services.redis.command);
    assert.match(cmd, /--appendonly\s+yes\b/);
    assert.match(cmd, /--maxmemory-policy\s+noeviction\b/);
  });

  it("puts the GPU worker behind the gpu profile with an NVIDIA device reservation", () => {
    const gpu = compose.services["worker-gpu"];
    assert.deepEqual(gpu.profiles, ["gpu"]);
    const devices = gpu.deploy?.resources?.reservations?.devices ?? [];
    const nvidia = devices.find((d) => d.driver === "nvidia");
    assert.ok(nvidia, "no nvidia device reservation");
    assert.ok(nvidia.capabilities?.includes("gpu"), "reservation lacks the gpu capability");
    assert.ok(nvidia.count === "all" || (typeof nvidia.count === "number" && nvidia.count >= 1), `bad device count ${nvidia.count}`);
    assert.equal(serviceEnv("worker-gpu").TRAINYARD_BACKEND, "tensorflow-gpu");
    // Everything else must start with a plain `docker compose up`.
    for (const [name, svc] of Object.entries(compose.services)) {
      if (name !== "worker-gpu") assert.equal(svc.profiles, undefined, `${name} is hidden behind a profile`);
    }
  });

  it("starts the API and workers only after migrate has completed", () => {
    for (const name of APP_SERVICES) {
      const deps = dependsOn(name);
      assert.equal(deps.migrate, "service_completed_successfully", `${name} -> migrate`);
      assert.equal(deps.postgres, "service_healthy", `${name} -> postgres`);
      assert.equal(deps.redis, "service_healthy", `${name} -> redis`);
    }
    assert.equal(dependsOn("migrate").postgres, "service_healthy");
    assert.match(argv(compose.services.migrate.command), /^npm run db:deploy$/);
    assert.ok([undefined, "no"].includes(compose.services.migrate.restart), "a one-shot job must not restart");
  });

  it("builds every image from a Dockerfile that exists", () => {
    for (const name of ["migrate", ...APP_SERVICES]) {
      const file = dockerfileOf(name);
      assert.ok(file, `${name} has no build:`);
      assert.ok(existsSync(file), `${name}: ${path.relative(ROOT, file)} does not exist`);
    }
    assert.equal(dockerfileOf("migrate"), dockerfileOf("api"), "migrate should reuse the API image");
  });

  it("gives every app container a configuration its schema accepts", () => {
    assert.doesNotThrow(() => parseConfig(apiConfigSchema, serviceEnv("api")));
    for (const name of ["migrate", "worker", "worker-gpu"]) {
      assert.doesNotThrow(() => parseConfig(workerConfigSchema, serviceEnv(name)), name);
    }
  });

  it("points every app container at the compose postgres and redis, with one queue prefix", () => {
    const api = serviceEnv("api");
    for (const name of ["migrate", ...APP_SERVICES]) {
      const env = serviceEnv(name);
      const db = new URL(env.DATABASE_URL ?? "");
      assert.equal(db.hostname, "postgres", `${name}: DATABASE_URL host`);
      assert.equal(db.password, TEST_ENV.POSTGRES_PASSWORD, `${name}: DATABASE_URL password comes from POSTGRES_PASSWORD`);
      assert.equal(env.DATABASE_URL, api.DATABASE_URL, `${name}: DATABASE_URL differs from the API's`);
      if (name === "migrate") continue;
      assert.equal(new URL(env.REDIS_URL ?? "").hostname, "redis", `${name}: REDIS_URL host`);
      // Workers on another prefix would never see the API's jobs.
      assert.equal(env.TRAINYARD_QUEUE_PREFIX, api.TRAINYARD_QUEUE_PREFIX, `${name}: queue prefix differs from the API's`);
    }
    // The database the URL names is the one the postgres container creates, as that user.
    const pg = serviceEnv("postgres");
    const db = new URL(api.DATABASE_URL);
    assert.equal(db.pathname.slice(1), pg.POSTGRES_DB);
    assert.equal(db.username, pg.POSTGRES_USER);
    assert.equal(db.password, pg.POSTGRES_PASSWORD);
  });

  it("refuses to start the API without an admin key or Postgres without a password", () => {
    const { TRAINYARD_ADMIN_KEY: _key, ...noKey } = TEST_ENV;
    assert.throws(() => serviceEnv("api", noKey), /TRAINYARD_ADMIN_KEY/);
    assert.throws(() => serviceEnv("api", { ...TEST_ENV, TRAINYARD_ADMIN_KEY: "" }), /TRAINYARD_ADMIN_KEY/);
    const { POSTGRES_PASSWORD: _pw, ...noPassword } = TEST_ENV;
    assert.throws(() => serviceEnv("postgres", noPassword), /POSTGRES_PASSWORD/);
  });
});

describe("secrets in the Docker files", () => {
  it("takes every secret-looking compose variable from the environment, required, with no default", () => {
    for (const name of Object.keys(compose.services)) {
      for (const [key, value] of rawEnv(name)) {
        if (SECRET_NAME.test(key)) {
          assert.match(value, /^\$\{[A-Za-z_][A-Za-z0-9_]*:\?[^}]*\}$/, `${name}.${key} must be \${VAR:?message}, not ${JSON.stringify(value)}`);
        }
        // Credentials inside URLs, e.g. postgresql://user:password@host.
        for (const m of value.matchAll(/[a-z][a-z0-9+.-]*:\/\/[^:/@\s]+:([^@\s]+)@/gi)) {
          assert.match(m[1], /^\$\{[A-Za-z_][A-Za-z0-9_]*:\?[^}]*\}$/, `${name}.${key} has a literal password in its URL`);
        }
      }
    }
  });

  it("has no literal admin key or password anywhere in compose or the Dockerfiles", () => {
    // Any `NAME: value` / `NAME=value` line for a secret-looking NAME, wherever it sits in the file
    // (x- blocks, list-form environment, build args), must be a required reference.
    RAW.split(/\r?\n/).forEach((line, i) => {
      const m = /^\s*(?:-\s*)?["']?([A-Z0-9_]*(?:KEY|PASSWORD|SECRET|TOKEN)[A-Z0-9_]*)["']?\s*[:=]\s*(.*)$/.exec(line.replace(/\s+#.*$/, ""));
      if (!m || m[2] === "") return;
      const value = m[2].replace(/^["']|["']$/g, "");
      assert.match(value, /^\$\{[A-Za-z_][A-Za-z0-9_]*:\?[^}]*\}$/, `docker-compose.yml:${i + 1}: ${m[1]} is given a literal value`);
    });
    for (const file of DOCKERFILES) {
      const text = readFileSync(file, "utf8").replace(/\\\r?\n/g, " ");
      const name = path.relative(ROOT, file);
      assert.doesNotMatch(text, /^\s*(ENV|ARG)\s+[^#\n]*(KEY|PASSWORD|SECRET|TOKEN)/im, `${name} bakes a secret into the image`);
      assert.doesNotMatch(text, /TRAINYARD_ADMIN_KEY|POSTGRES_PASSWORD/, `${name}: secrets come from the runtime environment, never the image`);
    }
  });

  it("keeps .env and host node_modules out of the build context", () => {
    const ignore = readFileSync(path.join(ROOT, ".dockerignore"), "utf8").split(/\r?\n/).map((l) => l.trim());
    for (const entry of [".env", "node_modules", ".git"]) assert.ok(ignore.includes(entry), `.dockerignore lacks ${entry}`);
  });
});

describe("Dockerfiles", () => {
  const pkg = JSON.parse(readFileSync(path.join(ROOT, "package.json"), "utf8")) as { scripts?: Record<string, string> };
  const expectedEntry: Record<string, string> = {
    "api.Dockerfile": "services/server.ts",
    "worker.Dockerfile": "workers/worker.ts",
    "worker-gpu.Dockerfile": "workers/worker.ts",
  };

  for (const file of DOCKERFILES) {
    const base = path.basename(file);
    it(`${base}: runs as a non-root user and starts the right entrypoint`, () => {
      const stage = finalStage(file);
      const users = stage.filter((l) => /^USER\s/i.test(l)).map((l) => l.split(/\s+/)[1]);
      assert.ok(users.length > 0, "final stage has no USER");
      assert.ok(!["root", "0"].includes(users.at(-1)!.split(":")[0]), "final stage runs as root");

      const cmd = stage.filter((l) => /^CMD\s/i.test(l)).at(-1);
      assert.ok(cmd, "no CMD");
      // Exec form, so node is PID 1's child of init and receives SIGTERM for a clean shutdown.
      const args = execForm(cmd.replace(/^CMD\s+/i, ""));
      assert.deepEqual(args.slice(0, 3), ["node", "--import", "tsx"], "CMD must be exec form running node with tsx");
      assert.equal(args[3], expectedEntry[base]);
      assert.ok(existsSync(path.join(ROOT, args[3])), `${args[3]} does not exist`);

      const hc = stage.filter((l) => /^HEALTHCHECK\s/i.test(l)).at(-1);
      assert.ok(hc, "no HEALTHCHECK");
      // Exec form must be valid JSON or Docker runs it as a shell string; slim images have no curl.
      const probe = execForm(hc.replace(/^HEALTHCHECK\s+(?:--\S+\s+)*CMD\s+/i, ""));
      assert.equal(probe[0], "node", "HEALTHCHECK must be an exec-form node command");
      const script = /\b(workers\/healthcheck\.ts)\b/.exec(hc)?.[1];
      if (script) assert.ok(existsSync(path.join(ROOT, script)), `${script} does not exist`);
    });

    it(`${base}: installs production dependencies from the lockfile and generates the Prisma client`, () => {
      const text = readFileSync(file, "utf8").replace(/\\\r?\n/g, " ");
      assert.match(text, /npm ci\b[^\n]*--omit=dev/);
      for (const m of text.matchAll(/npm run ([\w:-]+)/g)) {
        assert.ok(pkg.scripts?.[m[1]], `package.json has no "${m[1]}" script`);
      }
      assert.match(text, /npm run db:generate/);
    });
  }

  it("builds the native TensorFlow each image needs", () => {
    const cpu = readFileSync(path.join(ROOT, "docker/worker.Dockerfile"), "utf8");
    assert.match(cpu, /npm rebuild @tensorflow\/tfjs-node\b(?!-gpu)/);
    const gpu = readFileSync(path.join(ROOT, "docker/worker-gpu.Dockerfile"), "utf8");
    assert.match(gpu, /npm rebuild @tensorflow\/tfjs-node-gpu\b/);
    // tfjs-node-gpu 4.22 is built against libtensorflow 2.9: CUDA 11.2 and cuDNN 8.
    assert.match(gpu, /nvidia\/cuda:11\.2\.\d+-cudnn8-runtime/);
  });

  it("the migrate command's script exists in package.json", () => {
    const script = /^npm run ([\w:-]+)$/.exec(argv(compose.services.migrate.command))?.[1];
    assert.ok(script && pkg.scripts?.[script], `package.json has no "${script}" script`);
  });
});

describe("interpolate (the compose substitution the checks above rely on)", () => {
  it("follows compose's rules for defaults, required values and $$", () => {
    const env = { SET: "v", EMPTY: "" };
    assert.equal(interpolate("${SET}/$SET/$$SET", env), "v/v/$SET");
    assert.equal(interpolate("${UNSET:-d} ${EMPTY:-d} ${EMPTY-d} ${UNSET-d}", env), "d d  d");
    assert.equal(interpolate("${SET:+alt}|${EMPTY:+alt}|${EMPTY+alt}", env), "alt||alt");
    assert.equal(interpolate("${UNSET:-${SET}x}", env), "vx");
    assert.throws(() => interpolate("${EMPTY:?need it}", env), /EMPTY: need it/);
    assert.equal(interpolate("${EMPTY?need it}", env), "");
    assert.throws(() => interpolate("${UNSET?need it}", env), /UNSET: need it/);
  });
});
