// `npm run bench:upload`: how long the API spends checking an image dataset uploaded as nested
// JSON (28×28×1 per image, as a client sends MNIST), before it is stored. Side by side:
//   - a recursive zod schema (number | nested[]) checking every value, the obvious way to write it;
//   - Trainyard: the request schema (outer levels) plus parseJsonDataset, which checks every value
//     and the shape in one pass and packs the rows into float32.
// Each runs in a fresh process so one's garbage does not slow the other.
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { z } from "zod";
import { createDatasetJsonSchema } from "../lib/data/dataset-schema.ts";
import { parseJsonDataset } from "../lib/data/formats/json.ts";

const args = process.argv.slice(2);
const arg = (name: string) => args[args.indexOf(`--${name}`) + 1];

function body(images: number) {
  let s = 1;
  const rand = () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32);
  const features = Array.from({ length: images }, () => Array.from({ length: 28 }, () => Array.from({ length: 28 }, () => [rand()])));
  return { name: "digits", features, labels: Array.from({ length: images }, (_, i) => String(i % 10)) };
}

if (args.includes("--run")) {
  // One measurement, in this process: prints the milliseconds.
  const images = Number(arg("images"));
  const data = JSON.parse(JSON.stringify(body(images)));
  type Nested = number | Nested[];
  const recursive: z.ZodType<Nested> = z.lazy(() => z.union([z.number(), z.array(recursive)]));
  const started = performance.now();
  if (arg("run") === "recursive") z.object({ name: z.string(), features: z.array(z.array(recursive)), labels: z.array(z.string()) }).parse(data);
  else parseJsonDataset(createDatasetJsonSchema.parse(data));
  console.log(JSON.stringify({ ms: performance.now() - started }));
} else {
  const root = fileURLToPath(new URL("..", import.meta.url));
  const sizes = args.includes("--quick") ? [500, 2000] : [500, 2000, 4000];
  console.log("\nChecking a nested-JSON image upload (28×28×1 per image), milliseconds\n");
  console.log("| images | JSON MB | recursive zod schema | Trainyard (schema + parse and pack) | speed-up |");
  console.log("|---:|---:|---:|---:|---:|");
  for (const images of sizes) {
    const run = (how: string) => {
      const r = spawnSync(process.execPath, ["--import", "tsx", "bench/upload.bench.ts", "--run", how, "--images", String(images)], { cwd: root, encoding: "utf8", timeout: 900_000 });
      const line = r.stdout.split("\n").find((l) => l.startsWith("{"));
      return line ? JSON.parse(line).ms as number : NaN;
    };
    const mb = JSON.stringify(body(images)).length / 2 ** 20;
    const slow = run("recursive");
    const fast = run("trainyard");
    console.log(`| ${images.toLocaleString("en-US")} | ${mb.toFixed(0)} | ${slow.toFixed(0)} | ${fast.toFixed(0)} | ${(slow / fast).toFixed(0)}× |`);
  }
}
