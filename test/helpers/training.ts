// Helpers for tests that train through the API.
import { readFileSync } from "node:fs";
import type { App } from "../../services/app.ts";

export const IRIS_CSV = readFileSync(new URL("../../data/iris.csv", import.meta.url), "utf8");
export const IRIS_SPEC = {
  input: { shape: [4] },
  layers: [{ type: "dense", units: 16, activation: "relu" }, { type: "dropout", rate: 0.1 }, { type: "dense", units: 3, activation: "softmax" }],
};

type Inject = App["inject"];

export async function uploadIris(inject: Inject, headers: Record<string, string>): Promise<string> {
  const res = await inject({ method: "POST", url: "/v1/datasets?name=iris&label=species", headers: { ...headers, "content-type": "text/csv" }, payload: IRIS_CSV });
  if (res.statusCode !== 201) throw new Error(`upload failed: ${res.body}`);
  return res.json().id;
}

export async function createModel(inject: Inject, headers: Record<string, string>, name: string, spec: object = IRIS_SPEC): Promise<void> {
  const res = await inject({ method: "POST", url: "/v1/models", headers, payload: { name, spec } });
  if (res.statusCode !== 201) throw new Error(`model failed: ${res.body}`);
}

/** Polls a job until `done(job)` holds or the time runs out (then throws with the last state). */
export async function waitForJob(inject: Inject, headers: Record<string, string>, id: string, done: (job: any) => boolean = (j) => ["succeeded", "failed", "cancelled"].includes(j.status), timeoutMs = 120_000): Promise<any> {
  const deadline = Date.now() + timeoutMs;
  let job: any;
  while (Date.now() < deadline) {
    job = (await inject({ method: "GET", url: `/v1/training-jobs/${id}`, headers })).json();
    if (done(job)) return job;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`job ${id} did not reach the expected state in ${timeoutMs} ms; last: ${JSON.stringify(job)}`);
}
