import { spawn } from "node:child_process";
import { exitWithin } from "./deadline.mjs";

/** min / median / max of a list of numbers. */
export function summarize(values) {
  const sorted = [...values].sort((a, b) => a - b);
  const median = sorted.length % 2 ? sorted[(sorted.length - 1) / 2] : (sorted[sorted.length / 2 - 1] + sorted[sorted.length / 2]) / 2;
  return { min: sorted[0], median, max: sorted[sorted.length - 1], runs: values.length };
}

export function percentile(values, p) {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

/** Runs `runOnce` `runs` times and summarizes what it returns. */
export async function repeat(runs, runOnce) {
  const values = [];
  for (let i = 0; i < runs; i++) values.push(await runOnce(i));
  return summarize(values);
}

/** `callers` concurrent loops of connect + disconnect; returns operations per second. */
export async function throughput({ callers, operations, users, connect, disconnect }) {
  const iterations = Math.ceil(operations / 2 / callers);
  const started = process.hrtime.bigint();
  await Promise.all(
    Array.from({ length: callers }, async (_, caller) => {
      for (let k = 0; k < iterations; k++) {
        const connectionId = `c-${caller}-${k}`;
        const userId = `u${(caller * 7919 + k * 31) % users}`;
        await connect(connectionId, userId);
        await disconnect(connectionId, userId);
      }
    }),
  );
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  return (iterations * callers * 2) / seconds;
}

/** redis-benchmark's requests per second for one command, pipelined. */
export async function redisBenchmark(port, requests, args) {
  const child = spawn("redis-benchmark", ["-p", String(port), "-n", String(requests), "-c", "50", "-P", "16", "-q", ...args]);
  let out = "";
  child.stdout.on("data", (d) => (out += d));
  try {
    await exitWithin(child, 120_000, `redis-benchmark ${args[0]} (${requests.toLocaleString("en")} requests) to finish`);
  } catch (error) {
    child.kill("SIGKILL");
    throw error;
  }
  const match = /([\d.]+) requests per second/.exec(out.replace(/\r/g, "\n"));
  if (!match) throw new Error(`redis-benchmark printed no rate: ${out}`);
  return Number(match[1]);
}

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
