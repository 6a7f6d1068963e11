// 3. Single-user presence across 4 cluster workers: p50 / p99 latency of
// isUserConnected with cluster-query vs fetchSockets.
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { exitWithin } from "./lib/deadline.mjs";
import { percentile, summarize } from "./lib/measure.mjs";

/** The whole measurement (4 workers started, users connected, queries timed); generous for a loaded 2-core machine. */
const RUN_MS = 180_000;

const script = fileURLToPath(new URL("./cluster-latency.mjs", import.meta.url));

async function measureOnce(smoke) {
  const child = spawn(process.execPath, [script], {
    env: { ...process.env, USERS_PER_WORKER: smoke ? "10" : "250", QUERIES: smoke ? "50" : "1000" },
    stdio: ["ignore", "pipe", "inherit"],
  });
  let out = "";
  child.stdout.on("data", (d) => (out += d));
  let code;
  try {
    code = await exitWithin(child, RUN_MS, "the cluster latency measurement (cluster-latency.mjs) to finish");
  } catch (error) {
    child.kill("SIGKILL");
    throw error;
  }
  const last = out.trim().split("\n").pop();
  if (code !== 0) throw new Error(`cluster-latency.mjs exited with ${code}: ${last}`);
  return JSON.parse(last);
}

export async function clusterQueryLatency({ smoke }) {
  const runs = smoke ? 1 : 3;
  const results = [];
  for (let i = 0; i < runs; i++) results.push(await measureOnce(smoke));
  const stat = (key, p) => summarize(results.map((r) => percentile(r[key], p)));
  const bench = "3. isUserConnected across 4 cluster workers";
  return [
    { bench, subject: "cluster-query", peer: "fetchSockets", unit: "p50 ms", lowerIsBetter: true, ours: stat("clusterQuery", 50), theirs: stat("fetchSockets", 50) },
    { bench, subject: "cluster-query", peer: "fetchSockets", unit: "p99 ms", lowerIsBetter: true, ours: stat("clusterQuery", 99), theirs: stat("fetchSockets", 99) },
    { bench, subject: "@presence/cluster", peer: "fetchSockets", unit: "p50 ms", lowerIsBetter: true, ours: stat("clusterStore", 50), theirs: stat("fetchSockets", 50) },
    { bench, subject: "@presence/cluster", peer: "fetchSockets", unit: "p99 ms", lowerIsBetter: true, ours: stat("clusterStore", 99), theirs: stat("fetchSockets", 99) },
  ];
}
