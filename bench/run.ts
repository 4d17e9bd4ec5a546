// `npm run bench`: every benchmark, each backend in its own process (a process has one backend),
// side by side in one table. Add --with-kernels for the CNN kernel comparison (about a minute more).
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("..", import.meta.url));
const backends = ["cpu", "wasm"];
const rows = new Map<string, Record<string, number>>();

for (const backend of backends) {
  const r = spawnSync(process.execPath, ["--import", "tsx", "bench/training.bench.ts", "--backend", backend], { cwd: root, encoding: "utf8" });
  if (r.status !== 0) {
    console.error(`${backend}: failed\n${r.stderr.slice(-2000)}`);
    continue;
  }
  for (const line of r.stdout.split("\n").filter((l) => l.startsWith("{"))) {
    const { workload, samplesPerSec } = JSON.parse(line);
    rows.set(workload, { ...rows.get(workload), [backend]: samplesPerSec });
  }
}

console.log("\nTraining throughput, samples/s (Trainyard's training loop, Adam, median of steady epochs)\n");
console.log(`| workload | ${backends.join(" | ")} | wasm vs cpu |`);
console.log(`|---|${backends.map(() => "---:").join("|")}|---:|`);
for (const [workload, byBackend] of rows) {
  const ratio = byBackend.cpu && byBackend.wasm ? `${(byBackend.wasm / byBackend.cpu).toFixed(1)}×` : "";
  console.log(`| ${workload} | ${backends.map((b) => byBackend[b]?.toLocaleString("en-US") ?? "—").join(" | ")} | ${ratio} |`);
}

if (process.argv.includes("--with-kernels")) {
  console.log("");
  spawnSync(process.execPath, ["--import", "tsx", "bench/kernels.bench.ts"], { cwd: root, stdio: "inherit" });
}
