// What the patched wasm kernels are worth for CNN training, all measured in one run:
//   cpu            pure-JS backend
//   wasm/generic   wasm, Conv2DBackpropFilter through the cpu-fallback kernel, wasm's own
//                  Conv2DBackpropInput
//   wasm/fast dW   wasm, Conv2DBackpropFilter built from wasm ops, wasm's own Conv2DBackpropInput
//   wasm/fast      wasm, both built from wasm's Conv2D (what initBackend installs)
// Model: conv32(3x3) - maxpool - conv64(3x3) - GAP - dense10 on 28x28x1, batch 64, Adam.
// Run: node --import tsx bench/kernels.bench.ts [--batch 64] [--seconds 8]
import * as tf from "@tensorflow/tfjs";
import "@tensorflow/tfjs-backend-wasm";
import { registerMissingWasmKernels } from "../lib/engine/wasm-kernels.ts";

const args = parseArgs(process.argv.slice(2));
const BATCH = args.batch ?? 64;
// Per configuration. The slow ones get at least one timed step whatever this says, which is
// why the whole run stays near two minutes on two cores instead of scaling with it.
const SECONDS = args.seconds ?? 8;

interface Row {
  config: string;
  steps: number;
  msPerStep: number;
  samplesPerSec: number;
}

function buildModel(): tf.LayersModel {
  const init = (seed: number) => tf.initializers.glorotUniform({ seed });
  const model = tf.sequential({
    layers: [
      tf.layers.conv2d({ inputShape: [28, 28, 1], filters: 32, kernelSize: 3, activation: "relu", kernelInitializer: init(1) }),
      tf.layers.maxPooling2d({ poolSize: 2 }),
      tf.layers.conv2d({ filters: 64, kernelSize: 3, activation: "relu", kernelInitializer: init(2) }),
      tf.layers.globalAveragePooling2d({}),
      tf.layers.dense({ units: 10, activation: "softmax", kernelInitializer: init(3) }),
    ],
  });
  model.compile({ optimizer: tf.train.adam(1e-3), loss: "categoricalCrossentropy" });
  return model;
}

function batch(size: number): { xs: tf.Tensor; ys: tf.Tensor } {
  return tf.tidy(() => ({
    xs: tf.randomUniform([size, 28, 28, 1], 0, 1, "float32", 7),
    ys: tf.oneHot(tf.randomUniform([size], 0, 10, "int32", 8), 10).toFloat(),
  }));
}

async function measure(config: string, backendName: string): Promise<Row> {
  if (!(await tf.setBackend(backendName))) throw new Error(`tf.setBackend("${backendName}") failed`);
  const model = buildModel();
  const warm = batch(8);
  const data = batch(BATCH);
  try {
    // A small warm-up step compiles/sets up every kernel the step uses without costing a full
    // step on the slow configurations.
    await model.trainOnBatch(warm.xs, warm.ys);
    let steps = 0;
    const start = performance.now();
    do {
      await model.trainOnBatch(data.xs, data.ys); // returns the loss: a sync point
      steps++;
    } while (performance.now() - start < SECONDS * 1000);
    const ms = (performance.now() - start) / steps;
    return { config, steps, msPerStep: ms, samplesPerSec: (BATCH * 1000) / ms };
  } finally {
    model.dispose();
    tf.dispose([warm.xs, warm.ys, data.xs, data.ys]);
  }
}

function parseArgs(argv: string[]): { batch?: number; seconds?: number } {
  const out: { batch?: number; seconds?: number } = {};
  for (let i = 0; i < argv.length; i += 2) {
    const value = Number(argv[i + 1]);
    if (!Number.isFinite(value) || value <= 0) throw new Error(`${argv[i]}: expected a positive number`);
    if (argv[i] === "--batch") out.batch = Math.floor(value);
    else if (argv[i] === "--seconds") out.seconds = value;
    else throw new Error(`unknown option ${argv[i]} (use --batch N, --seconds S)`);
  }
  return out;
}

const rows: Row[] = [];
rows.push(await measure("cpu", "cpu"));
registerMissingWasmKernels({ fastConv2dBackpropFilter: false, fastConv2dBackpropInput: false });
rows.push(await measure("wasm/generic", "wasm"));
registerMissingWasmKernels({ fastConv2dBackpropFilter: true, fastConv2dBackpropInput: false });
rows.push(await measure("wasm/fast dW", "wasm"));
registerMissingWasmKernels({ fastConv2dBackpropFilter: true, fastConv2dBackpropInput: true });
rows.push(await measure("wasm/fast", "wasm"));

const simd = await tf.env().getAsync("WASM_HAS_SIMD_SUPPORT");
console.log(`\nsmall CNN training step, batch ${BATCH}, tfjs ${tf.version.tfjs}, wasm SIMD ${simd}, node ${process.version}`);
console.log("| config | steps | ms/step | samples/s | vs cpu |");
console.log("|---|---:|---:|---:|---:|");
for (const r of rows) {
  const speedup = r.samplesPerSec / rows[0].samplesPerSec;
  console.log(`| ${r.config} | ${r.steps} | ${r.msPerStep.toFixed(0)} | ${r.samplesPerSec.toFixed(1)} | ${speedup.toFixed(1)}x |`);
}
