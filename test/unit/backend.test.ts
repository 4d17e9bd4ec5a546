// Backend selection happens once per process, so each case runs in a fresh child process.
// The native packages cannot be installed here; fakes placed in a scratch node_modules stand in
// for the three ways they show up in practice: absent, present but broken, present and working
// (with or without a GPU).
// Run: node --import tsx --test test/unit/backend.test.ts
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { cpSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const ENGINE = join(ROOT, "lib/engine");

interface Attempt {
  name: string;
  ok: boolean;
  error?: string;
}
interface Info {
  name: string;
  tfjsVersion: string;
  simd?: boolean;
  attempts: Attempt[];
}
interface Result {
  info?: Info;
  error?: string;
  active?: string;
  [key: string]: unknown;
}

/**
 * Runs `body` in a new Node process with `b` (the backend module), `tf` and `out` in scope and
 * returns `out`, plus `error` if the body threw and `active` (tf.getBackend()) at the end.
 */
function scenario(body: string, engineDir = ENGINE): Promise<Result> {
  const code = `
    const out = {};
    const b = await import(${JSON.stringify(join(engineDir, "backend.ts"))});
    const { createRequire } = await import("node:module");
    const tf = createRequire(${JSON.stringify(join(engineDir, "backend.ts"))})("@tensorflow/tfjs");
    try { ${body} } catch (e) { out.error = e.message; }
    out.active = tf.getBackend();
    console.log("RESULT " + JSON.stringify(out));`;
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      ["--import", "tsx", "--input-type=module", "-e", code],
      { cwd: ROOT, timeout: 60_000 },
      (err, stdout, stderr) => {
        const line = stdout.split("\n").find((l) => l.startsWith("RESULT "));
        if (line === undefined) {
          reject(new Error(`child printed no result (${err?.message ?? "exit 0"})\n${stderr}`));
          return;
        }
        resolve(JSON.parse(line.slice("RESULT ".length)) as Result);
      },
    );
  });
}

function attempt(info: Info, name: string): Attempt {
  const a = info.attempts.find((x) => x.name === name);
  assert.ok(a, `no attempt for ${name} in ${JSON.stringify(info.attempts)}`);
  return a;
}

