import { z } from "zod";
const n = z.custom<unknown>((v) => typeof v === "number" || Array.isArray(v)).meta({ description: "nested", anyOf: [{ type: "number" }, { type: "array" }] });
console.log(JSON.stringify(z.toJSONSchema(z.object({ a: z.array(n) }), { unrepresentable: "any", io: "input" })));
