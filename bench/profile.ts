// `npm run bench:profile`: where one training step's time goes, kernel by kernel (tf.profile), for
// the MLP, LeNet-5 and a small LSTM on this machine's backend with Trainyard's kernels. The step
// is the training loop's: forward, loss, gradients of every trainable weight, Adam.
//   node --import tsx bench/profile.ts [--steps 20] [--workloads mlp,lenet5,lstm] [--stock]
// --stock: wasm's own matmuls, average-pool gradient and tanh, the images' gradient computed and tfjs's own Adam, to see what they cost.
import * as tf from "@tensorflow/tfjs";
import { currentBackend, initBackend } from "../lib/engine/backend.ts";
import { buildModel } from "../lib/engine/build/build-model.ts";
import { withSeededRandom } from "../lib/engine/seeded-random.ts";
import { applyGradients, setFusedAdam } from "../lib/engine/train/fused-adam.ts";
import { skipInputGradients } from "../lib/engine/train/input-gradients.ts";
import { registerMissingWasmKernels } from "../lib/engine/wasm-kernels.ts";
import { modelSpecSchema } from "../lib/model-spec/model-spec-schema.ts";
import { renderTemplate } from "../lib/model-spec/templates/index.ts";

const arg = (name: string, d: string) => (process.argv.includes(`--${name}`) ? process.argv[process.argv.indexOf(`--${name}`) + 1] : d);
const STEPS = Number(arg("steps", "20"));

const WORKLOADS = {
  mlp: { label: "MLP 784-256-128-10, batch 128", batch: 128, shape: [784], classes: 10, spec: { input: { shape: [784] }, layers: [{ type: "dense", units: 256, activation: "relu" }, { type: "dense", units: 128, activation: "relu" }, { type: "dense", units: 10, activation: "softmax" }] } },
  lenet5: { label: "LeNet-5 28×28×1, batch 64", batch: 64, shape: [28, 28, 1], classes: 10, spec: renderTemplate("lenet5", { inputShape: [28, 28, 1], classes: 10 }) },
  lstm: { label: "LSTM 32 over 20×8, batch 64", batch: 64, shape: [20, 8], classes: 4, spec: { input: { shape: [20, 8] }, layers: [{ type: "lstm", units: 32 }, { type: "dense", units: 4, activation: "softmax" }] } },
} as const;

await initBackend((process.env.TRAINYARD_BACKEND as "auto" | undefined) ?? "auto", () => {});
if (process.argv.includes("--stock")) {
  registerMissingWasmKernels({ fastTransposedMatMul: false, fastAvgPoolGrad: false, fastTanh: false });
  setFusedAdam(false);
}

for (const id of arg("workloads", Object.keys(WORKLOADS).join(",")).split(",") as (keyof typeof WORKLOADS)[]) {
  const w = WORKLOADS[id];
  const model = await withSeededRandom(1, () => buildModel(modelSpecSchema.parse(w.spec)).model);
  const optimizer = tf.train.adam(0.001);
  // As the training loop does: input convolutions skip the images' gradient.
  if (!process.argv.includes("--stock")) skipInputGradients(model);
  const size = (w.shape as readonly number[]).reduce((a: number, b: number) => a * b, 1);
  const x = new Float32Array(w.batch * size).map((_, i) => Math.sin(i));
  const labels = Int32Array.from({ length: w.batch }, (_, i) => i % w.classes);
  const step = () =>
    tf.tidy(() => {
      const xb = tf.tensor(x, [w.batch, ...w.shape]);
      const yb = tf.oneHot(tf.tensor1d(labels, "int32"), w.classes);
      // As the training loop steps: variableGrads, then the update (fused-adam.ts: one pass per variable for Adam on wasm).
      const { value, grads } = tf.variableGrads(() => tf.mean(tf.metrics.categoricalCrossentropy(yb, model.apply(xb, { training: true }) as tf.Tensor)) as tf.Scalar);
      applyGradients(optimizer, grads);
      value.dataSync();
    });
  for (let i = 0; i < 3; i++) step();
  const byKernel = new Map<string, { calls: number; ms: number }>();
  let wall = 0;
  for (let i = 0; i < STEPS; i++) {
    const t = performance.now();
    const info = await tf.profile(step);
    wall += performance.now() - t;
    // Records named `<op>__op` wrap the kernels an op ran (fused ops that fell back): counted in those kernels already.
    for (const k of info.kernels.filter((k) => !k.name.endsWith("__op"))) {
      const e = byKernel.get(k.name) ?? { calls: 0, ms: 0 };
      e.calls++;
      e.ms += typeof k.kernelTimeMs === "number" ? k.kernelTimeMs : 0;
      byKernel.set(k.name, e);
    }
  }
  // A second pass without the profiler: its bookkeeping inflates the wall time.
  const t = performance.now();
  for (let i = 0; i < STEPS; i++) step();
  const plain = (performance.now() - t) / STEPS;
  const kernelMs = [...byKernel.values()].reduce((a, e) => a + e.ms, 0) / STEPS;
  console.log(`\n${w.label} (${currentBackend()?.name}${process.argv.includes("--stock") ? ", wasm's own matmuls" : ""}): ${plain.toFixed(2)} ms a step (${Math.round((w.batch / plain) * 1000).toLocaleString("en-US")} samples/s); kernels ${kernelMs.toFixed(2)} ms${plain > kernelMs ? `, the rest ${(plain - kernelMs).toFixed(2)} ms (dispatch, allocation, JavaScript)` : " (the profiler's own timing overlaps: kernels nested in kernels)"}\n`);
  console.log("| kernel | calls a step | ms a step | share of kernel time |");
  console.log("|---|---:|---:|---:|");
  for (const [name, e] of [...byKernel].sort((a, b) => b[1].ms - a[1].ms).slice(0, 15)) {
    console.log(`| ${name} | ${(e.calls / STEPS).toFixed(0)} | ${(e.ms / STEPS).toFixed(3)} | ${((e.ms / STEPS / kernelMs) * 100).toFixed(1)}% |`);
  }
  model.dispose();
  optimizer.dispose();
  void wall;
}
