// The inference thread's entry. Node 20 does not apply the parent's `--import tsx` loader to a
// worker's entry file, so the thread loads its TypeScript through tsx's API.
import { tsImport } from "tsx/esm/api";

await tsImport("./inference-thread.ts", import.meta.url);
