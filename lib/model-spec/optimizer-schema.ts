// How weights are updated: the optimizer part of a training job, in the same JSON language as the
// spec. The engine takes the parsed config as is, so its type is inferred here and nowhere else.
import { z } from "zod";

export const optimizerSchema = z
  .object({
    type: z.enum(["sgd", "adam", "rmsprop", "adagrad"], { error: "must be one of sgd, adam, rmsprop, adagrad" }).default("adam"),
    learningRate: z.number().positive("must be > 0").max(10, "must be <= 10").default(0.001),
    momentum: z.number().min(0).lt(1, "must be < 1").optional().describe("sgd (classical momentum) and rmsprop."),
    nesterov: z.boolean().optional().describe("sgd with momentum: Nesterov's accelerated gradient."),
    beta1: z.number().gt(0).lt(1).optional().describe("adam (default 0.9)."),
    beta2: z.number().gt(0).lt(1).optional().describe("adam (default 0.999)."),
    epsilon: z.number().positive().optional().describe("adam and rmsprop (default 1e-7)."),
    rho: z.number().gt(0).lt(1).optional().describe("rmsprop's discounting factor (default 0.9)."),
    weightDecay: z.number().min(0).max(1).optional().describe("Decoupled weight decay (AdamW-style) on kernels, any optimizer."),
  })
  .superRefine((o, ctx) => {
    if (o.nesterov && !o.momentum) ctx.addIssue({ code: "custom", path: ["nesterov"], message: "needs momentum > 0" });
    const only: [keyof typeof o, string[]][] = [["momentum", ["sgd", "rmsprop"]], ["nesterov", ["sgd"]], ["beta1", ["adam"]], ["beta2", ["adam"]], ["rho", ["rmsprop"]]];
    for (const [field, types] of only) {
      if (o[field] !== undefined && !types.includes(o.type)) ctx.addIssue({ code: "custom", path: [field], message: `applies to ${types.join(" and ")}, not ${o.type}` });
    }
  })
  .meta({ id: "Optimizer" });
export type OptimizerConfig = z.infer<typeof optimizerSchema>;