// Children are independent processes: run two at a time (the machines have two cores).
describe("initBackend on this machine (no native packages)", { concurrency: 2 }, () => {
  test("auto selects wasm with SIMD and records why the native ones failed", async () => {
    const r = await scenario(`out.info = await b.initBackend("auto"); out.version = tf.version.tfjs;`);
    assert.equal(r.error, undefined);
    const info = r.info as Info;
    assert.equal(info.name, "wasm");
    assert.equal(r.active, "wasm");
    assert.equal(info.simd, true);
    assert.equal(info.tfjsVersion, r.version);
    assert.deepEqual(info.attempts.map((a) => [a.name, a.ok]), [
      ["tensorflow-gpu", false],
      ["tensorflow", false],
      ["wasm", true],
    ]);
    assert.match(attempt(info, "tensorflow-gpu").error ?? "", /tfjs-node-gpu/);
    assert.match(attempt(info, "tensorflow").error ?? "", /ERR_MODULE_NOT_FOUND.*tfjs-node'/);
  });

  test("auto on wasm installs the missing kernels, so CNN gradients work", async () => {
    const r = await scenario(`
      await b.initBackend("auto");
      out.hasConvFilterGrad = tf.getKernelsForBackend("wasm").some((k) => k.kernelName === "Conv2DBackpropFilter");
      const g = tf.grads((x, f) => tf.sum(tf.conv2d(x, f, 1, "same")))([tf.ones([1, 5, 5, 2]), tf.ones([3, 3, 2, 1])]);
      out.filterGradSum = g[1].sum().dataSync()[0];`);
    assert.equal(r.error, undefined);
    assert.equal(r.hasConvFilterGrad, true);
    // Each of the 9 taps sees the 5x5 input minus the zero padding it overlaps: 2 channels x
    // (25*1 + 20*4 + 16*4) = 2 * 169.
    assert.equal(r.filterGradSum, 2 * 169);
  });

  test("forced cpu gives cpu", async () => {
    const r = await scenario(`out.info = await b.initBackend("cpu");`);
    assert.equal(r.error, undefined);
    assert.deepEqual(r.info, { name: "cpu", tfjsVersion: (r.info as Info).tfjsVersion, attempts: [{ name: "cpu", ok: true }] });
    assert.equal(r.active, "cpu");
  });

  test("forced wasm gives wasm", async () => {
    const r = await scenario(`out.info = await b.initBackend("wasm");`);
    assert.equal(r.error, undefined);
    assert.equal(r.info?.name, "wasm");
    assert.deepEqual(r.info?.attempts, [{ name: "wasm", ok: true }]);
    assert.equal(r.active, "wasm");
  });

  test("forced tensorflow throws a clear error and leaves nothing half-initialised", async () => {
    const r = await scenario(`
      await b.initBackend("tensorflow").catch((e) => { out.forcedError = e.message; });
      out.afterFailure = b.currentBackend() ?? null;
      out.info = await b.initBackend("auto");`);
    assert.equal(r.error, undefined);
    assert.match(String(r.forcedError), /^compute backend "tensorflow" was requested but cannot be used: .*@tensorflow\/tfjs-node'/);
    assert.equal(r.afterFailure, null);
    assert.equal(r.info?.name, "wasm");
  });

  test("forced tensorflow-gpu throws a clear error", async () => {
    const r = await scenario(`out.info = await b.initBackend("tensorflow-gpu");`);
    assert.equal(r.info, undefined);
    assert.match(String(r.error), /^compute backend "tensorflow-gpu" was requested but cannot be used: .*tfjs-node-gpu/);
  });

  test("an unknown name is rejected", async () => {
    const r = await scenario(`out.info = await b.initBackend("webgpu");`);
    assert.match(String(r.error), /unknown compute backend "webgpu"/);
  });

  test("idempotent: repeated and concurrent calls return the same info; switching is refused", async () => {
    const r = await scenario(`
      const [x, y] = await Promise.all([b.initBackend("auto"), b.initBackend("auto")]);
      const z = await b.initBackend("wasm");
      out.same = x === y && y === z && b.currentBackend() === x;
      out.attempts = x.attempts.length;
      await b.initBackend("cpu").catch((e) => { out.switchError = e.message; });
      out.stillCurrent = b.currentBackend() === x;`);
    assert.equal(r.error, undefined);
    assert.equal(r.same, true);
    assert.equal(r.attempts, 3, "the second caller must not have run a second selection");
    assert.match(String(r.switchError), /already initialised as "wasm".*cannot switch to "cpu"/);
    assert.equal(r.stillCurrent, true);
    assert.equal(r.active, "wasm");
  });

  test("auto after a forced cpu returns the cpu info", async () => {
    const r = await scenario(`
      const x = await b.initBackend("cpu");
      out.same = (await b.initBackend("auto")) === x;`);
    assert.equal(r.same, true);
    assert.equal(r.active, "cpu");
  });

  test("currentBackend is undefined before initBackend", async () => {
    const r = await scenario(`out.before = b.currentBackend() ?? null;`);
    assert.equal(r.before, null);
  });
});

describe("initBackend with stand-ins for the native packages", { concurrency: 2 }, () => {
  // A scratch copy of lib/engine with its own node_modules: the real tfjs packages linked in,
  // plus fake @tensorflow/tfjs-node(-gpu) packages written per case.
  const scratch = mkdtempSync(join(tmpdir(), "trainyard-backend-"));
  after(() => rmSync(scratch, { recursive: true, force: true }));

  function layout(name: string, fakes: Record<string, string>): string {
    const dir = join(scratch, name);
    const engine = join(dir, "engine");
    mkdirSync(engine, { recursive: true });
    // Same module system as the project, or tsx would load the copies as CommonJS.
    writeFileSync(join(dir, "package.json"), JSON.stringify({ type: "module" }));
    cpSync(join(ENGINE, "backend.ts"), join(engine, "backend.ts"));
    cpSync(join(ENGINE, "wasm-kernels.ts"), join(engine, "wasm-kernels.ts"));
    // The hand-written SIMD kernels wasm-kernels.ts registers (Tanh).
    cpSync(join(ENGINE, "simd"), join(engine, "simd"), { recursive: true });
    mkdirSync(join(dir, "node_modules/@tensorflow"), { recursive: true });
    for (const pkg of ["tfjs", "tfjs-backend-wasm"]) {
      symlinkSync(join(ROOT, "node_modules/@tensorflow", pkg), join(dir, "node_modules/@tensorflow", pkg), "dir");
    }
    for (const [pkg, source] of Object.entries(fakes)) {
      const pkgDir = join(dir, "node_modules/@tensorflow", pkg);
      mkdirSync(pkgDir);
      writeFileSync(join(pkgDir, "package.json"), JSON.stringify({ name: `@tensorflow/${pkg}`, main: "index.js" }));
      writeFileSync(join(pkgDir, "index.js"), source);
    }
    return engine;
  }

  // What `npm install --ignore-scripts` leaves: the package is there, its binding is not.
  const broken = `throw new Error("The Node.js native addon module (tfjs_binding.node) can not be found at path: /x/tfjs_binding.node");`;
  // Registers a "tensorflow" backend the way tfjs-node does, backed by cpu kernels.
  const working = (gpu: boolean) => `
    const tf = require("@tensorflow/tfjs");
    tf.copyRegisteredKernels("cpu", "tensorflow");
    tf.registerBackend("tensorflow", () => {
      const Cpu = tf.findBackend("cpu").constructor;
      const backend = new Cpu();
      backend.isGPUPackage = ${gpu};
      backend.isUsingGpuDevice = ${gpu};
      return backend;
    }, 3);`;

  test("a present but broken tfjs-node is skipped by auto and named when forced", async () => {
    const engine = layout("broken", { "tfjs-node": broken, "tfjs-node-gpu": broken });
    const auto = await scenario(`out.info = await b.initBackend("auto");`, engine);
    assert.equal(auto.info?.name, "wasm");
    assert.match(attempt(auto.info as Info, "tensorflow").error ?? "", /tfjs_binding\.node/);
    assert.match(attempt(auto.info as Info, "tensorflow-gpu").error ?? "", /tfjs_binding\.node/);
    const forced = await scenario(`out.info = await b.initBackend("tensorflow");`, engine);
    assert.match(String(forced.error), /"tensorflow" was requested but cannot be used: .*tfjs_binding\.node/);
  });

  test("a working tfjs-node is picked by auto, ahead of wasm", async () => {
    const engine = layout("node", { "tfjs-node": working(false) });
    const r = await scenario(`out.info = await b.initBackend("auto");`, engine);
    assert.equal(r.error, undefined);
    assert.equal(r.info?.name, "tensorflow");
    assert.equal(r.active, "tensorflow");
    assert.deepEqual(r.info?.attempts.map((a) => [a.name, a.ok]), [["tensorflow-gpu", false], ["tensorflow", true]]);
  });

  test("tfjs-node-gpu with a GPU is picked first", async () => {
    const engine = layout("gpu", { "tfjs-node-gpu": working(true), "tfjs-node": broken });
    const auto = await scenario(`out.info = await b.initBackend("auto");`, engine);
    assert.equal(auto.info?.name, "tensorflow-gpu");
    assert.deepEqual(auto.info?.attempts, [{ name: "tensorflow-gpu", ok: true }]);
    assert.equal(auto.active, "tensorflow");
    const forced = await scenario(`out.info = await b.initBackend("tensorflow-gpu");`, engine);
    assert.equal(forced.info?.name, "tensorflow-gpu");
  });

  test("tfjs-node-gpu without a GPU device: auto reports tensorflow, forced gpu throws", async () => {
    const engine = layout("gpu-no-device", { "tfjs-node-gpu": working(false) });
    const auto = await scenario(`out.info = await b.initBackend("auto");`, engine);
    assert.equal(auto.info?.name, "tensorflow");
    assert.match(attempt(auto.info as Info, "tensorflow-gpu").error ?? "", /no GPU device/);
    assert.equal(attempt(auto.info as Info, "tensorflow").ok, true);
    const forced = await scenario(`out.info = await b.initBackend("tensorflow-gpu");`, engine);
    assert.match(String(forced.error), /"tensorflow-gpu" was requested but cannot be used: .*no GPU device/);
  });
});
