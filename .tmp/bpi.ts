import * as tf from "@tensorflow/tfjs";
import { initBackend } from "../lib/engine/backend.ts";
await initBackend("wasm");
console.log(tf.getBackend(), tf.getKernelsForBackend("wasm").some((k) => k.kernelName === "Conv2DBackpropInput"));
for (const [b, h, ci, co, k, s, pad] of [[64, 14, 6, 16, 5, 1, "valid"], [32, 16, 16, 32, 3, 1, "same"], [32, 32, 16, 32, 3, 2, "same"], [8, 8, 64, 32, 2, 2, "valid"]] as const) {
  const dy = tf.randomNormal([b, Math.ceil((pad === "same" ? h : h - k + 1) / s), Math.ceil((pad === "same" ? h : h - k + 1) / s), co]);
  const w = tf.randomNormal([k, k, ci, co]);
  const xShape: [number, number, number, number] = [b, h, h, ci];
  const f = () => tf.conv2dTranspose(dy as tf.Tensor4D, w as tf.Tensor4D, xShape, s, pad as "same");
  f().dispose();
  const t = performance.now();
  for (let i = 0; i < 5; i++) f().dataSync();
  console.log(`b${b} ${h}x${h}x${ci} k${k} s${s} ${pad} -> ${co}: ${((performance.now() - t) / 5).toFixed(1)} ms`);
}
// Same via Conv2D: full correlation with the flipped, channel-swapped filter on (dilated) dy.
function viaConv(dy: tf.Tensor4D, w: tf.Tensor4D, xShape: [number, number, number, number], s: number, pad: "same" | "valid"): tf.Tensor4D {
  return tf.tidy(() => {
    const [b, h, wd, ci] = xShape;
    const k = w.shape[0];
    const info = tf.backend_util.computeConv2DInfo(xShape, w.shape as [number, number, number, number], s, 1, pad);
    const { top, left } = info.padInfo;
    let d: tf.Tensor4D = dy;
    const [, oh, ow, co] = dy.shape;
    if (s > 1) {
      d = dy.reshape([b, oh, 1, ow, 1, co]).pad([[0, 0], [0, 0], [0, s - 1], [0, 0], [0, s - 1], [0, 0]]).reshape([b, oh * s, ow * s, co]) as tf.Tensor4D;
    }
    // dilated length = (oh-1)*s+1 ; need output h: pad so that conv valid gives h rows
    const padTop = k - 1 - top;
    const padLeft = k - 1 - left;
    const dh = (oh - 1) * s + 1;
    const dwid = (ow - 1) * s + 1;
    const padBottom = h + k - 1 - padTop - dh;
    const padRight = wd + k - 1 - padLeft - dwid;
    // d currently has oh*s rows (s-1 extra trailing zeros): crop/pad to exactly needed
    d = d.slice([0, 0, 0, 0], [b, dh, dwid, co]) as tf.Tensor4D;
    d = d.pad([[0, 0], [padTop, padBottom], [padLeft, padRight], [0, 0]]) as tf.Tensor4D;
    const wf = tf.reverse(w, [0, 1]).transpose([0, 1, 3, 2]) as tf.Tensor4D;
    return tf.conv2d(d, wf, 1, "valid");
  });
}
for (const [b, h, ci, co, k, s, pad] of [[64, 14, 6, 16, 5, 1, "valid"], [32, 16, 16, 32, 3, 1, "same"], [32, 32, 16, 32, 3, 2, "same"], [8, 8, 64, 32, 2, 2, "valid"], [4, 9, 3, 5, 3, 2, "same"]] as const) {
  const o = pad === "same" ? Math.ceil(h / s) : Math.ceil((h - k + 1) / s);
  const dy = tf.randomNormal([b, o, o, co]) as tf.Tensor4D;
  const w = tf.randomNormal([k, k, ci, co]) as tf.Tensor4D;
  const xShape: [number, number, number, number] = [b, h, h, ci];
  const ref = tf.conv2dTranspose(dy, w, xShape, s, pad);
  const mine = viaConv(dy, w, xShape, s, pad);
  const err = tf.max(tf.abs(tf.sub(ref, mine))).dataSync()[0];
  const t = performance.now();
  for (let i = 0; i < 5; i++) viaConv(dy, w, xShape, s, pad).dataSync();
  console.log(`viaConv b${b} ${h}x${h}x${ci} k${k} s${s} ${pad}: ${((performance.now() - t) / 5).toFixed(1)} ms, max err ${err.toExponential(1)}`);
}
