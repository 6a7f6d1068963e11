// 3. Single-user presence across 4 cluster workers: p50 / p99 latency of
// isUserConnected with cluster-query vs fetchSockets.
import { spawn } from "node:child_process";
import { once } from "node:events";
import { fileURLToPath } from "node:url";
import { percentile, summarize } from "./lib/measure.mjs";

const script = fileURLToPath(new URL("./cluster-latency.mjs", import.meta.url));

async function measureOnce(smoke) {
  const child = spawn(process.execPath, [script], {
    env: { ...process.env, USERS_PER_WORKER: smoke ? "10" : "250", QUERIES: smoke ? "50" : "1000" },
    stdio: ["ignore", "pipe", "inherit"],
  });
  let out = "";
  child.stdout.on("data", (d) => (out += d));
  await once(child, "exit");
  return JSON.parse(out.trim().split("\n").pop());
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
