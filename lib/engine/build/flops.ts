// Estimated forward FLOPs of one spec layer, from its input and output shapes: what the model
// summary reports and the FLOPs limit is checked against. A multiply-add counts 2.
import type { LayerSpec } from "../../model-spec/model-spec-schema.ts";
import type { Shape } from "../../model-spec/graph-plan.ts";
import { pair } from "./layers-for.ts";

const prod = (s: Shape) => s.reduce<number>((a, d) => a * (d ?? 1), 1);

/** Estimated forward FLOPs per sample of one spec layer, from its input and output shapes. */
export function estimateFlops(spec: LayerSpec, inShapes: Shape[], out: Shape): number {
  const inS = inShapes[0] ?? [];
  const outSize = prod(out.slice(1));
  const inC = (inS[inS.length - 1] ?? 1) as number;
  switch (spec.type) {
    case "dense":
      return 2 * outSize * inC;
    case "conv1d":
      return 2 * outSize * spec.kernelSize * inC;
    case "conv2d":
    case "coordConv": {
      const [kh, kw] = pair(spec.kernelSize);
      return 2 * outSize * kh * kw * (inC + (spec.type === "coordConv" ? (spec.withRadius ? 3 : 2) : 0));
    }
    case "depthwiseConv2d": {
      const [kh, kw] = pair(spec.kernelSize);
      return 2 * outSize * kh * kw;
    }
    case "separableConv2d": {
      const [kh, kw] = pair(spec.kernelSize);
      const positions = prod(out.slice(1, -1));
      return 2 * positions * inC * spec.depthMultiplier * (kh * kw + spec.filters);
    }
    case "conv2dTranspose": {
      const [kh, kw] = pair(spec.kernelSize);
      return 2 * prod(inS.slice(1)) * kh * kw * spec.filters;
    }
    case "simpleRNN":
    case "lstm":
    case "gru": {
      const gates = spec.type === "lstm" ? 4 : spec.type === "gru" ? 3 : 1;
      const t = (inS[1] ?? 1) as number;
      return 2 * gates * t * (inC * spec.units + spec.units * spec.units);
    }
    case "bidirectional": {
      const gates = spec.layer.type === "lstm" ? 4 : spec.layer.type === "gru" ? 3 : 1;
      const t = (inS[1] ?? 1) as number;
      return 2 * 2 * gates * t * (inC * spec.layer.units + spec.layer.units ** 2);
    }
    case "attention": {
      const tq = (inS[1] ?? 1) as number;
      const tv = ((inShapes[1] ?? inS)[1] ?? 1) as number;
      return 4 * tq * tv * inC;
    }
    case "multiHeadSelfAttention":
    case "transformerEncoder": {
      const t = (inS[1] ?? 1) as number;
      const hk = spec.numHeads * spec.keyDim;
      const attention = 2 * t * inC * hk * 4 + 4 * t * t * hk;
      return spec.type === "transformerEncoder" ? attention + 4 * t * inC * spec.ffDim : attention;
    }
    default:
      // Element-wise, pooling, shape and merge layers: about one operation per value they touch.
      return Math.max(outSize, prod(inS.slice(1)));
  }
}
