import { z } from "zod";
type Nested = number | Nested[];
const a: z.ZodType<Nested> = z.lazy(() => z.union([z.number(), z.array(a)]));
const b: z.ZodType<Nested> = z.lazy(() => z.union([z.array(b), z.number()]));
const c: z.ZodType<Nested> = z.union([z.number(), z.array(z.lazy(() => c))]);
const body = Array.from({ length: 100 }, () => Array.from({ length: 28 }, () => Array.from({ length: 28 }, () => [Math.random()])));
const flat = Array.from({ length: 100 }, () => Array.from({ length: 784 }, () => Math.random()));
for (const [name, s] of [["a", a], ["b", b], ["c", c]] as const) {
  const sch = z.array(z.array(s));
  let t = performance.now(); sch.parse(body); const t1 = performance.now() - t;
  t = performance.now(); sch.parse(flat); const t2 = performance.now() - t;
  console.log(name, "nested 100 imgs", t1.toFixed(0), "ms; flat 100 rows", t2.toFixed(0), "ms");
}
